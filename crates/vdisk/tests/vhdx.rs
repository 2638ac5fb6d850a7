//! VHDX reader against QEMU (`qemu-img convert`, `qemu-io`) and libvhdi
//! (`vhdiinfo`, `vhdimount`). QEMU's vhdx driver has no block-status
//! support (`qemu-img map` reports everything as data), so extents are
//! checked for consistency with the bytes instead. Differencing VHDX files
//! are made from QEMU-made ones by `vhd_util::vhdx::make_differencing`
//! (QEMU cannot create them); libvhdi 20210425's `vhdimount` returns only
//! the parent's bytes for differencing images (observed even for
//! FULLY_PRESENT child blocks), so the child is checked against the bytes
//! computed from what the test wrote, and `vhdiinfo` confirms the
//! structure is recognised as differential.

mod vhd_util;

use std::path::Path;
use std::sync::Arc;
use vdisk::{Disk, ErrorKind, ExtentKind, OpenCtx, OpenOptions};
use vhd_util::vhdx::*;
use vhd_util::*;

fn open_vhdx(p: &Path) -> vdisk::vhdx::VhdxDisk {
    let f = Arc::new(vdisk::file::ImageFile::open(p).unwrap());
    vdisk::vhdx::VhdxDisk::open(f, &OpenCtx::new(OpenOptions::default())).unwrap()
}

#[test]
fn qemu_made_vhdx_matches_qemu_and_libvhdi() {
    let dir = tempfile::tempdir().unwrap();
    let raw = pattern_raw(dir.path());
    let pattern = std::fs::read(&raw).unwrap();
    for (name, opts) in [
        ("dynamic", "subformat=dynamic"),
        ("fixed", "subformat=fixed"),
        ("small", "subformat=dynamic,block_size=1M"),
    ] {
        let img = dir.path().join(format!("{name}.vhdx"));
        qemu_convert(&raw, "vhdx", opts, &img);
        let mut expect = pattern.clone();
        if name == "small" {
            // Exercise ZERO blocks and partial writes on the 1 MiB blocks.
            run(
                "qemu-io",
                &[
                    "-f",
                    "vhdx",
                    "-c",
                    "write -z 0 1M",
                    "-c",
                    "write -P 0x33 1M 4k",
                    "-c",
                    "write -P 0x34 8M 1M",
                    img.to_str().unwrap(),
                ],
            );
            expect[..1 << 20].fill(0);
            expect[1 << 20..(1 << 20) + 4096].fill(0x33);
            expect[8 << 20..9 << 20].fill(0x34);
        }
        let before = snapshot(&img);
        let d = vdisk::open(&img).unwrap();
        let layer = d.layer();
        assert_eq!(layer.format, "vhdx");
        assert_eq!(
            layer.subformat.as_deref(),
            Some(if name == "fixed" { "fixed" } else { "dynamic" })
        );
        assert!(layer.warnings.is_empty(), "{:?}", layer.warnings);
        assert_eq!(d.size(), PATTERN_SIZE);
        assert_eq!(vhdiinfo_media_size(&img), d.size());
        let ours = read_all(&*d);
        let qemu = qemu_raw(&img, "vhdx", dir.path());
        assert!(ours == qemu, "{name}: differs from qemu-img convert -O raw");
        assert!(ours == expect, "{name}: differs from the expected pattern");
        let libvhdi = vhdimount_read(&img, dir.path());
        assert!(ours == libvhdi, "{name}: differs from libvhdi's vhdimount");
        assert_nondata_is_zero(&*d, &qemu);
        let ex = extents(&*d);
        match name {
            "fixed" => assert!(ex.iter().all(|e| e.kind == ExtentKind::Data)),
            "small" => assert!(ex.iter().any(|e| e.kind != ExtentKind::Data), "{ex:?}"),
            _ => {}
        }
        // libvhdi's identifier is the current header's DataWriteGuid.
        let v = open_vhdx(&img);
        let id = vdisk::vhdx::header::guid_string(&v.header().data_write_guid);
        assert!(vhdiinfo(&img).contains(&id), "vhdiinfo lacks {id}");
        assert_eq!(v.metadata().logical_sector, 512);
        assert!(v.metadata().page83.is_some());
        drop((d, v));
        assert!(snapshot(&img) == before, "{name}: source modified");
    }
}

const MIB: u64 = 1 << 20;

/// Child over `base.vhdx`: block 0 fully present (0x66), block 2 partially
/// present (0x77 where the bitmap says so), block 5 ZERO, the rest from the
/// parent. Returns the child's path and its expected bytes.
fn make_child(
    dir: &Path,
    sub: &Path,
    name: &str,
    kv: impl Fn(&Layout) -> Vec<(&'static str, String)>,
) -> (std::path::PathBuf, Vec<u8>) {
    let base = dir.join("base.vhdx");
    if !base.exists() {
        let raw = pattern_raw(dir);
        qemu_convert(&raw, "vhdx", "subformat=dynamic,block_size=1M", &base);
    }
    let parent_bytes = std::fs::read(&base).unwrap();
    let pl = layout(&parent_bytes);
    let child = sub.join(name);
    run(
        "qemu-img",
        &[
            "create",
            "-f",
            "vhdx",
            "-o",
            "block_size=1M",
            child.to_str().unwrap(),
            &PATTERN_SIZE.to_string(),
        ],
    );
    let mut b = std::fs::read(&child).unwrap();
    let l = layout(&b);
    let kvs = kv(&pl);
    make_differencing(&mut b, &l, &kvs);
    let cr = 4096u64; // 2^23 * 512 / 1 MiB
    let nblocks = PATTERN_SIZE.div_ceil(MIB);
    for blk in 0..nblocks {
        set_bat(&mut b, &l, payload_index(blk, cr), 0, 0);
    }
    // Append block 0 data, block 2 data and the chunk's sector bitmap.
    let mut at = (b.len() as u64).div_ceil(MIB) * MIB;
    b.resize(at as usize, 0);
    b.extend(std::iter::repeat_n(0x66u8, MIB as usize));
    set_bat(&mut b, &l, payload_index(0, cr), 6, at);
    at += MIB;
    b.extend(std::iter::repeat_n(0x77u8, MIB as usize));
    set_bat(&mut b, &l, payload_index(2, cr), 7, at);
    at += MIB;
    let mut bm = vec![0u8; MIB as usize];
    let present = |s: u64| (s / 5) % 2 == 1;
    for s in 0..2048u64 {
        if present(s) {
            let g = 4096 + s; // block 2 starts at chunk sector 2*2048
            bm[(g / 8) as usize] |= 1 << (g % 8);
        }
    }
    b.extend_from_slice(&bm);
    set_bat(&mut b, &l, cr as usize, 6, at);
    set_bat(&mut b, &l, payload_index(5, cr), 2, 0);
    std::fs::write(&child, &b).unwrap();
    // Expected bytes.
    let mut e = std::fs::read(dir.join("pattern.raw")).unwrap();
    e[..MIB as usize].fill(0x66);
    for s in 0..2048u64 {
        if present(s) {
            let o = (2 * MIB + s * 512) as usize;
            e[o..o + 512].fill(0x77);
        }
    }
    e[5 * MIB as usize..6 * MIB as usize].fill(0);
    (child, e)
}

fn linkage(pl: &Layout) -> (&'static str, String) {
    ("parent_linkage", guid_braced(&pl.data_write_guid))
}

#[test]
fn differencing_vhdx_reads_through_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (child, expect) = make_child(dir.path(), dir.path(), "child.vhdx", |pl| {
        vec![
            linkage(pl),
            ("relative_path", r".\base.vhdx".into()),
            ("absolute_win32_path", r"\\?\C:\vms\base.vhdx".into()),
        ]
    });
    let before = snapshot(&child);
    let d = vdisk::open(&child).unwrap();
    assert_eq!(d.layer().subformat.as_deref(), Some("differencing"));
    assert!(d.layer().warnings.is_empty(), "{:?}", d.layer().warnings);
    assert_eq!(vdisk::disk::chain(&*d).len(), 2);
    let ours = read_all(&*d);
    if let Some(i) = ours.iter().zip(&expect).position(|(a, b)| a != b) {
        panic!("differs from expected at {i:#x}");
    }
    let ex = extents(&*d);
    assert_eq!(ex[0].kind, ExtentKind::Data);
    assert_eq!(ex[0].len, MIB);
    assert!(ex
        .iter()
        .any(|e| e.kind == ExtentKind::Zero && e.offset == 5 * MIB && e.len == MIB));
    assert!(ex
        .iter()
        .any(|e| e.kind == ExtentKind::Data && e.offset == 2 * MIB + 5 * 512 && e.len == 5 * 512));
    assert_nondata_is_zero(&*d, &expect);
    assert!(vhdiinfo(&child).contains("Differential"));
    drop(d);
    assert!(snapshot(&child) == before);
}

#[test]
fn differencing_vhdx_linkage_mismatch_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = make_child(dir.path(), dir.path(), "child.vhdx", |_| {
        vec![
            (
                "parent_linkage",
                "{01234567-89ab-cdef-0123-456789abcdef}".into(),
            ),
            ("relative_path", r".\base.vhdx".into()),
        ]
    });
    let d = vdisk::open(&child).unwrap();
    let w = d.layer().warnings.join("\n");
    assert!(w.contains("DataWriteGuid") && w.contains("01234567"), "{w}");
}

#[test]
fn differencing_vhdx_parent_outside_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let (child, _) = make_child(dir.path(), &sub, "up.vhdx", |pl| {
        vec![linkage(pl), ("relative_path", r"..\base.vhdx".into())]
    });
    let e = vdisk::open(&child).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    let allow = OpenOptions {
        allow_outside: true,
        ..Default::default()
    };
    assert_eq!(
        vdisk::disk::chain(&*vdisk::open_opts(&child, allow).unwrap()).len(),
        2
    );
    let abs = dir.path().join("base.vhdx").to_str().unwrap().to_string();
    let (child, _) = make_child(dir.path(), &sub, "abs.vhdx", move |pl| {
        vec![linkage(pl), ("absolute_win32_path", abs.clone())]
    });
    assert_eq!(vdisk::open(&child).unwrap_err().kind, ErrorKind::Refused);
}
