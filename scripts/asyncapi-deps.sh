#!/usr/bin/env bash
# What the AsyncAPI document's test (tests/tests/e2e/asyncapi.rs) needs:
# Node.js and the official AsyncAPI parser, @asyncapi/parser, as locked in
# tests/asyncapi/package-lock.json. Installs what is missing; does nothing
# when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK_DIR=tests/asyncapi

SCRIPT=asyncapi-deps
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
# Reinstall when the lock file changed since the last install.
if ! cmp -s "$CHECK_DIR/package-lock.json" "$CHECK_DIR/node_modules/.beaker-lock" \
    || [ ! -d "$CHECK_DIR/node_modules/@asyncapi/parser" ]; then
    say "installing @asyncapi/parser into $CHECK_DIR/node_modules"
    (cd "$CHECK_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$CHECK_DIR/package-lock.json" "$CHECK_DIR/node_modules/.beaker-lock"
fi
