#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 10). Needs cargo-fuzz; the
# toolchain is stable, so RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=$(ls fuzz/src/bin/*.rs 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.rs$//' || true)
[ -z "$targets" ] && { echo "no fuzz targets"; exit 0; }
cargo fuzz build -O
for t in $targets; do
  echo "-- fuzz $t (${secs}s)"
  mkdir -p "fuzz/corpus/$t"
  cargo fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=1024 -print_final_stats=0 2>&1 | tail -n 3
done
