#!/usr/bin/env bash
# What the console's browser test (tests/tests/e2e/console.rs) needs: Node.js,
# Debian's Chromium at /usr/bin/chromium (or $CHROMIUM), and playwright-core
# as locked in tests/browser/package-lock.json. playwright-core never
# downloads a browser of its own; it drives the system's. Installs what is
# missing; does nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
BROWSER_DIR=tests/browser

SCRIPT=browser-deps
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || apt_install chromium
# Reinstall when the lock file changed since the last install.
if ! cmp -s "$BROWSER_DIR/package-lock.json" "$BROWSER_DIR/node_modules/.beaker-lock" \
    || [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ]; then
    say "installing playwright-core into $BROWSER_DIR/node_modules"
    (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$BROWSER_DIR/package-lock.json" "$BROWSER_DIR/node_modules/.beaker-lock"
fi
