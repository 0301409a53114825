#!/usr/bin/env bash
# A short fuzzing run of every target, for CI: builds the fuzz crate with nightly
# (cargo-fuzz, sanitizer none), then runs each target SECONDS seconds (default 20) from the
# checked-in seeds, single job. A crash fails the run and leaves its input in
# fuzz/artifacts/TARGET/. The seeds are not modified (new inputs go to a temporary corpus).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
targets=(frame_engine heartbeat_decode replication_receiver grammar admin_request ha_node sasp_decode advisor_state)
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is needed (cargo install --locked cargo-fuzz)" >&2
  exit 1
fi
cargo +nightly fuzz build -s none
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$corpus/$t"
  dict=(); [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  echo "fuzz: $t for ${secs}s"
  log="$corpus/$t.log"
  if cargo +nightly fuzz run -s none "$t" "$corpus/$t" "seeds/$t" -- "${dict[@]}" \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units)' "$log" || true
  else
    grep -vE '^#[0-9]+ ' "$log" | tail -60 >&2
    echo "fuzz: $t failed (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
done
