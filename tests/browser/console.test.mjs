// Drives the operator console in headless Chromium as an operator would:
// open it with a token, see the rules version, look up a product, add and
// remove stock, see the low-stock event arrive, see a refusal explained.
//
// Run by tests/tests/console.rs, which starts NATS, Postgres and
// `beaker serve --gateway`, and passes:
//   BEAKER_CONSOLE_URL    the gateway's base URL
//   BEAKER_GATEWAY_TOKEN  a token it accepts
//   BEAKER_SKU            a product no one has stocked yet
//   BEAKER_OUTPUT_DIR     where the screenshots go
//   CHROMIUM              the browser (default /usr/bin/chromium)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = required("BEAKER_CONSOLE_URL");
const token = required("BEAKER_GATEWAY_TOKEN");
const sku = required("BEAKER_SKU");
const output = required("BEAKER_OUTPUT_DIR");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP = 15_000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

function step(text) {
  console.log(`- ${text}`);
}

const profile = mkdtempSync(join(tmpdir(), "beaker-console-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1100, height: 900 },
});

const problems = [];
let page;
try {
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });

  step("open the console with the token in the link");
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");

  step("the active rules are shown");
  await page.locator("#rules-name").filter({ hasText: "beaker-default-rules" }).waitFor();
  await page.locator("#stream-status", { hasText: "live" }).waitFor();
  await page.locator("#access-status", { hasText: "Connected." }).waitFor();

  const level = page.locator("#level");
  const result = page.locator("#result");

  step("look up a product never stocked: 0");
  await page.fill("#sku", sku);
  await page.click("#lookup");
  await page.locator('#result[data-operation="get"]').waitFor();
  assert.equal(await level.textContent(), "0");

  step("add 12");
  await page.fill("#quantity", "12");
  await page.click("#add");
  await page.locator('#result[data-operation="add"]').waitFor();
  assert.equal(await level.textContent(), "12");
  assert.equal(await result.getAttribute("data-outcome"), "ok");

  step("remove 5: 7 left, and a low-stock event arrives live");
  await page.fill("#quantity", "5");
  await page.click("#remove");
  await page.locator('#result[data-operation="remove"]').waitFor();
  assert.equal(await level.textContent(), "7");
  const event = page.locator("#events li").filter({ hasText: sku });
  await event.waitFor();
  assert.match(await event.textContent(), /7 left/);

  step("remove 50: refused with the service's reason, nothing changes");
  await page.fill("#quantity", "50");
  await page.click("#remove");
  await page.locator('#result[data-outcome="refused"]').waitFor();
  assert.equal(await level.textContent(), "409");
  assert.match(await page.locator("#result-message").textContent(), /only 7 in stock/);

  step("look up again: 7");
  await page.click("#lookup");
  await page.locator('#result[data-operation="get"][data-outcome="ok"]').waitFor();
  assert.equal(await level.textContent(), "7");

  await page.screenshot({ path: join(output, "console.png"), fullPage: true });
  step(`screenshot: ${join(output, "console.png")}`);
  assert.deepEqual(problems, [], "the page reported errors");
  console.log("console test passed");
} catch (e) {
  if (page) {
    await page.screenshot({ path: join(output, "console-failure.png"), fullPage: true }).catch(() => {});
  }
  console.error(e && e.stack ? e.stack : e);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
