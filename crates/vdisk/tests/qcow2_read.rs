//! qcow2 reader against qemu-img / qemu-io / qcowinfo: byte-exact reads
//! and extent kinds for v2/v3, cluster sizes 512 B..2 MiB, zlib and zstd
//! compression, extended L2, zero clusters and backing chains.

mod qcow2_common;

use qcow2_common::*;
use std::path::Path;
use vdisk::{Disk, ExtentKind};

fn convert(dir: &Path, name: &str, opts: &[&str]) -> std::path::PathBuf {
    convert_pattern(dir, name, opts, 42)
}

fn layer_version(d: &dyn Disk) -> String {
    let l = d.layer();
    assert_eq!(l.format, "qcow2");
    l.subformat.unwrap()
}

/// qcowinfo (libqcow, an independent implementation) agrees on version
/// and media size.
fn check_qcowinfo(img: &Path, d: &dyn Disk) {
    let out = run("qcowinfo", &[s(img)]);
    let ver = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Format version"))
        .and_then(|r| {
            r.trim_start_matches([' ', '\t', ':'])
                .trim()
                .parse::<u32>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no version in qcowinfo output: {out}"));
    assert_eq!(format!("v{ver}"), layer_version(d));
    let size = format!("({} bytes)", d.size());
    assert!(
        out.contains(&size),
        "qcowinfo media size differs from {size}: {out}"
    );
}

#[test]
fn v2_64k() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "v2.qcow2", &["-o", "compat=0.10"]);
    let d = check_image(&img, t.path());
    assert_eq!(layer_version(&*d), "v2");
    check_qcowinfo(&img, &*d);
    // The pattern data itself survives the round trip.
    let pat = std::fs::read(t.path().join("pattern.raw")).unwrap();
    assert_same(&read_all(&*d, 65536), &pat, "pattern");
}

#[test]
fn v3_cluster_sizes() {
    let t = tempfile::tempdir().unwrap();
    for cs in ["512", "4096", "65536", "2M"] {
        let img = convert(
            t.path(),
            &format!("v3-{cs}.qcow2"),
            &["-o", &format!("compat=1.1,cluster_size={cs}")],
        );
        let d = check_image(&img, t.path());
        assert_eq!(layer_version(&*d), "v3");
        check_qcowinfo(&img, &*d);
        assert!(d.layer().warnings.is_empty(), "{:?}", d.layer().warnings);
    }
}

#[test]
fn v2_512_clusters() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(
        t.path(),
        "v2-512.qcow2",
        &["-o", "compat=0.10,cluster_size=512"],
    );
    check_image(&img, t.path());
}

#[test]
fn compressed_zlib_and_zstd() {
    let t = tempfile::tempdir().unwrap();
    for (name, opts) in [
        ("zlib-v2.qcow2", "compat=0.10"),
        ("zlib.qcow2", "compression_type=zlib"),
        ("zstd.qcow2", "compression_type=zstd"),
        ("zstd-2m.qcow2", "compression_type=zstd,cluster_size=2M"),
        ("zlib-4k.qcow2", "compression_type=zlib,cluster_size=4096"),
    ] {
        let img = convert(t.path(), name, &["-c", "-o", opts]);
        let map = qemu_img(&["map", "--output=json", s(&img)]);
        assert!(
            map.contains("\"compressed\": true"),
            "{name}: qemu-img produced no compressed clusters: {map}"
        );
        let d = check_image(&img, t.path());
        // libqcow does not know zstd (incompatible bit 3).
        if !name.starts_with("zstd") {
            check_qcowinfo(&img, &*d);
        }
    }
}

#[test]
fn extended_l2_subclusters() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(
        t.path(),
        "ext.qcow2",
        &["-o", "extended_l2=on,cluster_size=64k"],
    );
    // Subcluster-sized writes and zeroes (2 KiB subclusters).
    qemu_io(
        &img,
        &[
            "write -P 0x11 0x12000 2k",
            "write -z 0x30800 4k",
            "write -P 0x22 0x200000 6k",
            "discard 0x300000 64k",
            "write -z 0x400000 64k",
        ],
    );
    check_image(&img, t.path());
}

#[test]
fn zero_clusters_and_preallocation() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "z.qcow2", &["-o", "compat=1.1"]);
    // Plain zero clusters (deallocated) and preallocated zero clusters.
    qemu_io(
        &img,
        &[
            "write -z 0 128k",
            "write -z -u 1M 64k",
            "write -z 0x500000 1000",
        ],
    );
    let d = check_image(&img, t.path());
    let e = d.extent(0, 1 << 20).unwrap();
    assert_eq!((e.kind, e.len), (ExtentKind::Zero, 128 * 1024));

    let pre = t.path().join("prealloc.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "preallocation=metadata",
        s(&pre),
        "3M",
    ]);
    qemu_io(&pre, &["write -P 0x77 64k 64k", "write -z 1M 64k"]);
    check_image(&pre, t.path());
}

#[test]
fn backing_file_and_zero_over_backing() {
    let t = tempfile::tempdir().unwrap();
    let base = convert(t.path(), "base.qcow2", &[]);
    let top = t.path().join("top.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        s(&top),
    ]);
    qemu_io(
        &top,
        &[
            "write -P 0x5a 1M 64k",
            "write -P 0x5b 0x1ff000 12k",
            "write -z 2M 128k",
            "write -z 0x300200 1k",
        ],
    );
    let d = check_image(&top, t.path());
    assert_eq!(d.backing().unwrap().layer().path, base);
    assert_eq!(vdisk::disk::chain(&*d).len(), 2);
    let mut b = vec![0u8; 65536];
    d.read_at(&mut b, 1 << 20).unwrap();
    assert!(b.iter().all(|&x| x == 0x5a));
}

#[test]
fn three_deep_chain_larger_top_and_raw_base() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("pattern.raw");
    pattern_raw(&raw, PATTERN_SIZE, 42);
    let mid = t.path().join("mid.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "pattern.raw",
        "-F",
        "raw",
        s(&mid),
    ]);
    qemu_io(&mid, &["write -P 0x31 0 64k", "write -z 0x100000 64k"]);
    let top = t.path().join("top.qcow2");
    // The top is larger than its backing: reads past the base are zeros.
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=4096",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        s(&top),
        "9M",
    ]);
    qemu_io(
        &top,
        &[
            "write -P 0x32 32k 64k",
            "write -P 0x33 0x7ff000 8k",
            "write -z 0x120000 4k",
        ],
    );
    let d = check_image(&top, t.path());
    let chain = vdisk::disk::chain(&*d);
    let fmts: Vec<_> = chain.iter().map(|l| l.format.as_str()).collect();
    assert_eq!(fmts, ["qcow2", "qcow2", "raw"]);
    assert_eq!(d.size(), 9 << 20);
    let e = d.extent(PATTERN_SIZE + 8192, 4096).unwrap();
    assert_eq!(e.kind, ExtentKind::Unallocated);
}

#[test]
fn concurrent_reads_agree() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "c.qcow2", &["-c", "-o", "cluster_size=4096"]);
    let oracle = qemu_raw(&img, t.path());
    let d = vdisk::open(&img).unwrap();
    std::thread::scope(|sc| {
        for th in 0..4u64 {
            let d = &d;
            let oracle = &oracle;
            sc.spawn(move || {
                let step = 12_345 + th as usize * 999;
                let mut off = (th * 777) as usize;
                while off + step <= oracle.len() {
                    let mut b = vec![0u8; step];
                    d.read_at(&mut b, off as u64).unwrap();
                    assert!(b == oracle[off..off + step], "thread {th} at {off:#x}");
                    off += step * 3;
                }
            });
        }
    });
}

#[test]
fn dirty_and_corrupt_bits_are_warnings() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "dirty.qcow2", &[]);
    let mut b = std::fs::read(&img).unwrap();
    b[79] |= 0b11; // incompatible features: dirty | corrupt
    std::fs::write(&img, &b).unwrap();
    let d = vdisk::open(&img).unwrap();
    let w = d.layer().warnings.join("\n");
    assert!(w.contains("dirty") && w.contains("corrupt"), "{w}");
    let pat = std::fs::read(t.path().join("pattern.raw")).unwrap();
    assert_same(&read_all(&*d, 1 << 20), &pat, "dirty image");
}

/// Throughput measurement (not a check; run with `--ignored --nocapture`):
/// reads a 256 MiB image in 1 MiB chunks and times `qemu-img convert`.
#[test]
#[ignore]
fn bench_read_throughput() {
    use std::time::Instant;
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("big.raw");
    let mut data = vec![0u8; 256 << 20];
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    for (i, c) in data.chunks_mut(1 << 20).enumerate() {
        if i % 4 != 3 {
            rand::Rng::fill(&mut rng, c);
        }
    }
    std::fs::write(&raw, &data).unwrap();
    for (name, opts) in [("plain", vec![]), ("zlib", vec!["-c"])] {
        let img = t.path().join(format!("{name}.qcow2"));
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend(opts);
        args.extend([s(&raw), s(&img)]);
        qemu_img(&args);
        let d = vdisk::open(&img).unwrap();
        let t0 = Instant::now();
        let v = read_all(&*d, 1 << 20);
        let ours = t0.elapsed();
        assert!(v == data);
        let out = t.path().join("out.raw");
        let t0 = Instant::now();
        qemu_img(&["convert", "-O", "raw", s(&img), s(&out)]);
        let theirs = t0.elapsed();
        println!(
            "{name}: ours {:.0} MiB/s, qemu-img convert {:.0} MiB/s",
            256.0 / ours.as_secs_f64(),
            256.0 / theirs.as_secs_f64()
        );
    }
}
