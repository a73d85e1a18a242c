#!/usr/bin/env bash
# `make profile`: a CPU profile of the host under load, as a flamegraph.
#
# Starts an isolated stack (its own nats-server with JetStream on a free
# port, the database `beaker_profile` on the usual Postgres), serves with the
# release build, samples the `beaker` process with `perf record` while the
# benchmark's load generator (`beaker-bench load`, bench/) drives requests,
# and folds the samples into target/profile/flamegraph.svg with inferno.
#
# Knobs (environment):
#   PROFILE_SECONDS   how long the load runs and perf samples (default 20)
#   PROFILE_FREQ      samples per second (default 499)
#   PROFILE_BEAKER    the host binary to profile (default the release build;
#                     e.g. one built from an earlier revision, for a before
#                     and after)
#   LOAD_CLIENTS      requests in flight (default 16), LOAD_SKUS products (64)
#   LOAD_MIX          mixed (default: adds, gets and removes; the adds create
#                     the products), change-hot, change-cold or get
#                     (`target/release/beaker-bench load --help`)
#   PROFILE_DATABASE_URL   default postgres://postgres@$PGHOST:$PGPORT/beaker_profile
#
# Sampling uses the `cpu-clock` software event, which works in virtual
# machines and containers without hardware counters, and DWARF call graphs
# (the release profile keeps line tables), so no rebuild with frame pointers
# is needed. Rules code compiled by wasmtime shows as unknown frames.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/profile"
RUN="$OUT/run"
SECONDS_TO_RUN=${PROFILE_SECONDS:-20}
FREQ=${PROFILE_FREQ:-499}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
DATABASE_URL=${PROFILE_DATABASE_URL:-postgres://postgres@$PGHOST:$PGPORT/beaker_profile}
BEAKER="${PROFILE_BEAKER:-$ROOT/target/release/beaker}"
LOAD="$ROOT/target/release/beaker-bench"

SCRIPT=profile
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_tools() {
    if ! command -v perf >/dev/null 2>&1 || ! perf --version >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die "perf is missing and there is no apt-get to install it"
        say "installing perf (linux-perf) with apt"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            || die "cannot run apt-get (need root or sudo) to install perf"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
    fi
    if ! command -v inferno-flamegraph >/dev/null 2>&1; then
        say "installing inferno (flamegraph tools)"
        cargo install --locked inferno
    fi
}

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

ensure_tools
scripts/services.sh test
make --no-print-directory build

rm -rf "$RUN"
mkdir -p "$RUN"

NATS_PORT=$(free_port)
NATS_URL="nats://127.0.0.1:$NATS_PORT"
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
say "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT"
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$RUN/jetstream" >"$RUN/nats.log" 2>&1 &
PIDS+=("$!")
wait_for_line "$RUN/nats.log" "Server is ready" "$!" nats-server

say "starting beaker serve (database $(printf '%s' "$DATABASE_URL" | sed 's|//[^@]*@|//***@|'))"
NATS_URL="$NATS_URL" DATABASE_URL="$DATABASE_URL" BEAKER_LOG_FORMAT=json RUST_LOG=warn,beaker=info \
    BEAKER_METRICS_ADDR=127.0.0.1:0 BEAKER_GATEWAY_ADDR=127.0.0.1:0 \
    "$BEAKER" serve >"$RUN/beaker.log" 2>&1 &
BEAKER_PID=$!
PIDS+=("$BEAKER_PID")
wait_for_line "$RUN/beaker.log" '"ready"' "$BEAKER_PID" "beaker serve"

say "sampling beaker (pid $BEAKER_PID) at $FREQ Hz for $SECONDS_TO_RUN s under load"
perf record -F "$FREQ" -e cpu-clock --call-graph dwarf -p "$BEAKER_PID" \
    -o "$OUT/perf.data" >"$RUN/perf-record.log" 2>&1 &
PERF_PID=$!
PIDS+=("$PERF_PID")
sleep 0.5
kill -0 "$PERF_PID" 2>/dev/null || die "perf record failed (see $RUN/perf-record.log); as a non-root user it needs kernel.perf_event_paranoid <= 1 or CAP_PERFMON"

NATS_URL="$NATS_URL" LOAD_SECONDS="$SECONDS_TO_RUN" LOAD_HOST_PID="$BEAKER_PID" "$LOAD" load | tee "$OUT/load.txt"

kill -INT "$PERF_PID"
wait "$PERF_PID" || true
kill -TERM "$BEAKER_PID"
wait "$BEAKER_PID" || die "beaker did not shut down cleanly; see $RUN/beaker.log"

say "folding the samples (perf script | inferno)"
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/stacks.folded"
[ -s "$OUT/stacks.folded" ] || die "no samples recorded; see $RUN/perf-record.log"
inferno-flamegraph --title "beaker serve under load ($(head -c 200 "$OUT/load.txt"))" \
    <"$OUT/stacks.folded" >"$OUT/flamegraph.svg"

cpu=$(awk '{ n += $NF } END { printf "%.1f", n / 1e9 }' "$OUT/stacks.folded")
say "flamegraph: target/profile/flamegraph.svg ($cpu CPU-seconds of beaker sampled)"
printf '  raw samples: target/profile/perf.data (perf report -i target/profile/perf.data)\n' >&2
printf '  folded stacks: target/profile/stacks.folded\n' >&2
scripts/profile-summary.py "$OUT/stacks.folded" | tee "$OUT/summary.md"
printf '  where the time went: target/profile/summary.md\n' >&2
