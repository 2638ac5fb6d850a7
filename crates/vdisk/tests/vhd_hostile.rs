//! Hostile VHD, VHDX and VDI files: truncation, bad checksums, tables past
//! end of file, absurd sizes and counts, random corruption. Every case must
//! give an error of the right kind naming what was wrong — never a panic,
//! never an unbounded allocation.

mod vhd_util;

use std::path::{Path, PathBuf};
use vdisk::{Disk, ErrorKind};
use vhd_util::build::{fix_dyn_header, fix_footer};
use vhd_util::vhdx::{fix_crc, layout, set_bat};
use vhd_util::*;

fn made(dir: &Path, fmt: &str, opts: &str, name: &str) -> (PathBuf, Vec<u8>) {
    let raw = dir.join("pattern.raw");
    if !raw.exists() {
        pattern_raw(dir);
    }
    let img = dir.join(name);
    qemu_convert(&raw, fmt, opts, &img);
    let b = std::fs::read(&img).unwrap();
    (img, b)
}

#[track_caller]
fn open_err(p: &Path, b: &[u8]) -> vdisk::Error {
    std::fs::write(p, b).unwrap();
    match vdisk::open(p) {
        Ok(d) => panic!("{} opened: {:?}", p.display(), d.layer()),
        Err(e) => e,
    }
}

#[track_caller]
fn expect(e: &vdisk::Error, kind: ErrorKind, words: &[&str]) {
    assert_eq!(e.kind, kind, "{e}");
    let m = e.to_string();
    for w in words {
        assert!(m.contains(w), "error lacks {w:?}: {m}");
    }
}

#[test]
fn vhd_hostile() {
    let dir = tempfile::tempdir().unwrap();
    let (img, good) = made(
        dir.path(),
        "vpc",
        "subformat=dynamic,force_size=on",
        "d.vhd",
    );
    let p = dir.path().join("h.vhd");
    let n = good.len();
    // Bad footer at the end, good copy at 0: opens with a warning.
    let mut b = good.clone();
    b[n - 512 + 48] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let d = vdisk::open(&p).unwrap();
    assert!(d.layer().warnings.join(" ").contains("damaged"));
    // Both copies bad: corrupt, naming the end footer's offset.
    b[48] ^= 1;
    let e = open_err(&p, &b);
    expect(
        &e,
        ErrorKind::Corrupt,
        &["checksum", &format!("{:#x}", n - 512)],
    );
    // Dynamic header checksum.
    let mut b = good.clone();
    b[512 + 32] ^= 1;
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["dynamic header checksum", "0x200"],
    );
    // Absurd block size (checksum fixed).
    let mut b = good.clone();
    b[512 + 32..512 + 36].copy_from_slice(&3u32.to_be_bytes());
    fix_dyn_header(&mut b[512..1536]);
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["block size 3"]);
    // BAT past end of file with an absurd entry count.
    let mut b = good.clone();
    b[512 + 16..512 + 24].copy_from_slice(&(1u64 << 40).to_be_bytes());
    fix_dyn_header(&mut b[512..1536]);
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["BAT", "file ends"]);
    // Huge virtual size: BAT count over the cap, no allocation.
    let mut b = good.clone();
    for off in [0, n - 512] {
        b[off + 48..off + 56].copy_from_slice(&(1u64 << 60).to_be_bytes());
        fix_footer(&mut b[off..off + 512]);
    }
    b[512 + 28..512 + 32].copy_from_slice(&u32::MAX.to_be_bytes());
    fix_dyn_header(&mut b[512..1536]);
    let e = open_err(&p, &b);
    assert!(
        matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Unsupported),
        "{e}"
    );
    // BAT entry pointing past EOF names the entry.
    let mut b = good.clone();
    b[0x600..0x604].copy_from_slice(&0x00ff_0000u32.to_be_bytes());
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["BAT entry 0", "0x600"],
    );
    // Truncated: the copy at 0 is used, then the BAT points past EOF.
    let e = open_err(&p, &good[..n / 2]);
    expect(&e, ErrorKind::Corrupt, &["BAT entry"]);
    // Tiny files.
    expect(
        &open_err(&p, b"conectix"),
        ErrorKind::Corrupt,
        &["512-byte footer"],
    );
    // Fixed VHD shorter than its size.
    let (_, fixed) = made(dir.path(), "vpc", "subformat=fixed,force_size=on", "f.vhd");
    let mut b = fixed[fixed.len() - 4096..].to_vec();
    let l = b.len();
    b[l - 512..].copy_from_slice(&fixed[fixed.len() - 512..]);
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["fixed VHD"]);
    let _ = img;
}

#[test]
fn vhdx_hostile() {
    let dir = tempfile::tempdir().unwrap();
    let (_img, good) = made(
        dir.path(),
        "vhdx",
        "subformat=dynamic,block_size=1M",
        "d.vhdx",
    );
    let l = layout(&good);
    let p = dir.path().join("h.vhdx");
    // One header bad: warning, still opens.
    let mut b = good.clone();
    b[0x10000 + 100] ^= 1;
    std::fs::write(&p, &b).unwrap();
    let d = vdisk::open(&p).unwrap();
    assert!(read_all(&*d) == std::fs::read(dir.path().join("pattern.raw")).unwrap());
    assert!(d.layer().warnings.join(" ").contains("header"));
    // Both headers bad.
    b[0x20000 + 100] ^= 1;
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["neither VHDX header", "CRC-32C"],
    );
    // Both region tables bad.
    let mut b = good.clone();
    b[0x30000 + 200] ^= 1;
    b[0x40000 + 200] ^= 1;
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["region table", "0x30000"],
    );
    // Unknown required region.
    let mut b = good.clone();
    let n = u32::from_le_bytes(b[0x30008..0x3000c].try_into().unwrap()) as usize;
    let e = 0x30010 + 32 * n;
    b[e..e + 16].copy_from_slice(b"unknown-region!!");
    b[e + 16..e + 24].copy_from_slice(&(8u64 << 20).to_le_bytes());
    b[e + 24..e + 28].copy_from_slice(&(1u32 << 20).to_le_bytes());
    b[e + 28..e + 32].copy_from_slice(&1u32.to_le_bytes());
    b[0x30008..0x3000c].copy_from_slice(&((n + 1) as u32).to_le_bytes());
    fix_crc(&mut b[0x30000..0x40000], 4);
    expect(
        &open_err(&p, &b),
        ErrorKind::Unsupported,
        &["unknown required region"],
    );
    // BAT entry past EOF.
    let mut b = good.clone();
    set_bat(&mut b, &l, 0, 6, 1 << 40);
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["BAT entry 0", "not inside the file"],
    );
    // Reserved BAT state.
    let mut b = good.clone();
    set_bat(&mut b, &l, 1, 5, 0);
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["reserved state 5"]);
    // Absurd block size / virtual size in the metadata items.
    let m = l.meta.0 as usize;
    let item = |b: &[u8], guid0: u8| -> usize {
        let count = u16::from_le_bytes([b[m + 10], b[m + 11]]) as usize;
        (0..count)
            .map(|i| m + 32 + 32 * i)
            .find(|&e| b[e] == guid0)
            .map(|e| m + u32::from_le_bytes(b[e + 16..e + 20].try_into().unwrap()) as usize)
            .unwrap()
    };
    let mut b = good.clone();
    let fp = item(&b, 0x37);
    b[fp..fp + 4].copy_from_slice(&3u32.to_le_bytes());
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["block size 3"]);
    let mut b = good.clone();
    let vs = item(&b, 0x24);
    b[vs..vs + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["virtual disk size"],
    );
    // Virtual size that needs more BAT than the region holds.
    let mut b = good.clone();
    b[vs..vs + 8].copy_from_slice(&(60u64 << 40).to_le_bytes());
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["BAT region"]);
    // Truncated file.
    let e = open_err(&p, &good[..good.len() / 3]);
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    expect(
        &open_err(&p, b"vhdxfile"),
        ErrorKind::Corrupt,
        &["file ends"],
    );
}

#[test]
fn vdi_hostile() {
    let dir = tempfile::tempdir().unwrap();
    let (_img, good) = made(dir.path(), "vdi", "static=off", "d.vdi");
    let p = dir.path().join("h.vdi");
    let mut b = good.clone();
    b[0x178..0x17c].copy_from_slice(&3u32.to_le_bytes());
    expect(&open_err(&p, &b), ErrorKind::Corrupt, &["block size 3"]);
    let mut b = good.clone();
    b[0x180..0x184].copy_from_slice(&u32::MAX.to_le_bytes());
    b[0x170..0x178].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let e = open_err(&p, &b);
    assert!(
        matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Unsupported),
        "{e}"
    );
    let mut b = good.clone();
    b[0x154..0x158].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["block map", "file ends"],
    );
    let mut b = good.clone();
    let map = u32::from_le_bytes(b[0x154..0x158].try_into().unwrap()) as usize;
    b[map..map + 4].copy_from_slice(&9u32.to_le_bytes());
    expect(
        &open_err(&p, &b),
        ErrorKind::Corrupt,
        &["block map entry 0"],
    );
    let mut b = good.clone();
    b[0x44..0x48].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    expect(&open_err(&p, &b), ErrorKind::Unsupported, &["version 1.0"]);
    let e = open_err(&p, &good[..good.len() - (1 << 20) - 4096]);
    expect(&e, ErrorKind::Corrupt, &["block map entry"]);
}

/// Random byte corruption of valid images: open and read must never panic.
#[test]
fn random_corruption_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = [
        made(
            dir.path(),
            "vpc",
            "subformat=dynamic,force_size=on",
            "d.vhd",
        )
        .1,
        made(
            dir.path(),
            "vhdx",
            "subformat=dynamic,block_size=1M",
            "d.vhdx",
        )
        .1,
        made(dir.path(), "vdi", "static=off", "d.vdi").1,
    ];
    let p = dir.path().join("fuzz.img");
    let mut rng = Rng::new(42);
    for round in 0..150 {
        let mut b = imgs[round % 3].clone();
        // Corrupt the metadata areas mostly (first 2 MiB and the end).
        for _ in 0..1 + rng.next() % 8 {
            let zone = (b.len() as u64).min(4 << 20);
            let at = if rng.next().is_multiple_of(4) {
                b.len() - 1 - (rng.next() % 512) as usize
            } else {
                (rng.next() % zone) as usize
            };
            b[at] = rng.next() as u8;
        }
        std::fs::write(&p, &b).unwrap();
        if let Ok(d) = vdisk::open(&p) {
            let mut buf = vec![0u8; 256 * 1024];
            let size = d.size();
            for _ in 0..4 {
                let off = rng.next() % size.max(1);
                let n = (buf.len() as u64).min(size - off) as usize;
                let _ = d.read_at(&mut buf[..n], off);
                let _ = d.extent(off, size - off);
            }
        }
    }
}
