#!/usr/bin/env bash
# onCreateCommand: runs once, when the container is first created (in a
# Codespaces prebuild too, where no secrets are available yet). One-time
# work: make sure the tools are there and compile the workspace, so that
# the first `make run` starts in seconds instead of compiling for minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The image has these; a container built from an older image may not.
missing=()
for tool in cargo-nextest inferno-flamegraph cargo-deny; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    for tool in "${missing[@]}"; do
        case "$tool" in
            inferno-flamegraph) cargo install --locked inferno ;;
            *) cargo install --locked "$tool" ;;
        esac
    done
fi

say "building the host and the rules (make build)"
make build
