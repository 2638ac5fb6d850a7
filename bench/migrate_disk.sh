#!/usr/bin/env bash
# Build (or reuse) the input disk of bench/migrate.sh and print its path.
#
#   bench/migrate_disk.sh WORKDIR [--host-only-initramfs]
#
# --host-only-initramfs: partition 1 is the fixture's host-only variant
# (an initrd without virtio_blk: `migrate` runs its bootstrap boot), and
# the VMDK says adapter_type=lsilogic, as a VMware SCSI guest's would.
#
# The disk: BENCH_DISK_GIB (default 20) GiB virtual, MBR, as a VMDK
# streamOptimized (qemu-img convert -O vmdk -o subformat=streamOptimized):
#   partition 1  the bootable Debian guest of tests/fixtures/linux-guest.sh,
#                as built there (ext4 root, 1 MiB .. 2 GiB), plus one fstab
#                line and an empty mount point /srv/data
#   partition 2  ext4 from 2 GiB to the end of the disk, mounted by the
#                guest at /srv/data (fstab by UUID, no `nofail`: a data
#                partition broken by a conversion stops the boot), holding
#                BENCH_DATA_MIB (default 2048) MiB of files cut from
#                bench/gen_pattern.py output (text and record-like binary,
#                every 10th MiB random: ~2:1 under zlib) in seeded random
#                sizes from 64 KiB to 32 MiB, 100 files per directory
#   the rest     never written (unallocated in the VMDK)
#
# Cached as WORKDIR/guest<N>g-<variant>-<key>.vmdk, the key hashing this script,
# linux-guest.sh, gen_pattern.py and the sizes: a re-run with the same key
# does nothing. Needs root (loop devices, mount).
set -euo pipefail

variant=most
fixture_args=()
vmdk_opts=subformat=streamOptimized
case ${2:-} in
    "") ;;
    --host-only-initramfs) variant=hostonly; fixture_args=(--host-only-initramfs)
        vmdk_opts=$vmdk_opts,adapter_type=lsilogic ;;
    *) echo "usage: $0 WORKDIR [--host-only-initramfs]" >&2; exit 2 ;;
esac
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 WORKDIR [--host-only-initramfs]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (loop devices, mount)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$1
disk_gib=${BENCH_DISK_GIB:-20}
data_mib=${BENCH_DATA_MIB:-2048}
[ "$disk_gib" -ge 4 ] || { echo "$0: BENCH_DISK_GIB must be at least 4" >&2; exit 2; }
mkdir -p "$work"
key=$( { cat "$0" "$root/tests/fixtures/linux-guest.sh" "$root/bench/gen_pattern.py"
         echo "$disk_gib $data_mib $variant"; } | sha256sum | cut -c1-12)
vmdk=$work/guest${disk_gib}g-$variant-$key.vmdk
log() { echo "migrate_disk: $*" >&2; }

# One build at a time per work dir.
exec 9>"$work/.disk.lock"
flock 9
if [ -f "$vmdk" ]; then
    log "cached $vmdk"
    echo "$vmdk"
    exit 0
fi

raw=$work/build-$key.raw
pattern=$work/pattern-$data_mib.raw
mnt=$work/mnt-$$
loops=()
cleanup() {
    set +e
    mountpoint -q "$mnt" && umount "$mnt"
    rmdir "$mnt" 2>/dev/null
    for l in "${loops[@]}"; do losetup -d "$l"; done
    rm -f "$raw" "$vmdk.tmp"
}
trap cleanup EXIT

# Partition 1 ends where the fixture's 2 GiB disk ends; partition 2 follows.
p1_start=2048
p2_start=$((2 * 1024 * 1024 * 2))
"$root/tests/fixtures/linux-guest.sh" "$raw" "${fixture_args[@]}"
end=$(sfdisk -d "$raw" | awk -F'[=,]' '/start=/ {s=$2+0; z=$4+0; print s + z}')
[ "$end" = "$p2_start" ] ||
    { echo "$0: fixture partition 1 ends at sector $end, expected $p2_start" >&2; exit 1; }
truncate -s "${disk_gib}G" "$raw"
echo "start=$p2_start, type=83" | sfdisk -q --append "$raw"
sfdisk -d "$raw" | grep -q "start= *$p2_start," ||
    { echo "$0: partition 2 was not created at sector $p2_start" >&2; exit 1; }

# Loop devices over byte ranges: no partition nodes needed (none appear in
# containers without udev).
loop_range() { # START_SECTOR [SIZE_BYTES]
    local l
    if [ $# -eq 2 ]; then
        l=$(losetup -f --show -o $(($1 * 512)) --sizelimit "$2" "$raw")
    else
        l=$(losetup -f --show -o $(($1 * 512)) "$raw")
    fi
    loops+=("$l")
    echo "$l"
}

log "data partition: ext4, $data_mib MiB of files"
lp2=$(loop_range "$p2_start")
mkfs.ext4 -q -L h2kdata -E lazy_itable_init=1,lazy_journal_init=1 "$lp2"
uuid=$(blkid -s UUID -o value "$lp2")
[ -f "$pattern" ] || python3 "$root/bench/gen_pattern.py" "$pattern" "$data_mib" 0
mkdir -p "$mnt"
mount -o noinit_itable "$lp2" "$mnt"
python3 - "$pattern" "$mnt" <<'EOF'
# Cut the pattern into files of seeded, log-uniform random sizes.
import math, os, random, sys
src, dst = sys.argv[1], sys.argv[2]
rng = random.Random(11)
n = 0
with open(src, "rb") as f:
    while True:
        size = int(math.exp(rng.uniform(math.log(64 << 10), math.log(32 << 20))))
        buf = f.read(size)
        if not buf:
            break
        d = os.path.join(dst, "d%03d" % (n // 100))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%05d.dat" % n), "wb") as out:
            out.write(buf)
        n += 1
print("migrate_disk: %d files" % n, file=sys.stderr)
EOF
umount "$mnt"

log "root partition: fstab line for /srv/data"
lp1=$(loop_range "$p1_start" $(((p2_start - p1_start) * 512)))
mount "$lp1" "$mnt"
grep -q '^UUID=[^ ]* / ext4' "$mnt/etc/fstab" ||
    { echo "$0: $mnt/etc/fstab does not look like the fixture's" >&2; exit 1; }
mkdir -p "$mnt/srv/data"
echo "UUID=$uuid /srv/data ext4 defaults 0 2" >>"$mnt/etc/fstab"
umount "$mnt"
sync

log "qemu-img convert -O vmdk -o $vmdk_opts (a few minutes)"
qemu-img convert -f raw -O vmdk -o "$vmdk_opts" "$raw" "$vmdk.tmp"
mv "$vmdk.tmp" "$vmdk"
# Disks built from older versions of this script or its inputs are stale.
find "$work" -maxdepth 1 -name "guest${disk_gib}g-$variant-*.vmdk" ! -name "$(basename "$vmdk")" -delete
log "wrote $vmdk ($(du -m "$vmdk" | cut -f1) MiB)"
echo "$vmdk"
