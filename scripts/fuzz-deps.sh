#!/usr/bin/env bash
# What `make api-fuzz` needs: Python 3 with venv, and schemathesis (pinned
# in tests/fuzz/requirements.txt) in a virtual environment under
# .beaker/venv. Installs what is missing; does nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.beaker/venv
REQUIREMENTS=tests/fuzz/requirements.txt

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'fuzz-deps: %s\n' "$*" >&2; exit 1; }
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
