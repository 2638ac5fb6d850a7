//! On-disk structures of the VHD format (Virtual Hard Disk Image Format
//! Specification v1.0): the 512-byte footer and the 1024-byte dynamic disk
//! header. All fields are big-endian.

use crate::error::{Error, ErrorKind, Result};
use crate::file::be;
use std::path::Path;

/// Size of the footer (and of its copy at offset 0 of dynamic disks).
pub const FOOTER_SIZE: usize = 512;
/// Size of the dynamic disk header.
pub const DYN_HEADER_SIZE: usize = 1024;

/// Disk type field of the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    /// 2: the data is the file, footer at the end.
    Fixed,
    /// 3: sparse, with a BAT.
    Dynamic,
    /// 4: sparse, reads fall through to a parent image.
    Differencing,
}

impl DiskType {
    /// Name used for `LayerInfo::subformat`.
    pub fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// The hard disk footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the dynamic header (u64::MAX for fixed disks).
    pub data_offset: u64,
    /// Creator application, 4 ASCII characters ("win ", "qem2", "vpc ").
    pub creator_app: [u8; 4],
    /// Virtual size in bytes.
    pub current_size: u64,
    /// Geometry cylinders.
    pub cylinders: u16,
    /// Geometry heads.
    pub heads: u8,
    /// Geometry sectors per track.
    pub sectors: u8,
    /// Fixed, dynamic or differencing.
    pub disk_type: DiskType,
    /// Unique id of this image (the child's header names it as parent).
    pub unique_id: [u8; 16],
    /// Saved-state flag.
    pub saved_state: bool,
}

/// VHD checksum: one's complement of the byte sum, skipping the 4-byte
/// checksum field at `skip`.
pub fn checksum(buf: &[u8], skip: usize) -> u32 {
    let mut sum: u32 = 0;
    for (i, b) in buf.iter().enumerate() {
        if i >= skip && i < skip + 4 {
            continue;
        }
        sum = sum.wrapping_add(*b as u32);
    }
    !sum
}

impl Footer {
    /// Parse and validate a footer read at `offset` of `path`.
    pub fn parse(b: &[u8], path: &Path, offset: u64) -> Result<Footer> {
        if b.len() < FOOTER_SIZE || &b[0..8] != b"conectix" {
            return Err(Error::corrupt(
                path,
                offset,
                "VHD footer: expected cookie \"conectix\"",
            ));
        }
        let stored = be::u32(b, 64);
        let calc = checksum(&b[..FOOTER_SIZE], 64);
        if stored != calc {
            return Err(Error::corrupt(
                path,
                offset,
                format!("VHD footer checksum is {stored:#010x}, computed {calc:#010x}"),
            ));
        }
        let version = be::u32(b, 12);
        if version >> 16 != 1 {
            return Err(Error::unsupported(
                path,
                format!(
                    "VHD footer at {offset:#x}: file format version {version:#010x}, expected 1.x"
                ),
            ));
        }
        let disk_type = match be::u32(b, 60) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            t => {
                return Err(Error::corrupt(
                    path,
                    offset + 60,
                    format!(
                        "VHD disk type {t}, expected 2 (fixed), 3 (dynamic) or 4 (differencing)"
                    ),
                ))
            }
        };
        Ok(Footer {
            data_offset: be::u64(b, 16),
            creator_app: b[28..32].try_into().unwrap(),
            current_size: be::u64(b, 48),
            cylinders: be::u16(b, 56),
            heads: b[58],
            sectors: b[59],
            disk_type,
            unique_id: b[68..84].try_into().unwrap(),
            saved_state: b[84] != 0,
        })
    }
}

/// One parent locator entry of the dynamic header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLocator {
    /// Platform code, e.g. `W2ru`, `W2ku`.
    pub code: [u8; 4],
    /// Length of the locator data in bytes.
    pub data_len: u32,
    /// Absolute file offset of the locator data.
    pub data_offset: u64,
}

/// The dynamic disk header.
#[derive(Debug, Clone)]
pub struct DynHeader {
    /// Absolute offset of the BAT.
    pub table_offset: u64,
    /// Number of BAT entries.
    pub max_table_entries: u32,
    /// Block size in bytes (power of two).
    pub block_size: u32,
    /// Unique id of the parent (differencing disks).
    pub parent_unique_id: [u8; 16],
    /// Parent file name (UTF-16BE in the file), informational.
    pub parent_name: String,
    /// Non-empty parent locator entries.
    pub locators: Vec<ParentLocator>,
}

/// Largest block size accepted (the spec's default is 2 MiB).
pub const MAX_BLOCK_SIZE: u32 = 256 << 20;
/// Smallest block size accepted.
pub const MIN_BLOCK_SIZE: u32 = 512;

impl DynHeader {
    /// Parse and validate a dynamic header read at `offset` of `path`.
    pub fn parse(b: &[u8], path: &Path, offset: u64) -> Result<DynHeader> {
        if b.len() < DYN_HEADER_SIZE || &b[0..8] != b"cxsparse" {
            return Err(Error::corrupt(
                path,
                offset,
                "VHD dynamic header: expected cookie \"cxsparse\"",
            ));
        }
        let stored = be::u32(b, 36);
        let calc = checksum(&b[..DYN_HEADER_SIZE], 36);
        if stored != calc {
            return Err(Error::corrupt(
                path,
                offset,
                format!("VHD dynamic header checksum is {stored:#010x}, computed {calc:#010x}"),
            ));
        }
        let version = be::u32(b, 24);
        if version >> 16 != 1 {
            return Err(Error::unsupported(
                path,
                format!("VHD dynamic header at {offset:#x}: version {version:#010x}, expected 1.x"),
            ));
        }
        let block_size = be::u32(b, 32);
        if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        {
            return Err(Error::corrupt(
                path,
                offset + 32,
                format!(
                    "VHD block size {block_size} is not a power of two between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
                ),
            ));
        }
        let name_units: Vec<u16> = (0..256).map(|i| be::u16(b, 64 + 2 * i)).collect();
        let parent_name = decode_utf16(&name_units);
        let mut locators = Vec::new();
        for i in 0..8 {
            let o = 576 + 24 * i;
            let code: [u8; 4] = b[o..o + 4].try_into().unwrap();
            if code == [0; 4] {
                continue;
            }
            locators.push(ParentLocator {
                code,
                data_len: be::u32(b, o + 8),
                data_offset: be::u64(b, o + 16),
            });
        }
        Ok(DynHeader {
            table_offset: be::u64(b, 16),
            max_table_entries: be::u32(b, 28),
            block_size,
            parent_unique_id: b[40..56].try_into().unwrap(),
            parent_name,
            locators,
        })
    }
}

/// Decode UTF-16 code units up to the first NUL (lossy).
pub fn decode_utf16(units: &[u16]) -> String {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// Decode UTF-16LE bytes up to the first NUL (lossy).
pub fn decode_utf16le(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    decode_utf16(&units)
}

/// Format a 16-byte id as stored (big-endian, as libvhdi prints it).
pub fn uuid_string(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Read `len` bytes at `offset`, checking the range against the file length
/// *before* allocating (hostile lengths never drive allocation) and against
/// `limit`.
pub(crate) fn read_bounded(
    file: &crate::file::ImageFile,
    offset: u64,
    len: u64,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    if len > limit {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("{what} is {len} bytes, more than the supported maximum of {limit}"),
        )
        .at(file.path(), offset));
    }
    match offset.checked_add(len) {
        Some(end) if end <= file.len() => {}
        _ => {
            return Err(Error::corrupt(
                file.path(),
                offset,
                format!(
                    "{what} needs {len} bytes at {offset:#x} but the file ends at {:#x}",
                    file.len()
                ),
            ))
        }
    }
    let mut v = vec![0u8; len as usize];
    file.read_exact_at(&mut v, offset)?;
    Ok(v)
}
