#!/usr/bin/env python3
"""Benchmark: hyper2kvm convert vs qemu-img convert, same inputs, same run.

Prints per source format: median wall time of each tool, the ratio
(qemu-img time / our time: >1 means we are faster) and our peak RSS.
We fsync the output before renaming it into place (a finished convert is
on disk); qemu-img does not (its output may still be in the page cache
when it exits). So qemu-img is also timed with `sync FILE` after it, and
a second ratio compares equal durability.
Page cache: each run is preceded by reading the source files once, the
same for both tools (warm cache), so the disk does not decide the result.
"""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

work, ours, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
pattern = os.path.join(work, "pattern.raw")
size = os.environ.get("BENCH_SIZE", "2G")
FORMATS = [
    ("vmdk-streamOptimized", "vmdk", ["-o", "subformat=streamOptimized"]),
    ("vmdk-monolithicSparse", "vmdk", ["-o", "subformat=monolithicSparse"]),
    ("vhdx-dynamic", "vhdx", ["-o", "subformat=dynamic"]),
    ("qcow2-zstd", "qcow2", ["-c", "-o", "compression_type=zstd"]),
]


def sh(*a):
    subprocess.run(a, check=True, stdout=subprocess.DEVNULL)


def warm(path):
    for p in sorted(os.listdir(os.path.dirname(path))):
        if p.startswith(os.path.basename(path).split(".")[0]):
            with open(os.path.join(os.path.dirname(path), p), "rb") as f:
                while f.read(8 << 20):
                    pass


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return dt, ru.ru_maxrss / 1024.0


rows = []
for name, fmt, opts in FORMATS:
    src = os.path.join(work, f"{name}.{fmt}")
    if not os.path.exists(src):
        sh("qemu-img", "create", "-q", "-f", fmt, *[o for o in opts if o != "-c"], src, size)
        sh("qemu-img", "convert", "-n", "-S", "0", "-f", "raw", pattern, "-O", fmt, *(["-c"] if "-c" in opts else []), src)
    ot, qt, qst, rss = [], [], [], []
    for r in range(runs):
        for tool in ("ours", "qemu"):
            out = os.path.join(work, f"out-{tool}.qcow2")
            if os.path.exists(out):
                os.remove(out)
            warm(src)
            if tool == "ours":
                dt, m = timed([ours, "convert", "-q", src, out])
                ot.append(dt)
                rss.append(m)
            else:
                dt, _ = timed(["qemu-img", "convert", "-O", "qcow2", src, out])
                ds, _ = timed(["sync", out])
                qt.append(dt)
                qst.append(dt + ds)
    # Correctness of what we benchmarked.
    cmp = subprocess.run(["qemu-img", "compare", os.path.join(work, "out-ours.qcow2"),
                          os.path.join(work, "out-qemu.qcow2")], capture_output=True, text=True)
    same = "identical" in cmp.stdout
    o, q, qs = statistics.median(ot), statistics.median(qt), statistics.median(qst)
    rows.append((name, o, q, q / o, qs, qs / o, max(rss), same))

print(f"\n{'source format':24} {'ours (s)':>9} {'qemu-img (s)':>13} {'ratio':>7} "
      f"{'qemu-img+sync (s)':>18} {'ratio':>7} {'peak RSS':>10}  output")
for name, o, q, ratio, qs, ratio_s, rss, same in rows:
    print(f"{name:24} {o:9.2f} {q:13.2f} {ratio:6.2f}x {qs:18.2f} {ratio_s:6.2f}x "
          f"{rss:8.0f}MiB  {'identical' if same else 'DIFFERS'}")
print("ratio = qemu-img time / hyper2kvm time (higher is better for us); "
      f"median of {runs} runs, warm page cache for both; +sync: qemu-img then "
      "`sync FILE`, the same durability as ours (we fsync before the rename)")
json.dump([dict(zip(["format", "ours_s", "qemu_s", "ratio", "qemu_sync_s", "ratio_sync",
                     "rss_mib", "identical"], r)) for r in rows],
          open(os.path.join(work, "results.json"), "w"), indent=1)
