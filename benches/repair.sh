#!/usr/bin/env bash
# What a repair costs against the replicas' difference: two replicas (2 nodes, N = 2) of KEYS
# keys (default 1,000,000; 100-byte values) that differ in DIFF keys (default 100), then the
# same with every key different (one replica's data directory removed). Prints each repair's
# summary (`kvctl repair --output json`: keys, keys_sent, bytes_sent, seconds).
#
#   benches/repair.sh [KVCTL]      (KEYS=..., DIFF=... to change the sizes)
set -euo pipefail
kvctl=${1:-target/release/kvctl}
keys=${KEYS:-1000000} diff=${DIFF:-100}
home=$(mktemp -d)
export KVCTL_HOME=$home
trap '"$kvctl" cluster down >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
# A 1 s hint window: node-2, down longer, gets no hints, so only repair can bring it back.
"$kvctl" cluster up --detach --nodes 2 --replication 2 --base-port 7851 --max-hint-window 1s >/dev/null
"$kvctl" bench --workload c --records "$keys" --operations 1 --value-size 100 --output json >/dev/null
kill -9 "$(cat "$home/nodes/node-2/node.pid")"
sleep 6
for i in $(seq 1 "$diff"); do
  "$kvctl" put "diff-$i" x --consistency one --node 127.0.0.1:7851 >/dev/null
done
"$kvctl" cluster up --detach --node node-2 --max-hint-window 1s >/dev/null
echo "{\"case\": \"$diff keys differ\", \"repair\": $("$kvctl" repair --rate 0 --output json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("keys","ranges","ranges_repaired","keys_sent","bytes_sent","seconds")}))')}"
kill -9 "$(cat "$home/nodes/node-2/node.pid")"
rm -rf "$home/nodes/node-2/data"
"$kvctl" cluster up --detach --node node-2 --max-hint-window 1s >/dev/null
echo "{\"case\": \"every key differs\", \"repair\": $("$kvctl" repair --rate 0 --output json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("keys","ranges","ranges_repaired","keys_sent","bytes_sent","seconds")}))')}"
