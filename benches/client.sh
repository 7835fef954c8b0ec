#!/usr/bin/env bash
# The client SDK, measured with `kvctl bench` on a local cluster:
#  1. token-aware routing (each request to a replica of its key) against every request sent to
#     one fixed node (`--node`), taking turns ROUNDS times, workloads a and c, on NODES nodes
#     (default 5, N = 3: a fixed node holds 3/5 of the keys, the others cost it a hop);
#  2. node-3 SIGKILLed a few seconds into a run of workload a: the errors the client sees with
#     retries (`--attempts 3`, the default) and without (`--attempts 1`), the cluster restarted
#     between the two.
#
#   benches/client.sh [KVCTL] [ROUNDS]
set -euo pipefail
kvctl=${1:-target/release/kvctl}
rounds=${2:-3}
ops=${OPERATIONS:-60000}
home=$(mktemp -d)
export KVCTL_HOME=$home
trap '"$kvctl" cluster down >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
"$kvctl" cluster up --detach --base-port 7881 --nodes "${NODES:-5}" >/dev/null
summary='import json,sys; r=json.load(sys.stdin); print(json.dumps({"ops_per_sec": round(r["ops_per_sec"]), "errors": r["errors"], "p50_ms": {l["operation"]: l["p50_ms"] for l in r["latency"]}, "p99_ms": {l["operation"]: l["p99_ms"] for l in r["latency"]}}))'
for round in $(seq "$rounds"); do
  for workload in a c; do
    for routing in token-aware fixed; do
      node=()
      [ "$routing" = fixed ] && node=(--node 127.0.0.1:7881)
      r=$("$kvctl" bench --workload "$workload" --operations "$ops" "${node[@]}" --output json | python3 -c "$summary")
      echo "{\"round\": $round, \"workload\": \"$workload\", \"routing\": \"$routing\", \"bench\": $r}"
    done
  done
done
"$kvctl" cluster down >/dev/null
rm -rf "$home"/*
"$kvctl" cluster up --detach --base-port 7881 >/dev/null
for attempts in 3 1; do
  "$kvctl" cluster up --detach >/dev/null
  sleep 2
  ( sleep 4; kill -9 "$(cat "$home/nodes/node-3/node.pid")" ) &
  r=$("$kvctl" bench --workload a --operations "$((ops * 2))" --attempts "$attempts" --output json | python3 -c "$summary")
  wait
  echo "{\"case\": \"node-3 killed mid-run\", \"attempts\": $attempts, \"bench\": $r}"
done
