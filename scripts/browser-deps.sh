#!/usr/bin/env bash
# What the console's browser test (tests/tests/e2e/console.rs) needs: Node.js,
# Debian's Chromium at /usr/bin/chromium (or $CHROMIUM), and playwright-core
# as locked in tests/browser/package-lock.json. playwright-core never
# downloads a browser of its own; it drives the system's. Installs what is
# missing; does nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
BROWSER_DIR=tests/browser

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'browser-deps: %s\n' "$*" >&2; exit 1; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "cannot install $*: no apt-get here; install it yourself"
    say "installing $* with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || die "cannot run apt-get (need root or sudo) to install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

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
