#!/usr/bin/env bash
# Checks a Beaker deployment over NATS with the `nats` CLI, as its callers
# see it: discovery, then one read.
#
#   deploy/synadia/verify.sh [CONTEXT] [SKU]
#
# CONTEXT is a `nats` CLI context for the same account as the workload
# (default: the selected one); SKU defaults to widget-1. NATS_URL and
# NATS_CREDS are ignored here, since they would override the context.
set -euo pipefail

context=${1:-}
sku=${2:-widget-1}
nats_cmd=(env -u NATS_URL -u NATS_CREDS nats)
[ -n "$context" ] && nats_cmd+=(--context "$context")

command -v nats >/dev/null 2>&1 || { echo "verify: the nats CLI is missing" >&2; exit 1; }

echo "== instances answering \$SRV.PING.beaker"
"${nats_cmd[@]}" micro ping beaker

echo "== service info (rules name, version, digest in the metadata)"
"${nats_cmd[@]}" micro info beaker

echo "== stock.get for $sku"
"${nats_cmd[@]}" request stock.get "{\"product-sku\":\"$sku\"}"
