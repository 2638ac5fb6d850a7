#!/usr/bin/env bash
# Benchmark of the Windows fix (issue 13) on a 20 GiB sparse phony Windows
# 10 (crates/phony: real-shaped hives, BIOS, System Reserved + C:), in one
# run:
#   1. `hyper2kvm inspect` and `hyper2kvm fix-windows --virtio-win TREE` on a
#      raw copy, each timed from process start;
#   2. `hyper2kvm migrate GUEST.vmx` (VMX + monolithicSparse VMDK in ->
#      qcow2 + bootstrap/final domains out, the Windows fix included) vs
#      `virt-v2v -i vmx GUEST.vmx -o local -of qcow2` with the same fake
#      virtio-win tree (VIRTIO_WIN);
#   3. the virt-v2v side-by-side test (crates/hyper2kvm/tests/fix_windows_peer.rs,
#      HYPER2KVM_PEER=1), which compares the storage-driver registry values
#      both tools write.
# Prints wall seconds and peak RSS (GNU time: largest single process; for
# virt-v2v that is mostly its QEMU appliance) of every step and the ratios.
# Targets (issue 13): fix < 1 s, migrate >= 50x faster than virt-v2v, peak
# RSS <= 256 MiB.
#
#   bench/windows.sh            (env BENCH_DIR: work dir, default a new
#                                /var/tmp/h2k-bench-windows.XXXXXX, kept)
#
# virt-v2v needs: nbdkit and nbdcopy (libnbd-bin), a kernel for the libguestfs
# appliance, and rhsrvany.exe or pvvxsvc.exe for its firstboot scripts (a
# stub under VIRT_TOOLS_DATA_DIR is enough: the guest never boots here).
# Runs under TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg; /dev/kvm is not
# usable on these machines). Installs what is missing with apt (root).
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-$(mktemp -d /var/tmp/h2k-bench-windows.XXXXXX)}
mkdir -p "$work"
log() { echo "bench/windows: $*" >&2; }

# --- tools ------------------------------------------------------------------
missing=()
command -v virt-v2v >/dev/null || missing+=(virt-v2v)
command -v nbdkit >/dev/null || missing+=(nbdkit)
command -v nbdcopy >/dev/null || missing+=(libnbd-bin)
[ -x /usr/bin/time ] || missing+=(time)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "$0: missing ${missing[*]} (run as root to install)" >&2; exit 1; }
    log "installing ${missing[*]}"
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${missing[@]}" >"$work/apt.log" 2>&1 ||
        { tail -n 30 "$work/apt.log" >&2; exit 1; }
fi

cargo build --release -q -p hyper2kvm -p phony --bins --example fake_virtio_win
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/hyper2kvm
phony=$target/release/phony-windows
testdata=$(cd .. && pwd)/shared/testdata

# --- inputs (outside the timing) -------------------------------------------
media=$work/virtio-win
if [ ! -d "$media/cd" ]; then
    "$target/release/examples/fake_virtio_win" "$testdata/virtio-win-layout/iso-list.txt" \
        "$testdata/virtio-win-inx" "$media" >/dev/null
fi
media=$media/cd
raw=$work/win10.raw
"$phony" --version win10 --size 20G --testdata "$testdata" "$raw" >"$work/win10.json"
vm=$work/vm
rm -rf "$vm"
mkdir -p "$vm"
qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$vm/win10.vmdk"
cat >"$vm/win10.vmx" <<'EOF'
.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "14"
displayName = "win10"
guestOS = "windows9-64"
memsize = "2048"
numvcpus = "2"
firmware = "bios"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsisas1068"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "win10.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "e1000e"
ethernet0.addressType = "generated"
ethernet0.generatedAddress = "00:0c:29:12:34:56"
EOF
vtd=$work/virt-tools
mkdir -p "$vtd"
[ -f "$vtd/rhsrvany.exe" ] || printf 'MZ stub rhsrvany.exe: the benchmark guest never boots\n' >"$vtd/rhsrvany.exe"
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
export VIRTIO_WIN=$media VIRT_TOOLS_DATA_DIR=$vtd

# libguestfs builds its appliance on first use (cached under /var/tmp): do
# that outside the timing.
if ! compgen -G "/var/tmp/.guestfs-$(id -u)/appliance.d/kernel" >/dev/null; then
    log "building the libguestfs appliance (once)"
    truncate -s 64M "$work/blank.img"
    virt-v2v -i disk "$work/blank.img" -o null >"$work/appliance.log" 2>&1 || true
    rm -f "$work/blank.img"
fi

# run NAME CMD...: one timed run; prints and records "wall_s rss_kib"
run() {
    local name=$1; shift
    cat "$vm/win10.vmdk" >/dev/null
    if ! /usr/bin/time -f '%e %M' -o "$work/$name.time" "$@" >"$work/$name.log" 2>&1; then
        tail -n 30 "$work/$name.log" >&2
        echo "$0: $name failed (log: $work/$name.log)" >&2
        exit 1
    fi
    log "$name: $(awk '{printf "%.2f s, %.0f MiB", $1, $2 / 1024}' "$work/$name.time")"
}
wall() { cut -d' ' -f1 "$work/$1.time"; }
rss() { awk '{printf "%.0f", $2 / 1024}' "$work/$1.time"; }

echo "cpus: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "guest: phony win10 BIOS, 20 GiB virtual, $(du -m "$raw" | cut -f1) MiB allocated; $(virt-v2v --version)"

# --- 1. inspect + fix-windows on a raw copy --------------------------------
fixed=$work/fix.raw
cp --sparse=always "$raw" "$fixed"
run inspect "$bin" inspect "$fixed"
run fix-windows "$bin" fix-windows "$fixed" --virtio-win "$media"
grep -q 'action(s) changed the image' "$work/fix-windows.log"
run fix-windows-again "$bin" fix-windows "$fixed" --virtio-win "$media"
grep -q '^0 action(s) changed the image' "$work/fix-windows-again.log" ||
    { echo "$0: the second fix-windows run changed the image" >&2; exit 1; }

# --- 2. migrate vs virt-v2v --------------------------------------------------
h2k_out=$work/out-hyper2kvm
rm -rf "$h2k_out"
run migrate "$bin" migrate "$vm/win10.vmx" --out "$h2k_out" --virtio-win "$media" --quiet
grep -q 'windows-storage' "$h2k_out/plan.json" ||
    { echo "$0: migrate did not run the Windows fix" >&2; exit 1; }
v2v_out=$work/out-virt-v2v
rm -rf "$v2v_out"
mkdir -p "$v2v_out"
run virt-v2v virt-v2v -i vmx "$vm/win10.vmx" -o local -os "$v2v_out" -of qcow2

# --- table -------------------------------------------------------------------
echo
printf '%-18s %9s %15s\n' step "wall (s)" "peak RSS (MiB)"
for s in inspect fix-windows fix-windows-again migrate virt-v2v; do
    printf '%-18s %9.2f %15s\n' "$s" "$(wall "$s")" "$(rss "$s")"
done
ratio=$(awk -v a="$(wall virt-v2v)" -v b="$(wall migrate)" 'BEGIN {printf "%.1f", a / b}')
echo "ratio virt-v2v wall / hyper2kvm migrate wall: ${ratio}x (target >= 50x)"
echo "fix-windows: $(wall fix-windows) s (target < 1 s); inspect + fix-windows: $(awk -v a="$(wall inspect)" -v b="$(wall fix-windows)" 'BEGIN {printf "%.2f", a + b}') s"
max_rss=0
for s in inspect fix-windows migrate; do
    r=$(rss "$s")
    [ "$r" -gt "$max_rss" ] && max_rss=$r
done
echo "hyper2kvm peak RSS: ${max_rss} MiB (target <= 256 MiB)"
python3 - "$work/results-windows.json" <<EOF
import json, sys
json.dump({"inspect_s": $(wall inspect), "fix_s": $(wall fix-windows),
           "fix_again_s": $(wall fix-windows-again), "migrate_s": $(wall migrate),
           "virt_v2v_s": $(wall virt-v2v), "ratio": $ratio, "peak_rss_mib": $max_rss},
          open(sys.argv[1], "w"), indent=1)
EOF

# --- 3. the side-by-side registry comparison ---------------------------------
log "running the virt-v2v side-by-side test (HYPER2KVM_PEER=1)"
HYPER2KVM_PEER=1 CARGO_INCREMENTAL=0 cargo test -q -p hyper2kvm --test fix_windows_peer \
    -- --nocapture --test-threads 1 2>&1 | tee "$work/peer.log" | grep -E '^(peer|test |test result)' || true
grep -q 'test result: ok' "$work/peer.log" || { echo "$0: the peer comparison failed (log: $work/peer.log)" >&2; exit 1; }
echo "logs and outputs: $work"
