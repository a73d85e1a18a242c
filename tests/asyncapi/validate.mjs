// Validates an AsyncAPI document with the official parser, its structural
// checks and its rule set (spectral's asyncapi ruleset: references, message
// examples against their schemas, operation and channel rules) included.
//
//   node validate.mjs ../../docs/asyncapi.json
//
// Every diagnostic goes to stderr, one per line; stdout gets one JSON line
// with the counts and what the parsed document holds, for the Rust test to
// check. The exit status is 1 when the parser reports an error or builds
// no document, 2 when the file cannot be read.
import { readFile } from 'node:fs/promises';
import parser from '@asyncapi/parser';

const { Parser, DiagnosticSeverity } = parser;

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs FILE');
  process.exit(2);
}
let text;
try {
  text = await readFile(file, 'utf8');
} catch (e) {
  console.error(`cannot read ${file}: ${e.message}`);
  process.exit(2);
}

const { document, diagnostics } = await new Parser().parse(text, { source: file });
const names = { [DiagnosticSeverity.Error]: 'error', [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info', [DiagnosticSeverity.Hint]: 'hint' };
for (const d of diagnostics) {
  console.error(`${names[d.severity] ?? d.severity} ${d.code} at /${d.path.join('/')}: ${d.message}`);
}
const count = (severity) => diagnostics.filter((d) => d.severity === severity).length;
const summary = {
  errors: count(DiagnosticSeverity.Error),
  warnings: count(DiagnosticSeverity.Warning),
  version: document?.version() ?? null,
  channels: document ? document.channels().all().map((c) => c.address()) : [],
  operations: document
    ? document.operations().all().map((o) => ({
        id: o.id(),
        action: o.action(),
        reply: o.reply()?.messages().all().map((m) => m.name()) ?? [],
        queue: o.bindings().get('nats')?.value()?.queue ?? null,
      }))
    : [],
  messages: document ? document.messages().all().map((m) => m.name()) : [],
};
console.log(JSON.stringify(summary));
process.exit(summary.errors === 0 && document ? 0 : 1);
