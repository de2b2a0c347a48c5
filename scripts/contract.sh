#!/usr/bin/env bash
# The public API's contract, checked from outside against the server on its embedded
# default: /openapi.json is a valid OpenAPI 3.1 document equal to the committed
# docs/openapi.json; schemathesis's generated requests (tests/contract/schemathesis.toml)
# find no failure with its default checks: no 5xx, documented statuses, answers that
# match the schema; and after a create and a delete, /metrics parses with Prometheus's own
# OpenMetrics parser and has every series of README "Metrics". Run by scripts/test.sh after the build; alone: bash scripts/contract.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/mongo.sh
. scripts/mongo.sh
ensure_venv
venv=.framedb/venv
work=$(mktemp -d)
cargo build --quiet --locked -p framedb-http --bin framedb-server
port=$(free_port)
url="http://127.0.0.1:$port"
target/debug/framedb-server --listen "127.0.0.1:$port" --state-dir "$work/state" \
    >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 240); do
    if curl -sf "$url/healthz" >/dev/null; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then
        cat "$work/server.log" >&2
        echo "framedb-server exited before serving" >&2
        exit 1
    fi
    sleep 0.25
done

echo "--> /openapi.json is valid OpenAPI 3.1 and equals docs/openapi.json"
curl -sf "$url/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
if ! diff -q <(cat "$work/openapi.json"; echo) docs/openapi.json >/dev/null; then
    echo "docs/openapi.json differs from what the server serves; see" \
        "crates/framedb-http/tests/http/openapi.rs for how to rewrite it" >&2
    exit 1
fi

echo "--> schemathesis against $url"
# It exits non-zero on any failure; its summary says how many cases it generated.
status=0
"$venv/bin/schemathesis" --config-file tests/contract/schemathesis.toml run \
    "$url/openapi.json" --no-color >"$work/schemathesis.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    cat "$work/schemathesis.log"
    echo "schemathesis found failures (exit $status)" >&2
    exit 1
fi
sed -n '/^Test cases:/,/^$/p' "$work/schemathesis.log"
grep -E "^=+ .* in [0-9.]+s =+$" "$work/schemathesis.log"

echo "--> /metrics after a create and a delete"
base="$url/global/framedb/persistent-instances"
curl -sf -X POST "$base" -H 'content-type: application/json' -d '{"framedb_id": "contract-001",
    "cluster_id": "cluster-01", "node_id": "node-a", "storage_size": "1Gi"}' >/dev/null
for _ in $(seq 1 240); do
    if curl -sf "$base/contract-001" | grep -q '"status":"Running"'; then break; fi
    sleep 0.25
done
curl -sf -X DELETE "$base/contract-001" >/dev/null
curl -sf "$url/metrics" >"$work/metrics.txt"
"$venv/bin/python" tests/contract/metrics.py <"$work/metrics.txt"
