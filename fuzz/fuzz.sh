#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer (cargo fuzz, on stable Rust), one after another, each
# for SECONDS (default 600), niced; see docs/testing.md.
#
#   fuzz/fuzz.sh [SECONDS] [TARGET...]
#
# Each target's working corpus is fuzz/libfuzzer/corpus/<target> (not committed), seeded from
# fuzz/corpus/<target>; a crash is saved under fuzz/libfuzzer/artifacts/<target>/ and ends that
# target's run. The log of each run, ending in libFuzzer's final stats, is
# fuzz/libfuzzer/logs/<target>.log. FUZZ_ARGS adds libFuzzer options: for a target with an open
# finding, FUZZ_ARGS="-fork=1 -ignore_crashes=1" keeps fuzzing past its crashes (each saved).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(proto_request proto_response proto_members proto_chunks siblings vclock
    context_token wal table_block table_tail manifest)
fi

mkdir -p fuzz/libfuzzer/logs
nice -n 10 cargo fuzz build --fuzz-dir fuzz/libfuzzer -s none || exit 1
for target in "${targets[@]}"; do
  mkdir -p "fuzz/libfuzzer/corpus/$target"
  echo "== $target: ${seconds}s"
  nice -n 10 cargo fuzz run --fuzz-dir fuzz/libfuzzer -s none "$target" \
    "fuzz/libfuzzer/corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 ${FUZZ_ARGS:-} >"fuzz/libfuzzer/logs/$target.log" 2>&1
  status=$?
  grep -E "^Done|^stat::number_of_executed_units|^stat::peak_rss_mb|SUMMARY|panicked at" \
    "fuzz/libfuzzer/logs/$target.log" | head -5
  echo "== $target: exit $status"
done
