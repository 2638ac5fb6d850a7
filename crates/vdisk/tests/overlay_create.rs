//! Empty qcow2 overlays made by `writer::create_qcow2_overlay`, checked by
//! qemu-img (check, info), written by qemu-io (the base must not change,
//! `qemu-img compare` must see the write and nothing else) and read back
//! through our own qcow2 reader.

mod qcow2_common;

use qcow2_common::*;
use std::path::Path;
use vdisk::writer::create_qcow2_overlay;
use vdisk::{ErrorKind, OpenOptions};

/// `qemu-img check` must find neither errors nor leaks in a qcow2.
fn assert_clean(img: &Path) {
    let v = testkit::qemu_check(img);
    assert_eq!(v["format"], "qcow2", "{v}");
}

fn info(img: &Path) -> serde_json::Value {
    testkit::qemu_info(img)
}

use testkit::qemu_compare as compare;

fn allow_outside() -> OpenOptions {
    OpenOptions {
        allow_outside: true,
        ..Default::default()
    }
}

#[test]
fn overlay_over_raw_reads_through_and_protects_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.raw");
    let data = pattern_raw(&base, PATTERN_SIZE, 21);
    let ovl = dir.path().join("ovl.qcow2");
    let made = create_qcow2_overlay(&ovl, PATTERN_SIZE, s(&base), "raw").unwrap();
    assert_eq!(made, ovl);
    assert_clean(&ovl);
    let i = info(&ovl);
    assert_eq!(i["format"], "qcow2");
    assert_eq!(i["virtual-size"].as_u64(), Some(PATTERN_SIZE));
    assert_eq!(i["cluster-size"].as_u64(), Some(65536));
    assert_eq!(i["backing-filename"], s(&base));
    assert_eq!(i["backing-filename-format"], "raw");
    assert_eq!(i["format-specific"]["data"]["compat"], "1.1", "{i}");
    // Nothing allocated: qemu sees only the base's data through it.
    assert_eq!(compare(&ovl, "qcow2", &base, "raw").0, 0);

    // Our reader follows the absolute backing name only when allowed.
    let e = vdisk::open(&ovl).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    let d = vdisk::open_opts(&ovl, allow_outside()).unwrap();
    assert_eq!(d.size(), PATTERN_SIZE);
    assert_same(&read_all(d.as_ref(), 1 << 20), &data, "through the overlay");
    drop(d);

    // A guest-style write goes into the overlay only.
    qemu_io(&ovl, &["write -P 0x5a 0 64k"]);
    assert_same(&std::fs::read(&base).unwrap(), &data, "base after write");
    assert_clean(&ovl);
    let (code, text) = compare(&ovl, "qcow2", &base, "raw");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("mismatch at offset 0"), "{text}");
    let mut want = data.clone();
    want[..65536].fill(0x5a);
    let expect = dir.path().join("expect.raw");
    std::fs::write(&expect, &want).unwrap();
    let (code, text) = compare(&ovl, "qcow2", &expect, "raw");
    assert_eq!(
        code, 0,
        "the overlay differs beyond the 64 KiB written: {text}"
    );
    let d = vdisk::open_opts(&ovl, allow_outside()).unwrap();
    assert_same(&read_all(d.as_ref(), 777_777), &want, "ours after write");
}

#[test]
fn overlay_over_qcow2_and_large_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("p.raw");
    let data = pattern_raw(&raw, PATTERN_SIZE, 5);
    let base = dir.path().join("base.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-o",
        "cluster_size=4096",
        s(&raw),
        s(&base),
    ]);
    let ovl = dir.path().join("ovl.qcow2");
    create_qcow2_overlay(&ovl, PATTERN_SIZE, s(&base), "qcow2").unwrap();
    assert_clean(&ovl);
    let i = info(&ovl);
    assert_eq!(i["backing-filename-format"], "qcow2");
    assert_eq!(i["virtual-size"].as_u64(), Some(PATTERN_SIZE));
    assert_same(
        &qemu_raw(&ovl, dir.path()),
        &data,
        "qemu through the overlay",
    );
    let d = vdisk::open_opts(&ovl, allow_outside()).unwrap();
    assert_same(
        &read_all(d.as_ref(), 1 << 20),
        &data,
        "ours through the overlay",
    );
    check_unaligned(d.as_ref(), &data);

    // 10 TiB: an L1 table of several clusters; 0 bytes: an empty one.
    // (An overlay may be larger than its backing file, which then reads
    // as zeros past its end.)
    let small = dir.path().join("small.raw");
    std::fs::write(&small, vec![0x11u8; 4096]).unwrap();
    for (size, name) in [(10u64 << 40, "big.qcow2"), (0, "empty.qcow2")] {
        let p = dir.path().join(name);
        create_qcow2_overlay(&p, size, s(&small), "raw").unwrap();
        assert_clean(&p);
        let i = info(&p);
        assert_eq!(i["virtual-size"].as_u64(), Some(size), "{i}");
        assert_eq!(i["backing-filename"], s(&small));
    }
    let l1 = |p: &Path| -> u32 {
        let h = std::fs::read(p).unwrap();
        u32::from_be_bytes(h[36..40].try_into().unwrap())
    };
    assert_eq!(l1(&dir.path().join("big.qcow2")), 20480);
    assert_eq!(l1(&dir.path().join("empty.qcow2")), 0);
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.qcow2");
    for (name, fmt) in [("", "raw"), ("b\0c", "raw"), ("/b", ""), ("/b", "raw,x")] {
        let e = create_qcow2_overlay(&p, 1 << 20, name, fmt).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
        assert!(!p.exists());
    }
    let long = "x".repeat(1024);
    assert!(create_qcow2_overlay(&p, 1 << 20, &long, "raw").is_err());
    let e = create_qcow2_overlay(&p, u64::MAX, "/b", "raw").unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    create_qcow2_overlay(&p, 1 << 20, "/b", "raw").unwrap();
    let e = create_qcow2_overlay(&p, 1 << 20, "/b", "raw").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    // Only the one image: no temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
