#!/usr/bin/env bash
# `make bench`: the service measured against its physical ceilings, in one
# run, on a stack of its own.
#
# Creates a uniquely named database (beaker_bench_<time>_<pid>, dropped at
# the end) on the usual PostgreSQL and starts its own nats-server with
# JetStream on a free port, so nothing on the machine's NATS or databases is
# touched. Then `beaker-bench run` (bench/) measures the same-SQL and NATS
# echo baselines, starts the release `beaker serve`, drives it, and prints
# the table, which it also writes to BENCHMARKS.md with the command that
# produced it.
#
# Knobs (environment):
#   BENCH_SECONDS            measured seconds per phase (default 4)
#   BENCH_WARMUP             warm-up seconds before each phase (default 1)
#   BENCH_CONCURRENCY        requests in flight, one phase each (default 1,8,32,64)
#   BENCH_HOT_SKUS           hot products (default 4)
#   BENCH_COLD_SKUS          cold products (default 10000)
#   BENCH_EVENT_SKUS         products per event phase, 10 events each (default 100)
#   BENCH_EVENT_CONCURRENCY  requests in flight of the event phases (default 1,32)
#   BENCH_SERVICE_VARIANTS   service configurations to compare, `name:serve args`
#                            separated by `;` (default `default:`), e.g.
#                            "default:;small-pool:--db-max-connections=4"
#   BENCH_SCALING            requests in flight of the scaling phase, one host then
#                            three on a cluster of three nats-servers (default 64;
#                            0: skipped)
#   BENCH_BURST              changes released at once after the load phases of each
#                            configuration (default 3000; 0: no burst)
#   BENCH_OUTPUT             where the table is written (default BENCHMARKS.md;
#                            empty: only printed)
#   BENCH_POSTGRES_URL       the server the database is created on
#                            (default postgres://postgres@$PGHOST:$PGPORT)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUN="$ROOT/target/bench"
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@$PGHOST:$PGPORT}
BENCH_OUTPUT=${BENCH_OUTPUT-BENCHMARKS.md}
BENCH_BIN="$ROOT/target/release/beaker-bench"

SCRIPT=bench
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# The command that produced the table, with the knobs that were set.
command_line() {
    local knobs=() name
    for name in BENCH_SECONDS BENCH_WARMUP BENCH_CONCURRENCY BENCH_HOT_SKUS BENCH_COLD_SKUS \
        BENCH_EVENT_SKUS BENCH_EVENT_CONCURRENCY BENCH_SERVICE_VARIANTS BENCH_SCALING BENCH_BURST; do
        if [ -n "${!name+x}" ]; then
            knobs+=("$name=$(printf '%q' "${!name}")")
        fi
    done
    printf '%s' "${knobs[*]:+${knobs[*]} }${BENCH_COMMAND:-scripts/bench.sh}"
}

NATS_PID=
DATABASE_URL_CREATED=
cleanup() {
    if [ -n "$NATS_PID" ]; then
        kill "$NATS_PID" 2>/dev/null || true
        wait "$NATS_PID" 2>/dev/null || true
    fi
    if [ -n "$DATABASE_URL_CREATED" ] && [ -x "$BENCH_BIN" ]; then
        "$BENCH_BIN" drop-database --database-url "$DATABASE_URL_CREATED" \
            || printf 'bench: could not drop %s\n' "$DATABASE_URL_CREATED" >&2
    fi
}
trap cleanup EXIT

# Only the table goes to stdout.
scripts/services.sh test >&2
make --no-print-directory build >&2

rm -rf "$RUN"
mkdir -p "$RUN"

NATS_PORT=$(free_port)
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
say "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT"
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$RUN/jetstream" >"$RUN/nats.log" 2>&1 &
NATS_PID=$!
wait_for_line "$RUN/nats.log" "Server is ready" "$NATS_PID" nats-server

DATABASE="beaker_bench_$(date +%Y%m%d%H%M%S)_$$"
DATABASE_URL_CREATED="$POSTGRES_URL/$DATABASE"
say "database $DATABASE (dropped at the end)"

# What the host under test was built from.
revision=$(git rev-parse --short HEAD 2>/dev/null || echo "an unknown revision")
if ! git diff --quiet HEAD -- host guest wit schemas migrations Cargo.toml Cargo.lock 2>/dev/null; then
    revision="$revision with uncommitted changes to the host"
fi

args=(run
    --nats-url "nats://127.0.0.1:$NATS_PORT"
    --database-url "$DATABASE_URL_CREATED"
    --command "$(command_line)"
    --revision "$revision"
    --log-dir "$RUN")
if [ -n "$BENCH_OUTPUT" ]; then
    args+=(--output "$BENCH_OUTPUT")
fi
"$BENCH_BIN" "${args[@]}"
