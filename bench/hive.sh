#!/usr/bin/env bash
# Benchmark (not a test): on the 15 MiB Windows 10 SYSTEM hive, merge the
# VirtIO storage-driver keys (service + DriverDatabase entries, ~20 values)
# with `hyper2kvm hive import` vs `hivexregedit --merge`, and a full export
# with `hyper2kvm hive export` vs `hivexregedit --export`. Same machine, same
# run, RUNS runs each (default 5); prints medians and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-5}"
for t in xz hivexregedit python3; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install xz-utils libwin-hivex-perl python3)" >&2; exit 1; }
done
cargo build --release -p hyper2kvm >&2
BIN="${CARGO_TARGET_DIR:-target}/release/hyper2kvm"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
xz -dc ../shared/testdata/hives/SYSTEM-win10-1709.xz > "$work/SYSTEM"
cat > "$work/viostor.reg" <<'REG'
Windows Registry Editor Version 5.00

[\ControlSet001\Services\viostor]
"Start"=dword:00000000
"Type"=dword:00000001
"ErrorControl"=dword:00000001
"Group"="SCSI miniport"
"ImagePath"=hex(2):73,00,79,00,73,00,74,00,65,00,6d,00,33,00,32,00,5c,00,64,00,72,00,69,00,76,00,65,00,72,00,73,00,5c,00,76,00,69,00,6f,00,73,00,74,00,6f,00,72,00,2e,00,73,00,79,00,73,00,00,00
"DisplayName"="Red Hat VirtIO SCSI controller"
"Owners"=hex(7):6f,00,65,00,6d,00,31,00,2e,00,69,00,6e,00,66,00,00,00,00,00

[\ControlSet001\Services\viostor\Parameters]
"BusType"=dword:00000001

[\ControlSet001\Services\viostor\Parameters\PnpInterface]
"5"=dword:00000001

[\DriverDatabase\DriverPackages\viostor.inf_amd64_d2b5e2f0a3c4b6e1]
@="oem1.inf"
"Version"=hex:ff,ff,09,00,00,00,00,00,7b,e9,36,4d,25,e3,ce,11,bf,c1,08,00,2b,e1,03,18,00,00,00,00,00,00,00,00
"Provider"="Red Hat, Inc."
"SignerName"="Red Hat, Inc."
"Flags"=dword:00000000

[\DriverDatabase\DriverPackages\viostor.inf_amd64_d2b5e2f0a3c4b6e1\Descriptors]

[\DriverDatabase\DriverPackages\viostor.inf_amd64_d2b5e2f0a3c4b6e1\Descriptors\PCI]

[\DriverDatabase\DriverPackages\viostor.inf_amd64_d2b5e2f0a3c4b6e1\Descriptors\PCI\VEN_1AF4&DEV_1001]
"Configuration"="rhelscsi_inst"
"Manufacturer"="%rhel%"
"Description"="%rhelscsi.devicedesc%"

[\DriverDatabase\DeviceIds\PCI\VEN_1AF4&DEV_1001]
"viostor.inf"=hex:01,ff,00,00

[\DriverDatabase\DeviceIds\PCI\VEN_1AF4&DEV_1042]
"viostor.inf"=hex:01,ff,00,00
REG

now() { python3 -c 'import time; print(time.perf_counter())'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

: > "$work/ours.t"; : > "$work/hivex.t"; : > "$work/oursx.t"; : > "$work/hivexx.t"
for i in $(seq "$RUNS"); do
  cp "$work/SYSTEM" "$work/ours"; cp "$work/SYSTEM" "$work/theirs"
  t0=$(now); "$BIN" hive import --ignore-logs "$work/ours" "$work/viostor.reg" 2>/dev/null; t1=$(now)
  hivexregedit --merge --prefix '\' "$work/theirs" "$work/viostor.reg"; t2=$(now)
  "$BIN" hive export --ignore-logs "$work/SYSTEM" > /dev/null; t3=$(now)
  hivexregedit --export "$work/SYSTEM" '\' > /dev/null; t4=$(now)
  python3 -c "print($t1-$t0)" >> "$work/ours.t"
  python3 -c "print($t2-$t1)" >> "$work/hivex.t"
  python3 -c "print($t3-$t2)" >> "$work/oursx.t"
  python3 -c "print($t4-$t3)" >> "$work/hivexx.t"
done
same=no
cmp -s <(hivexregedit --export "$work/ours" '\' 2>/dev/null) <(hivexregedit --export "$work/theirs" '\' 2>/dev/null) && same=yes
mi=$(median < "$work/ours.t"); hi=$(median < "$work/hivex.t")
me=$(median < "$work/oursx.t"); he=$(median < "$work/hivexx.t")
echo "hive bench: Windows 10 SYSTEM (15 MiB), $RUNS runs, medians"
printf 'import+commit: hyper2kvm %.3fs  hivexregedit --merge %.3fs  ratio hivex/ours %.1fx  (trees equal after merge: %s)\n' "$mi" "$hi" "$(python3 -c "print($hi/$mi)")" "$same"
printf 'full export:   hyper2kvm %.3fs  hivexregedit --export %.3fs  ratio hivex/ours %.1fx\n' "$me" "$he" "$(python3 -c "print($he/$me)")"
