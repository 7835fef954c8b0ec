#!/usr/bin/env bash
# Runs `kvctl bench` workloads a and c against a 3-node local cluster of two builds, taking
# turns (old, new, old, new, ...) so the machine's drift hits both alike, and prints each
# run's throughput and p99 as JSON lines, then the medians side by side.
#
#   benches/compare-release.sh OLD_KVCTL NEW_KVCTL [ROUNDS]
#
# Build the previous release's binary from its tag or commit, for example:
#   git worktree add /tmp/prev <commit> && (cd /tmp/prev && cargo build --release -p kvctl-cmd)
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
work=$(mktemp -d)
trap 'for h in "$work"/*/; do KVCTL_HOME=$h "$old" cluster down >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
results=$work/results.jsonl
run() { # name binary workload round
  local home=$work/$1-$3-$4
  KVCTL_HOME=$home "$2" cluster up --detach --base-port 7801 >/dev/null
  KVCTL_HOME=$home "$2" bench --workload "$3" --operations 100000 --output json \
    | python3 -c "import json,sys; r=json.load(sys.stdin); print(json.dumps({'build': '$1', 'workload': '$3', 'round': $4, 'ops_per_sec': round(r['ops_per_sec']), 'errors': r['errors'], 'p99_ms': {l['operation']: l['p99_ms'] for l in r['latency']}}))" \
    | tee -a "$results"
  KVCTL_HOME=$home "$2" cluster down >/dev/null
  rm -rf "$home"
}
for round in $(seq 1 "$rounds"); do
  for workload in a c; do
    run old "$old" $workload "$round"
    run new "$new" $workload "$round"
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("workload | build | median ops/s | median p99 ms (per operation)")
for w in ("a", "c"):
    med = {}
    for b in ("old", "new"):
        rs = [r for r in rows if r["workload"] == w and r["build"] == b]
        ops = statistics.median(r["ops_per_sec"] for r in rs)
        p99 = {op: statistics.median(r["p99_ms"][op] for r in rs) for op in rs[0]["p99_ms"]}
        med[b] = ops
        print(f"{w} | {b} | {ops:.0f} | {p99}")
    print(f"{w} | new/old | {med['new'] / med['old']:.3f} |")
PY
