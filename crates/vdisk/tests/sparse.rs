//! Sparse sources convert at the cost of their data, not of their virtual
//! size: a 64 GiB pattern holding < 1 MiB (scattered, crossing chunk
//! boundaries, plus a run of written zeros) is written by qemu-img in every
//! format it can write; we convert each to qcow2 and raw. qemu-img is the
//! oracle throughout: `compare` against the pattern, `check` of our qcow2,
//! and `map` against our extents (data vs zero vs unallocated). The
//! outputs must stay sparse (allocated blocks ≈ data), and a 4 TiB qcow2
//! must convert without reading its hole (a counting reader).
//!
//! The test images are sparse files: a few MiB of real bytes each.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use testkit::{qemu_check, qemu_compare, qemu_img, qemu_io, qemu_map, s};
use vdisk::convert::{convert, ConvertOptions, ConvertStats};
use vdisk::writer::{Qcow2Options, Qcow2Writer, RawWriter, SeqWriter};
use vdisk::{Disk, Extent, ExtentKind, LayerInfo};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SIZE: u64 = 64 * GIB;

/// Non-zero runs of the pattern (offset, length).
const DATA: &[(u64, u64)] = &[
    (0, 192 * KIB),
    // Crosses the converter's 2 MiB chunk boundary, not cluster-aligned.
    (2 * MIB - 4 * KIB, 8 * KIB),
    (GIB + 100 * KIB, 300 * KIB),
    (40 * GIB + 7 * MIB, 64 * KIB),
    // The last cluster of the disk.
    (SIZE - 64 * KIB, 64 * KIB),
];
/// Written zeros: allocated in the raw pattern, must not be in outputs.
const ZEROS: (u64, u64) = (33 * GIB, MIB);

/// Bytes of 64 KiB output clusters that hold pattern data.
fn data_cluster_bytes() -> u64 {
    let c = 64 * KIB;
    let mut clusters: Vec<u64> = DATA
        .iter()
        .flat_map(|&(o, l)| o / c..(o + l).div_ceil(c))
        .collect();
    clusters.dedup();
    clusters.len() as u64 * c
}

fn write_pattern(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(SIZE).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for &(off, len) in DATA {
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8 | 1
            })
            .collect();
        f.write_all_at(&buf, off).unwrap();
    }
    f.write_all_at(&vec![0u8; ZEROS.1 as usize], ZEROS.0)
        .unwrap();
}

/// Bytes allocated on disk for `path`.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// All extents of a disk, consecutive and covering it.
fn extents(d: &dyn Disk) -> Vec<Extent> {
    let mut v = Vec::new();
    let mut off = 0;
    while off < d.size() {
        let e = d.extent(off, d.size() - off).unwrap();
        assert_eq!(e.offset, off, "extent at {off:#x} starts elsewhere");
        assert!(e.len > 0, "empty extent at {off:#x}");
        off += e.len;
        v.push(e);
    }
    assert_eq!(off, d.size());
    v
}

/// Our extents agree with `qemu-img map` on every byte: data where qemu
/// says data, zero where it says present zeros, unallocated where it says
/// not present. `unalloc_is_zero`: qemu's driver for this format has no
/// backing files and reports unallocated blocks as present zeros (vpc,
/// vdi); there either kind of ours is right.
fn assert_map_agrees(img: &Path, fmt: &str, d: &dyn Disk, unalloc_is_zero: bool) {
    let ours = extents(d);
    let theirs = qemu_map(img, Some(fmt));
    assert_eq!(
        theirs.iter().map(|e| e.length).sum::<u64>(),
        d.size(),
        "{fmt}: qemu-img map does not cover the disk"
    );
    let mut i = 0;
    for q in &theirs {
        let want = if q.data {
            ExtentKind::Data
        } else if q.present {
            ExtentKind::Zero
        } else {
            ExtentKind::Unallocated
        };
        let end = q.start + q.length;
        let mut pos = q.start;
        while pos < end {
            while ours[i].offset + ours[i].len <= pos {
                i += 1;
            }
            let e = ours[i];
            let ok = e.kind == want
                || (unalloc_is_zero
                    && want == ExtentKind::Zero
                    && e.kind == ExtentKind::Unallocated);
            assert!(
                ok,
                "{fmt}: at {pos:#x} qemu-img map says {q:?}, our extent is {e:?}"
            );
            pos = (e.offset + e.len).min(end);
        }
    }
}

fn to_qcow2(d: &dyn Disk, out: &Path) -> ConvertStats {
    let w = Qcow2Writer::create(out, d.size(), Qcow2Options::default(), false).unwrap();
    run(d, Box::new(w))
}

fn to_raw(d: &dyn Disk, out: &Path) -> ConvertStats {
    run(
        d,
        Box::new(RawWriter::create(out, d.size(), false).unwrap()),
    )
}

fn run(d: &dyn Disk, w: Box<dyn SeqWriter>) -> ConvertStats {
    let opts = ConvertOptions {
        threads: 2,
        ..Default::default()
    };
    convert(d, w, &opts, &|_| {}).unwrap().1
}

/// Convert `src` (format `fmt`) to qcow2 and raw; both must equal the
/// pattern, be clean and stay sparse.
fn check_outputs(dir: &Path, pattern: &Path, src: &Path, fmt: &str) {
    let d = vdisk::open(src).unwrap();
    assert_eq!(d.size(), SIZE, "{fmt}: virtual size");
    let q = dir.join(format!("{fmt}.out.qcow2"));
    let stats = to_qcow2(&*d, &q);
    qemu_check(&q);
    let (code, text) = qemu_compare(&q, "qcow2", pattern, "raw");
    assert_eq!(code, 0, "{fmt} -> qcow2 differs from the pattern: {text}");
    let want = data_cluster_bytes();
    assert_eq!(
        stats.data_clusters * 64 * KIB,
        want,
        "{fmt}: data clusters written"
    );
    // Header, L1, a few L2 tables and the refcounts: well under 1 MiB.
    assert!(
        allocated(&q) <= want + MIB,
        "{fmt} -> qcow2 allocates {} bytes for {want} bytes of data",
        allocated(&q)
    );
    let r = dir.join(format!("{fmt}.out.raw"));
    to_raw(&*d, &r);
    assert_eq!(std::fs::metadata(&r).unwrap().len(), SIZE);
    let (code, text) = qemu_compare(&r, "raw", pattern, "raw");
    assert_eq!(code, 0, "{fmt} -> raw differs from the pattern: {text}");
    assert!(
        allocated(&r) <= want + 64 * KIB,
        "{fmt} -> raw allocates {} bytes for {want} bytes of data",
        allocated(&r)
    );
    std::fs::remove_file(q).unwrap();
    std::fs::remove_file(r).unwrap();
}

#[test]
fn sparse_sources_of_every_format_convert_to_their_data() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let pattern = dir.join("pattern.raw");
    write_pattern(&pattern);
    assert!(
        allocated(&pattern) < 8 * MIB,
        "the test file system does not keep files sparse"
    );

    // Raw source: holes found with SEEK_DATA, the written zeros are data.
    let d = vdisk::open(&pattern).unwrap();
    assert_map_agrees(&pattern, "raw", &*d, false);
    drop(d);
    check_outputs(dir, &pattern, &pattern, "raw");

    let cases: &[(&str, &str, &[&str], bool)] = &[
        ("qcow2", "qcow2", &[], false),
        (
            "vmdk-mono",
            "vmdk",
            &["-o", "subformat=monolithicSparse"],
            false,
        ),
        (
            "vmdk-stream",
            "vmdk",
            &["-o", "subformat=streamOptimized"],
            false,
        ),
        (
            "vpc",
            "vpc",
            &["-o", "subformat=dynamic,force_size=on"],
            true,
        ),
        ("vdi", "vdi", &[], true),
    ];
    for &(name, fmt, opts, unalloc_is_zero) in cases {
        let src = dir.join(format!("{name}.{fmt}"));
        let mut args = vec!["convert", "-f", "raw", "-O", fmt];
        args.extend_from_slice(opts);
        args.extend([s(&pattern), s(&src)]);
        qemu_img(&args);
        let d = vdisk::open(&src).unwrap();
        assert_map_agrees(&src, fmt, &*d, unalloc_is_zero);
        drop(d);
        check_outputs(dir, &pattern, &src, name);
        std::fs::remove_file(src).unwrap();
    }
}

/// qemu's VHDX driver reports every byte as data (`qemu-img map` is no
/// oracle here), so the expected map comes from qemu-img's block size: the
/// blocks the data touches are data, every other block is recorded as zero
/// (`block_state_zero=on`, qemu's default) or not present (as Hyper-V
/// leaves them: unallocated).
#[test]
fn sparse_vhdx_reports_untouched_blocks_as_zero_or_unallocated() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let pattern = dir.join("pattern.raw");
    write_pattern(&pattern);
    let bs = 8 * MIB;
    let mut blocks: Vec<u64> = DATA
        .iter()
        .flat_map(|&(o, l)| o / bs..(o + l).div_ceil(bs))
        .collect();
    blocks.dedup();
    for (zero_state, hole_kind) in [("on", ExtentKind::Zero), ("off", ExtentKind::Unallocated)] {
        let src = dir.join(format!("d-{zero_state}.vhdx"));
        let opts = format!("subformat=dynamic,block_size=8M,block_state_zero={zero_state}");
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "vhdx",
            "-o",
            &opts,
            s(&pattern),
            s(&src),
        ]);
        let d = vdisk::open(&src).unwrap();
        let mut data_blocks = vec![];
        for e in extents(&*d) {
            assert!(e.offset % bs == 0 && e.len % bs == 0, "{e:?}");
            if e.kind == ExtentKind::Data {
                data_blocks.extend(e.offset / bs..(e.offset + e.len) / bs);
            } else {
                assert_eq!(e.kind, hole_kind, "block_state_zero={zero_state}: {e:?}");
            }
        }
        assert_eq!(data_blocks, blocks, "block_state_zero={zero_state}");
        drop(d);
        check_outputs(dir, &pattern, &src, "vhdx");
        std::fs::remove_file(src).unwrap();
    }
}

/// A disk that counts what is read through it.
#[derive(Debug)]
struct Counting<'a> {
    inner: &'a dyn Disk,
    read: AtomicU64,
    extent_calls: AtomicU64,
}

impl Disk for Counting<'_> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> vdisk::Result<()> {
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> vdisk::Result<Extent> {
        self.extent_calls.fetch_add(1, Ordering::Relaxed);
        self.inner.extent(offset, max_len)
    }
    fn layer(&self) -> LayerInfo {
        self.inner.layer()
    }
}

#[test]
fn a_4_tib_qcow2_converts_without_reading_its_hole() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("big.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", s(&src), "4T"]);
    for data in [false, true] {
        if data {
            // 1 MiB of data at 3 TiB + 64 KiB, the rest a hole.
            qemu_io(None, "qcow2", s(&src), &["write -P 0x5a 3298534948864 1M"]);
        }
        let disk = vdisk::open(&src).unwrap();
        let c = Counting {
            inner: &*disk,
            read: AtomicU64::new(0),
            extent_calls: AtomicU64::new(0),
        };
        let q = dir.join("out.qcow2");
        let r = dir.join("out.raw");
        let stats = to_qcow2(&c, &q);
        to_raw(&c, &r);
        let want = if data { MIB } else { 0 };
        assert_eq!(c.read.load(Ordering::Relaxed), 2 * want, "bytes read");
        assert_eq!(stats.bytes_read, want);
        assert_eq!(stats.data_clusters * 64 * KIB, want);
        assert_eq!(
            stats.zero_clusters,
            (4 << 40) / (64 * KIB) - want / (64 * KIB)
        );
        // The hole is a few extents, not millions of clusters.
        assert!(
            c.extent_calls.load(Ordering::Relaxed) < 1000,
            "{} extent calls",
            c.extent_calls.load(Ordering::Relaxed)
        );
        qemu_check(&q);
        for (out, fmt) in [(&q, "qcow2"), (&r, "raw")] {
            let (code, text) = qemu_compare(out, fmt, &src, "qcow2");
            assert_eq!(code, 0, "{fmt} output differs from the source: {text}");
        }
        assert_eq!(std::fs::metadata(&r).unwrap().len(), 4 << 40);
        assert!(allocated(&r) <= want + 64 * KIB, "raw: {}", allocated(&r));
        // 4 TiB of L1 is 64 KiB; one L2 table for the data.
        assert!(allocated(&q) <= want + MIB, "qcow2: {}", allocated(&q));
        std::fs::remove_file(q).unwrap();
        std::fs::remove_file(r).unwrap();
    }
}

/// A disk whose reads (or extent queries) fail from `at` on.
#[derive(Debug)]
struct FailAt<'a> {
    inner: &'a dyn Disk,
    at: u64,
    in_extent: bool,
}

impl Disk for FailAt<'_> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> vdisk::Result<()> {
        if !self.in_extent && offset + buf.len() as u64 > self.at {
            return Err(vdisk::Error::new(
                vdisk::ErrorKind::Io,
                "injected read error",
            ));
        }
        self.inner.read_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> vdisk::Result<Extent> {
        if self.in_extent && offset >= self.at {
            return Err(vdisk::Error::new(
                vdisk::ErrorKind::Io,
                "injected extent error",
            ));
        }
        self.inner.extent(offset, max_len)
    }
    fn layer(&self) -> LayerInfo {
        self.inner.layer()
    }
}

/// An error in a worker (read) or in the planner (extent) ends the
/// conversion with that error, without hanging, and leaves no output.
#[test]
fn errors_while_converting_stop_the_pipeline_and_leave_no_output() {
    let t = tempfile::tempdir().unwrap();
    let pattern = t.path().join("pattern.raw");
    write_pattern(&pattern);
    let d = vdisk::open(&pattern).unwrap();
    for in_extent in [false, true] {
        let f = FailAt {
            inner: &*d,
            at: 40 * GIB,
            in_extent,
        };
        let out = t.path().join("out.qcow2");
        let w = Qcow2Writer::create(&out, SIZE, Qcow2Options::default(), false).unwrap();
        let opts = ConvertOptions {
            threads: 3,
            ..Default::default()
        };
        let err = convert(&f, Box::new(w), &opts, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        let left: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("out"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
