//! The virtual-disk traits every format implements.

use crate::error::{Error, ErrorKind, Result};
use serde::Serialize;
use std::path::PathBuf;

/// How a byte range of a virtual disk is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtentKind {
    /// Stored data (may still happen to be zeros).
    Data,
    /// Explicitly recorded as zeros (qcow2 zero cluster, VMDK zero grain,
    /// VHDX PAYLOAD_BLOCK_ZERO): reads return zeros.
    Zero,
    /// Never written in the whole chain: reads return zeros.
    Unallocated,
}

impl ExtentKind {
    /// True when reads of this extent are guaranteed to return zeros.
    pub fn reads_zero(self) -> bool {
        !matches!(self, ExtentKind::Data)
    }
}

/// A run of the virtual disk with one [`ExtentKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Kind of the run.
    pub kind: ExtentKind,
    /// Start, in bytes of the virtual disk.
    pub offset: u64,
    /// Length in bytes (> 0).
    pub len: u64,
}

/// A cylinder/head/sector triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Chs {
    /// Cylinders.
    pub cylinders: u32,
    /// Heads.
    pub heads: u32,
    /// Sectors per track.
    pub sectors: u32,
}

/// Geometry information recorded by the container format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GeometryHints {
    /// Physical geometry (VMDK `ddb.geometry.*`, VHD footer CHS).
    pub physical: Option<Chs>,
    /// BIOS (translated) geometry (VMDK `ddb.geometry.bios*`).
    pub bios: Option<Chs>,
    /// Where the hint came from, e.g. "vmdk descriptor" or "vhd footer".
    pub source: Option<String>,
}

impl GeometryHints {
    /// True when neither geometry is present.
    pub fn is_empty(&self) -> bool {
        self.physical.is_none() && self.bios.is_none()
    }
}

/// Description of one layer of an image chain (for `info`).
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    /// The layer's (main) file.
    pub path: PathBuf,
    /// Format name: raw, qcow2, vmdk, vhd, vhdx, vdi.
    pub format: String,
    /// Subformat (e.g. monolithicSparse, dynamic, fixed, v3).
    pub subformat: Option<String>,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Host bytes used by this layer's files.
    pub file_size: u64,
    /// Extra files of this layer (VMDK extents, VHDX has none).
    pub extra_files: Vec<PathBuf>,
    /// Warnings found while opening (dirty log, CID mismatch, ...).
    pub warnings: Vec<String>,
    /// Geometry hints from this layer's metadata.
    pub geometry: GeometryHints,
}

/// A readable virtual disk. Implementations must be safe to read from
/// several threads at once (the conversion pipeline does).
pub trait Disk: Send + Sync + std::fmt::Debug {
    /// Virtual size in bytes.
    fn size(&self) -> u64;

    /// Fill `buf` with the bytes at `offset`. The whole range must lie
    /// inside [`Disk::size`]; unallocated ranges read as zeros (or from the
    /// backing disk).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// The extent that starts at `offset`, at most `max_len` long. The
    /// result describes the flattened view (backing layers resolved).
    /// The default reports everything as data.
    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, max_len.min(1))?;
        Ok(Extent {
            kind: ExtentKind::Data,
            offset,
            len: max_len.min(self.size() - offset),
        })
    }

    /// Metadata of this layer.
    fn layer(&self) -> LayerInfo;

    /// The next disk down the chain, if any.
    fn backing(&self) -> Option<&dyn Disk> {
        None
    }

    /// Geometry hints: this layer's, else the nearest backing layer's.
    fn geometry_hints(&self) -> GeometryHints {
        let own = self.layer().geometry;
        if !own.is_empty() {
            return own;
        }
        self.backing()
            .map(|b| b.geometry_hints())
            .unwrap_or_default()
    }
}

/// A disk that can also be written (outputs and overlays; never a source).
pub trait DiskWrite: Disk {
    /// Write `buf` at `offset` (inside the virtual size).
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Make written data durable.
    fn flush(&self) -> Result<()>;
}

/// Fails with [`ErrorKind::OutOfRange`] unless `[offset, offset+len)` fits
/// in a disk of `size` bytes.
pub fn check_range(size: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::new(
            ErrorKind::OutOfRange,
            format!("access {offset:#x}+{len:#x} beyond virtual size {size:#x}"),
        )),
    }
}

/// All layers of a chain, top first.
pub fn chain(disk: &dyn Disk) -> Vec<LayerInfo> {
    let mut out = vec![disk.layer()];
    let mut cur = disk.backing();
    while let Some(d) = cur {
        out.push(d.layer());
        cur = d.backing();
    }
    out
}

/// Read `buf` at `offset` from an optional backing disk; zeros where there
/// is none or where the backing disk is shorter.
pub fn read_backing(backing: Option<&dyn Disk>, buf: &mut [u8], offset: u64) -> Result<()> {
    match backing {
        None => {
            buf.fill(0);
            Ok(())
        }
        Some(b) => {
            let bsize = b.size();
            if offset >= bsize {
                buf.fill(0);
                return Ok(());
            }
            let n = ((bsize - offset) as usize).min(buf.len());
            b.read_at(&mut buf[..n], offset)?;
            buf[n..].fill(0);
            Ok(())
        }
    }
}

/// Extent of an unallocated range in a layer with an optional backing disk.
pub fn extent_backing(backing: Option<&dyn Disk>, offset: u64, len: u64) -> Result<Extent> {
    match backing {
        Some(b) if offset < b.size() => {
            let e = b.extent(offset, len.min(b.size() - offset))?;
            Ok(e)
        }
        _ => Ok(Extent {
            kind: ExtentKind::Unallocated,
            offset,
            len,
        }),
    }
}
