//! VirtualBox VDI reader (header version 1.1): dynamic ("normal") and fixed
//! images. Differencing VDIs name their parent only by UUID, which cannot be
//! resolved from the file alone: they are refused as unsupported, naming the
//! parent UUID.
//!
//! Block map entries: `0xFFFFFFFF` = never allocated (unallocated),
//! `0xFFFFFFFE` = discarded (reads as zeros). The block map (4 bytes per
//! block) is read at open, capped at [`MAX_MAP_BYTES`] and by the file
//! size, so `read_at` is lock-free and thread-safe.

use crate::disk::{check_range, Chs, Disk, Extent, ExtentKind, GeometryHints, LayerInfo};
use crate::error::{Error, Result};
use crate::file::{le, ImageFile};
use crate::gate::OpenCtx;
use crate::vhd::format::read_bounded;
use crate::vhdx::header::guid_string;
use std::sync::Arc;

/// VDI signature at offset 0x40.
pub const SIGNATURE: u32 = 0xbeda_107f;
/// Largest block map read into memory.
pub const MAX_MAP_BYTES: u64 = 256 << 20;
const UNALLOCATED: u32 = 0xFFFF_FFFF;
const DISCARDED: u32 = 0xFFFF_FFFE;

/// Open a VDI image.
pub fn open(file: Arc<ImageFile>, _ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    Ok(Box::new(VdiDisk::open(file)?))
}

/// The parsed VDI header (version 1.1).
#[derive(Debug, Clone)]
pub struct VdiHeader {
    /// Image type: 1 normal (dynamic), 2 fixed, 3 undo, 4 differencing.
    pub image_type: u32,
    /// Offset of the block map.
    pub offset_blocks: u32,
    /// Offset of the first data block.
    pub offset_data: u32,
    /// Legacy geometry (cylinders, heads, sectors); zeros when unset.
    pub legacy_chs: (u32, u32, u32),
    /// Logical (BIOS) geometry of the 1.1 header; zeros when unset.
    pub lchs: (u32, u32, u32),
    /// Virtual size in bytes.
    pub disk_size: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Extra bytes stored before each block's data.
    pub block_extra: u32,
    /// Number of blocks in the map.
    pub blocks: u32,
    /// Number of allocated blocks.
    pub blocks_allocated: u32,
    /// Image UUID.
    pub uuid_create: [u8; 16],
    /// Parent UUID (differencing images).
    pub uuid_link: [u8; 16],
}

/// An open VDI image.
#[derive(Debug)]
pub struct VdiDisk {
    file: Arc<ImageFile>,
    header: VdiHeader,
    map: Vec<u32>,
}

impl VdiDisk {
    /// Parse the header and block map.
    pub fn open(file: Arc<ImageFile>) -> Result<VdiDisk> {
        let path = file.path().to_path_buf();
        let mut h = [0u8; 0x200];
        if file.len() < 0x1d8 {
            return Err(Error::corrupt(
                &path,
                0,
                format!("file is {} bytes, too small for a VDI header", file.len()),
            ));
        }
        file.read_at_padded(&mut h, 0)?;
        let sig = le::u32(&h, 0x40);
        if sig != SIGNATURE {
            return Err(Error::corrupt(
                &path,
                0x40,
                format!("VDI signature {sig:#010x}, expected {SIGNATURE:#010x}"),
            ));
        }
        let version = le::u32(&h, 0x44);
        if version != 0x0001_0001 {
            return Err(Error::unsupported(
                &path,
                format!(
                    "VDI header version {}.{} (only 1.1 is supported)",
                    version >> 16,
                    version & 0xffff
                ),
            ));
        }
        let header_size = le::u32(&h, 0x48);
        let g = |o| (le::u32(&h, o), le::u32(&h, o + 4), le::u32(&h, o + 8));
        let hdr = VdiHeader {
            image_type: le::u32(&h, 0x4c),
            offset_blocks: le::u32(&h, 0x154),
            offset_data: le::u32(&h, 0x158),
            legacy_chs: g(0x15c),
            lchs: if header_size >= 0x190 {
                g(0x1c8)
            } else {
                (0, 0, 0)
            },
            disk_size: le::u64(&h, 0x170),
            block_size: le::u32(&h, 0x178),
            block_extra: le::u32(&h, 0x17c),
            blocks: le::u32(&h, 0x180),
            blocks_allocated: le::u32(&h, 0x184),
            uuid_create: h[0x188..0x198].try_into().unwrap(),
            uuid_link: h[0x1a8..0x1b8].try_into().unwrap(),
        };
        match hdr.image_type {
            1..=3 => {}
            4 => {
                return Err(Error::unsupported(
                    &path,
                    format!(
                        "differencing VDI: its parent is identified only by UUID {{{}}} and cannot be located from the file; merge the snapshot chain in VirtualBox (VBoxManage clonemedium) first",
                        guid_string(&hdr.uuid_link)
                    ),
                ))
            }
            t => {
                return Err(Error::corrupt(
                    &path,
                    0x4c,
                    format!("VDI image type {t}, expected 1 (dynamic), 2 (fixed), 3 (undo) or 4 (differencing)"),
                ))
            }
        }
        let bs = hdr.block_size;
        if !bs.is_power_of_two() || !(512..=(256 << 20)).contains(&bs) {
            return Err(Error::corrupt(
                &path,
                0x178,
                format!("VDI block size {bs} is not a power of two between 512 and 256 MiB"),
            ));
        }
        if (hdr.blocks as u64) * (bs as u64) < hdr.disk_size {
            return Err(Error::corrupt(
                &path,
                0x180,
                format!(
                    "VDI has {} blocks of {bs} bytes, too few for the disk size {}",
                    hdr.blocks, hdr.disk_size
                ),
            ));
        }
        let raw = read_bounded(
            &file,
            hdr.offset_blocks as u64,
            hdr.blocks as u64 * 4,
            MAX_MAP_BYTES,
            "VDI block map",
        )?;
        let map: Vec<u32> = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let disk = VdiDisk {
            file,
            header: hdr,
            map,
        };
        let needed = disk.header.disk_size.div_ceil(bs as u64);
        for (i, &e) in disk.map.iter().enumerate().take(needed as usize) {
            if e == UNALLOCATED || e == DISCARDED {
                continue;
            }
            let start = disk.block_offset(e);
            let need = (bs as u64).min(disk.header.disk_size - i as u64 * bs as u64);
            if e >= disk.header.blocks || start + need > disk.file.len() {
                return Err(Error::corrupt(
                    &path,
                    disk.header.offset_blocks as u64 + 4 * i as u64,
                    format!(
                        "VDI block map entry {i} = {e}: block data at {start:#x} (+{need}) is not inside the file (ends at {:#x})",
                        disk.file.len()
                    ),
                ));
            }
        }
        Ok(disk)
    }

    /// File offset of the data of stored block `e`.
    fn block_offset(&self, e: u32) -> u64 {
        let h = &self.header;
        h.offset_data as u64
            + e as u64 * (h.block_size as u64 + h.block_extra as u64)
            + h.block_extra as u64
    }

    /// The parsed header.
    pub fn header(&self) -> &VdiHeader {
        &self.header
    }

    /// Kind and run length at `off` (max `max` bytes), plus the file offset
    /// for data.
    fn run(&self, off: u64, max: u64) -> (ExtentKind, u64, u64) {
        let bs = self.header.block_size as u64;
        let end = off + max;
        let kind_of = |e: u32| match e {
            UNALLOCATED => ExtentKind::Unallocated,
            DISCARDED => ExtentKind::Zero,
            _ => ExtentKind::Data,
        };
        let blk = off / bs;
        let e0 = self.map[blk as usize];
        let k = kind_of(e0);
        let foff = if k == ExtentKind::Data {
            self.block_offset(e0) + off % bs
        } else {
            0
        };
        let mut pos = ((blk + 1) * bs).min(end);
        while pos < end {
            let b = pos / bs;
            let e = self.map[b as usize];
            if kind_of(e) != k
                || (k == ExtentKind::Data && self.block_offset(e) != foff + (pos - off))
            {
                break;
            }
            pos = ((b + 1) * bs).min(end);
        }
        (k, pos - off, foff)
    }
}

impl Disk for VdiDisk {
    fn size(&self) -> u64 {
        self.header.disk_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let (k, n, foff) = self.run(off, (buf.len() - done) as u64);
            let part = &mut buf[done..done + n as usize];
            if k == ExtentKind::Data {
                self.file.read_exact_at(part, foff)?;
            } else {
                part.fill(0);
            }
            done += n as usize;
        }
        Ok(())
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, max_len.min(1))?;
        let (kind, len, _) = self.run(offset, max_len.min(self.size() - offset));
        Ok(Extent { kind, offset, len })
    }

    fn layer(&self) -> LayerInfo {
        let h = &self.header;
        let sub = match h.image_type {
            2 => "fixed",
            3 => "undo",
            _ => "dynamic",
        };
        let chs = |(c, hd, s): (u32, u32, u32)| {
            (c != 0 && hd != 0 && s != 0).then_some(Chs {
                cylinders: c,
                heads: hd,
                sectors: s,
            })
        };
        let physical = chs(h.legacy_chs);
        let bios = chs(h.lchs);
        let geometry = if physical.is_some() || bios.is_some() {
            GeometryHints {
                physical,
                bios,
                source: Some("vdi header".into()),
            }
        } else {
            GeometryHints::default()
        };
        LayerInfo {
            path: self.file.path().to_path_buf(),
            format: "vdi".into(),
            subformat: Some(sub.into()),
            virtual_size: h.disk_size,
            file_size: self.file.len(),
            extra_files: vec![],
            warnings: vec![],
            geometry,
        }
    }
}
