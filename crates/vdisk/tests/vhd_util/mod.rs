//! Shared helpers for the VHD/VHDX/VDI integration tests: oracle tools,
//! pattern images, comparisons against `qemu-img`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use vdisk::{Disk, ExtentKind};

/// Run an installed tool, insist on success, return stdout.
pub fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    testkit::run_tool(tool, args)
}

/// A deterministic pseudo-random generator (xorshift) for test data.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Size of the pattern disk: 9 MiB + 3 sectors (sector-aligned, not
/// aligned to any block size).
pub const PATTERN_SIZE: u64 = 9 * 1024 * 1024 + 1536;

/// Write a sparse raw pattern: random runs (some crossing block
/// boundaries), an explicitly written zero MiB, holes, and random data in
/// the unaligned tail.
pub fn pattern_raw(dir: &Path) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let p = dir.join("pattern.raw");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(PATTERN_SIZE).unwrap();
    let mut rng = Rng::new(0x5eed);
    for (off, len) in [
        (0u64, 300 * 1024u64),
        (2 * 1024 * 1024 - 4096, 8192),
        (3 * 1024 * 1024 + 512, 300 * 1024),
        (7 * 1024 * 1024, 300 * 1024),
        (PATTERN_SIZE - 1024, 1024),
    ] {
        let mut b = vec![0u8; len as usize];
        rng.fill(&mut b);
        f.write_all_at(&b, off).unwrap();
    }
    f.write_all_at(&vec![0u8; 1024 * 1024], 5 * 1024 * 1024)
        .unwrap();
    p
}

/// `qemu-img convert -f raw -O <fmt> -o <opts> src dst`.
pub fn qemu_convert(src: &Path, fmt: &str, opts: &str, dst: &Path) {
    let extra: &[&str] = if opts.is_empty() { &[] } else { &["-o", opts] };
    testkit::qemu_convert(src, "raw", fmt, extra, dst);
}

/// The image flattened by `qemu-img convert -O raw` (format given
/// explicitly: QEMU cannot probe a fixed VHD).
pub fn qemu_raw(img: &Path, fmt: &str, dir: &Path) -> Vec<u8> {
    testkit::qemu_raw(img, Some(fmt), dir)
}

/// Read the whole disk with odd-sized chunks (not aligned to sectors or
/// blocks) to exercise run splitting.
pub fn read_all(d: &dyn Disk) -> Vec<u8> {
    let size = d.size();
    let mut out = vec![0u8; size as usize];
    let mut off = 0u64;
    let mut step = 777_777u64;
    while off < size {
        let n = step.min(size - off);
        d.read_at(&mut out[off as usize..(off + n) as usize], off)
            .unwrap();
        off += n;
        step = if step == 777_777 { 1_234_567 } else { 777_777 };
    }
    out
}

/// All extents of a disk, consecutive, covering it.
pub fn extents(d: &dyn Disk) -> Vec<vdisk::Extent> {
    let mut v = Vec::new();
    let mut off = 0;
    while off < d.size() {
        let e = d.extent(off, d.size() - off).unwrap();
        assert_eq!(e.offset, off);
        assert!(e.len > 0);
        off += e.len;
        v.push(e);
    }
    v
}

/// `qemu-img map --output=json` as (start, length, data) triples.
pub fn qemu_map(img: &Path, fmt: &str) -> Vec<(u64, u64, bool)> {
    testkit::qemu_map(img, Some(fmt))
        .into_iter()
        .map(|e| (e.start, e.length, e.data))
        .collect()
}

/// Whether each 512-byte sector is data, according to a list of runs.
pub fn sector_data_map(runs: impl Iterator<Item = (u64, u64, bool)>, size: u64) -> Vec<bool> {
    let mut m = vec![false; size.div_ceil(512) as usize];
    for (s, l, d) in runs {
        for i in s / 512..(s + l).div_ceil(512) {
            m[i as usize] = d;
        }
    }
    m
}

/// Our extents as a sector map (data = true).
pub fn our_data_map(d: &dyn Disk) -> Vec<bool> {
    sector_data_map(
        extents(d)
            .into_iter()
            .map(|e| (e.offset, e.len, e.kind == ExtentKind::Data)),
        d.size(),
    )
}

/// Check that every extent we report as non-data really reads as zeros in
/// the reference bytes.
pub fn assert_nondata_is_zero(d: &dyn Disk, reference: &[u8]) {
    for e in extents(d) {
        if e.kind != ExtentKind::Data {
            let s = &reference[e.offset as usize..(e.offset + e.len) as usize];
            assert!(
                s.iter().all(|&b| b == 0),
                "extent {e:?} is reported {:?} but the reference has data there",
                e.kind
            );
        }
    }
}

/// Full file contents, to prove a source was not modified.
pub fn snapshot(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

pub mod build;

/// Unmounts a FUSE mount point when dropped.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount").arg("-u").arg(&self.0).status();
    }
}

/// Read the disk through libvhdi (`vhdimount`, FUSE): an independent VHD /
/// VHDX implementation that also follows differencing chains.
pub fn vhdimount_read(img: &Path, dir: &Path) -> Vec<u8> {
    let mnt = dir.join(format!(
        "mnt-{}",
        img.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::create_dir_all(&mnt).unwrap();
    run("vhdimount", &[img.to_str().unwrap(), mnt.to_str().unwrap()]);
    let _guard = Unmount(mnt.clone());
    std::fs::read(mnt.join("vhdi1")).unwrap_or_else(|e| {
        panic!(
            "vhdimount exposed no readable vhdi1 for {}: {e}",
            img.display()
        )
    })
}

/// `vhdiinfo` output as text.
pub fn vhdiinfo(img: &Path) -> String {
    String::from_utf8(run("vhdiinfo", &[img.to_str().unwrap()])).unwrap()
}

/// The "Media size" (bytes) printed by `vhdiinfo`.
pub fn vhdiinfo_media_size(img: &Path) -> u64 {
    let info = vhdiinfo(img);
    let line = info
        .lines()
        .find(|l| l.contains("Media size"))
        .unwrap_or_else(|| panic!("no media size in vhdiinfo output:\n{info}"));
    let inner = line.split('(').nth(1).unwrap();
    inner.split_whitespace().next().unwrap().parse().unwrap()
}
pub mod vhdx;
