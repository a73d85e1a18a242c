#!/usr/bin/env bash
# postCreateCommand: runs after the container is created, with the user's
# secrets available.
#
# 1. NATS credentials. Every secret named NATS_CREDS_<NAME> holds a NATS
#    credentials file, base64-encoded (`base64 -w0 user.creds`). Each is
#    written to ~/.config/beaker/creds/<name>.creds (readable by its owner
#    only) and registered as the `nats` CLI context <name>, connecting to
#    NATS_SERVER_<NAME> if that is set, Synadia Cloud otherwise. The context
#    `local` is the devcontainer's own NATS server.
# 2. The services answer, and the database is migrated.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

creds_dir="${XDG_CONFIG_HOME:-$HOME/.config}/beaker/creds"
(umask 077 && mkdir -p "$creds_dir")

if command -v nats >/dev/null 2>&1; then
    nats context add local --server nats://127.0.0.1:4222 \
        --description "the devcontainer's NATS (JetStream)" >/dev/null
fi

for var in $(compgen -A variable NATS_CREDS_ || true); do
    name=${var#NATS_CREDS_}
    name=${name,,}
    file="$creds_dir/$name.creds"
    if ! (umask 077 && printf '%s' "${!var}" | base64 -d >"$file.tmp" 2>/dev/null); then
        rm -f "$file.tmp"
        echo "post-create: $var is not valid base64; skipped" >&2
        continue
    fi
    mv "$file.tmp" "$file"
    server_var="NATS_SERVER_${var#NATS_CREDS_}"
    server=${!server_var:-tls://connect.ngs.global}
    say "NATS credentials from $var -> $file (nats context '$name', $server)"
    if command -v nats >/dev/null 2>&1; then
        nats context add "$name" --server "$server" --creds "$file" \
            --description "from the $var secret" >/dev/null
    fi
done

# Select `local` unless a context is selected already (the CLI keeps the
# selection in context.txt).
if command -v nats >/dev/null 2>&1 \
    && [ ! -s "${XDG_CONFIG_HOME:-$HOME/.config}/nats/context.txt" ]; then
    nats context select local >/dev/null
fi

say "checking NATS and Postgres"
scripts/services.sh up
if [ -x target/release/beaker ]; then
    target/release/beaker migrate
fi

cat <<'MSG'

Beaker's devcontainer is ready:
  make run      serve (NATS 127.0.0.1:4222, Postgres postgres:5432)
  make dev      serve, and rebuild + restart on every change
  make test     the whole test suite
Grafana :3000, Jaeger :16686, Prometheus :9090 (see the Ports tab).
MSG
