//! Microsoft VHDX reader (MS-VHDX): fixed, dynamic and differencing images,
//! with in-memory replay of a dirty metadata log.
//!
//! * Headers: the valid header with the higher sequence number is current
//!   (CRC-32C with the checksum field zeroed).
//! * **Dirty log**: when the current header's LogGuid is non-zero the active
//!   log sequence is found and replayed *in memory* ([`log::Src`]); every
//!   read of region table, metadata, BAT and payload goes through it. The
//!   source file is never written; a warning records the replay. A dirty
//!   log without a valid sequence is a corrupt-image error.
//! * Block states: NOT_PRESENT and UNDEFINED read as zeros (or from the
//!   parent of a differencing disk); ZERO and UNMAPPED read as zeros;
//!   FULLY_PRESENT from the file; PARTIALLY_PRESENT per the sector bitmap
//!   (bit 0 of byte 0 is the chunk's first sector; set = stored here).
//! * **Memory**: the BAT is read at open (8 bytes per entry, capped at
//!   [`MAX_BAT_BYTES`] and by the file size); sector bitmaps are read on
//!   demand, so `read_at` is thread-safe without locks.

pub mod header;
pub mod log;
pub mod meta;

use crate::disk::{check_range, extent_backing, read_backing, Disk, Extent, ExtentKind, LayerInfo};
use crate::error::{Error, Result};
use crate::file::ImageFile;
use crate::gate::OpenCtx;
use header::{guid_parse, guid_string, Guid, REGION_BAT, REGION_METADATA, REGION_OFFSETS};
use log::Src;
use meta::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest BAT read into memory (32 M entries: 64 TiB at 2 MiB blocks).
pub const MAX_BAT_BYTES: u64 = 256 << 20;
const MIB: u64 = 1 << 20;

const NOT_PRESENT: u64 = 0;
const UNDEFINED: u64 = 1;
const ZERO: u64 = 2;
const UNMAPPED: u64 = 3;
const FULLY_PRESENT: u64 = 6;
const PARTIALLY_PRESENT: u64 = 7;
const SB_PRESENT: u64 = 6;

/// Open a VHDX image.
pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    Ok(Box::new(VhdxDisk::open(file, ctx)?))
}

/// An open VHDX image.
#[derive(Debug)]
pub struct VhdxDisk {
    src: Src,
    header: header::Header,
    meta: Metadata,
    chunk_ratio: u64,
    bat: Vec<u64>,
    parent: Option<Box<dyn Disk>>,
    parent_path: Option<PathBuf>,
    warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    Data,
    Zero,
    Absent,
}

impl VhdxDisk {
    /// Parse headers, replay a dirty log in memory, read region table,
    /// metadata and BAT; open the parent of a differencing disk.
    pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<VhdxDisk> {
        let path = file.path().to_path_buf();
        let mut warnings = Vec::new();
        let hdr = header::read_current_header(&file, &mut warnings)?;
        let src = if hdr.log_guid != [0; 16] {
            let s = log::replay(file.clone(), &hdr)?;
            warnings.push(format!(
                "VHDX log is dirty: {} entries replayed in memory; the source was not modified",
                s.entries
            ));
            s
        } else {
            Src::clean(file.clone())
        };
        let regions = read_regions(&src, &mut warnings)?;
        let find = |g: Guid, what: &str| {
            regions
                .iter()
                .find(|r| r.guid == g)
                .copied()
                .ok_or_else(|| {
                    Error::corrupt(
                        &path,
                        REGION_OFFSETS[0],
                        format!("VHDX region table has no {what} region"),
                    )
                })
        };
        let bat_r = find(REGION_BAT, "BAT")?;
        let meta_r = find(REGION_METADATA, "metadata")?;
        for r in [bat_r, meta_r] {
            if r.offset
                .checked_add(r.length as u64)
                .is_none_or(|e| e > src.len())
            {
                return Err(Error::corrupt(
                    &path,
                    REGION_OFFSETS[0],
                    format!(
                        "VHDX region {} at {:#x} length {:#x} extends past the end of file at {:#x}",
                        guid_string(&r.guid),
                        r.offset,
                        r.length,
                        src.len()
                    ),
                ));
            }
        }
        let meta = meta::parse(&src, meta_r.offset, meta_r.length as u64)?;
        let bs = meta.block_size as u64;
        let chunk_ratio = (1u64 << 23) * meta.logical_sector as u64 / bs;
        let data_blocks = meta.virtual_size.div_ceil(bs);
        let total = if data_blocks == 0 {
            0
        } else if meta.has_parent {
            data_blocks.div_ceil(chunk_ratio) * (chunk_ratio + 1)
        } else {
            data_blocks + (data_blocks - 1) / chunk_ratio
        };
        let bat_bytes = total * 8;
        if bat_bytes > bat_r.length as u64 {
            return Err(Error::corrupt(
                &path,
                bat_r.offset,
                format!(
                    "VHDX BAT region is {} bytes but {total} entries ({bat_bytes} bytes) are needed for a virtual size of {}",
                    bat_r.length, meta.virtual_size
                ),
            ));
        }
        if bat_bytes > MAX_BAT_BYTES {
            return Err(Error::unsupported(
                &path,
                format!("VHDX BAT of {bat_bytes} bytes exceeds the supported maximum of {MAX_BAT_BYTES}"),
            ));
        }
        let mut raw = vec![0u8; bat_bytes as usize];
        src.read(&mut raw, bat_r.offset)?;
        let bat: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        drop(raw);
        let mut disk = VhdxDisk {
            src,
            header: hdr,
            meta,
            chunk_ratio,
            bat,
            parent: None,
            parent_path: None,
            warnings,
        };
        disk.validate_bat(bat_r.offset)?;
        if disk.meta.has_parent {
            disk.open_parent(ctx)?;
        }
        Ok(disk)
    }

    fn validate_bat(&self, bat_off: u64) -> Result<()> {
        let path = self.src.file().path();
        let bs = self.meta.block_size as u64;
        let size = self.meta.virtual_size;
        let cr = self.chunk_ratio;
        let flen = self.src.len();
        for (i, &e) in self.bat.iter().enumerate() {
            let i = i as u64;
            let state = e & 7;
            let off = (e >> 20) * MIB;
            let at = bat_off + 8 * i;
            if (i + 1).is_multiple_of(cr + 1) {
                // Sector bitmap entry; only meaningful for differencing disks.
                if self.meta.has_parent && state == SB_PRESENT && (off < MIB || off + MIB > flen) {
                    return Err(Error::corrupt(
                        path,
                        at,
                        format!("VHDX BAT sector bitmap entry {i}: bitmap at {off:#x} is not inside the file (ends at {flen:#x})"),
                    ));
                }
                continue;
            }
            let blk = i - i / (cr + 1);
            match state {
                NOT_PRESENT | UNDEFINED | ZERO | UNMAPPED => {}
                FULLY_PRESENT | PARTIALLY_PRESENT => {
                    if state == PARTIALLY_PRESENT {
                        if !self.meta.has_parent {
                            return Err(Error::corrupt(
                                path,
                                at,
                                format!("VHDX BAT entry {i} (block {blk}) is PARTIALLY_PRESENT in an image without a parent"),
                            ));
                        }
                        let sb = self.bat[self.sb_index(blk)];
                        if sb & 7 != SB_PRESENT {
                            return Err(Error::corrupt(
                                path,
                                at,
                                format!("VHDX BAT entry {i} (block {blk}) is PARTIALLY_PRESENT but its sector bitmap block is not present"),
                            ));
                        }
                    }
                    let need = bs.min(size.saturating_sub(blk * bs));
                    if off < MIB || off.checked_add(need).is_none_or(|e| e > flen) {
                        return Err(Error::corrupt(
                            path,
                            at,
                            format!("VHDX BAT entry {i} (block {blk}) points to {off:#x}; {need} bytes there are not inside the file (ends at {flen:#x})"),
                        ));
                    }
                }
                s => {
                    return Err(Error::corrupt(
                        path,
                        at,
                        format!("VHDX BAT entry {i} (block {blk}) has reserved state {s}"),
                    ))
                }
            }
        }
        Ok(())
    }

    fn open_parent(&mut self, ctx: &OpenCtx) -> Result<()> {
        let path = self.src.file().path().to_path_buf();
        let mut cands: Vec<(&str, String)> = Vec::new();
        for key in ["relative_path", "volume_path", "absolute_win32_path"] {
            if let Some(v) = self.meta.locator(key) {
                cands.push((key, v.to_string()));
            }
        }
        let (parent, ppath) = crate::vhd::parent::open_parent(&path, &cands, ctx)?;
        let links: Vec<Guid> = ["parent_linkage", "parent_linkage2"]
            .iter()
            .filter_map(|k| self.meta.locator(k).and_then(guid_parse))
            .collect();
        match data_write_guid(&ppath) {
            Some(g) if links.contains(&g) => {}
            Some(g) => self.warnings.push(format!(
                "parent {} has DataWriteGuid {}, but this image's parent_linkage is {}; data may be inconsistent",
                ppath.display(),
                guid_string(&g),
                self.meta.locator("parent_linkage").unwrap_or("(missing)")
            )),
            None => self.warnings.push(format!(
                "parent {} is not a VHDX; its identity could not be checked",
                ppath.display()
            )),
        }
        self.parent = Some(parent);
        self.parent_path = Some(ppath);
        Ok(())
    }

    /// The current header.
    pub fn header(&self) -> &header::Header {
        &self.header
    }

    /// The parsed metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Path of the parent image, for differencing disks.
    pub fn parent_path(&self) -> Option<&Path> {
        self.parent_path.as_deref()
    }

    fn payload_index(&self, blk: u64) -> usize {
        (blk + blk / self.chunk_ratio) as usize
    }

    fn sb_index(&self, blk: u64) -> usize {
        ((blk / self.chunk_ratio) * (self.chunk_ratio + 1) + self.chunk_ratio) as usize
    }

    /// Classify the run at `off` (at most `max` bytes) in this layer.
    /// Returns the kind, its length and, for data, the file offset.
    fn local_run(&self, off: u64, max: u64) -> Result<(Local, u64, u64)> {
        let bs = self.meta.block_size as u64;
        let end = off + max;
        let mut first: Option<(Local, u64)> = None;
        let mut pos = off;
        while pos < end {
            let blk = pos / bs;
            let blk_end = ((blk + 1) * bs).min(end);
            let e = self.bat[self.payload_index(blk)];
            let foff = (e >> 20) * MIB + (pos - blk * bs);
            let (k, n) = match e & 7 {
                FULLY_PRESENT => (Local::Data, blk_end - pos),
                ZERO | UNMAPPED => (Local::Zero, blk_end - pos),
                PARTIALLY_PRESENT => self.bitmap_run(blk, pos, blk_end)?,
                _ => (Local::Absent, blk_end - pos),
            };
            match first {
                None => first = Some((k, foff)),
                Some((prev, pfoff)) => {
                    // Data runs merge only when contiguous in the file.
                    if prev != k || (k == Local::Data && pfoff + (pos - off) != foff) {
                        break;
                    }
                }
            }
            pos += n;
            if pos < blk_end {
                break;
            }
        }
        let (k, foff) = first.unwrap_or((Local::Zero, 0));
        Ok((k, pos - off, foff))
    }

    /// Run of equal sector-bitmap bits from `pos` to at most `end` (inside
    /// block `blk`).
    fn bitmap_run(&self, blk: u64, pos: u64, end: u64) -> Result<(Local, u64)> {
        let lss = self.meta.logical_sector as u64;
        let chunk_bytes = (1u64 << 23) * lss;
        let sb = self.bat[self.sb_index(blk)];
        let bm_off = (sb >> 20) * MIB;
        let s0 = (pos % chunk_bytes) / lss;
        let s1 = (end - 1) % chunk_bytes / lss;
        let mut bm = vec![0u8; (s1 / 8 - s0 / 8 + 1) as usize];
        self.src.read(&mut bm, bm_off + s0 / 8)?;
        let bit = |s: u64| bm[(s / 8 - s0 / 8) as usize] & (1 << (s % 8)) != 0;
        let v = bit(s0);
        let mut s = s0 + 1;
        while s <= s1 && bit(s) == v {
            s += 1;
        }
        let run_end = (pos - pos % lss + (s - s0) * lss).min(end);
        Ok((if v { Local::Data } else { Local::Absent }, run_end - pos))
    }
}

/// Read region table copy 1, falling back to copy 2.
fn read_regions(src: &Src, warnings: &mut Vec<String>) -> Result<Vec<header::Region>> {
    let path = src.file().path();
    let mut first_err = None;
    for off in REGION_OFFSETS {
        let mut b = vec![0u8; header::REGION_TABLE_SIZE];
        let r = src
            .read(&mut b, off)
            .and_then(|_| header::parse_region_table(&b, path, off));
        match r {
            Ok(v) => {
                if let Some(e) = first_err {
                    warnings.push(format!(
                        "VHDX region table copy 1 is invalid ({e}); using copy 2"
                    ));
                }
                return Ok(v);
            }
            Err(e) if e.kind == crate::ErrorKind::Unsupported => return Err(e),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    Err(first_err.unwrap())
}

/// DataWriteGuid of the current header of a VHDX file, or `None` when the
/// file is not a readable VHDX.
fn data_write_guid(path: &Path) -> Option<Guid> {
    let f = ImageFile::open(path).ok()?;
    let mut w = Vec::new();
    header::read_current_header(&f, &mut w)
        .ok()
        .map(|h| h.data_write_guid)
}

impl Disk for VhdxDisk {
    fn size(&self) -> u64 {
        self.meta.virtual_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let (kind, n, foff) = self.local_run(off, (buf.len() - done) as u64)?;
            let part = &mut buf[done..done + n as usize];
            match kind {
                Local::Data => self.src.read(part, foff)?,
                Local::Zero => part.fill(0),
                Local::Absent => read_backing(self.parent.as_deref(), part, off)?,
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, max_len.min(1))?;
        let max = max_len.min(self.size() - offset);
        let (kind, len, _) = self.local_run(offset, max)?;
        let kind = match kind {
            Local::Data => ExtentKind::Data,
            Local::Zero => ExtentKind::Zero,
            Local::Absent => return extent_backing(self.parent.as_deref(), offset, len),
        };
        Ok(Extent { kind, offset, len })
    }

    fn layer(&self) -> LayerInfo {
        let sub = if self.meta.has_parent {
            "differencing"
        } else if self.meta.leave_blocks_allocated {
            "fixed"
        } else {
            "dynamic"
        };
        LayerInfo {
            path: self.src.file().path().to_path_buf(),
            format: "vhdx".into(),
            subformat: Some(sub.into()),
            virtual_size: self.size(),
            file_size: self.src.file().len(),
            extra_files: vec![],
            warnings: self.warnings.clone(),
            geometry: Default::default(),
        }
    }

    fn backing(&self) -> Option<&dyn Disk> {
        self.parent.as_deref()
    }
}
