#!/usr/bin/env bash
# The README's quickstart as a script: serve, produce, deploy v1 and v2, diff,
# promote, rollback, retire. Runs against a fresh data directory and stops the
# server at the end. The end-to-end tests run it too.
#
# Usage: examples/quickstart.sh   (with `kappa` on PATH, or KAPPA=/path/to/kappa)
set -euo pipefail
cd "$(dirname "$0")"
KAPPA="${KAPPA:-kappa}"
work="$(mktemp -d)"
trap 'kill "${server_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# A server on a free loopback port; its first output line names the address.
"$KAPPA" serve --data-dir "$work/data" --listen 127.0.0.1:0 --log-level warn > "$work/serve.out" &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
export KAPPA_SERVER="$(sed -n 's/^listening on //p' "$work/serve.out")"
echo "server: $KAPPA_SERVER"

set -x
"$KAPPA" plugin examples "$work/plugins"
"$KAPPA" topic create payments --partitions 4
"$KAPPA" produce payments --file payments.jsonl
"$KAPPA" deploy "$work/plugins/payments-v1.wasm" --name payments --version 1.0.0 --topic payments --wait
"$KAPPA" get payments account/acct-0001
"$KAPPA" deploy "$work/plugins/payments-v2.wasm" --name payments --version 2.0.0 --topic payments --wait
"$KAPPA" status
"$KAPPA" diff payments@1.0.0 payments@2.0.0 --prefix account/ --limit 3
"$KAPPA" promote payments@2.0.0
"$KAPPA" get payments account/acct-0001
"$KAPPA" rollback payments
"$KAPPA" retire payments@2.0.0
"$KAPPA" status --json > "$work/status.json"
set +x
grep -q '"promoted": "1.0.0"' "$work/status.json"
grep -q '"state": "retired"' "$work/status.json"
echo "quickstart finished"
