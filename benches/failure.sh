#!/usr/bin/env bash
# A node down, measured: `kvctl bench --workload a` on 3 nodes with all up, then with one
# SIGKILLed (its writes become hints), then the hints' replay once it is back (hints and
# seconds until every node holds none).
#
#   benches/failure.sh [KVCTL]
set -euo pipefail
kvctl=${1:-target/release/kvctl}
home=$(mktemp -d)
export KVCTL_HOME=$home
trap '"$kvctl" cluster down >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
"$kvctl" cluster up --detach --base-port 7861 >/dev/null
summary='import json,sys; r=json.load(sys.stdin); print(json.dumps({"ops_per_sec": round(r["ops_per_sec"]), "errors": r["errors"], "p99_ms": {l["operation"]: l["p99_ms"] for l in r["latency"]}}))'
echo "{\"case\": \"all up\", \"bench\": $("$kvctl" bench --workload a --output json | python3 -c "$summary")}"
kill -9 "$(cat "$home/nodes/node-3/node.pid")"
sleep 5
echo "{\"case\": \"node-3 down\", \"bench\": $("$kvctl" bench --workload a --output json | python3 -c "$summary")}"
hints() { "$kvctl" status --node 127.0.0.1:7861 --output json | python3 -c 'import json,sys; print(sum(n["hints_pending"] for n in json.load(sys.stdin)["nodes"]))'; }
sleep 2
held=$(hints)
start=$(date +%s.%N)
"$kvctl" cluster up --detach --node node-3 >/dev/null
while [ "$(hints)" != 0 ]; do sleep 0.2; done
end=$(date +%s.%N)
python3 -c "s=$end-$start; print('{\"case\": \"hint replay\", \"hints\": $held, \"seconds\": %.1f, \"hints_per_sec\": %.0f}' % (s, $held/s))"
