#!/usr/bin/env bash
# Runs two builds' 3-node clusters and their `kvctl bench` runs at the same time, so both see
# the same machine noise (which drifts by ±25 % between runs taken in turns on a shared 2-core
# box) and share its cores; prints each round's throughputs, B's over A's, and the p99s.
# Alternate rounds swap the two clusters' ports. A build whose nodes spend more CPU per
# operation, or wait longer, gets the smaller share.
#
#   benches/duel.sh A_KVCTL B_KVCTL WORKLOAD [ROUNDS]
#
# CLIENT_A / CLIENT_B: another binary runs that side's `kvctl bench` (e.g. one client for both,
# so only the nodes differ). OPS: operations per bench (default 80000).
set -euo pipefail
A=$1 B=$2 wl=$3 rounds=${4:-3}
work=$(mktemp -d)
trap 'KVCTL_HOME=$work/a "$A" cluster down >/dev/null 2>&1 || true; KVCTL_HOME=$work/b "$B" cluster down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for r in $(seq 1 "$rounds"); do
  pa=7801 pb=7901
  if [ $((r % 2)) = 0 ]; then pa=7901 pb=7801; fi
  rm -rf "$work/a" "$work/b"
  KVCTL_HOME=$work/a "$A" cluster up --detach --base-port $pa >/dev/null
  KVCTL_HOME=$work/b "$B" cluster up --detach --base-port $pb >/dev/null
  KVCTL_HOME=$work/a "${CLIENT_A:-$A}" bench --workload "$wl" --operations "${OPS:-80000}" --output json >"$work/a.json" &
  KVCTL_HOME=$work/b "${CLIENT_B:-$B}" bench --workload "$wl" --operations "${OPS:-80000}" --output json >"$work/b.json" &
  wait
  KVCTL_HOME=$work/a "$A" cluster down >/dev/null
  KVCTL_HOME=$work/b "$B" cluster down >/dev/null
  python3 - "$work/a.json" "$work/b.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
p99 = lambda r: {l["operation"]: l["p99_ms"] for l in r["latency"]}
print(f"A {a['ops_per_sec']:.0f} B {b['ops_per_sec']:.0f} B/A {b['ops_per_sec'] / a['ops_per_sec']:.3f}"
      f"  p99 A {p99(a)} B {p99(b)}")
PY
done
