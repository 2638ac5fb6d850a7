//! BPB parsing and the rewrite fix against mkntfs, mkfs.vfat, fsck.fat and
//! ntfsinfo: fields read as the tools set them; after our rewrite the
//! tools still accept the volumes, report the new geometry, and the backup
//! boot sectors match.

use guest::audit::{audit, FindingKind};
use guest::bpb::{detect_bytes, Bpb, FsKind};
use guest::fixgeo::{self, FixMode};
use guest::geometry::{Bus, DeviceGeometry};
use std::os::unix::fs::FileExt;
use std::path::Path;
use testkit::{output, tool};

fn sector(p: &Path, n: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    std::fs::File::open(p)
        .unwrap()
        .read_exact_at(&mut s, n * 512)
        .unwrap();
    s
}

fn sized(p: &Path, size: u64) {
    std::fs::File::create(p).unwrap().set_len(size).unwrap();
}

#[test]
fn mkntfs_bpb_fields_read_as_set() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("ntfs.img");
    sized(&v, 24 << 20);
    let o = output(
        tool("mkntfs")
            .args(["-F", "-f", "-q", "-H", "77", "-S", "41", "-p", "4096"])
            .arg(&v),
    );
    let s0 = sector(&v, 0);
    let b = Bpb::parse(&s0).unwrap_or_else(|| panic!("no BPB after mkntfs: {o}"));
    assert_eq!(b.fs, FsKind::Ntfs);
    assert_eq!(
        (b.heads, b.sectors_per_track, b.hidden_sectors),
        (77, 41, 4096)
    );
    assert_eq!(b.bytes_per_sector, 512);
    // The backup boot sector is the volume's last sector.
    let bk = b.backup_sector.unwrap();
    assert_eq!(bk, (24 << 20) / 512 - 1);
    assert_eq!(sector(&v, bk), s0);
    assert_eq!(detect_bytes(&s0), Some(FsKind::Ntfs));
}

#[test]
fn mkfs_vfat_bpb_fields_read_as_set() {
    let dir = tempfile::tempdir().unwrap();
    for (fat, size, kind) in [
        ("12", 4u64 << 20, FsKind::Fat12),
        ("16", 24 << 20, FsKind::Fat16),
        ("32", 40 << 20, FsKind::Fat32),
    ] {
        let v = dir.path().join(format!("fat{fat}.img"));
        sized(&v, size);
        output(
            tool("mkfs.vfat")
                .args(["-F", fat, "-g", "77/41", "-h", "4096"])
                .arg(&v),
        );
        let b = Bpb::parse(&sector(&v, 0)).unwrap_or_else(|| panic!("FAT{fat}: no BPB"));
        assert_eq!(b.fs, kind);
        assert_eq!(
            (b.heads, b.sectors_per_track, b.hidden_sectors),
            (77, 41, 4096)
        );
        let fsck = output(tool("fsck.fat").args(["-n", "-v"]).arg(&v));
        assert!(
            fsck.contains(&format!("{} sectors total", b.total_sectors)),
            "{fsck}"
        );
        if kind == FsKind::Fat32 {
            assert_eq!(b.backup_sector, Some(6));
            assert_eq!(sector(&v, 6), sector(&v, 0));
        } else {
            assert_eq!(b.backup_sector, None);
        }
    }
}

fn copy_into(disk: &Path, vol: &Path, start_lba: u64) {
    let data = std::fs::read(vol).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.write_all_at(&data, start_lba * 512).unwrap();
}

fn copy_out(disk: &Path, start_lba: u64, sectors: u64, out: &Path) {
    let mut buf = vec![0u8; (sectors * 512) as usize];
    std::fs::File::open(disk)
        .unwrap()
        .read_exact_at(&mut buf, start_lba * 512)
        .unwrap();
    std::fs::write(out, buf).unwrap();
}

/// A disk whose NTFS and FAT32 volumes were formatted for 255/63 at LBA 63
/// and then moved to 2048 and 51200: the rewrite fixes hidden sectors and
/// geometry, ntfsinfo and fsck.fat still accept the volumes.
#[test]
fn rewrite_keeps_ntfs_and_fat_volumes_valid() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    sized(&disk, 80 << 20);
    testkit::sfdisk(
        &disk,
        "label: dos\nstart=2048, size=49152, type=7, bootable\nstart=51200, size=80000, type=c\n",
    );
    let ntfs = dir.path().join("ntfs.img");
    sized(&ntfs, 49152 * 512);
    output(
        tool("mkntfs")
            .args(["-F", "-f", "-q", "-H", "255", "-S", "63", "-p", "63"])
            .arg(&ntfs),
    );
    let info_before = output(tool("ntfsinfo").arg("-m").arg(&ntfs));
    copy_into(&disk, &ntfs, 2048);
    let fat = dir.path().join("fat.img");
    sized(&fat, 80000 * 512);
    output(
        tool("mkfs.vfat")
            .args(["-F", "32", "-g", "255/63", "-h", "63"])
            .arg(&fat),
    );
    copy_into(&disk, &fat, 51200);

    let d = vdisk::raw::RawDiskMut::open(&disk).unwrap();
    let a = audit(&d, &DeviceGeometry::default()).unwrap();
    let hidden: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::HiddenSectors)
        .collect();
    assert_eq!(hidden.len(), 2, "{:#?}", a.findings);
    let p = fixgeo::plan(&d, &a, None, &[Bus::Sata, Bus::VirtioBlk]).unwrap();
    assert_eq!(p.mode, Some(FixMode::Rewrite));
    let g = p.rewrite_geometry.unwrap();
    assert_eq!((g.heads, g.sectors), (16, 63));
    let changes = fixgeo::apply(&d, &a, &p).unwrap();
    assert!(changes.len() >= 4, "{changes:#?}");

    // NTFS: ntfsinfo accepts it and reports the same volume.
    copy_out(&disk, 2048, 49152, &ntfs);
    let info_after = output(tool("ntfsinfo").arg("-m").arg(&ntfs));
    let clusters = |s: &str| {
        s.lines()
            .find(|l| l.contains("Volume Size in Clusters"))
            .map(str::to_string)
    };
    assert!(clusters(&info_after).is_some(), "{info_after}");
    assert_eq!(clusters(&info_before), clusters(&info_after));
    let b = Bpb::parse(&sector(&ntfs, 0)).unwrap();
    assert_eq!(
        (b.heads, b.sectors_per_track, b.hidden_sectors),
        (16, 63, 2048)
    );
    assert_eq!(sector(&ntfs, b.backup_sector.unwrap()), sector(&ntfs, 0));

    // FAT32: fsck.fat reports the new geometry and no backup difference.
    copy_out(&disk, 51200, 80000, &fat);
    let fsck = output(tool("fsck.fat").args(["-n", "-v"]).arg(&fat));
    assert!(fsck.contains("63 sectors/track, 16 heads"), "{fsck}");
    assert!(fsck.contains("51200 hidden sectors"), "{fsck}");
    assert!(
        !fsck
            .to_lowercase()
            .contains("differences between boot sector"),
        "{fsck}"
    );
    assert_eq!(sector(&fat, 6), sector(&fat, 0));

    // The MBR CHS fields now match the geometry; a second audit is clean.
    let a = audit(&d, &DeviceGeometry::default()).unwrap();
    assert!(
        !a.findings.iter().any(|f| matches!(
            f.kind,
            FindingKind::HiddenSectors | FindingKind::BpbGeometry | FindingKind::MbrChs
        )),
        "{:#?}",
        a.findings
    );
    // sfdisk still reads the same table.
    let dump = output(tool("sfdisk").arg("-d").arg(&disk));
    assert!(
        dump.contains("start=        2048, size=       49152"),
        "{dump}"
    );
}

#[test]
fn filesystem_signatures() {
    let mut b = vec![0u8; 0x11000];
    b[0..4].copy_from_slice(b"XFSB");
    assert_eq!(detect_bytes(&b), Some(FsKind::Xfs));
    let mut b = vec![0u8; 0x11000];
    b[3..11].copy_from_slice(b"-FVE-FS-");
    assert_eq!(detect_bytes(&b), Some(FsKind::Bitlocker));
    let mut b = vec![0u8; 0x11000];
    b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
    assert_eq!(detect_bytes(&b), Some(FsKind::Btrfs));
    let mut b = vec![0u8; 0x11000];
    b[4096 - 10..4096].copy_from_slice(b"SWAPSPACE2");
    assert_eq!(detect_bytes(&b), Some(FsKind::Swap));
    let mut b = vec![0u8; 0x11000];
    b[512..520].copy_from_slice(b"LABELONE");
    b[536..544].copy_from_slice(b"LVM2 001");
    assert_eq!(detect_bytes(&b), Some(FsKind::LvmPv));
}

#[test]
fn mke2fs_and_mkswap_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    for (cmd, args, want) in [
        ("mkfs.ext2", vec!["-q", "-F"], FsKind::Ext2),
        ("mkfs.ext3", vec!["-q", "-F"], FsKind::Ext3),
        ("mkfs.ext4", vec!["-q", "-F"], FsKind::Ext4),
        ("mkswap", vec![], FsKind::Swap),
    ] {
        let v = dir.path().join(format!("{cmd}.img"));
        sized(&v, 8 << 20);
        output(tool(cmd).args(&args).arg(&v));
        let d = vdisk::open(&v).unwrap();
        assert_eq!(
            guest::bpb::detect_fs(&*d, 0, 8 << 20).unwrap(),
            Some(want),
            "{cmd}"
        );
    }
}
