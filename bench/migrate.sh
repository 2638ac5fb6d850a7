#!/usr/bin/env bash
# Benchmark `hyper2kvm migrate` against `virt-v2v -i disk ... -o local` on the
# same input: a 20 GiB virtual streamOptimized VMDK holding a bootable Debian
# guest plus ~2 GiB of ~2:1-compressible files on a second ext4 partition
# (built and cached by bench/migrate_disk.sh; see there).
#
#   bench/migrate.sh [--boot]
#
# Two cases (BENCH_CASES, default "skip hostonly"): `skip`, the guest
# whose initrd already drives virtio (no bootstrap boot), and `hostonly`,
# the VMware-style guest with a host-only initramfs (MODULES=dep, no
# virtio_blk; adapter_type=lsilogic VMDK), which needs the bootstrap boot.
#
# env: BENCH_DIR   work dir, kept between runs (default /var/tmp/h2k-bench-migrate)
#      RUNS        runs of each tool (default: 3 for hyper2kvm, 1 for virt-v2v,
#                  which takes minutes); H2K_RUNS / V2V_RUNS set one tool only
#      BENCH_DISK_GIB, BENCH_DATA_MIB   input disk shape (default 20, 2048)
#
# Measured per tool: wall seconds (median of the runs) and peak RSS (the
# largest over the runs) from GNU time. GNU time's peak RSS is the largest
# resident set of any single process of the tree that was waited for (for
# virt-v2v that is mostly its QEMU appliance), not the sum over the tree.
# The input is read once before each run (warm page cache for both tools);
# each run writes into a fresh directory. Outside the timing each output
# disk goes through `qemu-img check`, ours is compared with the source by
# `qemu-img compare`, and with --boot our output is booted by
# `hyper2kvm validate OUT --phase final --accel tcg`.
#
# What differs (the ratio compares the whole tools as they are today):
# - virt-v2v inspects and edits the guest: it launches a libguestfs
#   appliance (QEMU under TCG here, LIBGUESTFS_BACKEND_SETTINGS=force_tcg:
#   no KVM on this machine), trims the filesystems, installs its
#   configuration changes and rebuilds the initramfs (update-initramfs in
#   the TCG appliance is most of its time), then copies the data with
#   nbdcopy to qcow2.
# - hyper2kvm inspects the guest, plans, converts the disk to qcow2, and
#   when the initrd lacks the virtio driver (case `hostonly`) boots the
#   guest's own kernel once (the bootstrap boot, under TCG here) in which
#   its own update-initramfs rebuilds the initramfs; its seconds are
#   printed separately. In case `skip` the initrd already has virtio
#   (MODULES=most): no bootstrap boot runs.
# So the wall-time ratio (virt-v2v / hyper2kvm) is "what the user waits
# for", not a like-for-like comparison of the copy engines; bench/convert.sh
# compares those against qemu-img.
#
# Needs root (the disk build uses loop devices). Installs virt-v2v, nbdkit,
# libnbd-bin and GNU time with apt if missing (plus a kernel image for the
# libguestfs appliance when /boot has none). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
boot=0
for a in "$@"; do
    case $a in
        --boot) boot=1 ;;
        *) echo "usage: $0 [--boot]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "$0: must run as root" >&2; exit 1; }
work=${BENCH_DIR:-/var/tmp/h2k-bench-migrate}
h2k_runs=${H2K_RUNS:-${RUNS:-3}}
v2v_runs=${V2V_RUNS:-${RUNS:-1}}
mkdir -p "$work"
log() { echo "bench/migrate: $*" >&2; }

# --- tools ------------------------------------------------------------------
missing=()
command -v virt-v2v >/dev/null || missing+=(virt-v2v)
command -v nbdkit >/dev/null || missing+=(nbdkit)
command -v nbdcopy >/dev/null || missing+=(libnbd-bin)
[ -x /usr/bin/time ] || missing+=(time)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
# supermin builds the libguestfs appliance from the host's kernel.
compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=600 "${missing[@]}" >"$work/apt.log" 2>&1 ||
        { tail -n 30 "$work/apt.log" >&2; exit 1; }
fi

cargo build --release -q -p hyper2kvm
bin="${CARGO_TARGET_DIR:-target}/release/hyper2kvm"

name_of() { basename "$1" .vmdk; }
warm() { cat "$vmdk" >/dev/null; }

# run TOOL I OUTDIR CMD...: one timed run; appends "wall_s rss_kib" to $work/TOOL.times
run() {
    local tool=$1 i=$2 out=$3; shift 3
    rm -rf "$out"
    mkdir -p "$out"
    warm
    if ! /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >"$work/$tool-$i.log" 2>&1; then
        tail -n 30 "$work/$tool-$i.log" >&2
        echo "$0: $tool run $i failed (log: $work/$tool-$i.log)" >&2
        exit 1
    fi
    tail -n 1 "$work/time.txt" >>"$work/$tool.times"
    log "$tool run $i: $(tail -n 1 "$work/time.txt" | awk '{printf "%.1f s, %.0f MiB", $1, $2 / 1024}')"
}
median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
maxcol2() { awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}'; }
check() { # DISK -> prints the verdict, fails on errors
    local o
    if o=$(qemu-img check "$1" 2>&1); then
        echo "qemu-img check $(basename "$1"): $(echo "$o" | grep -m1 -i 'no errors' || echo "$o" | tail -n 1)"
    else
        echo "$o" >&2
        echo "$0: qemu-img check $1 failed" >&2
        exit 1
    fi
}
row() { # TOOL DISK RUNS
    local wall rss
    wall=$(cut -d' ' -f1 "$work/$1.times" | median)
    rss=$(maxcol2 <"$work/$1.times")
    printf '%-20s %9.1f %14.0f %13.0f %5d\n' "$1" "$wall" "$((rss / 1024))" \
        "$(($(du -B1 "$2" | cut -f1) >> 20))" "$3"
}

export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
# libguestfs builds its appliance on first use (cached under /var/tmp): do
# that outside the timing, with a virt-v2v run on a blank disk (it launches
# the appliance, finds no operating system and stops).
if ! compgen -G "/var/tmp/.guestfs-$(id -u)/appliance.d/kernel" >/dev/null; then
    log "building the libguestfs appliance (once)"
    truncate -s 64M "$work/blank.img"
    virt-v2v -i disk "$work/blank.img" -o null >"$work/appliance.log" 2>&1 || true
    rm -f "$work/blank.img"
    compgen -G "/var/tmp/.guestfs-$(id -u)/appliance.d/kernel" >/dev/null ||
        { tail -n 30 "$work/appliance.log" >&2; echo "$0: no libguestfs appliance" >&2; exit 1; }
fi

echo "cpus: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$bin" --version 2>/dev/null || echo hyper2kvm); $(virt-v2v --version); $(qemu-img --version | head -n 1)"
failed=0
results=()
for case in ${BENCH_CASES:-skip hostonly}; do
    case $case in
        skip) vmdk=$(bench/migrate_disk.sh "$work") ;;
        hostonly) vmdk=$(bench/migrate_disk.sh "$work" --host-only-initramfs) ;;
        *) echo "$0: unknown case $case (skip, hostonly)" >&2; exit 2 ;;
    esac
    name=$(name_of "$vmdk")
    echo
    echo "== case $case"
    echo "input: $vmdk ($(du -m "$vmdk" | cut -f1) MiB file, $(qemu-img info --output=json "$vmdk" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"] >> 30)') GiB virtual)"
    h=$case-hyper2kvm v=$case-virt-v2v
    rm -f "$work/$h.times" "$work/$v.times"
    h2k_out=$work/out-$h
    for i in $(seq "$h2k_runs"); do
        run "$h" "$i" "$h2k_out" "$bin" migrate "$vmdk" --out "$h2k_out" \
            --memory 2048 --vcpus 2 --os linux --firmware bios --accel tcg --quiet
    done
    boot_s=$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])).get("bootstrap"); print("%.1f" % b["seconds"] if b else "none")' "$h2k_out/report.json")
    v2v_out=$work/out-$v
    for i in $(seq "$v2v_runs"); do
        run "$v" "$i" "$v2v_out" virt-v2v -i disk "$vmdk" -o local -os "$v2v_out" -of qcow2
    done

    # --- checks (outside the timing) ---------------------------------------
    h2k_disk=$(find "$h2k_out" -maxdepth 1 -name '*-disk0.qcow2' | head -n 1)
    [ -n "$h2k_disk" ] || { echo "$0: no *-disk0.qcow2 in $h2k_out" >&2; exit 1; }
    v2v_disk=$v2v_out/$name-sda
    [ -f "$v2v_disk" ] || { echo "$0: virt-v2v wrote no $v2v_disk" >&2; exit 1; }
    check "$h2k_disk"
    check "$v2v_disk"
    if cmp_out=$(qemu-img compare "$vmdk" "$h2k_disk" 2>&1); then
        echo "hyper2kvm output vs source: $cmp_out"
    else
        echo "hyper2kvm output vs source: $cmp_out (the bootstrap boot and the plan's edits are in $h2k_out/report.json)"
    fi
    boot_result="not run (pass --boot)"
    if [ "$boot" = 1 ]; then
        log "$case: booting our output (final domain, TCG)"
        if "$bin" validate "$h2k_out" --phase final --accel tcg >"$work/$case-validate.log" 2>&1; then
            boot_result="booted"
        else
            boot_result="FAILED"
            failed=1
        fi
        sed 's/^/  /' "$work/$case-validate.log"
    fi

    h2k_wall=$(cut -d' ' -f1 "$work/$h.times" | median)
    v2v_wall=$(cut -d' ' -f1 "$work/$v.times" | median)
    printf '%-20s %9s %14s %13s %5s\n' tool "wall (s)" "peak RSS (MiB)" "output (MiB)" runs
    row "$h" "$h2k_disk" "$h2k_runs"
    row "$v" "$v2v_disk" "$v2v_runs"
    ratio=$(awk -v a="$v2v_wall" -v b="$h2k_wall" 'BEGIN {printf "%.1f", a / b}')
    echo "ratio virt-v2v wall / hyper2kvm wall: ${ratio}x (median wall; output = allocated size of the disk)"
    if [ "$boot_s" = none ]; then
        echo "hyper2kvm bootstrap boot: none (the initrd already drives virtio)"
    else
        echo "hyper2kvm bootstrap boot (in its wall time): $boot_s s"
    fi
    echo "our output boots (validate --phase final --accel tcg): $boot_result"
    echo "what hyper2kvm's plan says a real migration still needs:"
    grep '^TODO' "$work/$h-1.log" | sed 's/^/  /' || echo "  (nothing)"
    results+=("{\"case\": \"$case\", \"input\": \"$vmdk\", \"hyper2kvm_wall_s\": $h2k_wall, \"virt_v2v_wall_s\": $v2v_wall, \"ratio\": $ratio, \"bootstrap_boot_s\": \"$boot_s\", \"hyper2kvm_runs\": $h2k_runs, \"virt_v2v_runs\": $v2v_runs, \"boot\": \"$boot_result\"}")
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "logs and outputs: $work"
(IFS=,; echo "[${results[*]}]") | python3 -c 'import json,sys; json.dump(json.load(sys.stdin), open(sys.argv[1], "w"), indent=1)' "$work/results-migrate.json"
[ "$failed" = 0 ] || exit 1
