#!/usr/bin/env bash
# Makes sure what Beaker needs is installed and running, for `make run` and
# `make test`:
#   - the Rust target wasm32-wasip2 (for the rules component);
#   - nats-server with JetStream at $NATS_URL (default nats://127.0.0.1:4222);
#   - PostgreSQL at $PGHOST:$PGPORT (default 127.0.0.1:5432), user postgres.
#
# A service that already answers at its address is used as it is. Otherwise,
# if that address is on this machine (loopback), it is installed with apt
# (when root or sudo is available) and started with its data under .beaker/,
# listening on loopback only; a service expected elsewhere (the devcontainer's
# `nats` and `postgres` containers, a managed NATS) must already be running.
#
# Usage: scripts/services.sh up | test | down | status
#   up      everything `make run` needs, NATS and PostgreSQL running
#   test    everything `make test` needs: the tests start their own
#           nats-server, so only its binary is required, PostgreSQL
#           running (each test creates its own database), and Node.js with
#           npm (the JavaScript rules example is built and tested)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/.beaker"
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
NATS_HOSTPORT=${NATS_URL#*://}
NATS_HOSTPORT=${NATS_HOSTPORT##*@}
NATS_HOSTPORT=${NATS_HOSTPORT%%,*}
NATS_HOST=${NATS_HOSTPORT%%:*}
NATS_PORT=${NATS_HOSTPORT##*:}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}

SCRIPT=services
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Only a service on this machine is ours to start.
is_loopback() { case "$1" in 127.*|localhost|::1|'[::1]') return 0 ;; *) return 1 ;; esac; }

wait_for_port() { # host port what log
    for _ in $(seq 1 100); do
        port_open "$1" "$2" && return 0
        sleep 0.1
    done
    die "$3 did not start on $1:$2; see $4"
}

ensure_rust_target() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
    if command -v rustup >/dev/null 2>&1; then
        if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
            say "adding the Rust target wasm32-wasip2"
            rustup target add wasm32-wasip2
        fi
    fi
    if ! cargo nextest --version >/dev/null 2>&1; then
        say "installing cargo-nextest"
        cargo install cargo-nextest --locked
    fi
}

# The JavaScript rules example is built with npm packages.
ensure_node() {
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
}

nats_bin() {
    for c in "${NATS_SERVER_BIN:-}" "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/local/bin/nats-server; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
    done
    return 1
}

ensure_nats_binary() {
    nats_bin >/dev/null || apt_install nats-server
    nats_bin >/dev/null || die "nats-server is still missing after installing it"
}

ensure_nats() {
    ensure_nats_binary
    if port_open "$NATS_HOST" "$NATS_PORT"; then
        say "NATS answers at $NATS_HOST:$NATS_PORT: using it"
        return
    fi
    is_loopback "$NATS_HOST" || die "NATS does not answer at $NATS_HOST:$NATS_PORT (NATS_URL=$NATS_URL); start it there first"
    mkdir -p "$DATA/nats"
    say "starting nats-server with JetStream on $NATS_HOST:$NATS_PORT (data in .beaker/nats)"
    # In a session of its own: Ctrl-C on `make run` or `make dev` stops the
    # service, not the server it uses.
    setsid nohup "$(nats_bin)" -a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$DATA/nats" \
        -l "$DATA/nats.log" -P "$DATA/nats.pid" >/dev/null 2>&1 &
    wait_for_port "$NATS_HOST" "$NATS_PORT" nats-server "$DATA/nats.log"
}

pg_bindir() {
    local dir
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

# Runs a PostgreSQL server program as a user it accepts (never root).
as_pg_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
    if port_open "$PGHOST" "$PGPORT"; then
        say "PostgreSQL answers at $PGHOST:$PGPORT: using it"
        return
    fi
    is_loopback "$PGHOST" || die "PostgreSQL does not answer at $PGHOST:$PGPORT (PGHOST); start it there first"
    pg_bindir >/dev/null || apt_install postgresql postgresql-client
    # Debian's package may have started its own cluster on the same port.
    port_open "$PGHOST" "$PGPORT" && { say "PostgreSQL answers at $PGHOST:$PGPORT: using it"; return; }
    local bin pgdata="$DATA/postgres"
    bin=$(pg_bindir) || die "PostgreSQL server programs not found after installing them"
    mkdir -p "$DATA"
    if [ ! -s "$pgdata/PG_VERSION" ]; then
        say "creating a project-local PostgreSQL cluster in .beaker/postgres"
        mkdir -p "$pgdata"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pgdata"
        as_pg_user "$bin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    say "starting PostgreSQL on $PGHOST:$PGPORT (data in .beaker/postgres)"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DATA"
    as_pg_user "$bin/pg_ctl" -D "$pgdata" -l "$DATA/postgres.log" -w \
        -o "-c listen_addresses=$PGHOST -p $PGPORT -k $pgdata" start >/dev/null
    wait_for_port "$PGHOST" "$PGPORT" PostgreSQL "$DATA/postgres.log"
}

# The fault tests run PostgreSQL clusters of their own (initdb, pg_ctl),
# even when the server the other tests use runs elsewhere, in a container.
ensure_postgres_programs() {
    pg_bindir >/dev/null || apt_install postgresql
    pg_bindir >/dev/null || die "PostgreSQL server programs (initdb, pg_ctl) are still missing after installing them"
}

down() {
    if [ -s "$DATA/nats.pid" ]; then
        say "stopping the project-local nats-server"
        kill "$(cat "$DATA/nats.pid")" 2>/dev/null || true
        rm -f "$DATA/nats.pid"
    fi
    if [ -s "$DATA/postgres/postmaster.pid" ]; then
        say "stopping the project-local PostgreSQL"
        as_pg_user "$(pg_bindir)/pg_ctl" -D "$DATA/postgres" -m fast stop >/dev/null || true
    fi
}

status() {
    port_open "$NATS_HOST" "$NATS_PORT" && echo "NATS:       up at $NATS_HOST:$NATS_PORT" || echo "NATS:       down ($NATS_HOST:$NATS_PORT)"
    port_open "$PGHOST" "$PGPORT" && echo "PostgreSQL: up at $PGHOST:$PGPORT" || echo "PostgreSQL: down ($PGHOST:$PGPORT)"
}

case "${1:-up}" in
    up) ensure_rust_target; ensure_nats; ensure_postgres ;;
    test) ensure_rust_target; ensure_node; ensure_nats_binary; ensure_postgres; ensure_postgres_programs ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|test|down|status" ;;
esac
