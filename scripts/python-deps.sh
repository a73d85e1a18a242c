#!/usr/bin/env bash
# The Python the tests need: Python 3 with venv, and the packages pinned in
# tests/python/requirements.txt (schemathesis for `make api-fuzz`, nats-py
# for `make test`) in a virtual environment under .beaker/venv. Installs
# what is missing; does nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.beaker/venv
REQUIREMENTS=tests/python/requirements.txt

SCRIPT=python-deps
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p .beaker
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
fi
# Reinstall when the pinned list changed since the last install.
if ! cmp -s "$REQUIREMENTS" "$VENV/.requirements" || [ ! -x "$VENV/bin/schemathesis" ]; then
    say "installing $(grep -v '^#' "$REQUIREMENTS" | tr '\n' ' ')into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$VENV/.requirements"
fi
