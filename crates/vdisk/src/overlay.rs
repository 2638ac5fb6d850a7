//! Copy-on-write overlay: writes land in memory, reads fall through to the
//! base disk. Later stages (geometry rewrite, NTFS and registry edits) modify
//! a guest through an overlay so that a source image is never written.

use crate::disk::{check_range, Disk, DiskWrite, Extent, ExtentKind, LayerInfo};
use crate::error::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Granularity of the overlay.
pub const CHUNK: u64 = 64 * 1024;

/// An in-memory copy-on-write layer over any [`Disk`].
#[derive(Debug)]
pub struct Overlay<D: Disk> {
    base: D,
    chunks: RwLock<BTreeMap<u64, Box<[u8]>>>,
    limit_bytes: u64,
}

impl<D: Disk> Overlay<D> {
    /// A new overlay over `base`, holding at most `limit_bytes` of changed
    /// data (writes beyond that fail instead of exhausting memory).
    pub fn new(base: D, limit_bytes: u64) -> Self {
        Overlay {
            base,
            chunks: RwLock::new(BTreeMap::new()),
            limit_bytes,
        }
    }

    /// The disk below the overlay.
    pub fn base(&self) -> &D {
        &self.base
    }

    /// Bytes of changed data held.
    pub fn dirty_bytes(&self) -> u64 {
        self.chunks.read().unwrap().len() as u64 * CHUNK
    }

    /// Virtual offsets of changed chunks (each [`CHUNK`] long, last one may
    /// be cut by the disk size).
    pub fn dirty_chunks(&self) -> Vec<u64> {
        self.chunks
            .read()
            .unwrap()
            .keys()
            .map(|k| k * CHUNK)
            .collect()
    }

    fn chunk_len(&self, idx: u64) -> usize {
        (self.base.size() - idx * CHUNK).min(CHUNK) as usize
    }
}

impl<D: Disk> Disk for Overlay<D> {
    fn size(&self) -> u64 {
        self.base.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let chunks = self.chunks.read().unwrap();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = (CHUNK as usize - within).min(buf.len() - done);
            match chunks.get(&idx) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[within..within + n]),
                None => {
                    // Coalesce consecutive clean chunks into one base read.
                    let mut m = n;
                    while done + m < buf.len() && !chunks.contains_key(&((pos + m as u64) / CHUNK))
                    {
                        m = (m + CHUNK as usize).min(buf.len() - done);
                    }
                    self.base.read_at(&mut buf[done..done + m], pos)?;
                    done += m;
                    continue;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, 1)?;
        let max_len = max_len.min(self.size() - offset);
        let chunks = self.chunks.read().unwrap();
        let idx = offset / CHUNK;
        if chunks.contains_key(&idx) {
            let mut end = (idx + 1) * CHUNK;
            while end < offset + max_len && chunks.contains_key(&(end / CHUNK)) {
                end += CHUNK;
            }
            return Ok(Extent {
                kind: ExtentKind::Data,
                offset,
                len: end.min(offset + max_len) - offset,
            });
        }
        // Clean: ask the base, but stop at the next dirty chunk.
        let next_dirty = chunks
            .range(idx + 1..)
            .next()
            .map(|(k, _)| k * CHUNK)
            .unwrap_or(u64::MAX);
        let lim = max_len.min(next_dirty - offset);
        self.base.extent(offset, lim)
    }

    fn layer(&self) -> LayerInfo {
        let mut l = self.base.layer();
        l.warnings.push(format!(
            "copy-on-write overlay holds {} bytes of changes",
            self.dirty_bytes()
        ));
        l
    }

    fn backing(&self) -> Option<&dyn Disk> {
        Some(&self.base)
    }
}

impl<D: Disk> DiskWrite for Overlay<D> {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let mut chunks = self.chunks.write().unwrap();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let idx = pos / CHUNK;
            let within = (pos % CHUNK) as usize;
            let n = (CHUNK as usize - within).min(buf.len() - done);
            if !chunks.contains_key(&idx) {
                if (chunks.len() as u64 + 1) * CHUNK > self.limit_bytes {
                    return Err(Error::new(
                        ErrorKind::Refused,
                        format!(
                            "overlay limit of {} bytes of changes reached",
                            self.limit_bytes
                        ),
                    ));
                }
                let len = self.chunk_len(idx);
                let mut c = vec![0u8; CHUNK as usize].into_boxed_slice();
                self.base.read_at(&mut c[..len], idx * CHUNK)?;
                chunks.insert(idx, c);
            }
            let c = chunks.get_mut(&idx).unwrap();
            c[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

impl<T: Disk + ?Sized> Disk for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        (**self).extent(offset, max_len)
    }
    fn layer(&self) -> LayerInfo {
        (**self).layer()
    }
    fn backing(&self) -> Option<&dyn Disk> {
        (**self).backing()
    }
    fn geometry_hints(&self) -> crate::disk::GeometryHints {
        (**self).geometry_hints()
    }
}
