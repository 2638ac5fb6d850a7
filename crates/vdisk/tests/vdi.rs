//! VDI reader against QEMU (`qemu-img convert -O vdi`, `convert -O raw`,
//! `map`).

mod vhd_util;

use vdisk::{Chs, Disk, ErrorKind, ExtentKind};
use vhd_util::*;

#[test]
fn qemu_made_vdi_matches_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let raw = pattern_raw(dir.path());
    let pattern = std::fs::read(&raw).unwrap();
    for (sub, opt) in [("dynamic", "static=off"), ("fixed", "static=on")] {
        let img = dir.path().join(format!("{sub}.vdi"));
        qemu_convert(&raw, "vdi", opt, &img);
        let before = snapshot(&img);
        let d = vdisk::open(&img).unwrap();
        assert_eq!(d.layer().format, "vdi");
        assert_eq!(d.layer().subformat.as_deref(), Some(sub));
        assert_eq!(d.size(), PATTERN_SIZE);
        let ours = read_all(&*d);
        let qemu = qemu_raw(&img, "vdi", dir.path());
        assert!(ours == qemu, "{sub}: differs from qemu-img convert -O raw");
        assert!(ours == pattern, "{sub}: differs from the pattern");
        let ours_map = our_data_map(&*d);
        let qmap = sector_data_map(qemu_map(&img, "vdi").into_iter(), d.size());
        if sub == "dynamic" {
            assert_eq!(ours_map, qmap, "dynamic: extents differ from qemu-img map");
            assert!(extents(&*d)
                .iter()
                .any(|e| e.kind == ExtentKind::Unallocated));
        } else {
            assert!(ours_map.iter().all(|&x| x));
        }
        assert_nondata_is_zero(&*d, &qemu);
        // QEMU writes no legacy geometry: no hint.
        assert!(d.geometry_hints().is_empty());
        drop(d);
        assert!(snapshot(&img) == before);
    }
}

fn patch(p: &std::path::Path, off: usize, bytes: &[u8]) {
    let mut b = std::fs::read(p).unwrap();
    b[off..off + bytes.len()].copy_from_slice(bytes);
    std::fs::write(p, b).unwrap();
}

#[test]
fn legacy_geometry_is_a_hint_and_discarded_blocks_read_zero() {
    let dir = tempfile::tempdir().unwrap();
    let raw = pattern_raw(dir.path());
    let img = dir.path().join("g.vdi");
    qemu_convert(&raw, "vdi", "static=off", &img);
    let mut g = Vec::new();
    for v in [100u32, 16, 63, 512] {
        g.extend_from_slice(&v.to_le_bytes());
    }
    patch(&img, 0x15c, &g);
    // Mark block 0 as discarded (0xFFFFFFFE): QEMU reads zeros too.
    let b = std::fs::read(&img).unwrap();
    let map = u32::from_le_bytes(b[0x154..0x158].try_into().unwrap()) as usize;
    patch(&img, map, &0xFFFF_FFFEu32.to_le_bytes());
    let d = vdisk::open(&img).unwrap();
    let h = d.geometry_hints();
    assert_eq!(
        h.physical,
        Some(Chs {
            cylinders: 100,
            heads: 16,
            sectors: 63
        })
    );
    assert_eq!(h.source.as_deref(), Some("vdi header"));
    assert_eq!(d.extent(0, 1 << 30).unwrap().kind, ExtentKind::Zero);
    let ours = read_all(&*d);
    assert!(ours[..1 << 20].iter().all(|&x| x == 0));
    assert!(ours == qemu_raw(&img, "vdi", dir.path()));
}

#[test]
fn differencing_vdi_is_refused_naming_parent() {
    let dir = tempfile::tempdir().unwrap();
    let raw = pattern_raw(dir.path());
    let img = dir.path().join("diff.vdi");
    qemu_convert(&raw, "vdi", "static=off", &img);
    patch(&img, 0x4c, &4u32.to_le_bytes());
    let uuid: [u8; 16] = [
        0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33,
        0x44,
    ];
    patch(&img, 0x1a8, &uuid);
    let e = vdisk::open(&img).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        e.to_string()
            .contains("12345678-1234-5678-9abc-def011223344"),
        "{e}"
    );
}
