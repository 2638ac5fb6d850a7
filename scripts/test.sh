#!/usr/bin/env bash
# The project's test command (README): installs the test oracles, checks
# formatting and lints, runs every test against the real tools, and runs
# each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"
mkdir -p target
# Every test binary runs (one failure does not hide the others' results).
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee target/test.log || status=$?
summary() {
    echo "== test summary"
    passed=$(grep -E '^test result:' target/test.log | awk '{s+=$4} END {print s+0}')
    failed=$(grep -E '^test result:' target/test.log | awk '{s+=$6} END {print s+0}')
    echo "$passed passed, $failed failed"
    grep -E '^test .* FAILED$' target/test.log || true
}
if [ "$status" -ne 0 ]; then
    summary
    exit "$status"
fi
echo "== fuzz (brief)"
./scripts/fuzz.sh "${FUZZ_SECONDS:-5}"
summary
