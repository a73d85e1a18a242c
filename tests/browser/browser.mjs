// What every console test shares: its settings from the environment, a
// headless Chromium (the system's) with a throwaway profile, and a page
// that fails the test on any script error, with a screenshot of the
// moment it failed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const STEP = 15_000;

export function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

export function step(text) {
  console.log(`- ${text}`);
}

// Runs `body(page)` in a fresh browser; on failure saves
// `<name>-failure.png` in `output` and sets a failing exit code.
export async function open(output, name, body) {
  const profile = mkdtempSync(join(tmpdir(), "beaker-console-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
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
    viewport: { width: 1280, height: 900 },
  });
  const problems = [];
  let page;
  try {
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(STEP);
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    // A refused call (4xx, 5xx) is logged by the browser as a failed
    // load: the page shows such answers on purpose, so only script errors
    // count.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
        problems.push(`console error: ${m.text()}`);
      }
    });
    await body(page, problems);
    if (problems.length) throw new Error(`the page reported errors:\n${problems.join("\n")}`);
    console.log(`${name} test passed; screenshots in ${output}`);
  } catch (e) {
    if (page) {
      await page.screenshot({ path: join(output, `${name}-failure.png`), fullPage: true }).catch(() => {});
    }
    console.error(e && e.stack ? e.stack : e);
    if (problems.length) console.error(problems.join("\n"));
    process.exitCode = 1;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
