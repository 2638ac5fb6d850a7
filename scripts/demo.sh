#!/usr/bin/env bash
# The main job on a generated sample (no download).
#
# Generates a small, SYNTHETIC VMware-style VM: a VMX (LSI Logic SCSI disk,
# e1000 NIC with a static MAC, Windows XP guest type) and a split sparse VMDK
# (descriptor + extent file). Its disk holds a real MBR boot program and a
# probe boot sector — not Windows — laid out like a VMware-installed XP:
# the boot sector's BPB says 255 heads, while SeaBIOS on KVM presents 16, so
# booting it unchanged fails with "A disk read error occurred" (Launchpad
# bug 586175). Then `hyper2kvm migrate --validate` inspects it, prints the
# plan (geometry fix + what a real Windows would still need), converts the
# disk, writes the bootstrap and final domains (libvirt XML + QEMU script),
# and boots both under QEMU, printing the report.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v nasm >/dev/null \
   || [ ! -f /usr/lib/syslinux/mbr/mbr.bin ]; then
  ./scripts/install-deps.sh
fi
cargo build --release -q -p hyper2kvm --bin hyper2kvm --example make_demo_vm
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
out="${DEMO_DIR:-$PWD/demo-out}"
rm -rf "$out"
echo "== generating the synthetic source VM in $out/source"
"$target/examples/make_demo_vm" "$out/source"
ls -l "$out/source"
sha_before=$(cat "$out"/source/* | sha256sum)
echo
echo "== hyper2kvm info $out/source/demo-xp.vmdk"
"$target/hyper2kvm" info "$out/source/demo-xp.vmdk"
echo
echo "== hyper2kvm migrate --validate (outputs in $out/migrated)"
"$target/hyper2kvm" migrate "$out/source/demo-xp.vmx" --out "$out/migrated" \
  --validate --accel "${ACCEL:-tcg}" --timeout 60 --success-marker "BOOT OK"
echo
ls -l "$out/migrated"
[ "$sha_before" = "$(cat "$out"/source/* | sha256sum)" ] && echo "source unchanged (sha256)"
