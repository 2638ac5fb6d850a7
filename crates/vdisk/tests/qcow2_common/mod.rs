//! Helpers shared by the qcow2 tests: oracle tools (qemu-img, qemu-io,
//! qcowinfo), a deterministic pattern disk and comparisons.
#![allow(dead_code, unused_imports)]

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;
use vdisk::{Disk, ExtentKind};

/// Virtual size of the pattern disk: sector-aligned, not cluster-aligned.
pub const PATTERN_SIZE: u64 = 7 * 1024 * 1024 + 3 * 512;

pub use testkit::{qemu_img, s, tool};

/// Run an installed tool, insist on success, return its stdout.
pub fn run(name: &str, args: &[&str]) -> String {
    testkit::run(tool(name).args(args))
}

/// `qemu-io -f qcow2 -c <cmd> img` for each command.
pub fn qemu_io(img: &Path, cmds: &[&str]) {
    testkit::qemu_io(None, "qcow2", s(img), cmds)
}

/// Write the pattern raw disk: 32 KiB units of random data, compressible
/// text, explicit zeros, holes and sparse bytes, plus a few 512-byte
/// islands, ending in a non-cluster-aligned tail.
pub fn pattern_raw(path: &Path, size: u64, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; size as usize];
    let unit = 32 * 1024;
    let words: [&[u8]; 6] = [b"qcow2 ", b"cluster ", b"backing ", b"zero ", b"L2 ", b"\n"];
    for chunk in data.chunks_mut(unit) {
        match rng.gen_range(0..10) {
            0..=2 => rng.fill(chunk),
            3..=5 => {
                let mut i = 0;
                while i < chunk.len() {
                    let w = words[rng.gen_range(0..words.len())];
                    let n = w.len().min(chunk.len() - i);
                    chunk[i..i + n].copy_from_slice(&w[..n]);
                    i += n;
                }
            }
            6 => {
                for _ in 0..4 {
                    let at = rng.gen_range(0..chunk.len());
                    chunk[at] = rng.gen_range(1..=255);
                }
            }
            _ => {} // zeros / hole
        }
    }
    // 512-byte islands to exercise small clusters and subclusters.
    for _ in 0..16 {
        let at = rng.gen_range(0..size / 512) as usize * 512;
        rng.fill(&mut data[at..at + 512]);
    }
    // Data right up to the unaligned end.
    let tail = data.len() - 700;
    rng.fill(&mut data[tail..]);
    std::fs::write(path, &data).unwrap();
    data
}

/// `qemu-img convert` of the pattern disk (made once per `dir` from
/// `seed`) into the qcow2 `dir/name` with extra options `opts`.
pub fn convert_pattern(dir: &Path, name: &str, opts: &[&str], seed: u64) -> std::path::PathBuf {
    let raw = dir.join("pattern.raw");
    if !raw.exists() {
        pattern_raw(&raw, PATTERN_SIZE, seed);
    }
    let img = dir.join(name);
    testkit::qemu_convert(&raw, "raw", "qcow2", opts, &img);
    img
}

/// Flatten an image with `qemu-img convert -O raw`.
pub fn qemu_raw(img: &Path, dir: &Path) -> Vec<u8> {
    testkit::qemu_raw(img, None, dir)
}

/// Read the whole disk in `chunk`-sized pieces.
pub fn read_all(d: &dyn Disk, chunk: usize) -> Vec<u8> {
    let mut v = vec![0u8; d.size() as usize];
    for (i, c) in v.chunks_mut(chunk).enumerate() {
        d.read_at(c, (i * chunk) as u64)
            .unwrap_or_else(|e| panic!("read at {:#x}: {e}", i * chunk));
    }
    v
}

/// Assert two byte vectors are equal, reporting the first difference.
pub fn assert_same(ours: &[u8], oracle: &[u8], what: &str) {
    assert_eq!(ours.len(), oracle.len(), "{what}: length differs");
    if let Some(i) = ours.iter().zip(oracle).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i:#x}: ours {:#04x}, qemu {:#04x}",
            ours[i], oracle[i]
        );
    }
}

/// Unaligned reads at awkward offsets compared with the oracle bytes.
pub fn check_unaligned(d: &dyn Disk, oracle: &[u8]) {
    let size = d.size();
    let mut rng = StdRng::seed_from_u64(7);
    let mut cases: Vec<(u64, usize)> = vec![
        (1, 1),
        (511, 2),
        (65535, 3),
        (size - 1, 1),
        (size - 1234, 1234),
    ];
    for _ in 0..64 {
        let len = rng.gen_range(1..300_000usize).min(size as usize);
        let off = rng.gen_range(0..=size - len as u64);
        cases.push((off, len));
    }
    for (off, len) in cases {
        let mut b = vec![0xeeu8; len];
        d.read_at(&mut b, off)
            .unwrap_or_else(|e| panic!("read {off:#x}+{len}: {e}"));
        assert_same(
            &b,
            &oracle[off as usize..off as usize + len],
            &format!("read {off:#x}+{len}"),
        );
    }
    let mut b = [0u8; 2];
    let e = d.read_at(&mut b, size - 1).unwrap_err();
    assert_eq!(e.kind, vdisk::ErrorKind::OutOfRange);
}

/// Per-sector kinds from `qemu-img map --output=json`:
/// Data when `data`, Zero when present but not data, else Unallocated.
pub fn qemu_map(img: &Path, size: u64) -> Vec<ExtentKind> {
    let mut kinds = vec![ExtentKind::Unallocated; size.div_ceil(512) as usize];
    for e in testkit::qemu_map(img, None) {
        let k = if e.data {
            ExtentKind::Data
        } else if e.present {
            ExtentKind::Zero
        } else {
            ExtentKind::Unallocated
        };
        for s in e.start / 512..(e.start + e.length).div_ceil(512) {
            kinds[s as usize] = k;
        }
    }
    kinds
}

/// Per-sector kinds from our `extent()` walk (also checks the extents
/// tile the disk).
pub fn our_map(d: &dyn Disk) -> Vec<ExtentKind> {
    let size = d.size();
    let mut kinds = vec![ExtentKind::Unallocated; size.div_ceil(512) as usize];
    let mut off = 0;
    while off < size {
        let e = d.extent(off, size - off).unwrap();
        assert_eq!(e.offset, off);
        assert!(e.len > 0 && off + e.len <= size, "bad extent {e:?}");
        for s in off / 512..(off + e.len).div_ceil(512) {
            kinds[s as usize] = e.kind;
        }
        off += e.len;
    }
    kinds
}

/// Compare our extents with qemu-img map sector by sector.
pub fn check_map(d: &dyn Disk, img: &Path) {
    let ours = our_map(d);
    let theirs = qemu_map(img, d.size());
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        panic!(
            "{}: extent kind differs at {:#x}: ours {:?}, qemu-img map {:?}",
            img.display(),
            i * 512,
            ours[i],
            theirs[i]
        );
    }
}

/// Open with the default policy, read everything, compare with qemu's
/// flattening (whole disk in 1 MiB chunks and unaligned reads), compare
/// extents with qemu-img map, and check the file is unchanged.
pub fn check_image(img: &Path, dir: &Path) -> Box<dyn Disk> {
    let before = std::fs::read(img).unwrap();
    let d = vdisk::open(img).unwrap_or_else(|e| panic!("open {}: {e}", img.display()));
    let oracle = qemu_raw(img, dir);
    assert_eq!(d.size(), oracle.len() as u64, "virtual size");
    assert_same(
        &read_all(&*d, 1 << 20),
        &oracle,
        &format!("{} 1 MiB chunks", img.display()),
    );
    check_unaligned(&*d, &oracle);
    check_map(&*d, img);
    assert!(
        std::fs::read(img).unwrap() == before,
        "image file changed by reading"
    );
    d
}
