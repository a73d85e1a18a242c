#!/usr/bin/env bash
# `make dev`: serve, and rebuild on every change; NATS and Postgres keep
# running throughout.
#
#   host/, wit/, schemas/, migrations/, Cargo.toml, Cargo.lock
#       -> `make host` (and `make rules` for wit/), then the host restarts
#          (SIGTERM: it finishes the requests in flight, then exits).
#   guest/
#       -> `make rules`; the running host sees its rules file change and
#          swaps the new component in without restarting (it checks it
#          first: a component that fails its checks is refused and the old
#          rules keep serving). BEAKER_DEV_HOT_SWAP=0 restarts the host
#          instead.
#
# A failed build is reported and the running host keeps serving the last
# good build. Ctrl-C stops the host gracefully and ends the loop.
#
# Extra arguments go to `beaker serve`, e.g. `make dev ARGS=--max-in-flight=8`.
set -euo pipefail

cd "$(dirname "$0")/.."
BEAKER=target/release/beaker
RULES=target/wasm32-wasip2/release/beaker_rules.wasm
WATCHED=(host guest wit schemas migrations Cargo.toml Cargo.lock)

SCRIPT=dev
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
# Its own lines stand out among the host's logs.
say() { printf '\033[1;36m[dev] %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[1;31m[dev] %s\033[0m\n' "$*" >&2; }

command -v inotifywait >/dev/null 2>&1 || apt_install inotify-tools

scripts/services.sh up

HOST_PID=""
start_host() {
    if [ ! -x "$BEAKER" ] || [ ! -f "$RULES" ]; then
        warn "no build to serve yet; fix the build and save a file"
        return
    fi
    say "starting beaker serve"
    "$BEAKER" serve --rules "$RULES" "$@" &
    HOST_PID=$!
}

stop_host() {
    [ -n "$HOST_PID" ] || return 0
    if kill -0 "$HOST_PID" 2>/dev/null; then
        say "stopping beaker (pid $HOST_PID)"
        kill -TERM "$HOST_PID" 2>/dev/null || true
        # Its whole stop is bounded by BEAKER_SHUTDOWN_TIMEOUT (10 s by
        # default); past 20 s something is wrong, and it is killed.
        local waited=0
        while kill -0 "$HOST_PID" 2>/dev/null && [ "$waited" -lt 200 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$HOST_PID" 2>/dev/null; then
            warn "beaker did not stop within 20 s; killing it"
            kill -KILL "$HOST_PID" 2>/dev/null || true
        fi
    fi
    wait "$HOST_PID" 2>/dev/null || true
    HOST_PID=""
}

WATCH_PID=""
# shellcheck disable=SC2317,SC2329 # invoked from the traps below
finish() {
    local status=$1
    trap - INT TERM EXIT
    stop_host
    if [ -n "$WATCH_PID" ]; then kill "$WATCH_PID" 2>/dev/null || true; fi
    exit "$status"
}
trap 'finish 0' INT TERM
trap 'finish $?' EXIT

say "building (make build)"
make --no-print-directory build || warn "the build failed; waiting for a change"
start_host "$@"

# One watcher for the whole session, so that changes made while a build runs
# are not lost: they are read after it.
coproc WATCH { exec inotifywait -m -q -r -e close_write,moved_to,create,delete --format '%w%f' "${WATCHED[@]}"; }
say "watching ${WATCHED[*]} (Ctrl-C stops)"

relevant() { # ignore editor droppings
    case "$1" in
        *.swp | *.swx | *~ | */.#* | */4913 | */target/*) return 1 ;;
        *) return 0 ;;
    esac
}

while read -r path <&"${WATCH[0]}"; do
    changed=()
    relevant "$path" && changed+=("$path")
    # Editors save in bursts: collect until 300 ms pass quietly.
    while read -r -t 0.3 path <&"${WATCH[0]}"; do
        relevant "$path" && changed+=("$path")
    done
    [ "${#changed[@]}" -gt 0 ] || continue

    host=false rules=false
    for path in "${changed[@]}"; do
        case "$path" in
            guest/*) rules=true ;;
            wit/*) host=true rules=true ;;
            *) host=true ;;
        esac
    done
    say "changed: ${changed[*]}"

    built=true
    if $rules; then
        make --no-print-directory rules || { warn "rules build failed; still serving the last good build"; built=false; }
    fi
    if $host && $built; then
        make --no-print-directory host || { warn "host build failed; still serving the last good build"; built=false; }
    fi
    $built || continue

    if $host || [ "${BEAKER_DEV_HOT_SWAP:-1}" != 1 ]; then
        stop_host
        start_host "$@"
    else
        say "rules rebuilt: $RULES (the running host swaps them in)"
    fi
done
warn "the file watcher stopped (inotify limits? see fs.inotify.max_user_watches)"
exit 1
