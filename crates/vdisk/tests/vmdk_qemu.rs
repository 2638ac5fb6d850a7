//! VMDK reader against qemu-img / qemu-io (writers and reference reader)
//! and libvmdk's vmdkinfo (metadata).

mod vmdk_util;

use std::path::Path;
use vdisk::vmdk::read_descriptor;
use vdisk::{Disk, ExtentKind};
use vmdk_util::*;

fn check_against_oracles(dir: &Path, img: &str, original_raw: &Path, extents: usize) {
    let before = snapshot_dir(dir);
    let disk = vdisk::open(&dir.join(img)).unwrap();
    // Bytes: equal to the original and to qemu's own reading.
    assert_same_as_raw(disk.as_ref(), original_raw);
    let qraw = qemu_to_raw(dir, img, &format!("{img}.qemu.raw"));
    assert_same_as_raw(disk.as_ref(), &qraw);
    std::fs::remove_file(&qraw).unwrap();
    // Allocation: agrees with qemu-img map.
    assert_map_agrees(disk.as_ref(), &qemu_map(dir, img));
    // Metadata: agrees with vmdkinfo.
    let info = vmdkinfo(dir, img);
    assert_eq!(info_media_size(&info), disk.size(), "{info}");
    assert_eq!(
        info_field(&info, "Number of extents")
            .parse::<usize>()
            .unwrap(),
        extents
    );
    let desc = read_descriptor(&dir.join(img)).unwrap().unwrap();
    let cid = u32::from_str_radix(
        info_field(&info, "Content identifier").trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert_eq!(desc.cid, Some(cid));
    let layer = disk.layer();
    assert_eq!(layer.format, "vmdk");
    assert_eq!(layer.virtual_size, disk.size());
    assert!(layer.warnings.is_empty(), "{:?}", layer.warnings);
    // Sources untouched.
    drop(disk);
    assert_eq!(before, snapshot_dir(dir), "reading changed a source file");
}

#[test]
fn every_subformat_matches_qemu_and_vmdkinfo() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    for sub in [
        "monolithicSparse",
        "monolithicFlat",
        "streamOptimized",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
    ] {
        let img = format!("{sub}.vmdk");
        convert(dir, sub, &[], &img);
        check_against_oracles(dir, &img, &raw, 1);
        let disk = vdisk::open(&dir.join(&img)).unwrap();
        let layer = disk.layer();
        assert_eq!(layer.subformat.as_deref(), Some(sub));
        let total: u64 = std::iter::once(&layer.path)
            .chain(&layer.extra_files)
            .map(|p| p.metadata().unwrap().len())
            .sum();
        assert_eq!(layer.file_size, total, "{sub}");
        let expect_extra =
            usize::from(!sub.starts_with("monolithicSparse") && sub != "streamOptimized");
        assert_eq!(
            layer.extra_files.len(),
            expect_extra,
            "{sub}: {:?}",
            layer.extra_files
        );
        // qemu writes geometry into every descriptor.
        assert!(disk.geometry_hints().physical.is_some(), "{sub}");
    }
}

#[test]
fn two_gb_split_sets_have_several_parts() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    let two_g: u64 = 2 << 30;
    let size = two_g + 100 * 1024 * 1024 + 512;
    make_raw(
        &raw,
        size,
        &[
            (0, 512 * 1024, Fill::Random),
            (700 << 20, 300 * 1024, Fill::Random),
            (two_g - 200 * 1024, 400 * 1024, Fill::Random),
            (two_g + 5 * 1024 * 1024, 64 * 1024, Fill::Byte(0xee)),
            (size - 1024, 1024, Fill::Random),
        ],
        7,
    );
    for (sub, suffix) in [("twoGbMaxExtentSparse", "-s"), ("twoGbMaxExtentFlat", "-f")] {
        let img = format!("{sub}.vmdk");
        convert(dir, sub, &[], &img);
        let disk = vdisk::open(&dir.join(&img)).unwrap();
        let layer = disk.layer();
        assert_eq!(layer.extra_files.len(), 2, "{:?}", layer.extra_files);
        for (i, p) in layer.extra_files.iter().enumerate() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.ends_with(&format!("{suffix}{:03}.vmdk", i + 1)),
                "{name}"
            );
        }
        // Sparse: every byte compared (holes of the raw files are known
        // zeros); flat: data fully, holes sampled (reading 2 GiB of file
        // holes is the slow part, not the reader).
        let flat = sub.ends_with("Flat");
        assert_same_as_sparse_raw(disk.as_ref(), dir, &raw, flat);
        let qraw = qemu_to_raw(dir, &img, "q.raw");
        assert_same_as_sparse_raw(disk.as_ref(), dir, &qraw, flat);
        std::fs::remove_file(&qraw).unwrap();
        assert_map_agrees(disk.as_ref(), &qemu_map(dir, &img));
        let info = vmdkinfo(dir, &img);
        assert_eq!(info_media_size(&info), size);
        assert_eq!(info_field(&info, "Number of extents"), "2");
        // A read straddling the 2 GiB part boundary.
        let mut a = vec![0u8; 400 * 1024];
        disk.read_at(&mut a, two_g - 200 * 1024).unwrap();
        let mut b = vec![0u8; 400 * 1024];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&raw).unwrap(),
            &mut b,
            two_g - 200 * 1024,
        )
        .unwrap();
        assert_eq!(a, b);
        drop(disk);
        for p in layer.extra_files {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn zeroed_grains_read_as_zero_extents() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    convert(
        dir,
        "monolithicSparse",
        &["-o", "zeroed_grain=on"],
        "z.vmdk",
    );
    // Zero whole grains that hold data: qemu records them as GTE 1.
    qemu_io(dir, "z.vmdk", &["write -z 0 512k", "write -z 8M 64k"]);
    let disk = vdisk::open(&dir.join("z.vmdk")).unwrap();
    let q = qemu_to_raw(dir, "z.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
    let map = qemu_map(dir, "z.vmdk");
    assert_map_agrees(disk.as_ref(), &map);
    let e = disk.extent(0, 1 << 20).unwrap();
    assert_eq!((e.kind, e.len), (ExtentKind::Zero, 512 * 1024));
    let e = disk.extent(8 << 20, 1 << 20).unwrap();
    assert_eq!(e.kind, ExtentKind::Zero);
    assert!(
        map.iter().any(|m| m.start == 0 && m.zero && !m.data),
        "{map:?}"
    );
}

#[test]
fn snapshot_delta_reads_through_to_parent() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    convert(dir, "monolithicSparse", &[], "base.vmdk");
    delta(dir, &[], "base.vmdk", "delta.vmdk");
    qemu_io(
        dir,
        "delta.vmdk",
        &[
            "write -P 0x33 4k 8k",
            "write -P 0x33 2M 1M",
            "write -P 0x44 24M 3584",
        ],
    );
    let before = snapshot_dir(dir);
    let disk = vdisk::open(&dir.join("delta.vmdk")).unwrap();
    let q = qemu_to_raw(dir, "delta.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
    std::fs::remove_file(&q).unwrap();
    assert_map_agrees(disk.as_ref(), &qemu_map(dir, "delta.vmdk"));
    let parent = disk.backing().expect("delta has a parent");
    assert_eq!(parent.layer().path, dir.join("base.vmdk"));
    assert!(
        disk.layer().warnings.is_empty(),
        "{:?}",
        disk.layer().warnings
    );
    assert_eq!(vdisk::disk::chain(disk.as_ref()).len(), 2);
    let info = vmdkinfo(dir, "delta.vmdk");
    let pcid = info_field(&info, "Parent content identifier");
    let d = read_descriptor(&dir.join("delta.vmdk")).unwrap().unwrap();
    assert_eq!(format!("0x{:08x}", d.parent_cid.unwrap()), pcid);
    drop(disk);
    assert_eq!(before, snapshot_dir(dir));
}

#[test]
fn split_sparse_delta_over_stream_base() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    convert(dir, "streamOptimized", &[], "base.vmdk");
    delta(
        dir,
        &["-o", "subformat=twoGbMaxExtentSparse"],
        "base.vmdk",
        "delta.vmdk",
    );
    qemu_io(
        dir,
        "delta.vmdk",
        &["write -P 0x77 1536k 100k", "write -P 0x78 20M 64k"],
    );
    let disk = vdisk::open(&dir.join("delta.vmdk")).unwrap();
    assert_eq!(
        disk.layer().subformat.as_deref(),
        Some("twoGbMaxExtentSparse")
    );
    assert_eq!(
        disk.backing().unwrap().layer().subformat.as_deref(),
        Some("streamOptimized")
    );
    let q = qemu_to_raw(dir, "delta.vmdk", "q.raw");
    assert_same_as_raw(disk.as_ref(), &q);
    assert_map_agrees(disk.as_ref(), &qemu_map(dir, "delta.vmdk"));
    assert!(
        disk.layer().warnings.is_empty(),
        "{:?}",
        disk.layer().warnings
    );
}

#[test]
fn cid_mismatch_is_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    convert(dir, "monolithicFlat", &[], "base.vmdk");
    delta(dir, &[], "base.vmdk", "delta.vmdk");
    // "Modify" the parent: change its CID.
    let text = std::fs::read_to_string(dir.join("base.vmdk")).unwrap();
    let d = vdisk::vmdk::parse_descriptor(&text).unwrap();
    // qemu writes the CID without zero padding (`CID=%x`): replace the
    // whole line, whatever its width.
    let new = format!("CID={:08x}", d.cid.unwrap() ^ 0x1111_1111);
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("CID=") {
                new.as_str()
            } else {
                l
            }
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(edited, text, "no CID= line in {text}");
    std::fs::write(dir.join("base.vmdk"), edited).unwrap();
    let disk = vdisk::open(&dir.join("delta.vmdk")).unwrap();
    let w = disk.layer().warnings;
    assert!(
        w.iter()
            .any(|w| w.contains("modified since the child was created")),
        "{w:?}"
    );
    assert_same_as_raw(disk.as_ref(), &raw);
}

#[test]
fn concurrent_reads_agree() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let raw = dir.join("pattern.raw");
    let size = standard_pattern(&raw);
    convert(dir, "streamOptimized", &[], "s.vmdk");
    let disk = vdisk::open(&dir.join("s.vmdk")).unwrap();
    let want = file_bytes(&raw);
    std::thread::scope(|s| {
        for k in 0..4u64 {
            let disk = &disk;
            let want = &want;
            s.spawn(move || {
                let mut buf = vec![0u8; 100_000];
                let mut off = k * 12_345;
                while off + buf.len() as u64 <= size {
                    disk.read_at(&mut buf, off).unwrap();
                    assert_eq!(&buf[..], &want[off as usize..off as usize + buf.len()]);
                    off += 777_777;
                }
            });
        }
    });
}
