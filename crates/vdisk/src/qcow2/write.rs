//! In-place writes to an existing qcow2 image that the user names as a
//! target (never a source): allocated clusters are overwritten in place,
//! everything else gets a new cluster at the end of the file with refcounts
//! kept exact.

use super::cache::Lru;
use super::compress;
use super::header::{beyond, Header, INCOMPAT_CORRUPT, INCOMPAT_DIRTY};
use super::reader::{
    compressed_geometry, open_backing, read_l1, L2_COMPRESSED, L2_ZERO, OFFSET_MASK,
};
use crate::disk::{
    check_range, extent_backing, read_backing, Disk, DiskWrite, Extent, ExtentKind, LayerInfo,
};
use crate::error::{Error, Result};
use crate::file::ImageFile;
use crate::gate::{OpenCtx, OpenOptions};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// L1/L2 bit 63: the cluster's refcount is exactly one (writable in place).
const COPIED: u64 = 1 << 63;
/// Largest refcount table accepted, in bytes.
const MAX_REFTABLE_BYTES: u64 = 64 * 1024 * 1024;
/// L2 tables cached by the writer.
const L2_CACHE_TABLES: usize = 64;

/// A qcow2 image opened read-write (see [`open_rw`]).
#[derive(Debug)]
pub struct Qcow2Mut {
    path: PathBuf,
    hdr: Header,
    backing: Option<Box<dyn Disk>>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    l1: Vec<u64>,
    reftable: Vec<u64>,
    /// Where the next cluster is allocated (end of file, cluster-aligned).
    next_free: u64,
    /// Current file length.
    file_len: u64,
    l2_cache: Lru<Arc<Vec<u64>>>,
}

/// Open an existing qcow2 image for in-place writes. Refuses images this
/// writer cannot keep consistent: extended L2, internal snapshots, dirty or
/// corrupt images (repair with `qemu-img check -r all` first) and everything
/// the reader refuses.
pub fn open_rw(path: &Path) -> Result<Qcow2Mut> {
    open_rw_opts(path, OpenOptions::default())
}

/// [`open_rw`] with an explicit policy for opening the backing chain.
pub fn open_rw_opts(path: &Path, options: OpenOptions) -> Result<Qcow2Mut> {
    let ro = ImageFile::open(path)?;
    let hdr = Header::parse(&ro)?;
    let l1 = read_l1(&ro, &hdr)?;
    let refuse = |what: &str| Err(Error::unsupported(path, format!("cannot write: {what}")));
    if hdr.extended_l2() {
        return refuse("image uses extended L2 entries (subclusters)");
    }
    if hdr.nb_snapshots > 0 {
        return refuse("image has internal snapshots (shared clusters)");
    }
    if hdr.incompatible & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT) != 0 {
        return refuse("image is marked dirty or corrupt; run `qemu-img check -r all` first");
    }
    let cs = hdr.cluster_size();
    let rt_bytes = u64::from(hdr.refcount_table_clusters) * cs;
    if rt_bytes > MAX_REFTABLE_BYTES || hdr.refcount_table_offset & (cs - 1) != 0 {
        return Err(Error::corrupt(
            path,
            48,
            format!(
                "refcount table at {:#x} of {rt_bytes} bytes is unaligned or larger than {MAX_REFTABLE_BYTES}",
                hdr.refcount_table_offset
            ),
        ));
    }
    let rt = ro.read_vec(
        hdr.refcount_table_offset,
        rt_bytes,
        MAX_REFTABLE_BYTES,
        "refcount table",
    )?;
    let reftable: Vec<u64> = rt
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    let mut warnings = Vec::new();
    let backing = match &hdr.backing {
        Some((name, _)) => {
            let ctx = OpenCtx::new(options).enter(path)?;
            Some(open_backing(
                &ro,
                &ctx,
                name,
                hdr.backing_format.as_deref(),
                &mut warnings,
            )?)
        }
        None => None,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, None, "cannot open for writing", e))?;
    let file_len = ro.len();
    if hdr.autoclear != 0 {
        // Spec: a writer that does not maintain the autoclear features
        // (e.g. persistent dirty bitmaps) must clear their bits.
        file.write_all_at(&0u64.to_be_bytes(), 88)
            .map_err(|e| Error::io(path, Some(88), "cannot clear autoclear bits", e))?;
    }
    Ok(Qcow2Mut {
        path: path.to_path_buf(),
        backing,
        inner: Mutex::new(Inner {
            file,
            l1,
            reftable,
            next_free: file_len.div_ceil(cs) * cs,
            file_len,
            l2_cache: Lru::new(L2_CACHE_TABLES),
        }),
        hdr,
    })
}

impl Qcow2Mut {
    fn cs(&self) -> u64 {
        self.hdr.cluster_size()
    }

    fn pread(&self, inner: &Inner, buf: &mut [u8], off: u64) -> Result<()> {
        if beyond(off, buf.len() as u64, inner.file_len) {
            return Err(Error::corrupt(
                &self.path,
                off,
                format!(
                    "expected {} bytes but the file ends at {:#x}",
                    buf.len(),
                    inner.file_len
                ),
            ));
        }
        inner
            .file
            .read_exact_at(buf, off)
            .map_err(|e| Error::io(&self.path, Some(off), "read failed", e))
    }

    fn pwrite(&self, inner: &mut Inner, buf: &[u8], off: u64) -> Result<()> {
        inner
            .file
            .write_all_at(buf, off)
            .map_err(|e| Error::io(&self.path, Some(off), "write failed", e))?;
        inner.file_len = inner.file_len.max(off + buf.len() as u64);
        Ok(())
    }

    /// The L2 table for L1 index `i` (None when unallocated) and its offset.
    fn l2(&self, inner: &mut Inner, i: usize) -> Result<Option<(u64, Arc<Vec<u64>>)>> {
        let l1e = inner.l1[i];
        let off = l1e & OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        if let Some(t) = inner.l2_cache.get(off) {
            return Ok(Some((off, t)));
        }
        let cs = self.cs();
        let pos = self.hdr.l1_offset + i as u64 * 8;
        if off & (cs - 1) != 0 || beyond(off, cs, inner.file_len) {
            return Err(Error::corrupt(
                &self.path,
                pos,
                format!("L1 entry points to L2 table at {off:#x}, unaligned or outside the file"),
            ));
        }
        let mut raw = vec![0u8; cs as usize];
        self.pread(inner, &mut raw, off)?;
        let t: Arc<Vec<u64>> = Arc::new(
            raw.chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
                .collect(),
        );
        inner.l2_cache.insert(off, t.clone());
        Ok(Some((off, t)))
    }

    /// Allocate one cluster at the end of the file with refcount 1.
    fn alloc(&self, inner: &mut Inner) -> Result<u64> {
        let off = self.reserve(inner)?;
        self.add_ref(inner, off, 1)?;
        Ok(off)
    }

    /// The next cluster at or after the end of the file whose refcount is
    /// zero (refcounts of a damaged image may claim clusters past EOF).
    fn reserve(&self, inner: &mut Inner) -> Result<u64> {
        for _ in 0..4096 {
            let off = inner.next_free;
            inner.next_free += self.cs();
            if self.add_ref(inner, off, 0)? == 0 {
                return Ok(off);
            }
        }
        Err(Error::corrupt(
            &self.path,
            self.hdr.refcount_table_offset,
            "refcounts claim thousands of clusters past the end of the file",
        ))
    }

    /// Add `delta` to the refcount of the cluster containing `off`;
    /// returns the old refcount (`delta` 0 only reads it).
    fn add_ref(&self, inner: &mut Inner, off: u64, delta: i64) -> Result<u64> {
        let cs = self.cs();
        let bits = 1u64 << self.hdr.refcount_order;
        let per_block = cs * 8 / bits;
        let idx = off / cs;
        let rt_i = (idx / per_block) as usize;
        let rb_i = idx % per_block;
        if rt_i >= inner.reftable.len() {
            return Err(Error::unsupported(
                &self.path,
                format!(
                    "cannot write: the refcount table ({} entries) would need to grow to cover host offset {off:#x}",
                    inner.reftable.len()
                ),
            ));
        }
        if inner.reftable[rt_i] & OFFSET_MASK == 0 {
            if delta == 0 {
                return Ok(0);
            }
            if delta < 0 {
                return Err(Error::corrupt(
                    &self.path,
                    self.hdr.refcount_table_offset + rt_i as u64 * 8,
                    format!("cluster at {off:#x} is in use but has no refcount block"),
                ));
            }
            let rb = self.reserve(inner)?;
            self.pwrite(inner, &vec![0u8; cs as usize], rb)?;
            inner.reftable[rt_i] = rb;
            let pos = self.hdr.refcount_table_offset + rt_i as u64 * 8;
            self.pwrite(inner, &rb.to_be_bytes(), pos)?;
            self.add_ref(inner, rb, 1)?;
        }
        let rb = inner.reftable[rt_i] & OFFSET_MASK;
        if rb & (cs - 1) != 0 || beyond(rb, cs, inner.file_len) {
            return Err(Error::corrupt(
                &self.path,
                self.hdr.refcount_table_offset + rt_i as u64 * 8,
                format!("refcount block at {rb:#x} is unaligned or outside the file"),
            ));
        }
        let bit = rb_i * bits;
        let nbytes = bits.div_ceil(8) as usize;
        let pos = rb + bit / 8;
        let mut b = [0u8; 8];
        self.pread(inner, &mut b[..nbytes], pos)?;
        let (old, max) = if bits < 8 {
            let sh = bit % 8;
            (
                u64::from(b[0] >> sh) & ((1 << bits) - 1),
                (1u64 << bits) - 1,
            )
        } else {
            let mut v = 0u64;
            for x in &b[..nbytes] {
                v = (v << 8) | u64::from(*x);
            }
            (
                v,
                if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                },
            )
        };
        let new = i128::from(old) + i128::from(delta);
        if new < 0 || new > i128::from(max) {
            return Err(Error::corrupt(
                &self.path,
                pos,
                format!("refcount {old} of cluster {off:#x} cannot change by {delta}"),
            ));
        }
        if delta == 0 {
            return Ok(old);
        }
        let new = new as u64;
        if bits < 8 {
            let sh = bit % 8;
            let mask = (((1u64 << bits) - 1) << sh) as u8;
            b[0] = (b[0] & !mask) | ((new << sh) as u8 & mask);
        } else {
            for (k, x) in b[..nbytes].iter_mut().enumerate() {
                *x = (new >> (8 * (nbytes - 1 - k))) as u8;
            }
        }
        let out = b;
        self.pwrite(inner, &out[..nbytes], pos)?;
        Ok(old)
    }

    /// Set L2 entry `j` of the table at `l2_off`.
    fn set_l2(&self, inner: &mut Inner, l2_off: u64, j: usize, e: u64) -> Result<()> {
        self.pwrite(inner, &e.to_be_bytes(), l2_off + j as u64 * 8)?;
        if let Some(mut t) = inner.l2_cache.get(l2_off) {
            Arc::make_mut(&mut t)[j] = e;
            inner.l2_cache.insert(l2_off, t);
        }
        Ok(())
    }

    /// The old contents of virtual cluster `vc` with L2 entry `e`.
    fn old_cluster(&self, inner: &Inner, vc: u64, e: u64, out: &mut [u8]) -> Result<()> {
        let cs = self.cs();
        let host = e & OFFSET_MASK;
        if e & L2_COMPRESSED != 0 {
            let (coff, csize, _) = compressed_geometry(self.hdr.cluster_bits, e);
            if coff >= inner.file_len {
                return Err(Error::corrupt(
                    &self.path,
                    coff,
                    "compressed cluster lies outside the file",
                ));
            }
            let mut input = vec![0u8; csize.min(inner.file_len - coff) as usize];
            self.pread(inner, &mut input, coff)?;
            return compress::decompress(self.hdr.compression, &input, out)
                .map_err(|m| Error::corrupt(&self.path, coff, m));
        }
        if e & L2_ZERO != 0 {
            out.fill(0);
            return Ok(());
        }
        if host != 0 {
            return self.pread(inner, out, host);
        }
        let start = vc * cs;
        let n = (self.hdr.size - start).min(cs) as usize;
        out[n..].fill(0);
        read_backing(self.backing.as_deref(), &mut out[..n], start)
    }

    /// Write `data` at byte `within` of virtual cluster `vc`.
    fn write_cluster(&self, inner: &mut Inner, vc: u64, within: usize, data: &[u8]) -> Result<()> {
        let cs = self.cs();
        let l2n = self.hdr.l2_entries();
        let i = (vc / l2n) as usize;
        let j = (vc % l2n) as usize;
        if inner.l1[i] & OFFSET_MASK != 0 && inner.l1[i] & COPIED == 0 {
            return Err(Error::unsupported(
                &self.path,
                format!("cannot write: L2 table of L1 entry {i} is shared (refcount > 1)"),
            ));
        }
        let (l2_off, table) = match self.l2(inner, i)? {
            Some(x) => x,
            None => {
                let off = self.alloc(inner)?;
                self.pwrite(inner, &vec![0u8; cs as usize], off)?;
                let pos = self.hdr.l1_offset + i as u64 * 8;
                self.pwrite(inner, &(off | COPIED).to_be_bytes(), pos)?;
                inner.l1[i] = off | COPIED;
                let t = Arc::new(vec![0u64; l2n as usize]);
                inner.l2_cache.insert(off, t.clone());
                (off, t)
            }
        };
        let e = table[j];
        let host = e & OFFSET_MASK;
        let plain = e & L2_COMPRESSED == 0;
        if plain && host != 0 && e & COPIED != 0 {
            if host & (cs - 1) != 0 || beyond(host, cs, inner.file_len.max(inner.next_free)) {
                return Err(Error::corrupt(
                    &self.path,
                    l2_off + j as u64 * 8,
                    format!("L2 entry points to data cluster at {host:#x}, unaligned or outside the file"),
                ));
            }
            if e & L2_ZERO == 0 {
                return self.pwrite(inner, data, host + within as u64);
            }
            // Preallocated zero cluster: fill it, then drop the zero flag.
            let mut c = vec![0u8; cs as usize];
            c[within..within + data.len()].copy_from_slice(data);
            self.pwrite(inner, &c, host)?;
            return self.set_l2(inner, l2_off, j, host | COPIED);
        }
        let mut c = vec![0u8; cs as usize];
        if data.len() < cs as usize {
            self.old_cluster(inner, vc, e, &mut c)?;
        }
        c[within..within + data.len()].copy_from_slice(data);
        let new = self.alloc(inner)?;
        self.pwrite(inner, &c, new)?;
        self.set_l2(inner, l2_off, j, new | COPIED)?;
        if !plain {
            // Release the compressed data's references (as QEMU does).
            let (coff, _, sectors) = compressed_geometry(self.hdr.cluster_bits, e);
            let start = coff & !511;
            let end = start + sectors * 512;
            let mut c = start / cs;
            while c * cs < end {
                self.add_ref(inner, c * cs, -1)?;
                c += 1;
            }
        }
        Ok(())
    }
}

impl Disk for Qcow2Mut {
    fn size(&self) -> u64 {
        self.hdr.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let cs = self.cs();
        let l2n = self.hdr.l2_entries();
        let mut inner = self.inner.lock().unwrap();
        let mut done = 0usize;
        let mut scratch = Vec::new();
        while done < buf.len() {
            let pos = offset + done as u64;
            let vc = pos / cs;
            let within = (pos % cs) as usize;
            let n = (cs as usize - within).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            let e = match self.l2(&mut inner, (vc / l2n) as usize)? {
                Some((_, t)) => t[(vc % l2n) as usize],
                None => 0,
            };
            let host = e & OFFSET_MASK;
            if e & (L2_COMPRESSED | L2_ZERO) == 0 && host != 0 {
                self.pread(&inner, out, host + within as u64)?;
            } else if e & (L2_COMPRESSED | L2_ZERO) == 0 {
                read_backing(self.backing.as_deref(), out, pos)?;
            } else {
                scratch.resize(cs as usize, 0);
                self.old_cluster(&inner, vc, e, &mut scratch)?;
                out.copy_from_slice(&scratch[within..within + n]);
            }
            done += n;
        }
        Ok(())
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, 1)?;
        let max_len = max_len.min(self.size() - offset);
        let cs = self.cs();
        let l2n = self.hdr.l2_entries();
        let mut inner = self.inner.lock().unwrap();
        let mut kind = None;
        let mut len = 0;
        // Bounded walk: at most 64 Ki clusters per call.
        for _ in 0..1 << 16 {
            if len >= max_len {
                break;
            }
            let pos = offset + len;
            let vc = pos / cs;
            let e = match self.l2(&mut inner, (vc / l2n) as usize)? {
                Some((_, t)) => t[(vc % l2n) as usize],
                None => 0,
            };
            let k = if e & L2_COMPRESSED != 0 {
                ExtentKind::Data
            } else if e & L2_ZERO != 0 {
                ExtentKind::Zero
            } else if e & OFFSET_MASK != 0 {
                ExtentKind::Data
            } else {
                ExtentKind::Unallocated
            };
            if *kind.get_or_insert(k) != k {
                break;
            }
            len += (cs - pos % cs).min(max_len - len);
        }
        drop(inner);
        match kind {
            Some(ExtentKind::Unallocated) | None => {
                extent_backing(self.backing.as_deref(), offset, len)
            }
            Some(kind) => Ok(Extent { kind, offset, len }),
        }
    }

    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: self.path.clone(),
            format: "qcow2".into(),
            subformat: Some(format!("v{}", self.hdr.version)),
            virtual_size: self.hdr.size,
            file_size: self.inner.lock().unwrap().file_len,
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }

    fn backing(&self) -> Option<&dyn Disk> {
        self.backing.as_deref()
    }
}

impl DiskWrite for Qcow2Mut {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let cs = self.cs();
        let mut inner = self.inner.lock().unwrap();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let within = (pos % cs) as usize;
            let n = (cs as usize - within).min(buf.len() - done);
            self.write_cluster(&mut inner, pos / cs, within, &buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut inner = self.inner.lock().unwrap();
        // Keep the file a whole number of clusters, as QEMU does.
        let want = inner.next_free;
        if inner.file_len < want {
            inner
                .file
                .set_len(want)
                .map_err(|e| Error::io(&self.path, None, "cannot extend file", e))?;
            inner.file_len = want;
        }
        inner
            .file
            .sync_all()
            .map_err(|e| Error::io(&self.path, None, "fsync failed", e))
    }
}
