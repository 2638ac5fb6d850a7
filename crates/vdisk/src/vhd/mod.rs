//! Microsoft VHD (Virtual PC / Hyper-V "vpc") reader: fixed, dynamic and
//! differencing images.
//!
//! * **Virtual size** is always the footer's *current size*. QEMU instead
//!   derives the size from the CHS geometry for images whose creator is not
//!   one of `win `, `qem2`, `d2v `, `CTXS`, `tap` (Virtual PC, old QEMU),
//!   unless the CHS is the maximum; for those images our size may be larger
//!   than QEMU's by the CHS rounding. Images made with
//!   `qemu-img -o force_size=on` (creator `qem2`), Hyper-V and Disk2vhd
//!   agree with QEMU byte for byte.
//! * **Footers**: the footer at the end is authoritative; dynamic and
//!   differencing disks also keep a copy at offset 0. A bad checksum is a
//!   corrupt-image error naming the offset, unless the other copy is good,
//!   in which case it is used and a warning is recorded.
//! * **Sector bitmaps** are consulted for differencing disks only (bit set:
//!   sector stored here; clear: read the parent). Like QEMU, dynamic disks
//!   read an allocated block's data without looking at its bitmap.
//! * **Parents** are located via the `W2ru` (relative) then `W2ku`
//!   (absolute) locators, UTF-16LE, resolved through the open gate. A parent
//!   whose unique id differs from the header's parent id is used with a
//!   warning.
//! * **Memory**: the BAT (4 bytes per block) is read at open and capped at
//!   [`MAX_BAT_BYTES`]; reads need no cache, so `read_at` is thread-safe
//!   without locks.

pub mod format;
pub(crate) mod parent;

use crate::disk::{
    check_range, extent_backing, read_backing, Chs, Disk, Extent, ExtentKind, GeometryHints,
    LayerInfo,
};
use crate::error::{Error, Result};
use crate::file::ImageFile;
use crate::gate::OpenCtx;
use format::{read_bounded, DiskType, DynHeader, Footer, DYN_HEADER_SIZE, FOOTER_SIZE};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest BAT read into memory (64 M blocks; a 2 TiB disk with the default
/// 2 MiB blocks needs 4 MiB).
pub const MAX_BAT_BYTES: u64 = 256 << 20;
const UNALLOCATED: u32 = 0xFFFF_FFFF;
const SECTOR: u64 = 512;

/// Open a VHD image.
pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    Ok(Box::new(VhdDisk::open(file, ctx)?))
}

/// An open VHD image.
#[derive(Debug)]
pub struct VhdDisk {
    file: Arc<ImageFile>,
    footer: Footer,
    size: u64,
    sparse: Option<Sparse>,
    parent: Option<Box<dyn Disk>>,
    parent_path: Option<PathBuf>,
    warnings: Vec<String>,
}

#[derive(Debug)]
struct Sparse {
    block_size: u64,
    bitmap_size: u64,
    bat: Vec<u32>,
    header: DynHeader,
}

/// What this layer says about a run (before consulting a parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Local {
    Data,
    Absent,
}

impl VhdDisk {
    /// Parse footers, dynamic header and BAT; open the parent of a
    /// differencing disk through `ctx`.
    pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<VhdDisk> {
        let path = file.path().to_path_buf();
        let len = file.len();
        if len < FOOTER_SIZE as u64 {
            return Err(Error::corrupt(
                &path,
                0,
                format!("file is {len} bytes; a VHD needs at least its 512-byte footer"),
            ));
        }
        let mut warnings = Vec::new();
        let footer = choose_footer(&file, &mut warnings)?;
        let size = footer.current_size;
        if footer.saved_state {
            warnings.push("VHD footer has the saved-state flag set".into());
        }
        let mut disk = VhdDisk {
            file: file.clone(),
            footer: footer.clone(),
            size,
            sparse: None,
            parent: None,
            parent_path: None,
            warnings,
        };
        if footer.disk_type == DiskType::Fixed {
            if size.checked_add(FOOTER_SIZE as u64).is_none_or(|n| n > len) {
                return Err(Error::corrupt(
                    &path,
                    len,
                    format!(
                        "fixed VHD of virtual size {size} needs {} bytes of data plus footer; the file has {len}",
                        size.saturating_add(512)
                    ),
                ));
            }
            return Ok(disk);
        }
        // Dynamic or differencing.
        let hdr_off = footer.data_offset;
        if hdr_off
            .checked_add(DYN_HEADER_SIZE as u64)
            .is_none_or(|e| e > len)
        {
            return Err(Error::corrupt(
                &path,
                48,
                format!("footer data offset {hdr_off:#x} leaves no room for the 1024-byte dynamic header before end of file {len:#x}"),
            ));
        }
        let mut hb = [0u8; DYN_HEADER_SIZE];
        file.read_exact_at(&mut hb, hdr_off)?;
        let header = DynHeader::parse(&hb, &path, hdr_off)?;
        let bs = header.block_size as u64;
        let nblocks = size.div_ceil(bs);
        if (header.max_table_entries as u64) < nblocks {
            return Err(Error::corrupt(
                &path,
                hdr_off + 28,
                format!(
                    "BAT has {} entries but a virtual size of {size} needs {nblocks} blocks of {bs} bytes",
                    header.max_table_entries
                ),
            ));
        }
        let raw = read_bounded(
            &file,
            header.table_offset,
            nblocks * 4,
            MAX_BAT_BYTES,
            "VHD BAT",
        )?;
        let bat: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        let bitmap_size = (bs / SECTOR).div_ceil(8).div_ceil(SECTOR) * SECTOR;
        for (i, &e) in bat.iter().enumerate() {
            if e == UNALLOCATED {
                continue;
            }
            let block_start = i as u64 * bs;
            let need = bitmap_size + bs.min(size - block_start);
            let start = e as u64 * SECTOR;
            if start + need > len {
                return Err(Error::corrupt(
                    &path,
                    header.table_offset + 4 * i as u64,
                    format!(
                        "BAT entry {i} points to sector {e} (offset {start:#x}); its bitmap and data would end at {:#x}, past the end of file at {len:#x}",
                        start + need
                    ),
                ));
            }
        }
        let differencing = footer.disk_type == DiskType::Differencing;
        disk.sparse = Some(Sparse {
            block_size: bs,
            bitmap_size,
            bat,
            header,
        });
        if differencing {
            disk.open_parent(ctx)?;
        }
        Ok(disk)
    }

    fn open_parent(&mut self, ctx: &OpenCtx) -> Result<()> {
        let path = self.file.path().to_path_buf();
        let header = &self.sparse.as_ref().unwrap().header;
        let mut cands: Vec<(&str, String)> = Vec::new();
        for code in [b"W2ru", b"W2ku"] {
            for loc in header.locators.iter().filter(|l| &l.code == code) {
                let raw = read_bounded(
                    &self.file,
                    loc.data_offset,
                    loc.data_len as u64,
                    64 << 10,
                    "VHD parent locator",
                )?;
                let name = format::decode_utf16le(&raw);
                let label = if code == b"W2ru" {
                    "relative locator W2ru"
                } else {
                    "absolute locator W2ku"
                };
                if !name.is_empty() {
                    cands.push((label, name));
                }
            }
        }
        let (parent, ppath) = parent::open_parent(&path, &cands, ctx).map_err(|mut e| {
            if !header.parent_name.is_empty() {
                e.message = format!(
                    "{} (parent name in header: {:?})",
                    e.message, header.parent_name
                );
            }
            e
        })?;
        let want = header.parent_unique_id;
        match parent_unique_id(&ppath) {
            Some(got) if got == want => {}
            Some(got) => self.warnings.push(format!(
                "parent {} has unique id {}, but this image expects {}; data may be inconsistent",
                ppath.display(),
                format::uuid_string(&got),
                format::uuid_string(&want)
            )),
            None => self.warnings.push(format!(
                "parent {} is not a VHD; its identity could not be checked against {}",
                ppath.display(),
                format::uuid_string(&want)
            )),
        }
        self.parent = Some(parent);
        self.parent_path = Some(ppath);
        Ok(())
    }

    /// The footer in use.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Path of the parent image, for differencing disks.
    pub fn parent_path(&self) -> Option<&Path> {
        self.parent_path.as_deref()
    }

    fn differencing(&self) -> bool {
        self.footer.disk_type == DiskType::Differencing
    }

    /// Length of the run of sectors starting at `sector` (inside the block
    /// whose bitmap is at `bm_off`) with the same bitmap bit, capped at
    /// `max_sectors`.
    fn bitmap_run(&self, bm_off: u64, sector: u64, max_sectors: u64) -> Result<(bool, u64)> {
        let first = sector / 8;
        let last = (sector + max_sectors - 1) / 8;
        let mut bm = vec![0u8; (last - first + 1) as usize];
        self.file.read_exact_at(&mut bm, bm_off + first)?;
        let bit = |s: u64| bm[(s / 8 - first) as usize] & (0x80 >> (s % 8)) != 0;
        let v = bit(sector);
        let mut n = 1;
        while n < max_sectors && bit(sector + n) == v {
            n += 1;
        }
        Ok((v, n))
    }

    /// Classify the run starting at `off` (at most `max` bytes) in this
    /// layer only.
    fn local_run(&self, off: u64, max: u64) -> Result<(Local, u64)> {
        let Some(sp) = &self.sparse else {
            return Ok((Local::Data, max));
        };
        let bs = sp.block_size;
        let end = off + max;
        let mut kind = None;
        let mut pos = off;
        while pos < end {
            let blk = pos / bs;
            let blk_end = ((blk + 1) * bs).min(end);
            let e = sp.bat[blk as usize];
            let (k, n) = if e == UNALLOCATED {
                (Local::Absent, blk_end - pos)
            } else if !self.differencing() {
                (Local::Data, blk_end - pos)
            } else {
                let in_blk = pos - blk * bs;
                let s0 = in_blk / SECTOR;
                let s1 = (blk_end - blk * bs).div_ceil(SECTOR);
                let (set, ns) = self.bitmap_run(e as u64 * SECTOR, s0, s1 - s0)?;
                let run_end = (blk * bs + (s0 + ns) * SECTOR).min(blk_end);
                (if set { Local::Data } else { Local::Absent }, run_end - pos)
            };
            match kind {
                None => kind = Some(k),
                Some(prev) if prev != k => break,
                _ => {}
            }
            pos += n;
            // A partial run inside a block ends the scan.
            if pos < blk_end {
                break;
            }
        }
        Ok((kind.unwrap_or(Local::Data), pos - off))
    }

    fn data_offset(&self, off: u64) -> u64 {
        let sp = self.sparse.as_ref().unwrap();
        let blk = off / sp.block_size;
        sp.bat[blk as usize] as u64 * SECTOR + sp.bitmap_size + off % sp.block_size
    }
}

/// Unique id of a VHD file (from the footer at its end, else the copy at
/// offset 0), or `None` when it is not a VHD.
fn parent_unique_id(path: &Path) -> Option<[u8; 16]> {
    let f = ImageFile::open(path).ok()?;
    let mut b = [0u8; FOOTER_SIZE];
    if f.len() >= 512 && f.read_exact_at(&mut b, f.len() - 512).is_ok() {
        if let Ok(ft) = Footer::parse(&b, path, f.len() - 512) {
            return Some(ft.unique_id);
        }
    }
    f.read_exact_at(&mut b, 0).ok()?;
    Footer::parse(&b, path, 0).ok().map(|ft| ft.unique_id)
}

/// Pick the footer: the one at the end when valid, else the copy at 0.
fn choose_footer(file: &ImageFile, warnings: &mut Vec<String>) -> Result<Footer> {
    let path = file.path();
    let len = file.len();
    let tail_off = len - FOOTER_SIZE as u64;
    let mut tb = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut tb, tail_off)?;
    let tail = Footer::parse(&tb, path, tail_off);
    let mut hb = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut hb, 0)?;
    let head = if &hb[0..8] == b"conectix" && tail_off != 0 {
        Some(Footer::parse(&hb, path, 0))
    } else {
        None
    };
    match (tail, head) {
        (Ok(t), head) => {
            match head {
                Some(Err(e)) if t.disk_type != DiskType::Fixed => warnings.push(format!(
                    "footer copy at offset 0 is damaged ({}); using the footer at {tail_off:#x}",
                    e.message
                )),
                Some(Ok(h)) if h != t && t.disk_type != DiskType::Fixed => warnings.push(format!(
                    "footer copy at offset 0 differs from the footer at {tail_off:#x}; using the latter"
                )),
                None if t.disk_type != DiskType::Fixed => {
                    warnings.push("no footer copy at offset 0 (expected for dynamic disks)".into())
                }
                _ => {}
            }
            Ok(t)
        }
        (Err(te), Some(Ok(h))) if h.disk_type != DiskType::Fixed => {
            warnings.push(format!(
                "footer at {tail_off:#x} is damaged ({}); using the copy at offset 0",
                te.message
            ));
            Ok(h)
        }
        (Err(te), _) => Err(te),
    }
}

impl Disk for VhdDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        if self.sparse.is_none() {
            return self.file.read_exact_at(buf, offset);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let (kind, n) = self.local_run(off, (buf.len() - done) as u64)?;
            // Data runs may span blocks, which are not contiguous in the
            // file (a bitmap precedes each block): read one block at a time.
            let n = match (kind, &self.sparse) {
                (Local::Data, Some(sp)) => n.min(sp.block_size - off % sp.block_size),
                _ => n,
            };
            let part = &mut buf[done..done + n as usize];
            match kind {
                Local::Data => self.file.read_exact_at(part, self.data_offset(off))?,
                Local::Absent => read_backing(self.parent.as_deref(), part, off)?,
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size, offset, max_len.min(1))?;
        let max = max_len.min(self.size - offset);
        let (kind, len) = self.local_run(offset, max)?;
        match kind {
            Local::Data => Ok(Extent {
                kind: ExtentKind::Data,
                offset,
                len,
            }),
            Local::Absent => extent_backing(self.parent.as_deref(), offset, len),
        }
    }

    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: self.file.path().to_path_buf(),
            format: "vhd".into(),
            subformat: Some(self.footer.disk_type.name().into()),
            virtual_size: self.size,
            file_size: self.file.len(),
            extra_files: vec![],
            warnings: self.warnings.clone(),
            geometry: GeometryHints {
                physical: Some(Chs {
                    cylinders: self.footer.cylinders as u32,
                    heads: self.footer.heads as u32,
                    sectors: self.footer.sectors as u32,
                }),
                bios: None,
                source: Some("vhd footer".into()),
            },
        }
    }

    fn backing(&self) -> Option<&dyn Disk> {
        self.parent.as_deref()
    }
}
