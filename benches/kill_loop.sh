#!/usr/bin/env bash
# Retried writes in a kill -9 loop: one node of three SIGKILLed and restarted every few
# seconds while `kvctl put` processes (blind QUORUM puts, 4 at a time) write PUTS distinct
# keys; then, with every node back, each acknowledged key is read at ALL and the keys that
# read back as more than one value (a retried put applied twice) are counted.
#
#   benches/kill_loop.sh [KVCTL] [PUTS]
set -euo pipefail
kvctl=$(realpath "${1:-target/release/kvctl}")
puts=${2:-3000}
home=$(mktemp -d)
export KVCTL_HOME=$home
trap 'kill "$killer" 2>/dev/null || true; "$kvctl" cluster down >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
"$kvctl" cluster up --detach --base-port 7891 >/dev/null
(
  while true; do
    sleep 2
    n=$((RANDOM % 3 + 1))
    kill -9 "$(cat "$home/nodes/node-$n/node.pid")" 2>/dev/null || true
    sleep 1
    "$kvctl" cluster up --detach --node "node-$n" >/dev/null 2>&1 || true
  done
) &
killer=$!
start=$(date +%s)
seq "$puts" | xargs -P 4 -I{} sh -c '"$0" put "kill-loop-{}" "value-{}" >/dev/null 2>&1 && echo {}' "$kvctl" \
  >"$home/acked"
kill "$killer"
wait "$killer" 2>/dev/null || true
secs=$(( $(date +%s) - start ))
"$kvctl" cluster up --detach >/dev/null
sleep 5
acked=$(wc -l <"$home/acked")
# One shell process reads every acknowledged key at ALL, as JSON lines.
{ echo "CONSISTENCY all"; echo "OUTPUT json"; sed 's/^/get kill-loop-/' "$home/acked"; } \
  | "$kvctl" shell 2>"$home/errors" | python3 -c '
import json, sys
text, docs, at, dec = sys.stdin.read(), [], 0, json.JSONDecoder()
while True:
    at = text.find("{", at)
    if at < 0:
        break
    doc, at = dec.raw_decode(text, at)
    docs.append(doc)
reads = [d for d in docs if "found" in d]
lost = sum(1 for d in reads if not d["found"])
dup = sum(1 for d in reads if len(d["values"]) > 1)
wrong = sum(1 for d in reads if d["found"] and d["values"] != ["value-" + d["key"].split("-")[-1]])
print(json.dumps({"reads": len(reads), "not_found": lost, "two_or_more_values": dup, "other_value": wrong}))
' | sed "s/^/{\"puts\": $puts, \"acknowledged\": $acked, \"seconds\": $secs, \"after\": /; s/\$/}/"
if [ -s "$home/errors" ]; then echo "read errors:"; head -5 "$home/errors"; fi
