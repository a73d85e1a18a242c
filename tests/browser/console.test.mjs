// Drives the operator console in headless Chromium as an operator would:
// open it with an ordinary token, see the instances, the rules bucket
// (read only), look up a product, add and remove stock, see the
// low-stock event arrive, see a refusal explained; then connect with an
// operator token, promote the shadow rules and roll back, and watch every
// instance follow.
//
// Run by tests/tests/e2e/console.rs, which starts NATS, Postgres,
// `beaker serve --gateway` and more instances, deploys the default rules
// with the threshold rules as their shadow, and passes:
//   BEAKER_CONSOLE_URL     the gateway's base URL
//   BEAKER_GATEWAY_TOKEN   an ordinary token it accepts
//   BEAKER_OPERATOR_TOKEN  an operator token it accepts
//   BEAKER_INSTANCES       how many instances run
//   BEAKER_SKU             a product no one has stocked yet
//   BEAKER_PAGED_SKU       a product with more movements than a page holds
//   BEAKER_PAGED_COUNT     how many (one unit added each)
//   BEAKER_OUTPUT_DIR      where the screenshots go
//   CHROMIUM               the browser (default /usr/bin/chromium)
import assert from "node:assert/strict";
import { join } from "node:path";
import { open, required, step } from "./browser.mjs";
import { checkPaging, checkProductHistory } from "./product-history.mjs";

const base = required("BEAKER_CONSOLE_URL");
const token = required("BEAKER_GATEWAY_TOKEN");
const operatorToken = required("BEAKER_OPERATOR_TOKEN");
const instanceCount = Number(required("BEAKER_INSTANCES"));
const sku = required("BEAKER_SKU");
const pagedSku = required("BEAKER_PAGED_SKU");
const pagedCount = Number(required("BEAKER_PAGED_COUNT"));
const output = required("BEAKER_OUTPUT_DIR");

const DEFAULT_RULES = "beaker-default-rules";
const SHADOW_RULES = "beaker-threshold-rules";

// Every instance row shows `name` as its active rules.
async function instancesServe(page, name) {
  await page.waitForFunction(
    ([n, name]) => {
      const rows = [...document.querySelectorAll("#instances tbody tr")];
      return rows.length === n && rows.every((r) => r.querySelector(".rules-cell").textContent.startsWith(name));
    },
    [instanceCount, name],
  );
}

await open(output, "console", async (page) => {
  step("open the console with the token in the link");
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");

  step("the active rules are shown, the stream is live, all is well");
  await page.locator("#rules-name").filter({ hasText: DEFAULT_RULES }).waitFor();
  await page.locator("#stream-status", { hasText: "live" }).waitFor();
  await page.locator("#access-status", { hasText: "Connected." }).waitFor();
  await page.locator('#health[data-state="ok"]').waitFor();

  step(`Instances: ${instanceCount} running, each with its rules and shadow`);
  await instancesServe(page, DEFAULT_RULES);
  await page.locator("#instances-status", { hasText: `${instanceCount} running` }).waitFor();
  for (const shadow of await page.locator("#instances tbody .shadow-cell").allTextContents()) {
    assert.match(shadow, new RegExp(`${SHADOW_RULES} .* diverge`));
  }

  step("Rules: active and shadow marked, read only for an ordinary token");
  await page.locator('#deployments tr[data-role="active"]', { hasText: DEFAULT_RULES }).waitFor();
  await page.locator('#deployments tr[data-role="shadow"]', { hasText: SHADOW_RULES }).waitFor();
  await page.locator("#rules-status", { hasText: "Read only" }).waitFor();
  assert.equal(await page.locator("#rules-actions").isVisible(), false, "no promote/rollback buttons");

  const level = page.locator("#level");
  const result = page.locator("#result");

  step("Product: look up a product never stocked: 0");
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

  step("remove 5: 7 left, and a low-stock event arrives live, in the product's list too");
  await page.fill("#quantity", "5");
  await page.click("#remove");
  await page.locator('#result[data-operation="remove"]').waitFor();
  assert.equal(await level.textContent(), "7");
  const event = page.locator("#events li").filter({ hasText: sku });
  await event.waitFor();
  assert.match(await event.textContent(), /7 left/);
  await page.locator("#product-events li", { hasText: "7 left" }).waitFor();

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

  await checkProductHistory(page, sku);

  step("the instances counted the requests");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#instances tbody .requests")].reduce((n, c) => n + Number(c.textContent), 0) >= 5);

  await page.screenshot({ path: join(output, "console.png"), fullPage: true });
  await checkPaging(page, pagedSku, pagedCount, output);

  step("connect with an operator token: promote and rollback are offered");
  await page.fill("#token", operatorToken);
  await page.click("#connect");
  await page.locator("#rules-status", { hasText: "may promote" }).waitFor();
  await page.locator("#rules-actions").waitFor({ state: "visible" });

  step("promote the shadow: every instance switches to it");
  await page.click("#promote");
  await page.locator("#rules-status", { hasText: `Promoted ${SHADOW_RULES}` }).waitFor();
  await page.locator('#deployments tr[data-role="active"]', { hasText: SHADOW_RULES }).waitFor();
  await page.locator('#deployments tr[data-role="earlier"]', { hasText: DEFAULT_RULES }).waitFor();
  assert.equal(await page.locator('#deployments tr[data-role="shadow"]').count(), 0);
  assert.ok(await page.locator("#promote").isDisabled(), "no shadow left to promote");
  await instancesServe(page, SHADOW_RULES);
  await page.screenshot({ path: join(output, "console-promoted.png"), fullPage: true });

  step("roll back: every instance serves the default rules again");
  await page.click("#rollback");
  await page.locator("#rules-status", { hasText: `Rolled back to ${DEFAULT_RULES}` }).waitFor();
  await page.locator('#deployments tr[data-role="active"]', { hasText: DEFAULT_RULES }).waitFor();
  await instancesServe(page, DEFAULT_RULES);

  step("roll back once more: to the rules files the instances started with, and no further");
  await page.locator('#deployments tr[data-role="earlier"][data-version="file"]').waitFor();
  await page.click("#rollback");
  await page.locator("#rules-status", { hasText: "Rolled back to each instance's rules file" }).waitFor();
  await page.locator('#deployments tr[data-role="active"][data-version="file"]').waitFor();
  await instancesServe(page, DEFAULT_RULES);
  assert.ok(await page.locator("#rollback").isDisabled(), "nothing earlier to roll back to");
  await page.screenshot({ path: join(output, "console-operator.png"), fullPage: true });
});
