//! In-place qcow2 writes checked by `qemu-img check` (no errors, no
//! leaks) and `qemu-img convert -O raw` against an in-memory model.

mod qcow2_common;

use qcow2_common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;
use vdisk::qcow2::open_rw;
use vdisk::{Disk, DiskWrite, ErrorKind};

fn convert(dir: &Path, name: &str, opts: &[&str]) -> std::path::PathBuf {
    convert_pattern(dir, name, opts, 9)
}

/// `qemu-img check` must find neither errors nor leaks.
fn assert_clean(img: &Path) {
    testkit::qemu_check(img);
}

/// Random writes (cluster-aligned, unaligned, spanning, tail) applied to
/// both the image and a model; then qemu checks and flattens the image.
fn random_writes(img: &Path, dir: &Path, seed: u64, count: usize) {
    let mut model = qemu_raw(img, dir);
    let size = model.len() as u64;
    let d = open_rw(img).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cases: Vec<(u64, usize)> = vec![(0, 512), (size - 100, 100), (65536 * 3 - 10, 20)];
    for _ in 0..count {
        let len = match rng.gen_range(0..4) {
            0 => 1,
            1 => rng.gen_range(1..4096),
            2 => 65536,
            _ => rng.gen_range(1..200_000),
        };
        let len = len.min(size as usize);
        let off = if rng.gen_bool(0.3) {
            rng.gen_range(0..size / 65536) * 65536
        } else {
            rng.gen_range(0..=size - len as u64)
        };
        cases.push((off.min(size - len as u64), len));
    }
    for (off, len) in cases {
        let mut b = vec![0u8; len];
        rng.fill(&mut b[..]);
        if rng.gen_bool(0.2) {
            b.fill(0);
        }
        d.write_at(&b, off)
            .unwrap_or_else(|e| panic!("write {off:#x}+{len}: {e}"));
        model[off as usize..off as usize + len].copy_from_slice(&b);
        // Read back through the writer itself.
        let mut r = vec![0u8; len];
        d.read_at(&mut r, off).unwrap();
        assert!(r == b, "read-back after write at {off:#x}");
    }
    d.flush().unwrap();
    assert_same(&read_all(&d, 1 << 20), &model, "writer read_at");
    drop(d);
    assert_clean(img);
    assert_same(
        &qemu_raw(img, dir),
        &model,
        &format!("{} after writes", img.display()),
    );
    // And our own reader agrees, as do both extent maps.
    let r = vdisk::open(img).unwrap();
    assert_same(&read_all(&*r, 1 << 20), &model, "reader after writes");
    check_map(&*r, img);
    check_map(&open_rw(img).unwrap(), img);
}

#[test]
fn writes_v3_and_v2() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "v3.qcow2", &[]);
    random_writes(&img, t.path(), 1, 60);
    let img = convert(t.path(), "v2.qcow2", &["-o", "compat=0.10"]);
    random_writes(&img, t.path(), 2, 60);
}

#[test]
fn writes_into_compressed_clusters() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "zlib.qcow2", &["-c"]);
    random_writes(&img, t.path(), 3, 40);
    let img = convert(
        t.path(),
        "zstd.qcow2",
        &["-c", "-o", "compression_type=zstd,cluster_size=4096"],
    );
    random_writes(&img, t.path(), 4, 40);
}

#[test]
fn writes_into_zero_and_preallocated_zero_clusters() {
    let t = tempfile::tempdir().unwrap();
    let img = convert(t.path(), "z.qcow2", &[]);
    qemu_io(
        &img,
        &[
            "write -z 0 1M",
            "write -z -u 2M 1M",
            "write -z 0x6f0000 64k",
        ],
    );
    let mut model = qemu_raw(&img, t.path());
    let d = open_rw(&img).unwrap();
    for (off, len) in [
        (100u64, 10usize),
        (65536, 65536),
        (0x200123, 5000),
        (0x2f0000, 65536),
        (0x6f8000, 3),
    ] {
        let b = vec![0xa5u8; len];
        d.write_at(&b, off).unwrap();
        model[off as usize..off as usize + len].copy_from_slice(&b);
    }
    d.flush().unwrap();
    drop(d);
    assert_clean(&img);
    assert_same(&qemu_raw(&img, t.path()), &model, "zero cluster writes");
}

#[test]
fn writes_over_backing_file() {
    let t = tempfile::tempdir().unwrap();
    convert(t.path(), "base.qcow2", &[]);
    let top = t.path().join("top.qcow2");
    // Larger than the base: partial writes past its end copy zeros.
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        s(&top),
        "8M",
    ]);
    qemu_io(&top, &["write -P 0x5a 1M 64k", "write -z 3M 64k"]);
    random_writes(&top, t.path(), 5, 40);
    // The base is untouched.
    let base = t.path().join("base.qcow2");
    let pat = std::fs::read(t.path().join("pattern.raw")).unwrap();
    assert_same(
        &qemu_raw(&base, t.path()),
        &pat,
        "base after writing the top",
    );
}

#[test]
fn refcount_widths_and_small_clusters() {
    let t = tempfile::tempdir().unwrap();
    for (i, opts) in [
        "refcount_bits=1",
        "refcount_bits=4",
        "refcount_bits=64",
        "cluster_size=4096,refcount_bits=8",
    ]
    .iter()
    .enumerate()
    {
        let img = convert(t.path(), &format!("rc{i}.qcow2"), &["-o", opts]);
        random_writes(&img, t.path(), 10 + i as u64, 30);
    }
}

#[test]
fn new_refcount_blocks_and_l2_tables() {
    // 512-byte clusters: each refcount block covers 128 KiB of file and
    // each L2 table 32 KiB of disk, so fresh data needs many of both.
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("small.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=512",
        s(&img),
        "4M",
    ]);
    let d = open_rw(&img).unwrap();
    let mut model = vec![0u8; 4 << 20];
    let mut rng = StdRng::seed_from_u64(77);
    let mut b = vec![0u8; 3 << 20];
    rng.fill(&mut b[..]);
    // The one-cluster refcount table covers 64 * 128 KiB = 8 MiB of file:
    // 3 MiB of data plus metadata fits.
    d.write_at(&b, 12345).unwrap();
    model[12345..12345 + b.len()].copy_from_slice(&b);
    d.flush().unwrap();
    drop(d);
    assert_clean(&img);
    assert_same(&qemu_raw(&img, t.path()), &model, "fresh allocation");
}

#[test]
fn refcount_table_growth_is_refused_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("grow.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=512",
        s(&img),
        "16M",
    ]);
    let d = open_rw(&img).unwrap();
    let b = vec![0x42u8; 1 << 20];
    let mut err = None;
    for i in 0..16u64 {
        if let Err(e) = d.write_at(&b, i << 20) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("writing 16 MiB with 512 B clusters must outgrow the refcount table");
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("refcount table"), "{e}");
    d.flush().unwrap();
    drop(d);
    // What was written before the refusal is consistent.
    assert_clean(&img);
}

#[test]
fn unsupported_images_are_refused_for_writing() {
    let t = tempfile::tempdir().unwrap();
    let ext = convert(t.path(), "ext.qcow2", &["-o", "extended_l2=on"]);
    let e = open_rw(&ext).unwrap_err();
    assert!(
        e.kind == ErrorKind::Unsupported && e.to_string().contains("extended L2"),
        "{e}"
    );
    let snap = convert(t.path(), "snap.qcow2", &[]);
    qemu_img(&["snapshot", "-c", "s1", s(&snap)]);
    let e = open_rw(&snap).unwrap_err();
    assert!(
        e.kind == ErrorKind::Unsupported && e.to_string().contains("snapshots"),
        "{e}"
    );
    let dirty = convert(t.path(), "dirty.qcow2", &[]);
    let mut b = std::fs::read(&dirty).unwrap();
    b[79] |= 1;
    std::fs::write(&dirty, &b).unwrap();
    let e = open_rw(&dirty).unwrap_err();
    assert!(
        e.kind == ErrorKind::Unsupported && e.to_string().contains("dirty"),
        "{e}"
    );
    // Out-of-range writes are rejected without touching the file.
    let ok = convert(t.path(), "ok.qcow2", &[]);
    let before = std::fs::read(&ok).unwrap();
    let d = open_rw(&ok).unwrap();
    let e = d.write_at(&[1, 2, 3], d.size() - 2).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutOfRange);
    drop(d);
    assert!(std::fs::read(&ok).unwrap() == before);
}

#[test]
fn allocation_skips_clusters_refcounted_past_eof() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("claim.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&img), "4M"]);
    qemu_io(&img, &["write -P 0x11 0 64k"]);
    // Claim the cluster right after EOF in the (16-bit) refcount block.
    let mut b = std::fs::read(&img).unwrap();
    let be64 = |b: &[u8], o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap());
    let rb = be64(&b, be64(&b, 48) as usize) as usize;
    let eof_cluster = b.len() / 65536;
    b[rb + eof_cluster * 2..rb + eof_cluster * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    std::fs::write(&img, &b).unwrap();
    let d = open_rw(&img).unwrap();
    d.write_at(&[0x22; 65536], 1 << 20).unwrap();
    d.flush().unwrap();
    drop(d);
    let out = tool("qemu-img")
        .args(["check", "--output=json", s(&img)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["corruptions"].as_u64().unwrap_or(0), 0, "{v}");
    assert_eq!(v["leaks"].as_u64().unwrap_or(0), 1, "{v}");
    let raw = qemu_raw(&img, t.path());
    assert!(raw[..65536].iter().all(|&x| x == 0x11));
    assert!(raw[1 << 20..(1 << 20) + 65536].iter().all(|&x| x == 0x22));
}
