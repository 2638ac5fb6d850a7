//! Hand-built VMDK layouts checked against qemu-img's reader (and
//! vmdkinfo): descriptor geometry, mixed extent types, ESX COWD, and a
//! streamOptimized image whose grain directory is only in the footer.

mod vmdk_util;

use std::path::Path;
use vdisk::{Chs, Disk};
use vmdk_util::*;

#[test]
fn geometry_hints_from_hand_written_descriptor() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_raw(
        &dir.join("g-flat.vmdk"),
        4 << 20,
        &[(0, 4 << 20, Fill::Random)],
        3,
    );
    std::fs::write(
        dir.join("g.vmdk"),
        "# Disk DescriptorFile\r\nversion=1\r\nencoding=\"UTF-8\"\r\nCID=0badcafe\r\nparentCID=ffffffff\r\n\
         createType=\"monolithicFlat\"\r\n\r\n# Extent description\r\nRW 8192 FLAT \"g-flat.vmdk\" 0\r\n\r\n\
         # The Disk Data Base\r\n#DDB\r\n\r\nddb.adapterType = \"lsilogic\"\r\nddb.virtualHWVersion = \"13\"\r\n\
         ddb.geometry.cylinders = \"1523\"\r\nddb.geometry.heads = \"16\"\r\nddb.geometry.sectors = \"63\"\r\n\
         ddb.geometry.biosCylinders = \"1024\"\r\nddb.geometry.biosHeads = \"255\"\r\nddb.geometry.biosSectors = \"63\"\r\n",
    )
    .unwrap();
    let disk = vdisk::open(&dir.join("g.vmdk")).unwrap();
    let g = disk.layer().geometry;
    let chs = |c, h, s| Chs {
        cylinders: c,
        heads: h,
        sectors: s,
    };
    assert_eq!(g.physical, Some(chs(1523, 16, 63)));
    assert_eq!(g.bios, Some(chs(1024, 255, 63)));
    assert_eq!(g.source.as_deref(), Some("vmdk descriptor"));
    assert_eq!(disk.geometry_hints(), g);
    let d = vdisk::vmdk::read_descriptor(&dir.join("g.vmdk"))
        .unwrap()
        .unwrap();
    assert_eq!(d.adapter_type(), Some("lsilogic"));
    assert_eq!(d.virtual_hw_version(), Some(13));
    assert_eq!(d.cid, Some(0x0bad_cafe));
    assert_same_as_raw(disk.as_ref(), &dir.join("g-flat.vmdk"));
    let q = qemu_to_raw(dir, "g.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
    let info = vmdkinfo(dir, "g.vmdk");
    assert_eq!(info_media_size(&info), 4 << 20);
    assert_eq!(info_field(&info, "Content identifier"), "0x0badcafe");
}

#[test]
fn mixed_flat_sparse_vmfs_extents_match_qemu() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_raw(
        &dir.join("p.raw"),
        3 << 20,
        &[(100_000, 1 << 20, Fill::Random)],
        5,
    );
    qemu_img(
        dir,
        &["convert", "-f", "raw", "-O", "vmdk", "p.raw", "sp.vmdk"],
    );
    make_raw(
        &dir.join("flat.bin"),
        2 << 20,
        &[(0, 2 << 20, Fill::Random)],
        6,
    );
    make_raw(
        &dir.join("vmfs.bin"),
        1 << 20,
        &[(0, 1 << 20, Fill::Byte(0xab))],
        7,
    );
    std::fs::write(
        dir.join("mix.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=11111111\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n\
         RW 2048 FLAT \"flat.bin\" 1024\nRW 6144 SPARSE \"sp.vmdk\"\nRW 2048 VMFS \"vmfs.bin\"\n",
    )
    .unwrap();
    let disk = vdisk::open(&dir.join("mix.vmdk")).unwrap();
    assert_eq!(disk.size(), (1 + 3 + 1) << 20);
    let q = qemu_to_raw(dir, "mix.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
    assert_map_agrees(disk.as_ref(), &qemu_map(dir, "mix.vmdk"));
    assert_eq!(disk.layer().extra_files.len(), 3);
}

/// Build a COWD file: 32 MiB, 4 KiB grains, two grain tables, grains
/// stored out of order.
fn build_cowd(path: &Path) {
    let capacity: u32 = 65536;
    let grain: u32 = 8;
    let mut f = vec![0u8; 2048];
    f[0..4].copy_from_slice(b"COWD");
    for (o, v) in [
        (4, 1u32),
        (8, 3),
        (12, capacity),
        (16, grain),
        (20, 4),
        (24, 2),
        (28, 0),
    ] {
        f[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    // GD at sector 4 (2 entries), GTs at sectors 5 and 37 (32 sectors each).
    f.resize(69 * 512, 0);
    f[2048..2052].copy_from_slice(&5u32.to_le_bytes());
    f[2052..2056].copy_from_slice(&37u32.to_le_bytes());
    let mut next = 69u32;
    for (gi, byte) in [
        (0u32, 0x10u8),
        (1, 0x11),
        (2, 0x12),
        (5000, 0x13),
        (3, 0x14),
        (8191, 0x15),
    ] {
        let (gt, idx) = (gi / 4096, gi % 4096);
        let e = (5 + 32 * gt) as usize * 512 + idx as usize * 4;
        f[e..e + 4].copy_from_slice(&next.to_le_bytes());
        let mut data = vec![byte; 4096];
        data[0] = gi as u8;
        data[4095] = (gi >> 8) as u8;
        f.extend_from_slice(&data);
        next += grain;
    }
    std::fs::write(path, f).unwrap();
}

#[test]
fn cowd_extent_matches_qemu() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    build_cowd(&dir.join("c.vmdk"));
    // qemu reads COWD only as an extent of a descriptor (ESX delta).
    std::fs::write(
        dir.join("d.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\n\n# Extent description\nRW 65536 VMFSSPARSE \"c.vmdk\"\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n",
    )
    .unwrap();
    let q = qemu_to_raw(dir, "d.vmdk", "q.raw");
    let map = qemu_map(dir, "d.vmdk");
    assert!(map.iter().filter(|m| m.data).count() >= 4, "{map:?}");
    for name in ["c.vmdk", "d.vmdk"] {
        let disk = vdisk::open(&dir.join(name)).unwrap();
        assert_eq!(disk.size(), 32 << 20);
        assert_eq!(disk.layer().subformat.as_deref(), Some("vmfsSparse"));
        assert_same_as_raw(disk.as_ref(), &q);
        assert_map_agrees(disk.as_ref(), &map);
    }
    let info = vmdkinfo(dir, "d.vmdk");
    assert_eq!(info_media_size(&info), 32 << 20);
}

#[test]
fn stream_with_grain_directory_in_footer() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    convert(dir, "streamOptimized", &[], "s.vmdk");
    let p = dir.join("s.vmdk");
    let mut f = file_bytes(&p);
    assert_eq!(f.len() % 512, 0);
    let header: Vec<u8> = f[..512].to_vec();
    let mut footer_marker = vec![0u8; 512];
    footer_marker[0..8].copy_from_slice(&1u64.to_le_bytes());
    footer_marker[12..16].copy_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&footer_marker);
    f.extend_from_slice(&header);
    f.extend_from_slice(&[0u8; 512]);
    f[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &f).unwrap();
    let disk = vdisk::open(&p).unwrap();
    assert_same_as_raw(disk.as_ref(), &raw);
    let q = qemu_to_raw(dir, "s.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
    // A footer without its end-of-stream marker is refused.
    let n = f.len();
    f[n - 512 + 12] = 7;
    std::fs::write(&p, &f).unwrap();
    let e = vdisk::open(&p).expect_err("bad EOS marker");
    assert_eq!(e.kind, vdisk::ErrorKind::Corrupt, "{e}");
}

#[test]
fn kdmv_container_holding_only_a_descriptor() {
    // capacity 0 + embedded descriptor: the KDMV file is just a wrapper
    // for a descriptor naming other extents (qemu accepts this too).
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    make_raw(
        &dir.join("data.bin"),
        1 << 20,
        &[(0, 1 << 20, Fill::Random)],
        9,
    );
    let mut f = vec![0u8; 512];
    f[0..4].copy_from_slice(b"KDMV");
    f[4..8].copy_from_slice(&1u32.to_le_bytes());
    f[20..28].copy_from_slice(&128u64.to_le_bytes());
    f[28..36].copy_from_slice(&1u64.to_le_bytes());
    f[36..44].copy_from_slice(&2u64.to_le_bytes());
    f[44..48].copy_from_slice(&512u32.to_le_bytes());
    f[73..77].copy_from_slice(b"\n \r\n");
    let desc = b"# Disk DescriptorFile\nversion=1\nCID=22222222\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"data.bin\" 0\n";
    f.extend_from_slice(desc);
    f.resize(3 * 512, 0);
    std::fs::write(dir.join("w.vmdk"), &f).unwrap();
    let disk = vdisk::open(&dir.join("w.vmdk")).unwrap();
    assert_eq!(disk.layer().subformat.as_deref(), Some("monolithicFlat"));
    assert_same_as_raw(disk.as_ref(), &dir.join("data.bin"));
    let q = qemu_to_raw(dir, "w.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
}
