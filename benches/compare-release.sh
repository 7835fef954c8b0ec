#!/usr/bin/env bash
# Runs `kvctl bench` workloads a and c against a 3-node local cluster of two builds, taking
# turns (old, new, old, new, ...) so the machine's drift hits both alike, and prints each
# run's throughput, p99 and the CPU time its nodes spent per operation (load included; work
# done, so steadier than throughput on a noisy machine) as JSON lines, then the medians side
# by side, and the medians of each round's new/old ratios (the two runs of a round are taken
# back to back, so they share the machine's drift). OPERATIONS sets the operations per run
# (default 100000); BENCH_ARGS adds flags to `kvctl bench` (e.g. "--key-order hashed", which
# only this release's bench has).
#
#   benches/compare-release.sh OLD_KVCTL NEW_KVCTL [ROUNDS]
#
# With BENCH_CLIENT=BINARY, that binary runs `kvctl bench` against both clusters (one client
# for both, so only the nodes differ; it must speak a protocol version both builds read).
#
# Build the previous release's binary from its tag or commit, for example:
#   git worktree add /tmp/prev <commit> && (cd /tmp/prev && cargo build --release -p kvctl-cmd)
set -euo pipefail
old=$1 new=$2 rounds=${3:-3} client=${BENCH_CLIENT:-} operations=${OPERATIONS:-100000}
extra=${BENCH_ARGS:-}
work=$(mktemp -d)
trap 'for h in "$work"/*/; do KVCTL_HOME=$h "$old" cluster down >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
results=$work/results.jsonl
tick=$(getconf CLK_TCK)
node_cpu() { # CPU time (clock ticks) of the node processes of a home
  local t=0
  for p in $(pgrep -f "$1/nodes"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
run() { # name binary workload round
  local home=$work/$1-$3-$4
  KVCTL_HOME=$home "$2" cluster up --detach --base-port 7801 >/dev/null
  local before
  before=$(node_cpu "$home")
  KVCTL_HOME=$home "${client:-$2}" bench --workload "$3" --operations "$operations" $extra --output json \
    >"$work/out.json"
  local cpu=$(( $(node_cpu "$home") - before ))
  python3 -c "import json; r=json.load(open('$work/out.json')); print(json.dumps({'build': '$1', 'workload': '$3', 'round': $4, 'ops_per_sec': round(r['ops_per_sec']), 'errors': r['errors'], 'node_cpu_us_per_op': round($cpu * 1e6 / $tick / (r['records'] + $operations)), 'p99_ms': {l['operation']: l['p99_ms'] for l in r['latency']}}))" \
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
print("workload | build | median ops/s | median node CPU µs/op | median p99 ms (per operation)")
for w in ("a", "c"):
    med, cpu = {}, {}
    for b in ("old", "new"):
        rs = [r for r in rows if r["workload"] == w and r["build"] == b]
        med[b] = statistics.median(r["ops_per_sec"] for r in rs)
        cpu[b] = statistics.median(r["node_cpu_us_per_op"] for r in rs)
        p99 = {op: statistics.median(r["p99_ms"][op] for r in rs) for op in rs[0]["p99_ms"]}
        print(f"{w} | {b} | {med[b]:.0f} | {cpu[b]:.0f} | {p99}")
    print(f"{w} | new/old | {med['new'] / med['old']:.3f} | {cpu['new'] / cpu['old']:.3f} |")
# Each round's two runs are taken back to back, so they share the machine's drift (which moves
# throughput by ±25 % between rounds): the median of the rounds' own ratios is the steadier
# comparison.
print("workload | paired medians of new/old per round: ops/s | node CPU per op | p99 (per operation)")
for w in ("a", "c"):
    pairs = []
    for r in sorted({r["round"] for r in rows}):
        o = [x for x in rows if x["workload"] == w and x["build"] == "old" and x["round"] == r]
        n = [x for x in rows if x["workload"] == w and x["build"] == "new" and x["round"] == r]
        if o and n:
            pairs.append((o[0], n[0]))
    if not pairs:
        continue
    ratio = lambda f: statistics.median(f(n) / f(o) for o, n in pairs)
    ops = ratio(lambda r: r["ops_per_sec"])
    cpu = ratio(lambda r: r["node_cpu_us_per_op"])
    p99 = {op: round(ratio(lambda r: r["p99_ms"][op]), 3) for op in pairs[0][0]["p99_ms"]}
    print(f"{w} | {ops:.3f} | {cpu:.3f} | {p99}")
PY
