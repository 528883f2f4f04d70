#!/usr/bin/env bash
# Fuzzes a live aggregator's JSON API against its own /openapi.json with schemathesis (PyPI):
# every operation, generated parameters and bodies, and the check that nothing answers 5xx.
# Starts `nines-aggregator demo` (aggregator + agent on loopback, admin token) and stops it by
# its PID. Needs python3 with venv; installs schemathesis into a venv under $VENV.
# Usage: bench/schemathesis/run.sh [max-examples per operation, default 50]
set -euo pipefail
cd "$(dirname "$0")/../.."
EXAMPLES="${1:-50}"
VENV="${VENV:-/tmp/nines-schemathesis-venv}"
[ -x "$VENV/bin/schemathesis" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q schemathesis; }
cargo build -j2 -q -p nines-aggregator -p nines-agent
DIR="$(mktemp -d)"
target/debug/nines-aggregator demo --dir "$DIR" --ingest-listen 127.0.0.1:0 --api-listen 127.0.0.1:0 \
    --agent-bin target/debug/nines-agent >"$DIR/demo.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do [ -s "$DIR/demo.env" ] && break; sleep 0.2; done
# shellcheck disable=SC1091
. "$DIR/demo.env"
"$VENV/bin/schemathesis" --version
"$VENV/bin/schemathesis" run "$NINES_URL/openapi.json" \
    --header "Authorization: Bearer $NINES_TOKEN" \
    --checks not_a_server_error \
    --max-examples "$EXAMPLES"
