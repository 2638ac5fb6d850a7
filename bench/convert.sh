#!/usr/bin/env bash
# Benchmark `hyper2kvm convert` against `qemu-img convert -O qcow2`.
# Images: 2 GiB virtual = 1 GiB filesystem-like data (2-3x compressible,
# every 10th MiB random) + 512 MiB written zeros + 512 MiB unallocated, as
# vmdk streamOptimized, vmdk monolithicSparse, vhdx dynamic, zstd qcow2;
# and thin disks holding 50 MiB: 1 TiB sparse raw (data scattered), qcow2
# (scattered; resized to 1 TiB and 4 TiB), vmdk monolithicSparse and
# streamOptimized, vhdx dynamic. Prints medians, ratios vs qemu-img (plain
# and followed by sync), peak RSS and our time as a % of a physical floor
# (see bench/convert.py). Needs ~8 GB free in the work dir.
# Usage: bench/convert.sh [RUNS] (env BENCH_DIR to keep images between
# runs, BENCH_ONLY=sub1,sub2 to run only cases whose name contains one)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
work="${BENCH_DIR:-$(mktemp -d /var/tmp/h2k-bench.XXXXXX)}"
mkdir -p "$work"
cargo build --release -q -p hyper2kvm
bin="${CARGO_TARGET_DIR:-target}/release/hyper2kvm"
[ -f "$work/pattern.raw" ] || python3 bench/gen_pattern.py "$work/pattern.raw" "${BENCH_DATA_MIB:-1024}" "${BENCH_ZERO_MIB:-512}"
echo "cpus: $(nproc); qemu-img: $(qemu-img --version | head -1)"
python3 bench/convert.py "$work" "$bin" "$runs"
[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
