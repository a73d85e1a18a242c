// The console says what is down: run by tests/tests/e2e/console.rs once
// per outage it has caused (the database cut off from the service, every
// service instance stopped, NATS stopped), in front of a gateway that
// keeps running. Besides console.test.mjs's settings it reads
//   BEAKER_EXPECT  database | service | nats
import assert from "node:assert/strict";
import { join } from "node:path";
import { open, required, step } from "./browser.mjs";

const base = required("BEAKER_CONSOLE_URL");
const token = required("BEAKER_GATEWAY_TOKEN");
const output = required("BEAKER_OUTPUT_DIR");
const expect = required("BEAKER_EXPECT");

const SAYS = {
  database: /The database is down: the service answers 503 the inventory database is unavailable/,
  service: /The service is down/,
  nats: /NATS is down: .*(not connected to NATS|the gateway's connection is)/,
};

await open(output, `console-${expect}-down`, async (page) => {
  step(`open the console while the ${expect} is down`);
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  await page.locator("#access-status", { hasText: "Connected" }).waitFor();

  if (expect !== "nats") {
    step("look up a product: the answer says why it failed");
    await page.fill("#sku", "outage-widget");
    await page.click("#lookup");
    const outcome = expect === "database" ? "refused" : "gateway-error";
    await page.locator(`#result[data-outcome="${outcome}"]`).waitFor();
    const message = await page.locator("#result-message").textContent();
    assert.match(message, expect === "database" ? /database is unavailable/ : /no responders/);
  }

  step(`the banner says the ${expect} is down`);
  const banner = page.locator(`#health[data-state="${expect}-down"]`);
  await banner.waitFor();
  assert.match(await banner.textContent(), SAYS[expect]);
  await page.screenshot({ path: join(output, `console-${expect}-down.png`), fullPage: true });
});
