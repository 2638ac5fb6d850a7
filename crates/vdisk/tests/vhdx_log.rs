//! Dirty VHDX logs. QEMU never leaves one behind, so the test takes a clean
//! QEMU-made VHDX and writes a valid log into its log region (entries with
//! data and zero descriptors, CRC-32C, contiguous sequence numbers, LogGuid
//! set in the current header with its CRC recomputed). Three checks:
//! our read returns the logged data; the source file is unchanged; and
//! QEMU — which replays a log only when it may write, so it runs
//! `qemu-img check -r all` on a *copy* — flattens the copy to the same
//! bytes, which proves the log writer here and our replayer agree with an
//! independent implementation.

mod vhd_util;

use std::path::{Path, PathBuf};
use vdisk::{Disk, ErrorKind};
use vhd_util::vhdx::*;
use vhd_util::*;

const MIB: u64 = 1 << 20;
const GUID: [u8; 16] = *b"log-guid-for-tst";

fn sector(fill: u8) -> Vec<u8> {
    let mut s = vec![fill; 4096];
    s[0..8].copy_from_slice(b"LEADBYTE");
    s[4092..].copy_from_slice(b"TAIL");
    s
}

/// A clean 1 MiB-block VHDX of the pattern plus its layout.
fn clean(dir: &Path) -> (PathBuf, Vec<u8>, Layout) {
    let raw = pattern_raw(dir);
    let img = dir.join("clean.vhdx");
    qemu_convert(&raw, "vhdx", "subformat=dynamic,block_size=1M", &img);
    let b = std::fs::read(&img).unwrap();
    let l = layout(&b);
    (img, b, l)
}

#[test]
fn dirty_log_is_replayed_in_memory_like_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let (_clean, mut b, l) = clean(dir.path());
    let cr = 4096;
    let blk0 = bat(&b, &l, payload_index(0, cr)) >> 20 << 20;
    assert_eq!(bat(&b, &l, payload_index(0, cr)) & 7, 6, "block 0 present");
    let i3 = payload_index(3, cr);
    assert_eq!(bat(&b, &l, i3) & 7, 6, "block 3 present");
    // The BAT's first sector with block 3 turned into a ZERO block.
    let bat_off = l.bat.0;
    let mut bat_sector = b[bat_off as usize..bat_off as usize + 4096].to_vec();
    let e3 = (bat(&b, &l, i3) & !7) | 2;
    bat_sector[8 * i3..8 * i3 + 8].copy_from_slice(&e3.to_le_bytes());
    let flen = b.len() as u64;
    let a = log_entry(
        5,
        0,
        &GUID,
        flen,
        flen,
        &[
            Desc::Data(blk0 + 0x1000, sector(0xa1)),
            Desc::Zero(blk0 + 0x3000, 0x2000),
            Desc::Data(bat_off, bat_sector),
            Desc::Data(blk0 + 0x8000, sector(0xa2)),
        ],
    );
    // Second entry of the same sequence overrides one sector of the first.
    let second = log_entry(
        6,
        0,
        &GUID,
        flen,
        flen,
        &[Desc::Data(blk0 + 0x1000, sector(0xb2))],
    );
    install_log(&mut b, &l, &GUID, &[a, second]);
    let img = dir.path().join("dirty.vhdx");
    std::fs::write(&img, &b).unwrap();

    let mut expect = std::fs::read(dir.path().join("pattern.raw")).unwrap();
    expect[0x1000..0x2000].copy_from_slice(&sector(0xb2));
    expect[0x3000..0x5000].fill(0);
    expect[0x8000..0x9000].copy_from_slice(&sector(0xa2));
    expect[3 * MIB as usize..4 * MIB as usize].fill(0);

    let before = snapshot(&img);
    let d = vdisk::open(&img).unwrap();
    let w = d.layer().warnings.join("\n");
    assert!(
        w.contains("VHDX log is dirty: 2 entries replayed in memory; the source was not modified"),
        "{w}"
    );
    let ours = read_all(&*d);
    if let Some(i) = ours.iter().zip(&expect).position(|(x, y)| x != y) {
        panic!("(a) replayed read differs from the logged data at {i:#x}");
    }
    let ex = extents(&*d);
    let at3 = ex
        .iter()
        .find(|e| e.offset <= 3 * MIB && 3 * MIB < e.offset + e.len)
        .unwrap();
    assert_eq!(at3.kind, vdisk::ExtentKind::Zero, "{ex:?}");
    drop(d);
    assert!(snapshot(&img) == before, "(b) the source file was modified");

    // (c) QEMU replays the log on a copy.
    let (copy, qemu) = qemu_replayed(&img, dir.path());
    assert!(
        snapshot(&copy) != before,
        "qemu did not replay the log on the copy"
    );
    if let Some(i) = ours.iter().zip(&qemu).position(|(x, y)| x != y) {
        panic!("(c) QEMU's replay differs from ours at {i:#x}");
    }
    // And after QEMU's replay the copy is clean for us too.
    let d = vdisk::open(&copy).unwrap();
    assert!(d.layer().warnings.is_empty(), "{:?}", d.layer().warnings);
    assert!(read_all(&*d) == ours);
}

fn dirty_with(dir: &Path, entries: impl Fn(u64, u64) -> Vec<Vec<u8>>) -> PathBuf {
    let (_clean, mut b, l) = clean(dir);
    let blk0 = bat(&b, &l, 0) >> 20 << 20;
    let es = entries(b.len() as u64, blk0);
    install_log(&mut b, &l, &GUID, &es);
    let img = dir.join("bad.vhdx");
    std::fs::write(&img, &b).unwrap();
    img
}

#[test]
fn corrupt_log_entry_crc_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = dirty_with(dir.path(), |flen, blk0| {
        let mut e = log_entry(5, 0, &GUID, flen, flen, &[Desc::Data(blk0, sector(1))]);
        e[5000] ^= 0xff; // corrupt the data sector: CRC no longer matches
        vec![e]
    });
    let e = vdisk::open(&img).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    let m = e.to_string();
    assert!(
        m.contains("CRC-32C") && m.contains("log entry at file offset 0x100000"),
        "{m}"
    );
}

#[test]
fn truncated_file_per_flushed_offset_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = dirty_with(dir.path(), |flen, blk0| {
        vec![log_entry(
            5,
            0,
            &GUID,
            flen + 16 * MIB,
            flen + 16 * MIB,
            &[Desc::Data(blk0, sector(1))],
        )]
    });
    let e = vdisk::open(&img).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn dirty_flag_without_entries_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = dirty_with(dir.path(), |_, _| vec![]);
    let e = vdisk::open(&img).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("no valid log sequence"), "{e}");
}

#[test]
fn only_the_newest_sequence_is_replayed() {
    // An old complete sequence (entry 3) and a newer one (entry 9) further
    // on: only the newer one is the active sequence.
    let dir = tempfile::tempdir().unwrap();
    let (_clean, mut b, l) = clean(dir.path());
    let blk0 = bat(&b, &l, 0) >> 20 << 20;
    let flen = b.len() as u64;
    let old = log_entry(
        3,
        0,
        &GUID,
        flen,
        flen,
        &[
            Desc::Data(blk0, sector(0x31)),
            Desc::Data(blk0 + 0x2000, sector(0x32)),
        ],
    );
    install_log(&mut b, &l, &GUID, &[old]);
    let pos = 64 * 1024;
    let new = log_entry(
        9,
        pos as u32,
        &GUID,
        flen,
        flen,
        &[Desc::Data(blk0, sector(0x91))],
    );
    let at = l.log.0 as usize + pos;
    b[at..at + new.len()].copy_from_slice(&new);
    let img = dir.path().join("two.vhdx");
    std::fs::write(&img, &b).unwrap();
    let pattern = std::fs::read(dir.path().join("pattern.raw")).unwrap();
    let d = vdisk::open(&img).unwrap();
    assert!(d.layer().warnings.join(" ").contains("1 entries replayed"));
    let mut buf = vec![0u8; 0x3000];
    d.read_at(&mut buf, 0).unwrap();
    assert_eq!(buf[..4096], sector(0x91)[..]);
    assert_eq!(buf[0x2000..], pattern[0x2000..0x3000]);
    // QEMU agrees (on a copy).
    let (_, qemu) = qemu_replayed(&img, dir.path());
    assert!(
        read_all(&*d) == qemu,
        "QEMU chose a different active sequence"
    );
}

/// Let QEMU replay the log (`qemu-img check -r all`) on a copy of `img` in
/// `dir`; the copy's path and its contents as QEMU then reads them.
fn qemu_replayed(img: &Path, dir: &Path) -> (PathBuf, Vec<u8>) {
    let copy = dir.join("copy.vhdx");
    std::fs::copy(img, &copy).unwrap();
    run(
        "qemu-img",
        &["check", "-r", "all", "-f", "vhdx", copy.to_str().unwrap()],
    );
    let qemu = qemu_raw(&copy, "vhdx", dir);
    (copy, qemu)
}
