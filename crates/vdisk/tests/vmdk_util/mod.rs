//! Shared helpers for the VMDK integration tests: oracle runners (qemu-img,
//! qemu-io, vmdkinfo), pattern images and chunked comparisons.
#![allow(dead_code, unused_imports)]

use rand::{Rng, SeedableRng};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vdisk::{Disk, ExtentKind};

pub use testkit::{need as require, patch, MapEntry};

/// Run an installed tool in `dir`, assert success, return stdout.
pub fn run(dir: &Path, prog: &str, args: &[&str]) -> String {
    testkit::run(testkit::tool(prog).args(args).current_dir(dir))
}

/// `qemu-img` in `dir`.
pub fn qemu_img(dir: &Path, args: &[&str]) -> String {
    run(dir, "qemu-img", args)
}

/// `qemu-io -f vmdk <img> -c <cmd>...` in `dir`.
pub fn qemu_io(dir: &Path, img: &str, cmds: &[&str]) {
    testkit::qemu_io(Some(dir), "vmdk", img, cmds)
}

/// `qemu-img convert` of `dir/pattern.raw` into the VMDK `dir/out` of
/// subformat `sub`, with `extra` arguments.
pub fn convert(dir: &Path, sub: &str, extra: &[&str], out: &str) {
    let opt = format!("subformat={sub}");
    let mut args = vec!["convert", "-f", "raw", "-O", "vmdk", "-o", &opt];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["pattern.raw", out]);
    qemu_img(dir, &args);
}

/// `qemu-img create -f vmdk <extra> -b base -F vmdk name` in `dir`: a
/// snapshot delta over `base`.
pub fn delta(dir: &Path, extra: &[&str], base: &str, name: &str) {
    let mut args = vec!["create", "-f", "vmdk"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-b", base, "-F", "vmdk", name]);
    qemu_img(dir, &args);
}

/// A kind of region in a pattern image.
#[derive(Clone, Copy, Debug)]
pub enum Fill {
    /// Random bytes.
    Random,
    /// Explicitly written zeros.
    Zeros,
    /// A constant byte.
    Byte(u8),
}

/// Create a (sparse) raw file of `size` bytes with the given regions.
pub fn make_raw(path: &Path, size: u64, regions: &[(u64, u64, Fill)], seed: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for &(off, len, fill) in regions {
        let mut buf = vec![0u8; len as usize];
        match fill {
            Fill::Random => rng.fill(&mut buf[..]),
            Fill::Zeros => {}
            Fill::Byte(b) => buf.fill(b),
        }
        f.write_all_at(&buf, off).unwrap();
    }
}

/// The standard small pattern: random blocks (grain aligned and not),
/// written zeros, holes and a sector-aligned but grain-unaligned tail.
pub fn standard_pattern(path: &Path) -> u64 {
    let size = 24 * 1024 * 1024 + 7 * 512;
    make_raw(
        path,
        size,
        &[
            (0, 1024 * 1024, Fill::Random),
            (1024 * 1024, 256 * 1024, Fill::Zeros),
            (3 * 1024 * 1024 + 4096, 70_000, Fill::Random),
            (8 * 1024 * 1024, 64 * 1024, Fill::Byte(0x5a)),
            (12 * 1024 * 1024 - 512, 1024, Fill::Random),
            (24 * 1024 * 1024 - 3000, 3000 + 7 * 512, Fill::Random),
        ],
        42,
    );
    size
}

/// Compare `disk` with a raw file chunk by chunk (works for multi-GiB
/// sparse files without loading them).
pub fn assert_same_as_raw(disk: &dyn Disk, raw: &Path) {
    let f = File::open(raw).unwrap();
    let len = f.metadata().unwrap().len();
    assert_eq!(disk.size(), len, "virtual size vs {}", raw.display());
    const CH: u64 = 4 << 20;
    let mut a = vec![0u8; CH as usize];
    let mut b = vec![0u8; CH as usize];
    let mut off = 0;
    while off < len {
        let n = CH.min(len - off) as usize;
        disk.read_at(&mut a[..n], off).unwrap();
        f.read_exact_at(&mut b[..n], off).unwrap();
        if a[..n] != b[..n] {
            let i = a[..n]
                .iter()
                .zip(&b[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!(
                "content differs from {} at byte {:#x}: ours {:#x}, expected {:#x}",
                raw.display(),
                off + i as u64,
                a[i],
                b[i]
            );
        }
        off += n as u64;
    }
}

/// `qemu-img convert -O raw` of `img` (in `dir`) into `name`.
pub fn qemu_to_raw(dir: &Path, img: &str, name: &str) -> PathBuf {
    qemu_img(dir, &["convert", "-O", "raw", img, name]);
    dir.join(name)
}

/// `qemu-img map --output=json` of `img` in `dir`.
pub fn qemu_map(dir: &Path, img: &str) -> Vec<MapEntry> {
    testkit::qemu_map(&dir.join(img), None)
}

/// Assert that our `extent()` agrees with qemu's map on data vs not-data
/// (and, where qemu reports a zero, non-data range, that we do not report
/// data).
pub fn assert_map_agrees(disk: &dyn Disk, map: &[MapEntry]) {
    for m in map {
        let mut off = m.start;
        let end = m.start + m.length;
        while off < end {
            let e = disk.extent(off, end - off).unwrap();
            assert_eq!(e.offset, off);
            assert!(e.len > 0 && e.len <= end - off, "{e:?} within {m:?}");
            assert_eq!(
                e.kind == ExtentKind::Data,
                m.data,
                "extent at {off:#x} is {:?}, qemu map says {m:?}",
                e.kind
            );
            off += e.len;
        }
    }
}

/// A field of `vmdkinfo` output, e.g. "Media size" → the "(N bytes)"
/// number or the raw text.
pub fn vmdkinfo(dir: &Path, img: &str) -> String {
    run(dir, "vmdkinfo", &[img])
}

/// Value after `label:` in vmdkinfo output.
pub fn info_field<'a>(info: &'a str, label: &str) -> &'a str {
    info.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(|r| r.trim_start_matches(':').trim())
        })
        .unwrap_or_else(|| panic!("vmdkinfo output lacks {label:?}:\n{info}"))
}

/// Media size in bytes from vmdkinfo.
pub fn info_media_size(info: &str) -> u64 {
    let f = info_field(info, "Media size");
    let inner = f.split('(').nth(1).unwrap().split(' ').next().unwrap();
    inner.parse().unwrap()
}

/// Whole file contents (for before/after comparisons of small sources).
pub fn file_bytes(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// Contents of every regular file in `dir` (name, bytes), sorted.
pub fn snapshot_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.metadata().unwrap().len() < (64 << 20))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                file_bytes(&p),
            )
        })
        .collect();
    v.sort();
    v
}

/// Like [`assert_same_as_raw`] but for big sparse raw files: the holes of
/// `raw` (found with `qemu-img map -f raw`, i.e. SEEK_DATA) are not read
/// from the file; the disk must read zeros there. With `sample_holes`, only
/// a 1 MiB window every 128 MiB (and each hole's ends) is read from the
/// disk inside holes.
pub fn assert_same_as_sparse_raw(disk: &dyn Disk, dir: &Path, raw: &Path, sample_holes: bool) {
    let f = File::open(raw).unwrap();
    let len = f.metadata().unwrap().len();
    assert_eq!(disk.size(), len, "virtual size vs {}", raw.display());
    let out = qemu_img(
        dir,
        &["map", "--output=json", "-f", "raw", raw.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    const CH: u64 = 4 << 20;
    let zeros = vec![0u8; CH as usize];
    let mut a = vec![0u8; CH as usize];
    let mut b = vec![0u8; CH as usize];
    for e in v.as_array().unwrap() {
        let start = e["start"].as_u64().unwrap();
        let end = start + e["length"].as_u64().unwrap();
        let data = e["data"].as_bool().unwrap();
        let mut off = start;
        while off < end {
            let n = CH.min(end - off) as usize;
            let skip = !data
                && sample_holes
                && off - start >= CH
                && end - off > CH
                && (off - start) % (128 << 20) >= CH;
            if skip {
                off += n as u64;
                continue;
            }
            disk.read_at(&mut a[..n], off).unwrap();
            let want: &[u8] = if data {
                f.read_exact_at(&mut b[..n], off).unwrap();
                &b[..n]
            } else {
                &zeros[..n]
            };
            if a[..n] != *want {
                let i = a[..n].iter().zip(want).position(|(x, y)| x != y).unwrap();
                panic!(
                    "content differs from {} at byte {:#x}: ours {:#x}, expected {:#x}",
                    raw.display(),
                    off + i as u64,
                    a[i],
                    want[i]
                );
            }
            off += n as u64;
        }
    }
}

/// Little-endian u32/u64 at `off` of a file.
pub fn read_u32(path: &Path, off: u64) -> u32 {
    let mut b = [0u8; 4];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut b, off)
        .unwrap();
    u32::from_le_bytes(b)
}

/// Little-endian u64 at `off` of a file.
pub fn read_u64(path: &Path, off: u64) -> u64 {
    let mut b = [0u8; 8];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut b, off)
        .unwrap();
    u64::from_le_bytes(b)
}

/// Field offsets of the KDMV header.
pub mod kdmv {
    pub const FLAGS: u64 = 8;
    pub const CAPACITY: u64 = 12;
    pub const GRAIN_SIZE: u64 = 20;
    pub const DESC_OFFSET: u64 = 28;
    pub const GTES: u64 = 44;
    pub const RGD: u64 = 48;
    pub const GD: u64 = 56;
    pub const NL: u64 = 73;
}

/// Read the whole disk (small disks only), returning the first error.
pub fn read_all(disk: &dyn Disk) -> vdisk::Result<Vec<u8>> {
    let mut v = vec![0u8; disk.size() as usize];
    for (i, c) in v.chunks_mut(1 << 20).enumerate() {
        disk.read_at(c, i as u64 * (1 << 20))?;
    }
    Ok(v)
}
