#!/usr/bin/env bash
# The main job on a generated sample (no download): builds hyper2kvm, makes
# a small multi-part VMware disk (twoGbMaxExtentSparse: descriptor + -s001
# parts) with qemu-img from a generated pattern, shows what `info` reads,
# converts it to qcow2 and lets qemu-img verify the result.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-img >/dev/null || ./scripts/install-deps.sh
cargo build --release -q -p hyper2kvm
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/hyper2kvm"
out="${DEMO_DIR:-$PWD/demo-out}"
rm -rf "$out" && mkdir -p "$out/source"
echo "== generating a synthetic VMware disk in $out/source"
python3 bench/gen_pattern.py "$out/pattern.raw" 48 16
truncate -s 96M "$out/pattern.raw"
qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse "$out/pattern.raw" "$out/source/demo.vmdk"
ls -l "$out/source"
sha_before=$(cat "$out"/source/* | sha256sum)
echo "== hyper2kvm info"
"$bin" info "$out/source/demo.vmdk"
echo "== hyper2kvm convert"
"$bin" convert "$out/source/demo.vmdk" "$out/demo.qcow2"
echo "== verification by qemu-img"
qemu-img check "$out/demo.qcow2" | head -1
qemu-img compare -f raw "$out/pattern.raw" "$out/demo.qcow2"
[ "$sha_before" = "$(cat "$out"/source/* | sha256sum)" ] && echo "source unchanged (sha256)"
