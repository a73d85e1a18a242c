// The Product panel's history, after console.test.mjs has added 12 and
// removed 5 (and been refused a remove of 50): the level chart and the
// movements table, from the service's stock.history. Kept apart so that
// it runs only where the service answers stock.history
// (BEAKER_PRODUCT_HISTORY=1).
import assert from "node:assert/strict";
import { step } from "./browser.mjs";

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
