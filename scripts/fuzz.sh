#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 10), FUZZ_JOBS (default:
# the number of CPUs) at a time. Needs cargo-fuzz; the toolchain is
# stable, so RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags. A crash fails
# the run and leaves its input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
jobs="${FUZZ_JOBS:-$(nproc)}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=$(ls fuzz/src/bin/*.rs 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.rs$//' || true)
[ -z "$targets" ] && { echo "no fuzz targets"; exit 0; }
cargo fuzz build -O
# The built targets run directly (not through `cargo fuzz run`, whose
# build check would serialise parallel runs on cargo's lock).
bin_dir=fuzz/target/$(rustc -vV | awk '/^host:/ {print $2}')/release
run_one() {
    local t=$1 out
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    if out=$("$bin_dir/$t" "fuzz/corpus/$t" -max_total_time="$secs" -rss_limit_mb=1024 \
        -print_final_stats=0 -artifact_prefix="fuzz/artifacts/$t/" 2>&1); then
        echo "-- fuzz $t (${secs}s): $(echo "$out" | grep -E '^#[0-9]+' | tail -n 1)"
    else
        echo "-- fuzz $t FAILED"
        echo "$out" | tail -n 40
        return 1
    fi
}
export -f run_one
export secs bin_dir
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one {}'
