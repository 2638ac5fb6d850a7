//! VHD reader against QEMU (`qemu-img convert/map`) and libvhdi
//! (`vhdiinfo`, `vhdimount`). QEMU cannot create differencing VHDs
//! ("Backing file not supported for file format 'vpc'"), so those are built
//! by `vhd_util::build::build_vhd` from the spec. libvhdi 20210425's
//! `vhdimount` returns only the parent's bytes for such a child (observed:
//! even fully-present child blocks read as the parent), so the child's
//! bytes are checked against an overlay computed from the builder's input
//! over QEMU's flattening of the parent, and libvhdi checks the parent id
//! and name.

mod vhd_util;

use std::path::Path;
use vdisk::{Chs, Disk, ErrorKind, ExtentKind, OpenOptions};
use vhd_util::build::{build_vhd, VhdParent};
use vhd_util::*;

fn footer_of(img: &Path) -> Vec<u8> {
    let b = std::fs::read(img).unwrap();
    b[b.len() - 512..].to_vec()
}

#[test]
fn qemu_made_fixed_and_dynamic_match_qemu_and_libvhdi() {
    let dir = tempfile::tempdir().unwrap();
    let raw = pattern_raw(dir.path());
    let pattern = std::fs::read(&raw).unwrap();
    for sub in ["dynamic", "fixed"] {
        let img = dir.path().join(format!("{sub}.vhd"));
        qemu_convert(&raw, "vpc", &format!("subformat={sub},force_size=on"), &img);
        let before = snapshot(&img);
        let d = vdisk::open(&img).unwrap();
        let layer = d.layer();
        assert_eq!(layer.format, "vhd");
        assert_eq!(layer.subformat.as_deref(), Some(sub));
        assert_eq!(
            d.size(),
            PATTERN_SIZE,
            "{sub}: force_size keeps the exact size"
        );
        assert_eq!(
            vhdiinfo_media_size(&img),
            d.size(),
            "{sub}: libvhdi media size"
        );
        let ours = read_all(&*d);
        let qemu = qemu_raw(&img, "vpc", dir.path());
        assert!(
            ours == qemu,
            "{sub}: our bytes differ from qemu-img convert -O raw"
        );
        assert!(
            ours == pattern,
            "{sub}: bytes differ from the source pattern"
        );
        let libvhdi = vhdimount_read(&img, dir.path());
        assert!(
            ours == libvhdi,
            "{sub}: our bytes differ from libvhdi's vhdimount"
        );
        // Extents: the dynamic layout must agree with qemu-img map exactly;
        // a fixed VHD is all data for us (qemu also reports host holes).
        let ours_map = our_data_map(&*d);
        let qmap = sector_data_map(qemu_map(&img, "vpc").into_iter(), d.size());
        if sub == "dynamic" {
            assert_eq!(
                ours_map, qmap,
                "dynamic: data extents differ from qemu-img map"
            );
            assert!(extents(&*d)
                .iter()
                .any(|e| e.kind == ExtentKind::Unallocated));
        } else {
            assert!(ours_map.iter().all(|&x| x));
        }
        assert_nondata_is_zero(&*d, &qemu);
        // Geometry hint equals the footer CHS.
        let f = footer_of(&img);
        let chs = Chs {
            cylinders: u16::from_be_bytes([f[56], f[57]]) as u32,
            heads: f[58] as u32,
            sectors: f[59] as u32,
        };
        let g = d.geometry_hints();
        assert_eq!(g.physical, Some(chs));
        assert_eq!(g.bios, None);
        assert_eq!(g.source.as_deref(), Some("vhd footer"));
        // libvhdi prints the footer's unique id.
        let id = f[68..84]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let info = vhdiinfo(&img).replace('-', "");
        assert!(
            info.contains(&id),
            "vhdiinfo does not show id {id}:\n{info}"
        );
        drop(d);
        assert!(snapshot(&img) == before, "{sub}: source was modified");
    }
}

#[test]
fn chs_derived_size_without_force_size_matches_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("chs.vhd");
    run(
        "qemu-img",
        &["create", "-f", "vpc", img.to_str().unwrap(), "10000000"],
    );
    let d = vdisk::open(&img).unwrap();
    let info = run(
        "qemu-img",
        &["info", "-f", "vpc", "--output=json", img.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(d.size(), v["virtual-size"].as_u64().unwrap());
    assert_eq!(d.size(), vhdiinfo_media_size(&img));
    assert!(read_all(&*d).iter().all(|&b| b == 0));
}

#[test]
fn parallel_reads_agree() {
    let dir = tempfile::tempdir().unwrap();
    let raw = pattern_raw(dir.path());
    let pattern = std::fs::read(&raw).unwrap();
    let img = dir.path().join("p.vhd");
    qemu_convert(&raw, "vpc", "subformat=dynamic,force_size=on", &img);
    let d = vdisk::open(&img).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let d = &d;
            let pattern = &pattern;
            s.spawn(move || {
                let mut rng = Rng::new(t + 7);
                for _ in 0..200 {
                    let off = rng.next() % PATTERN_SIZE;
                    let len = (rng.next() % 300_000).min(PATTERN_SIZE - off) as usize;
                    let mut b = vec![0u8; len];
                    d.read_at(&mut b, off).unwrap();
                    assert!(b[..] == pattern[off as usize..off as usize + len]);
                }
            });
        }
    });
}

/// A child over a qemu-made base: block 0 partly written (bitmap), block 2
/// fully, the last (partial) block in alternating runs.
fn child_blocks() -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let bs = 2usize << 20;
    let bm = 512usize;
    let mut blocks = Vec::new();
    let mut b0 = vec![0u8; bm];
    // sectors 0..100 present (MSB first)
    for s in 0..100 {
        b0[s / 8] |= 0x80 >> (s % 8);
    }
    blocks.push((0u32, b0, vec![0x44u8; bs]));
    let mut d2 = vec![0u8; bs];
    Rng::new(99).fill(&mut d2);
    blocks.push((2, vec![0xff; bm], d2));
    let mut b4 = vec![0u8; bm];
    for s in (0..4096).filter(|s: &usize| (s / 7).is_multiple_of(2)) {
        b4[s / 8] |= 0x80 >> (s % 8);
    }
    blocks.push((4, b4, vec![0x55u8; bs]));
    blocks
}

fn make_child(dir: &Path, parent: &VhdParent, name: &str) -> std::path::PathBuf {
    let bs = 2u32 << 20;
    let blocks = child_blocks();
    let p = dir.join(name);
    build_vhd(&p, PATTERN_SIZE, bs, &blocks, Some(parent));
    p
}

fn base(dir: &Path) -> (std::path::PathBuf, [u8; 16]) {
    let raw = pattern_raw(dir);
    let img = dir.join("base.vhd");
    qemu_convert(&raw, "vpc", "subformat=dynamic,force_size=on", &img);
    let uid = footer_of(&img)[68..84].try_into().unwrap();
    (img, uid)
}

#[test]
fn differencing_vhd_reads_child_sectors_over_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (base, uid) = base(dir.path());
    let parent = VhdParent {
        unique_id: uid,
        name: "base.vhd",
        w2ru: Some(r".\base.vhd"),
        w2ku: Some(r"C:\vms\base.vhd"),
    };
    let child = make_child(dir.path(), &parent, "child.vhd");
    let before = (snapshot(&base), snapshot(&child));
    let d = vdisk::open(&child).unwrap();
    assert_eq!(d.layer().subformat.as_deref(), Some("differencing"));
    assert!(d.layer().warnings.is_empty(), "{:?}", d.layer().warnings);
    assert_eq!(vdisk::disk::chain(&*d).len(), 2);
    let ours = read_all(&*d);
    // Expected bytes: the parent (qemu's flattening of it), overlaid with
    // every sector whose bitmap bit is set in the child.
    let mut expect = qemu_raw(&base, "vpc", dir.path());
    for (blk, bitmap, data) in child_blocks() {
        for s in 0..4096usize {
            let off = blk as usize * (2 << 20) + s * 512;
            if bitmap[s / 8] & (0x80 >> (s % 8)) != 0 && off < expect.len() {
                let n = 512.min(expect.len() - off);
                expect[off..off + n].copy_from_slice(&data[s * 512..s * 512 + n]);
            }
        }
    }
    assert!(
        ours == expect,
        "differencing VHD: bytes differ from the expected overlay"
    );
    // libvhdi parses the same parent identity and name.
    let info = vhdiinfo(&child);
    assert!(info.contains("Differential"), "{info}");
    let pid: String = uid.iter().map(|b| format!("{b:02x}")).collect();
    assert!(info.replace('-', "").contains(&pid), "{info}");
    assert!(info.contains("base.vhd"), "{info}");
    // Extents: written sectors are data, the rest follows the parent.
    let ex = extents(&*d);
    assert_eq!(ex[0].kind, ExtentKind::Data);
    assert_eq!(ex[0].len, 100 * 512);
    assert_nondata_is_zero(&*d, &expect);
    assert!(d.geometry_hints().physical.is_some());
    drop(d);
    assert!((snapshot(&base), snapshot(&child)) == before);
}

#[test]
fn differencing_vhd_parent_id_mismatch_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (_base, _uid) = base(dir.path());
    let parent = VhdParent {
        unique_id: [7; 16],
        name: "base.vhd",
        w2ru: Some(r".\base.vhd"),
        w2ku: None,
    };
    let child = make_child(dir.path(), &parent, "child.vhd");
    let d = vdisk::open(&child).unwrap();
    let w = d.layer().warnings.join("\n");
    assert!(w.contains("unique id") && w.contains("07070707"), "{w}");
}

#[test]
fn differencing_vhd_parent_outside_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (base, uid) = base(dir.path());
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // Relative path climbing out with "..".
    let parent = VhdParent {
        unique_id: uid,
        name: "base.vhd",
        w2ru: Some(r"..\base.vhd"),
        w2ku: None,
    };
    let child = make_child(&sub, &parent, "up.vhd");
    let e = vdisk::open(&child).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(
        e.to_string().contains("..\\\\base.vhd") || e.to_string().contains(r"..\base.vhd"),
        "{e}"
    );
    let allow = OpenOptions {
        allow_outside: true,
        ..Default::default()
    };
    let d = vdisk::open_opts(&child, allow.clone()).unwrap();
    assert_eq!(vdisk::disk::chain(&*d).len(), 2);
    // Absolute path (only W2ku).
    let abs = base.to_str().unwrap().to_string();
    let parent = VhdParent {
        unique_id: uid,
        name: "base.vhd",
        w2ru: None,
        w2ku: Some(&abs),
    };
    let child = make_child(&sub, &parent, "abs.vhd");
    let e = vdisk::open(&child).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(vdisk::open_opts(&child, allow).is_ok());
    // A missing parent names what was tried.
    std::fs::remove_file(&base).unwrap();
    let parent = VhdParent {
        unique_id: uid,
        name: "base.vhd",
        w2ru: Some(r".\base.vhd"),
        w2ku: Some(r"C:\x\base.vhd"),
    };
    let child = make_child(dir.path(), &parent, "orphan.vhd");
    let e = vdisk::open(&child).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("base.vhd") && m.contains("not found"), "{m}");
}
