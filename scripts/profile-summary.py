#!/usr/bin/env python3
"""Where the host's CPU time went, from folded stacks (`make profile`).

Reads target/profile/stacks.folded (one `frame;frame;...;frame count` line
per distinct stack, leaf last) and prints a Markdown table: for each part
of the host, the share of samples with at least one of its frames on the
stack. Shares are inclusive, so they overlap (a JSON encoder called from a
tracing layer counts for both) and do not add up to 100 %; the last column
is the share where that part is the innermost one listed, which does add
up (with "other").
"""

import re
import sys
from pathlib import Path

# Checked in this order; the first that matches a frame names it.
PARTS = [
    ("tracing (spans, log layers, OpenTelemetry)", r"tracing_subscriber|tracing_opentelemetry|opentelemetry_sdk::trace|tracing_core|tracing::span"),
    ("metrics (OpenTelemetry instruments)", r"opentelemetry_sdk::metrics|opentelemetry::metrics"),
    ("rules (wasmtime, the component)", r"wasmtime|cranelift|wasm\[|beaker::rules::"),
    ("JSON (serde_json, schema checks)", r"serde_json|jsonschema|referencing|beaker::contract::schema"),
    ("database (sqlx, Postgres protocol)", r"sqlx"),
    ("NATS client (async_nats)", r"async_nats"),
    ("async runtime (tokio)", r"tokio::"),
    ("allocator", r"malloc|free|realloc|_int_|mi_|je_"),
    ("kernel", r"\[kernel\.kallsyms\]|^entry_SYSCALL|do_syscall"),
]


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "target/profile/stacks.folded")
    if not path.exists():
        print(f"{path} is missing: run `make profile` first", file=sys.stderr)
        return 1
    compiled = [(name, re.compile(pattern)) for name, pattern in PARTS]
    total = 0
    inclusive = {name: 0 for name, _ in PARTS}
    innermost = {name: 0 for name, _ in PARTS}
    innermost["other"] = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        for name, pattern in compiled:
            if any(pattern.search(frame) for frame in frames):
                inclusive[name] += samples
        for frame in reversed(frames):
            match = next((name for name, pattern in compiled if pattern.search(frame)), None)
            if match:
                innermost[match] += samples
                break
        else:
            innermost["other"] += samples
    if total == 0:
        print("no samples", file=sys.stderr)
        return 1
    print(f"| part of the host | samples with it on the stack | innermost |")
    print("| --- | ---: | ---: |")
    for name, _ in PARTS:
        print(f"| {name} | {100 * inclusive[name] / total:.1f} % | {100 * innermost[name] / total:.1f} % |")
    print(f"| other | | {100 * innermost['other'] / total:.1f} % |")
    print(f"\n{total} samples.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
