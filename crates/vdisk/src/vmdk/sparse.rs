//! Sparse extents (`KDMV` hosted sparse, streamOptimized, ESX `COWD`):
//! grain directory → grain tables → grains.

use super::cache::Lru;
use super::header::{
    read_cowd_header, read_sparse_header, unsupported_compression, SparseHeader, COWD_GTES_PER_GT,
    FLAG_COMPRESSED, FLAG_MARKERS, FLAG_RGD, FLAG_ZERO_GRAIN,
};
use crate::error::{Error, Result};
use crate::file::{le, ImageFile};
use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// Inflate states of this thread: raw deflate, zlib-wrapped.
    static INFLATE: RefCell<[Option<Decompress>; 2]> = const { RefCell::new([None, None]) };
}

/// Largest grain we accept, in sectors (8 MiB; VMware uses 128).
pub const MAX_GRAIN_SECTORS: u64 = 16384;
/// Largest grain table we accept, in entries (VMware uses 512, COWD 4096).
pub const MAX_GTES_PER_GT: u32 = 65536;
/// Largest capacity we accept, in bytes (256 TiB; VMDK stops at 62 TiB).
pub const MAX_CAPACITY_BYTES: u64 = 1 << 48;
/// Largest grain directory we accept, in entries.
pub const MAX_GD_ENTRIES: u64 = 1 << 24;

/// Where a grain lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// Not allocated in this extent (falls through to the parent).
    Unallocated,
    /// Recorded as zeros (zeroed-grain GTE).
    Zero,
    /// Stored at this byte offset of the extent file (for compressed grains,
    /// the offset of the grain marker / compressed stream).
    Data(u64),
}

/// Geometry and flags of a sparse extent, independent of header flavour.
struct Params {
    capacity_sectors: u64,
    grain_sectors: u64,
    gtes_per_gt: u32,
    gd_sector: u64,
    rgd_sector: Option<u64>,
    compressed: bool,
    markers: bool,
    zero_grain: bool,
}

/// An open sparse extent.
#[derive(Debug)]
pub struct SparseExtent {
    file: Arc<ImageFile>,
    capacity: u64,
    grain_bytes: u64,
    grain_sectors: u64,
    gtes_per_gt: u64,
    gd: Vec<u32>,
    compressed: bool,
    markers: bool,
    zero_grain: bool,
    gt_cache: Lru<[u32]>,
    grain_cache: Lru<[u8]>,
    /// Problems found while opening that did not prevent reading.
    pub warnings: Vec<String>,
}

impl SparseExtent {
    /// Open a `KDMV` extent; also returns the header in effect (footer copy
    /// for streams written with the grain directory at the end).
    pub fn open_kdmv(file: Arc<ImageFile>) -> Result<(Self, SparseHeader)> {
        let h = read_sparse_header(&file)?;
        if h.compress_algorithm > 1 {
            return Err(unsupported_compression(&file, h.compress_algorithm));
        }
        if h.flags & FLAG_COMPRESSED != 0 && !h.compressed() {
            return Err(unsupported_compression(&file, h.compress_algorithm));
        }
        let mut warnings = Vec::new();
        if h.unclean_shutdown {
            warnings.push(format!(
                "{}: sparse extent was not closed cleanly (uncleanShutdown set)",
                file.path().display()
            ));
        }
        let p = Params {
            capacity_sectors: h.capacity,
            grain_sectors: h.grain_size,
            gtes_per_gt: h.gtes_per_gt,
            gd_sector: h.gd_offset,
            rgd_sector: (h.flags & FLAG_RGD != 0 && h.rgd_offset != 0).then_some(h.rgd_offset),
            compressed: h.compressed(),
            markers: h.flags & FLAG_MARKERS != 0,
            zero_grain: h.flags & FLAG_ZERO_GRAIN != 0,
        };
        let mut e = Self::build(file, p, None)?;
        warnings.append(&mut e.warnings);
        e.warnings = warnings;
        Ok((e, h))
    }

    /// Open an ESX `COWD` (vmfsSparse) extent.
    pub fn open_cowd(file: Arc<ImageFile>) -> Result<Self> {
        let h = read_cowd_header(&file)?;
        let p = Params {
            capacity_sectors: h.capacity,
            grain_sectors: h.grain_size,
            gtes_per_gt: COWD_GTES_PER_GT,
            gd_sector: h.gd_offset,
            rgd_sector: None,
            compressed: false,
            markers: false,
            zero_grain: false,
        };
        Self::build(file, p, Some(u64::from(h.gd_entries)))
    }

    fn build(file: Arc<ImageFile>, p: Params, gd_entries: Option<u64>) -> Result<Self> {
        let path = file.path();
        if p.grain_sectors == 0 || p.grain_sectors > MAX_GRAIN_SECTORS {
            return Err(Error::corrupt(
                path,
                20,
                format!(
                    "grain size of {} sectors; expected 1 to {MAX_GRAIN_SECTORS}",
                    p.grain_sectors
                ),
            ));
        }
        if p.gtes_per_gt == 0 || p.gtes_per_gt > MAX_GTES_PER_GT {
            return Err(Error::corrupt(
                path,
                44,
                format!(
                    "{} grain table entries per grain table; expected 1 to {MAX_GTES_PER_GT}",
                    p.gtes_per_gt
                ),
            ));
        }
        let capacity = p
            .capacity_sectors
            .checked_mul(512)
            .filter(|c| *c <= MAX_CAPACITY_BYTES)
            .ok_or_else(|| {
                Error::corrupt(
                    path,
                    12,
                    format!(
                        "capacity of {} sectors; at most {} bytes expected",
                        p.capacity_sectors, MAX_CAPACITY_BYTES
                    ),
                )
            })?;
        let grains = p.capacity_sectors.div_ceil(p.grain_sectors);
        let needed = grains.div_ceil(u64::from(p.gtes_per_gt));
        if let Some(n) = gd_entries {
            if n < needed {
                return Err(Error::corrupt(
                    path,
                    24,
                    format!("grain directory has {n} entries; the capacity needs {needed}"),
                ));
            }
        }
        if needed > MAX_GD_ENTRIES {
            return Err(Error::corrupt(
                path,
                12,
                format!("grain directory of {needed} entries; at most {MAX_GD_ENTRIES} expected"),
            ));
        }
        let gt_bytes = u64::from(p.gtes_per_gt) * 4;
        let mut warnings = Vec::new();
        let gd = match read_gd(&file, p.gd_sector, needed, gt_bytes) {
            Ok(gd) => gd,
            Err(primary) => match p
                .rgd_sector
                .map(|s| (s, read_gd(&file, s, needed, gt_bytes)))
            {
                Some((s, Ok(gd))) => {
                    warnings.push(format!(
                        "{}: primary grain directory unusable ({primary}); using the redundant grain directory at sector {s}",
                        path.display()
                    ));
                    gd
                }
                _ => return Err(primary),
            },
        };
        let grain_bytes = p.grain_sectors * 512;
        Ok(SparseExtent {
            capacity,
            grain_bytes,
            grain_sectors: p.grain_sectors,
            gtes_per_gt: u64::from(p.gtes_per_gt),
            gd,
            compressed: p.compressed,
            markers: p.markers,
            zero_grain: p.zero_grain,
            gt_cache: Lru::new(((8 << 20) / gt_bytes).max(4) as usize),
            grain_cache: Lru::new(((32 << 20) / grain_bytes).clamp(2, 16) as usize),
            warnings,
            file,
        })
    }

    /// The extent file.
    pub fn file(&self) -> &Arc<ImageFile> {
        &self.file
    }

    /// Capacity in bytes according to the header.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_bytes
    }

    /// True for compressed (streamOptimized) grains.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// True when the header enables zeroed-grain GTEs (value 1). A GTE of 1
    /// reads as zeros either way: it could only point into the header.
    pub fn zero_grain_flag(&self) -> bool {
        self.zero_grain
    }

    fn grain_table(&self, gt_idx: u64) -> Result<Option<Arc<[u32]>>> {
        self.grain_table_cached(gt_idx, true)
    }

    /// Grain table `gt_idx` (None when absent). `keep`: insert a table read
    /// from the file into the cache. Scans over long runs of holes
    /// ([`SparseExtent::run`]) pass false: they read each table once, and
    /// filling the cache with them would evict the tables the readers use
    /// (and cost an eviction per table).
    fn grain_table_cached(&self, gt_idx: u64, keep: bool) -> Result<Option<Arc<[u32]>>> {
        let Some(&sector) = self.gd.get(gt_idx as usize) else {
            return Ok(None);
        };
        if sector == 0 {
            return Ok(None);
        }
        if let Some(gt) = self.gt_cache.get(gt_idx) {
            return Ok(Some(gt));
        }
        let raw = self.file.read_vec(
            u64::from(sector) * 512,
            self.gtes_per_gt * 4,
            u64::from(MAX_GTES_PER_GT) * 4,
            "grain table",
        )?;
        let gt: Arc<[u32]> = raw.chunks_exact(4).map(|c| le::u32(c, 0)).collect();
        if keep {
            self.gt_cache.insert(gt_idx, gt.clone());
        }
        Ok(Some(gt))
    }

    /// Where grain number `grain` (relative to this extent) lives.
    pub fn lookup(&self, grain: u64) -> Result<Grain> {
        if grain.saturating_mul(self.grain_bytes) >= self.capacity {
            return Ok(Grain::Unallocated);
        }
        let Some(gt) = self.grain_table(grain / self.gtes_per_gt)? else {
            return Ok(Grain::Unallocated);
        };
        Ok(match gt[(grain % self.gtes_per_gt) as usize] {
            0 => Grain::Unallocated,
            // GTE 1 points into the header; qemu/VMware write it only with
            // the zeroed-grain flag, and it can mean nothing else.
            1 => Grain::Zero,
            s => Grain::Data(u64::from(s) * 512),
        })
    }

    /// The state of the grain at extent-relative byte `rel` and how many
    /// bytes from `rel` (at most `limit`) share that state (data, zero or
    /// unallocated). Absent grain tables are skipped whole; present ones
    /// are scanned as slices (no per-grain cache lookup), at most 4096
    /// tables per call so that one call stays bounded.
    pub fn run(&self, rel: u64, limit: u64) -> Result<(Grain, u64)> {
        const UNALLOC: u8 = 2;
        let class = |gte: u32| match gte {
            0 => UNALLOC,
            1 => 1,
            _ => 0,
        };
        let gb = self.grain_bytes;
        let end = rel.saturating_add(limit);
        let end_grain = end.div_ceil(gb);
        let first = self.lookup(rel / gb)?;
        let cls = match first {
            Grain::Data(_) => 0,
            Grain::Zero => 1,
            Grain::Unallocated => UNALLOC,
        };
        let mut g = rel / gb + 1;
        let mut tables = 0u32;
        while g < end_grain && tables < 4096 {
            if g.saturating_mul(gb) >= self.capacity {
                // Beyond the capacity every grain is unallocated.
                if cls == UNALLOC {
                    g = end_grain;
                }
                break;
            }
            tables += 1;
            let gt_idx = g / self.gtes_per_gt;
            let gt_end = ((gt_idx + 1) * self.gtes_per_gt).min(end_grain);
            // The first table (the one `rel` is in) was just used by
            // `lookup` and is cached; the following ones are scanned once.
            match self.grain_table_cached(gt_idx, false)? {
                None if cls == UNALLOC => g = gt_end,
                None => break,
                Some(gt) => {
                    let base = gt_idx * self.gtes_per_gt;
                    let same = gt[(g - base) as usize..(gt_end - base) as usize]
                        .iter()
                        .take_while(|&&e| class(e) == cls)
                        .count() as u64;
                    g += same;
                    if g < gt_end {
                        break;
                    }
                }
            }
        }
        Ok((first, g.saturating_mul(gb).min(end) - rel))
    }

    /// Read `buf` at extent-relative offset `rel`; unallocated parts are
    /// filled by `fallback(buf, rel)`.
    pub fn read(
        &self,
        buf: &mut [u8],
        rel: u64,
        fallback: &mut dyn FnMut(&mut [u8], u64) -> Result<()>,
    ) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = rel + done as u64;
            let grain = pos / self.grain_bytes;
            let in_grain = pos % self.grain_bytes;
            let mut n = ((self.grain_bytes - in_grain) as usize).min(buf.len() - done);
            match self.lookup(grain)? {
                Grain::Unallocated => fallback(&mut buf[done..done + n], pos)?,
                Grain::Zero => buf[done..done + n].fill(0),
                Grain::Data(off) if self.compressed => {
                    let g = self.inflated_grain(grain, off)?;
                    let s = in_grain as usize;
                    buf[done..done + n].copy_from_slice(&g[s..s + n]);
                }
                Grain::Data(off) => {
                    // Coalesce following grains stored contiguously.
                    let mut next = grain + 1;
                    while done + n < buf.len()
                        && self.lookup(next)?
                            == Grain::Data(off + (next - grain) * self.grain_bytes)
                    {
                        n = (n + self.grain_bytes as usize).min(buf.len() - done);
                        next += 1;
                    }
                    self.file
                        .read_exact_at(&mut buf[done..done + n], off + in_grain)?;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn inflated_grain(&self, grain: u64, off: u64) -> Result<Arc<[u8]>> {
        if let Some(g) = self.grain_cache.get(grain) {
            return Ok(g);
        }
        let path = self.file.path();
        let max_compressed = self.grain_bytes * 2 + 4096;
        let data = if self.markers {
            let mut m = [0u8; 12];
            self.file.read_exact_at(&mut m, off)?;
            let lba = le::u64(&m, 0);
            let size = u64::from(le::u32(&m, 8));
            let expect = grain * self.grain_sectors;
            if size == 0 {
                return Err(Error::corrupt(
                    path,
                    off,
                    "grain table points at a metadata marker; expected a grain marker",
                ));
            }
            if lba != expect {
                return Err(Error::corrupt(
                    path,
                    off,
                    format!("grain marker says LBA {lba}; the grain table expects LBA {expect}"),
                ));
            }
            self.file
                .read_vec(off + 12, size, max_compressed, "compressed grain")?
        } else {
            let avail = self.file.len().saturating_sub(off).min(max_compressed);
            self.file
                .read_vec(off, avail, max_compressed, "compressed grain")?
        };
        let out = self.inflate(&data, grain, off)?;
        let out: Arc<[u8]> = Arc::from(out);
        self.grain_cache.insert(grain, out.clone());
        Ok(out)
    }

    /// Inflate one grain into exactly `grain_bytes` bytes.
    fn inflate(&self, data: &[u8], grain: u64, off: u64) -> Result<Vec<u8>> {
        let path = self.file.path();
        let zlib = data.len() >= 2
            && data[0] & 0x0f == 8
            && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
        let gb = self.grain_bytes as usize;
        let mut out = vec![0u8; gb + 1];
        // One inflate state per reader thread and stream kind, reset per
        // grain (a fresh one per grain is an allocation per 64 KiB).
        let (status, produced) = INFLATE
            .with(|cell| {
                let mut slot = cell.borrow_mut();
                let d = &mut slot[usize::from(zlib)];
                let d = d.get_or_insert_with(|| Decompress::new(zlib));
                d.reset(zlib);
                let st = d.decompress(data, &mut out, FlushDecompress::Finish);
                st.map(|st| (st, d.total_out() as usize))
            })
            .map_err(|e| {
                Error::corrupt(
                    path,
                    off,
                    format!("invalid deflate data in grain {grain}: {e}"),
                )
            })?;
        if produced > gb {
            return Err(Error::corrupt(
                path,
                off,
                format!("compressed grain {grain} inflates beyond the grain size of {gb} bytes"),
            ));
        }
        // The last grain of an extent may be stored short.
        let needed = (self.capacity - grain * self.grain_bytes).min(self.grain_bytes) as usize;
        if produced < needed {
            let why = if status == Status::StreamEnd {
                "ends"
            } else {
                "is truncated"
            };
            return Err(Error::corrupt(
                path,
                off,
                format!("compressed grain {grain} {why} after {produced} bytes; expected {needed}"),
            ));
        }
        out.truncate(gb);
        out[produced..].fill(0);
        Ok(out)
    }
}

/// Read and check a grain directory: it and every grain table it names must
/// lie inside the file.
fn read_gd(file: &ImageFile, sector: u64, entries: u64, gt_bytes: u64) -> Result<Vec<u32>> {
    let path = file.path();
    let off = sector.checked_mul(512).ok_or_else(|| {
        Error::corrupt(
            path,
            56,
            format!("grain directory sector {sector} is absurd"),
        )
    })?;
    let bytes = entries * 4;
    if off == 0 || off.saturating_add(bytes) > file.len() {
        return Err(Error::corrupt(
            path,
            off,
            format!(
                "grain directory of {bytes} bytes at {off:#x} does not fit in the file ({:#x} bytes)",
                file.len()
            ),
        ));
    }
    let raw = file.read_vec(off, bytes, MAX_GD_ENTRIES * 4, "grain directory")?;
    let gd: Vec<u32> = raw.chunks_exact(4).map(|c| le::u32(c, 0)).collect();
    for (i, &s) in gd.iter().enumerate() {
        let gt = u64::from(s) * 512;
        if s != 0 && gt + gt_bytes > file.len() {
            return Err(Error::corrupt(
                path,
                off + i as u64 * 4,
                format!(
                    "grain directory entry {i} points at a grain table at {gt:#x}, beyond the end of the file ({:#x})",
                    file.len()
                ),
            ));
        }
    }
    Ok(gd)
}
