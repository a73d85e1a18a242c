// The Product panel's history, from the service's stock.history: after
// console.test.mjs has added 12 and removed 5 (and been refused a remove
// of 50), the level chart and the movements table; then a product with
// more movements than one page holds, paged back.
import assert from "node:assert/strict";
import { join } from "node:path";
import { step } from "./browser.mjs";

// Movements the console asks for at a time (HISTORY_PAGE in product.js).
const PAGE = 50;

export async function checkProductHistory(page, sku) {
  step(`Product history of ${sku}: two movements, newest first; the refusal left none`);
  await page.locator('#history[data-state="loaded"]').waitFor();
  const rows = page.locator("#movements tbody tr");
  await page.waitForFunction(() => document.querySelectorAll("#movements tbody tr").length === 2);
  assert.deepEqual(await rows.locator(".level-after").allTextContents(), ["7", "12"]);
  assert.match(await rows.nth(0).textContent(), /remove.*−5/);
  assert.match(await rows.nth(1).textContent(), /add.*\+12/);
  assert.match(await rows.nth(0).textContent(), /beaker-default-rules/);
  assert.equal(await page.locator("#older").isVisible(), false, "one page holds the whole ledger");

  step("the chart draws the level over time: one point per movement");
  await page.locator("#level-chart path.level-line").waitFor();
  assert.equal(await page.locator("#level-chart circle.dot").count(), 2);
  assert.equal(await page.locator("#level-chart circle.dot.remove").count(), 1);
}

// `sku` has `count` movements (PAGE < count <= 2 * PAGE), one unit added
// each: the first page, then "Older movements" for the rest.
export async function checkPaging(page, sku, count, output) {
  step(`Product history of ${sku}: ${PAGE} of its ${count} movements, then the older ones`);
  await page.fill("#sku", sku);
  await page.click("#lookup");
  await page.locator(`#result[data-operation="get"][data-outcome="ok"]`, { hasText: String(count) }).waitFor();
  const rows = () => page.locator("#movements tbody tr").count();
  await page.locator("#history-status", { hasText: "older ones on request" }).waitFor();
  assert.equal(await rows(), PAGE);
  assert.equal(await page.locator("#product-events li").count(), 0, "a new product starts a new event list");
  await page.click("#older");
  await page.locator("#history-status", { hasText: "the whole ledger" }).waitFor();
  assert.equal(await rows(), count);
  assert.equal(await page.locator("#older").isVisible(), false);
  const levels = await page.locator("#movements tbody .level-after").allTextContents();
  assert.deepEqual(levels.map(Number), Array.from({ length: count }, (_, i) => count - i), "newest first, no gap, no repeat");
  assert.equal(await page.locator("#level-chart circle.dot").count(), count);
  await page.screenshot({ path: join(output, "console-history.png"), fullPage: true });
}
