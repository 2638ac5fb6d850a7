//! The read-only qcow2 disk: L1/L2 lookup with a bounded LRU cache of L2
//! tables, compressed/zero/unallocated clusters and backing files.

use super::cache::Lru;
use super::compress;
use super::header::{beyond, Compression, Header, INCOMPAT_CORRUPT, INCOMPAT_DIRTY};
use crate::disk::{check_range, extent_backing, read_backing, Disk, Extent, ExtentKind, LayerInfo};
use crate::error::{Error, Result};
use crate::file::{be, ImageFile};
use crate::gate::OpenCtx;
use crate::probe::Format;
use std::sync::{Arc, Mutex};

/// Offset bits of L1 and standard L2 entries (bits 9..=55).
pub(crate) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: compressed cluster.
pub(crate) const L2_COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0: reads as zeros (v3, non-extended L2).
pub(crate) const L2_ZERO: u64 = 1;
/// Bytes of L2 tables kept in the cache.
const L2_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Decompressed clusters kept.
const CLUSTER_CACHE: usize = 8;
/// Granules examined per `extent` call (keeps each call bounded).
const EXTENT_STEP_LIMIT: u32 = 1 << 16;

/// How one granule (cluster, or subcluster with extended L2) is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Stored at this host offset (of the granule's start).
    Data(u64),
    /// Reads as zeros.
    Zero,
    /// Not allocated in this layer: read from the backing disk.
    Unalloc,
    /// Compressed cluster with this L2 entry (file offset of the entry).
    Compressed(u64, u64),
}

/// A qcow2 v2/v3 image opened for reading.
#[derive(Debug)]
pub struct Qcow2Disk {
    pub(crate) file: Arc<ImageFile>,
    pub(crate) hdr: Header,
    pub(crate) l1: Vec<u64>,
    l2_cache: Mutex<Lru<Arc<Vec<u64>>>>,
    cluster_cache: Mutex<Lru<Arc<Vec<u8>>>>,
    backing: Option<Box<dyn Disk>>,
    warnings: Vec<String>,
}

impl Qcow2Disk {
    /// Open `file` (already probed as qcow2) within the gate context `ctx`.
    pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<Self> {
        let hdr = Header::parse(&file)?;
        let l1 = read_l1(&file, &hdr)?;
        let mut warnings = Vec::new();
        if hdr.incompatible & INCOMPAT_DIRTY != 0 {
            warnings.push(
                "dirty bit set: the image was not closed cleanly (refcounts may be stale; data is read as recorded)"
                    .to_string(),
            );
        }
        if hdr.incompatible & INCOMPAT_CORRUPT != 0 {
            warnings.push(
                "corrupt bit set: QEMU detected metadata corruption in this image; run `qemu-img check`"
                    .to_string(),
            );
        }
        if hdr.nb_snapshots > 0 {
            warnings.push(format!(
                "{} internal snapshot(s) ignored; reading the active state",
                hdr.nb_snapshots
            ));
        }
        let backing = match &hdr.backing {
            Some((name, _)) => Some(open_backing(
                &file,
                ctx,
                name,
                hdr.backing_format.as_deref(),
                &mut warnings,
            )?),
            None => None,
        };
        let l2_cap = (L2_CACHE_BYTES / hdr.cluster_size()).clamp(4, 4096) as usize;
        Ok(Qcow2Disk {
            file,
            hdr,
            l1,
            l2_cache: Mutex::new(Lru::new(l2_cap)),
            cluster_cache: Mutex::new(Lru::new(CLUSTER_CACHE)),
            backing,
            warnings,
        })
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        self.hdr.cluster_size()
    }

    /// Compression method used by compressed clusters.
    pub fn compression(&self) -> Compression {
        self.hdr.compression
    }

    /// Granule: the unit an L2 entry (or subcluster bit) describes.
    fn granule(&self) -> u64 {
        if self.hdr.extended_l2() {
            self.cluster_size() / 32
        } else {
            self.cluster_size()
        }
    }

    /// The L2 table at `l2_off`, referenced from the L1 entry stored at
    /// `l1e_pos`.
    pub(crate) fn l2_table(&self, l2_off: u64, l1e_pos: u64) -> Result<Arc<Vec<u64>>> {
        if let Some(t) = self.l2_cache.lock().unwrap().get(l2_off) {
            return Ok(t);
        }
        let t = Arc::new(self.load_l2(l2_off, l1e_pos)?);
        self.l2_cache.lock().unwrap().insert(l2_off, t.clone());
        Ok(t)
    }

    pub(crate) fn load_l2(&self, l2_off: u64, l1e_pos: u64) -> Result<Vec<u64>> {
        let cs = self.cluster_size();
        let path = self.file.path();
        if l2_off & (cs - 1) != 0 {
            return Err(Error::corrupt(
                path,
                l1e_pos,
                format!("L1 entry points to L2 table at {l2_off:#x}, which is not cluster-aligned"),
            ));
        }
        if beyond(l2_off, cs, self.file.len()) || l2_off < cs {
            return Err(Error::corrupt(
                path,
                l1e_pos,
                format!(
                    "L1 entry points to L2 table at {l2_off:#x}, outside the file (length {:#x})",
                    self.file.len()
                ),
            ));
        }
        let raw = self.file.read_vec(l2_off, cs, cs, "L2 table")?;
        Ok(raw.chunks_exact(8).map(|c| be::u64(c, 0)).collect())
    }

    /// Classify the granule containing virtual offset `pos` and extend the
    /// run over following granules of the same class (contiguous data) up
    /// to `max` bytes. Returns the class at `pos` and the run length.
    pub(crate) fn map(&self, pos: u64, max: u64) -> Result<(Class, u64)> {
        let cb = self.hdr.cluster_bits;
        let l2n = self.hdr.l2_entries();
        let cluster = pos >> cb;
        let l1_idx = cluster / l2n;
        let cover = l2n << cb;
        let cover_end = (l1_idx + 1) * cover;
        let limit = (cover_end - pos).min(max).max(1);
        let l1e = *self.l1.get(l1_idx as usize).ok_or_else(|| {
            Error::corrupt(
                self.file.path(),
                self.hdr.l1_offset,
                format!("offset {pos:#x} lies beyond the L1 table"),
            )
        })?;
        let l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            return Ok((Class::Unalloc, limit));
        }
        let l1e_pos = self.hdr.l1_offset + l1_idx * 8;
        let table = self.l2_table(l2_off, l1e_pos)?;
        let g = self.granule();
        let table_base = l1_idx * cover;
        let gi0 = (pos - table_base) / g;
        let first = self.classify(&table, l2_off, gi0)?;
        let mut run = (gi0 + 1) * g + table_base - pos;
        if matches!(first, Class::Compressed(..)) {
            return Ok((first, run.min(limit)));
        }
        let mut gi = gi0 + 1;
        let mut prev = first;
        while run < limit {
            let c = self.classify(&table, l2_off, gi)?;
            let same = match (prev, c) {
                (Class::Data(a), Class::Data(b)) => b == a + g,
                (Class::Zero, Class::Zero) | (Class::Unalloc, Class::Unalloc) => true,
                _ => false,
            };
            if !same {
                break;
            }
            prev = c;
            run += g;
            gi += 1;
        }
        Ok((first, run.min(limit)))
    }

    /// Class of granule `gi` of an L2 table.
    fn classify(&self, table: &[u64], l2_off: u64, gi: u64) -> Result<Class> {
        let ext = self.hdr.extended_l2();
        let (idx, sc) = if ext { (gi / 32, gi % 32) } else { (gi, 0) };
        let words = if ext { 2 } else { 1 };
        let e = table[(idx * words) as usize];
        let epos = l2_off + idx * 8 * words;
        let path = self.file.path();
        if e & L2_COMPRESSED != 0 {
            return Ok(Class::Compressed(e, epos));
        }
        let host = e & OFFSET_MASK;
        let cs = self.cluster_size();
        let check_host = |host: u64| -> Result<()> {
            if host & (cs - 1) != 0 {
                return Err(Error::corrupt(
                    path,
                    epos,
                    format!("L2 entry points to data cluster at {host:#x}, which is not cluster-aligned"),
                ));
            }
            if host >= self.file.len() || host < cs {
                return Err(Error::corrupt(
                    path,
                    epos,
                    format!(
                        "L2 entry points to data cluster at {host:#x}, outside the file (length {:#x})",
                        self.file.len()
                    ),
                ));
            }
            Ok(())
        };
        if ext {
            let bm = table[(idx * 2 + 1) as usize];
            let alloc = (bm >> sc) & 1 != 0;
            let zero = (bm >> (32 + sc)) & 1 != 0;
            return match (alloc, zero) {
                (true, true) => Err(Error::corrupt(
                    path,
                    epos + 8,
                    format!("subcluster {sc} is marked both allocated and zero"),
                )),
                (false, true) => Ok(Class::Zero),
                (false, false) => Ok(Class::Unalloc),
                (true, false) => {
                    if host == 0 {
                        return Err(Error::corrupt(
                            path,
                            epos,
                            format!("subcluster {sc} is marked allocated but the cluster has no host offset"),
                        ));
                    }
                    check_host(host)?;
                    Ok(Class::Data(host + sc * (cs / 32)))
                }
            };
        }
        if e & L2_ZERO != 0 {
            return Ok(Class::Zero);
        }
        if host == 0 {
            return Ok(Class::Unalloc);
        }
        check_host(host)?;
        Ok(Class::Data(host))
    }

    /// The decompressed contents of the compressed cluster with L2 entry
    /// `e` (stored at `epos`).
    pub(crate) fn compressed_cluster(&self, e: u64, epos: u64) -> Result<Arc<Vec<u8>>> {
        let (coff, csize, _) = compressed_geometry(self.hdr.cluster_bits, e);
        if let Some(c) = self.cluster_cache.lock().unwrap().get(coff) {
            return Ok(c);
        }
        let path = self.file.path();
        if coff >= self.file.len() || coff < self.cluster_size() {
            return Err(Error::corrupt(
                path,
                epos,
                format!(
                    "L2 entry points to compressed data at {coff:#x}, outside the file (length {:#x})",
                    self.file.len()
                ),
            ));
        }
        // The recorded size is rounded up to sectors and may run past the
        // end of the file for the last cluster.
        let avail = csize.min(self.file.len() - coff);
        let input =
            self.file
                .read_vec(coff, avail, 2 * self.cluster_size(), "compressed cluster")?;
        let mut out = vec![0u8; self.cluster_size() as usize];
        compress::decompress(self.hdr.compression, &input, &mut out).map_err(|m| {
            Error::corrupt(
                path,
                coff,
                format!(
                    "{} compressed cluster at {coff:#x} ({csize} bytes, L2 entry at {epos:#x}): {m}",
                    self.hdr.compression.name()
                ),
            )
        })?;
        let out = Arc::new(out);
        self.cluster_cache.lock().unwrap().insert(coff, out.clone());
        Ok(out)
    }

    fn flush_host(&self, buf: &mut [u8], host: u64) -> Result<()> {
        self.file.read_exact_at(buf, host)
    }
}

/// Host offset, byte size and 512-byte sector count of the compressed
/// data described by L2 entry `e`.
pub(crate) fn compressed_geometry(cluster_bits: u32, e: u64) -> (u64, u64, u64) {
    let shift = 62 - (cluster_bits - 8);
    let coff = e & ((1u64 << shift) - 1);
    let sectors = ((e >> shift) & ((1u64 << (cluster_bits - 8)) - 1)) + 1;
    (coff, sectors * 512 - (coff & 511), sectors)
}

/// Read and bounds-check the active L1 table.
pub(crate) fn read_l1(file: &ImageFile, hdr: &Header) -> Result<Vec<u64>> {
    let bytes = u64::from(hdr.l1_size) * 8;
    let raw = file.read_vec(
        hdr.l1_offset,
        bytes,
        super::header::MAX_L1_BYTES,
        "L1 table",
    )?;
    Ok(raw.chunks_exact(8).map(|c| be::u64(c, 0)).collect())
}

/// qemu's driver names for the formats the probe knows.
fn qemu_format_name(layer_format: &str) -> &str {
    match layer_format {
        "vhd" => "vpc",
        other => other,
    }
}

pub(crate) fn open_backing(
    file: &ImageFile,
    ctx: &OpenCtx,
    name: &str,
    fmt: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Box<dyn Disk>> {
    let path = file.path();
    if fmt == Some("raw") {
        // A raw backing file is never probed: its contents are guest data.
        let p = ctx.resolve(path, name)?;
        if !p.exists() {
            return Err(Error::new(
                crate::error::ErrorKind::InvalidInput,
                format!(
                    "backing file {name:?} not found (looked for {})",
                    p.display()
                ),
            )
            .with_path(path));
        }
        let inner = ctx.enter(&p)?;
        let f = Arc::new(ImageFile::open(&p)?);
        return crate::probe::open_format(f, Format::Raw, &inner);
    }
    let disk = ctx.open_referenced(path, name)?;
    let found = disk.layer().format;
    match fmt {
        Some(f @ ("qcow2" | "vmdk" | "vpc" | "vhdx" | "vdi")) if qemu_format_name(&found) != f => {
            return Err(Error::corrupt(
                path,
                0,
                format!("backing file {name:?} is declared as {f} but its contents are {found}"),
            ));
        }
        Some("qcow2" | "vmdk" | "vpc" | "vhdx" | "vdi") => {}
        Some(other) => warnings.push(format!(
            "backing format {other:?} not checked; probed contents as {found}"
        )),
        None => warnings.push(format!(
            "backing file {name:?} has no recorded format; probed contents as {found}"
        )),
    }
    Ok(disk)
}

enum Pending {
    None,
    Host { start: usize, host: u64, len: usize },
    Backing { start: usize, pos: u64, len: usize },
}

impl Disk for Qcow2Disk {
    fn size(&self) -> u64 {
        self.hdr.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let mut done = 0usize;
        let mut pending = Pending::None;
        let flush = |buf: &mut [u8], p: &mut Pending| -> Result<()> {
            match std::mem::replace(p, Pending::None) {
                Pending::None => Ok(()),
                Pending::Host { start, host, len } => {
                    self.flush_host(&mut buf[start..start + len], host)
                }
                Pending::Backing { start, pos, len } => {
                    read_backing(self.backing.as_deref(), &mut buf[start..start + len], pos)
                }
            }
        };
        while done < buf.len() {
            let pos = offset + done as u64;
            let (class, run) = self.map(pos, (buf.len() - done) as u64)?;
            let n = (run as usize).min(buf.len() - done);
            match class {
                Class::Data(h) => {
                    let host = h + pos % self.granule();
                    match &mut pending {
                        Pending::Host { host: ph, len, .. } if *ph + *len as u64 == host => {
                            *len += n;
                        }
                        _ => {
                            flush(buf, &mut pending)?;
                            pending = Pending::Host {
                                start: done,
                                host,
                                len: n,
                            };
                        }
                    }
                }
                Class::Unalloc => match &mut pending {
                    Pending::Backing { len, .. } => *len += n,
                    _ => {
                        flush(buf, &mut pending)?;
                        pending = Pending::Backing {
                            start: done,
                            pos,
                            len: n,
                        };
                    }
                },
                Class::Zero => {
                    flush(buf, &mut pending)?;
                    buf[done..done + n].fill(0);
                }
                Class::Compressed(e, epos) => {
                    flush(buf, &mut pending)?;
                    let c = self.compressed_cluster(e, epos)?;
                    let within = (pos % self.cluster_size()) as usize;
                    buf[done..done + n].copy_from_slice(&c[within..within + n]);
                }
            }
            done += n;
        }
        flush(buf, &mut pending)
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, 1)?;
        let max_len = max_len.min(self.size() - offset);
        let kind_of = |c: Class| match c {
            Class::Data(_) | Class::Compressed(..) => ExtentKind::Data,
            Class::Zero => ExtentKind::Zero,
            Class::Unalloc => ExtentKind::Unallocated,
        };
        let (c0, run0) = self.map(offset, max_len)?;
        let kind = kind_of(c0);
        let mut len = run0.min(max_len);
        let mut steps = 0;
        while len < max_len && steps < EXTENT_STEP_LIMIT {
            let (c, run) = self.map(offset + len, max_len - len)?;
            if kind_of(c) != kind {
                break;
            }
            len += run.min(max_len - len);
            steps += 1;
        }
        if kind == ExtentKind::Unallocated {
            return extent_backing(self.backing.as_deref(), offset, len);
        }
        Ok(Extent { kind, offset, len })
    }

    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: self.file.path().to_path_buf(),
            format: "qcow2".into(),
            subformat: Some(format!("v{}", self.hdr.version)),
            virtual_size: self.hdr.size,
            file_size: self.file.len(),
            extra_files: vec![],
            warnings: self.warnings.clone(),
            geometry: Default::default(),
        }
    }

    fn backing(&self) -> Option<&dyn Disk> {
        self.backing.as_deref()
    }
}
