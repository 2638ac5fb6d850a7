//! Positional reads of the filesystem's bytes with range checks, byte-order
//! helpers that never panic, and the "runs" a file's data is made of.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use vdisk::Disk;

/// Blocks whose current contents live elsewhere (a replayed journal):
/// block byte offset → (byte offset of the copy, first 4 bytes escaped).
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    pub blocks: BTreeMap<u64, (u64, bool)>,
    pub block_size: u64,
}

/// The filesystem's block device (a whole disk or a partition window).
#[derive(Debug)]
pub(crate) struct Dev<'a> {
    disk: Box<dyn Disk + 'a>,
    size: u64,
    pub(crate) fs: &'static str,
    pub(crate) overlay: Overlay,
}

impl<'a> Dev<'a> {
    pub(crate) fn new(disk: Box<dyn Disk + 'a>, fs: &'static str) -> Self {
        let size = disk.size();
        Dev {
            disk,
            size,
            fs,
            overlay: Overlay::default(),
        }
    }

    /// Fill `buf` from `offset`; a range outside the device is corruption
    /// (the structure pointing there is bad), named by `what`.
    pub(crate) fn read_into(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        let len = buf.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.size => {}
            _ => {
                return Err(Error::corrupt(
                    self.fs,
                    offset,
                    format!(
                        "{what}: {len} bytes here lie beyond the end of the {}-byte device",
                        self.size
                    ),
                ))
            }
        }
        self.disk.read_at(buf, offset).map_err(|source| Error::Io {
            fs: self.fs,
            offset,
            len,
            source,
        })?;
        self.apply_overlay(buf, offset)
    }

    /// Replace the parts of `buf` (read at `offset`) that the overlay holds.
    fn apply_overlay(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let bs = self.overlay.block_size;
        if self.overlay.blocks.is_empty() || bs == 0 {
            return Ok(());
        }
        let end = offset + buf.len() as u64;
        let from = offset - offset % bs;
        for (&blk, &(copy, escape)) in self.overlay.blocks.range(from..end) {
            let mut b = vec![0u8; bs as usize];
            self.disk
                .read_at(&mut b, copy)
                .map_err(|source| Error::Io {
                    fs: self.fs,
                    offset: copy,
                    len: bs,
                    source,
                })?;
            if escape {
                b[..4].copy_from_slice(&0xC03B_3998u32.to_be_bytes());
            }
            let a = blk.max(offset);
            let z = (blk + bs).min(end);
            buf[(a - offset) as usize..(z - offset) as usize]
                .copy_from_slice(&b[(a - blk) as usize..(z - blk) as usize]);
        }
        Ok(())
    }

    /// `len` bytes at `offset` (callers bound `len`).
    pub(crate) fn read(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_into(&mut v, offset, what)?;
        Ok(v)
    }

    pub(crate) fn corrupt(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::corrupt(self.fs, offset, what)
    }
}

fn arr<const N: usize>(b: &[u8], o: usize) -> [u8; N] {
    b.get(o..o.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

/// Little-endian u16 at `o` (0 when out of bounds: callers check lengths).
pub(crate) fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(arr(b, o))
}
/// Little-endian u32 at `o`.
pub(crate) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(arr(b, o))
}
/// Little-endian u64 at `o`.
pub(crate) fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(arr(b, o))
}
/// Big-endian u16 at `o`.
pub(crate) fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes(arr(b, o))
}
/// Big-endian u32 at `o`.
pub(crate) fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(arr(b, o))
}
/// Big-endian u64 at `o`.
pub(crate) fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(arr(b, o))
}
/// Byte at `o`.
pub(crate) fn u8_at(b: &[u8], o: usize) -> u8 {
    b.get(o).copied().unwrap_or(0)
}

/// A piece of a file: `len` bytes at byte `logical` of the file stored at
/// byte `phys` of the device (`None`: reads as zeros: a hole or an
/// unwritten extent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub logical: u64,
    pub phys: Option<u64>,
    pub len: u64,
}

/// The first `size` bytes of a file made of `runs` (zeros where no run
/// covers). `size` is bounded by the caller.
pub(crate) fn gather(dev: &Dev<'_>, runs: &[Run], size: u64, what: &str) -> Result<Vec<u8>> {
    gather_range(dev, runs, 0, size, what)
}

/// Bytes `start..start+len` of a file made of `runs` (`len` bounded by the
/// caller).
pub(crate) fn gather_range(
    dev: &Dev<'_>,
    runs: &[Run],
    start: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let mut out = vec![0u8; len as usize];
    let stop = start.saturating_add(len);
    for r in runs {
        let Some(phys) = r.phys else { continue };
        let a = r.logical.max(start);
        let b = r.logical.saturating_add(r.len).min(stop);
        if a >= b {
            continue;
        }
        dev.read_into(
            &mut out[(a - start) as usize..(b - start) as usize],
            phys.saturating_add(a - r.logical),
            what,
        )?;
    }
    Ok(out)
}

/// The device offset holding byte `logical` of a file made of `runs`.
pub(crate) fn phys_of(runs: &[Run], logical: u64) -> u64 {
    runs.iter()
        .find(|r| logical >= r.logical && logical - r.logical < r.len)
        .and_then(|r| r.phys.map(|p| p + (logical - r.logical)))
        .unwrap_or(0)
}
