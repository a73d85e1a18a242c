# shellcheck shell=bash
# Sourced by beaker-entrypoint and beaker-healthcheck: turns the NATS
# connection a Synadia Cloud container workload is given into the variables
# `beaker` reads.
#
#   NEX_WORKLOAD_NATS_SERVERS   comma-separated server URLs   -> NATS_URL
#   NEX_WORKLOAD_NATS_B64_JWT   the user JWT, base64-encoded  -+-> NATS_CREDS (a creds file)
#   NEX_WORKLOAD_NATS_NKEY      the user's nkey seed          -+
#
# Explicit settings win: NATS_URL and NATS_CREDS already set are left alone.
# The creds file is written once per container, readable by its owner only,
# under $BEAKER_RUNTIME_DIR (default /tmp/beaker).

beaker_env_from_nex() {
    if [ -n "${NEX_WORKLOAD_NATS_SERVERS:-}" ] && [ -z "${NATS_URL:-}" ]; then
        export NATS_URL="$NEX_WORKLOAD_NATS_SERVERS"
    fi
    if [ -n "${NEX_WORKLOAD_NATS_B64_JWT:-}" ] && [ -n "${NEX_WORKLOAD_NATS_NKEY:-}" ] \
        && [ -z "${NATS_CREDS:-}" ]; then
        local dir="${BEAKER_RUNTIME_DIR:-/tmp/beaker}" jwt
        local creds="$dir/workload.creds"
        if [ ! -s "$creds" ]; then
            jwt=$(printf '%s' "$NEX_WORKLOAD_NATS_B64_JWT" | base64 -d | tr -d '[:space:]') || {
                echo "beaker: NEX_WORKLOAD_NATS_B64_JWT is not valid base64" >&2
                return 1
            }
            (
                umask 077
                mkdir -p "$dir"
                printf -- '-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n' \
                    "$jwt" "${NEX_WORKLOAD_NATS_NKEY//[[:space:]]/}" > "$creds.tmp"
                mv "$creds.tmp" "$creds"
            )
        fi
        export NATS_CREDS="$creds"
    fi
}
