#!/usr/bin/env bash
# One long run of one target, as recorded in BENCHMARKS.md: single job, single worker,
# 10 million executions or 30 minutes, whichever comes first. Log in logs/TARGET.log.
# Usage: fuzz/run-long.sh TARGET [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")"
t=$1; shift
mkdir -p "corpus/$t" logs
start=$(date -u +%FT%TZ)
SECONDS=0
dict=(); [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
cargo +nightly fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- "${dict[@]}" \
  -jobs=1 -workers=1 -runs=10000000 -max_total_time=1800 -max_len=4096 -timeout=10 \
  -print_final_stats=1 "$@" >"logs/$t.outer.log" 2>&1 && rc=0 || rc=$?
mv -f fuzz-0.log "logs/$t.log" 2>/dev/null || true
echo "target=$t start=$start seconds=$SECONDS rc=$rc corpus_files=$(ls "corpus/$t" | wc -l) corpus_bytes=$(du -sb "corpus/$t" | cut -f1)" >>logs/summary.txt
