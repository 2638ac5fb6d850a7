#!/usr/bin/env bash
# Benchmark (not a test): edit a Windows-shaped NTFS volume inside a
# partition of a sparse raw and a qcow2 disk with `hyper2kvm fs put`
# (copy a 300 KiB driver into Windows\System32\drivers, rewrite a 12 MiB
# hive), end to end from process start, against ntfs-3g (FUSE mount + cp +
# umount) doing the same on a raw copy of the partition. Prints ratios.
#
# usage: bench/fs.sh [WORKDIR]   (needs mkntfs, ntfs-3g, sfdisk, qemu-img)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-$(mktemp -d)}
mkdir -p "$W"
TARGET=${CARGO_TARGET_DIR:-target}
if [ -n "${H2K_BIN:-}" ]; then
  BIN=$H2K_BIN   # a prebuilt binary (e.g. a debug build for a quick look)
else
  cargo build --release -q -p hyper2kvm --bin hyper2kvm
  BIN=$TARGET/release/hyper2kvm
fi
for t in mkntfs ntfs-3g fusermount sfdisk qemu-img python3; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }
done
now() { date +%s.%N; }

echo "building a Windows-shaped volume in $W ..."
P=$W/part.img; rm -f "$P"; truncate -s 2047M "$P"
mkntfs -F -q -c 4096 "$P" 2>/dev/null
M=$W/mnt; mkdir -p "$M"
ntfs-3g "$P" "$M"
python3 - "$M" <<'PY'
import os, sys, random
m = sys.argv[1]
r = random.Random(1)
def put(p, n):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f: f.write(r.randbytes(n))
for i in range(3000): put(f"{m}/Windows/System32/file{i:05}.dll", r.randrange(1000, 60000))
for i in range(450): put(f"{m}/Windows/System32/drivers/drv{i:04}.sys", r.randrange(5000, 200000))
for h in ["SYSTEM", "SOFTWARE", "SAM", "SECURITY", "DEFAULT"]: put(f"{m}/Windows/System32/config/{h}", 12 << 20 if h == "SOFTWARE" else 1 << 20)
for i in range(2000): put(f"{m}/Windows/WinSxS/x86_pkg_{i:05}/a.dll", 3000)
for i in range(300): put(f"{m}/Program Files/App{i}/bin.exe", 20000)
PY
fusermount -u "$M"

RAW=$W/disk.raw; rm -f "$RAW"; truncate -s 2048M "$RAW"
printf 'label: dos\nstart=2048, type=7\n' | sfdisk -q "$RAW"
dd if="$P" of="$RAW" bs=1M seek=1 conv=sparse,notrunc status=none
QCOW=$W/disk.qcow2; rm -f "$QCOW"
qemu-img convert -O qcow2 "$RAW" "$QCOW"
head -c 300K /dev/urandom > "$W/viostor.sys"
head -c 12M /dev/urandom > "$W/SOFTWARE"

ours() {  # $1 = IMAGE:PART
  local s e
  s=$(now)
  "$BIN" fs put "$1" "$W/viostor.sys" '\Windows\System32\drivers\viostor.sys'
  "$BIN" fs put "$1" "$W/SOFTWARE" '/Windows/System32/config/SOFTWARE'
  e=$(now)
  echo "$e - $s" | bc
}
theirs() {
  local s e
  cp --sparse=always "$P" "$W/copy.img"
  sync
  s=$(now)
  ntfs-3g "$W/copy.img" "$M"
  cp "$W/viostor.sys" "$M/Windows/System32/drivers/viostor.sys"
  cp "$W/SOFTWARE" "$M/Windows/System32/config/SOFTWARE"
  fusermount -u "$M"
  e=$(now)
  echo "$e - $s" | bc
}

best() { sort -g | head -1; }
T_RAW=$(for i in 1 2 3; do cp --sparse=always "$RAW" "$W/r.raw"; ours "$W/r.raw:1"; done | best)
T_QCOW=$(for i in 1 2 3; do cp "$QCOW" "$W/q.qcow2"; ours "$W/q.qcow2:1"; done | best)
T_3G=$(for i in 1 2 3; do theirs; done | best)
# correctness spot check
cmp <("$BIN" fs cat "$W/r.raw:1" /Windows/System32/config/SOFTWARE) "$W/SOFTWARE"
cmp <("$BIN" fs cat "$W/q.qcow2:1" /Windows/System32/drivers/viostor.sys) "$W/viostor.sys"

printf 'hyper2kvm fs put, raw partition:   %.3f s\n' "$T_RAW"
printf 'hyper2kvm fs put, qcow2 partition: %.3f s\n' "$T_QCOW"
printf 'ntfs-3g mount+cp+umount (raw):     %.3f s\n' "$T_3G"
printf 'ratio ntfs-3g/ours raw:   %.2fx\n' "$(echo "$T_3G / $T_RAW" | bc -l)"
printf 'ratio ntfs-3g/ours qcow2: %.2fx\n' "$(echo "$T_3G / $T_QCOW" | bc -l)"
