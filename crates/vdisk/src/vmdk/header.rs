//! On-disk headers of sparse extents: hosted sparse (`KDMV`, including the
//! streamOptimized footer) and ESX `COWD`. All fields little-endian.

use crate::error::{Error, ErrorKind, Result};
use crate::file::{le, ImageFile};

/// `KDMV` as read little-endian.
pub const KDMV_MAGIC: u32 = 0x564d_444b;
/// `COWD` as read little-endian.
pub const COWD_MAGIC: u32 = 0x4457_4f43;
/// `gdOffset` value meaning "grain directory location is in the footer".
pub const GD_AT_END: u64 = u64::MAX;

/// Flag: newline-detection characters are valid.
pub const FLAG_NL_DETECT: u32 = 1 << 0;
/// Flag: the redundant grain directory is maintained.
pub const FLAG_RGD: u32 = 1 << 1;
/// Flag: GTE value 1 means "zeroed grain".
pub const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// Flag: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// Flag: markers are present (streamOptimized).
pub const FLAG_MARKERS: u32 = 1 << 17;

/// Stream marker types.
pub const MARKER_EOS: u32 = 0;
/// Footer marker type.
pub const MARKER_FOOTER: u32 = 3;

/// The hosted sparse extent header (first sector, or footer copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseHeader {
    /// Format version (1, 2 or 3).
    pub version: u32,
    /// Flag bits (`FLAG_*`).
    pub flags: u32,
    /// Capacity in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_size: u64,
    /// Embedded descriptor start, in sectors (0 = none).
    pub descriptor_offset: u64,
    /// Embedded descriptor size, in sectors.
    pub descriptor_size: u64,
    /// Grain table entries per grain table.
    pub gtes_per_gt: u32,
    /// Redundant grain directory, in sectors.
    pub rgd_offset: u64,
    /// Grain directory, in sectors ([`GD_AT_END`] = see footer).
    pub gd_offset: u64,
    /// Sectors of metadata before the first grain.
    pub overhead: u64,
    /// Set when the extent was not closed cleanly.
    pub unclean_shutdown: bool,
    /// The four newline-detection characters `\n`, ` `, `\r`, `\n`.
    pub nl_chars: [u8; 4],
    /// 0 = none, 1 = deflate.
    pub compress_algorithm: u16,
}

impl SparseHeader {
    /// Parse a 512-byte `KDMV` header sector; `None` when the magic is
    /// wrong.
    pub fn parse(b: &[u8; 512]) -> Option<Self> {
        if le::u32(b, 0) != KDMV_MAGIC {
            return None;
        }
        Some(SparseHeader {
            version: le::u32(b, 4),
            flags: le::u32(b, 8),
            capacity: le::u64(b, 12),
            grain_size: le::u64(b, 20),
            descriptor_offset: le::u64(b, 28),
            descriptor_size: le::u64(b, 36),
            gtes_per_gt: le::u32(b, 44),
            rgd_offset: le::u64(b, 48),
            gd_offset: le::u64(b, 56),
            overhead: le::u64(b, 64),
            unclean_shutdown: b[72] != 0,
            nl_chars: [b[73], b[74], b[75], b[76]],
            compress_algorithm: le::u16(b, 77),
        })
    }

    /// True when grains are deflate-compressed.
    pub fn compressed(&self) -> bool {
        self.compress_algorithm == 1
    }
}

/// Read the `KDMV` header of `file`, replacing it by the footer copy when
/// the header says [`GD_AT_END`] (streamOptimized written as a stream).
pub fn read_sparse_header(file: &ImageFile) -> Result<SparseHeader> {
    let path = file.path();
    let mut b = [0u8; 512];
    file.read_exact_at(&mut b, 0)?;
    let h = SparseHeader::parse(&b)
        .ok_or_else(|| Error::corrupt(path, 0, "expected the KDMV sparse extent magic"))?;
    if h.version == 0 || h.version > 3 {
        return Err(Error::unsupported(
            path,
            format!(
                "sparse extent version {}; versions 1 to 3 are supported",
                h.version
            ),
        ));
    }
    if h.flags & FLAG_NL_DETECT != 0 && h.nl_chars != *b"\n \r\n" {
        return Err(Error::corrupt(
            path,
            73,
            format!(
                "newline-detection bytes are {:02x?}, expected 0a 20 0d 0a: the file was \
                 corrupted by a text-mode (ASCII) transfer",
                h.nl_chars
            ),
        ));
    }
    if h.gd_offset != GD_AT_END {
        return Ok(h);
    }
    // Footer layout at the end: footer marker, footer header, EOS marker.
    let len = file.len();
    if len < 512 + 1536 {
        return Err(Error::corrupt(
            path,
            len,
            "header says the grain directory is in the footer, but the file is too short for one",
        ));
    }
    let base = len - 1536;
    let mut tail = [0u8; 1536];
    file.read_exact_at(&mut tail, base)?;
    let marker_ok = |o: usize, ty: u32| le::u32(&tail, o + 8) == 0 && le::u32(&tail, o + 12) == ty;
    if !marker_ok(0, MARKER_FOOTER) {
        return Err(Error::corrupt(
            path,
            base,
            "expected a footer marker (size 0, type 3) 1536 bytes before the end of the file",
        ));
    }
    if !marker_ok(1024, MARKER_EOS) || le::u64(&tail, 1024) != 0 {
        return Err(Error::corrupt(
            path,
            base + 1024,
            "expected an end-of-stream marker in the last sector",
        ));
    }
    let fb: [u8; 512] = tail[512..1024].try_into().expect("512-byte slice");
    let f = SparseHeader::parse(&fb)
        .ok_or_else(|| Error::corrupt(path, base + 512, "expected the KDMV footer header"))?;
    if f.gd_offset == GD_AT_END {
        return Err(Error::corrupt(
            path,
            base + 512,
            "footer header does not give the grain directory location either",
        ));
    }
    if f.capacity != h.capacity || f.grain_size != h.grain_size {
        return Err(Error::corrupt(
            path,
            base + 512,
            format!(
                "footer capacity/grain size ({}/{}) differ from the header ({}/{})",
                f.capacity, f.grain_size, h.capacity, h.grain_size
            ),
        ));
    }
    Ok(f)
}

/// The ESX `COWD` (vmfsSparse) header fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CowdHeader {
    /// Format version.
    pub version: u32,
    /// Flag bits.
    pub flags: u32,
    /// Capacity in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_size: u64,
    /// Grain directory, in sectors.
    pub gd_offset: u64,
    /// Number of grain directory entries.
    pub gd_entries: u32,
}

/// Grain table entries per grain table in a `COWD` extent (fixed).
pub const COWD_GTES_PER_GT: u32 = 4096;

/// Read the `COWD` header of `file`.
pub fn read_cowd_header(file: &ImageFile) -> Result<CowdHeader> {
    let mut b = [0u8; 32];
    file.read_exact_at(&mut b, 0)?;
    if le::u32(&b, 0) != COWD_MAGIC {
        return Err(Error::corrupt(file.path(), 0, "expected the COWD magic"));
    }
    Ok(CowdHeader {
        version: le::u32(&b, 4),
        flags: le::u32(&b, 8),
        capacity: u64::from(le::u32(&b, 12)),
        grain_size: u64::from(le::u32(&b, 16)),
        gd_offset: u64::from(le::u32(&b, 20)),
        gd_entries: le::u32(&b, 24),
    })
}

/// An error for an unsupported compression algorithm.
pub fn unsupported_compression(file: &ImageFile, alg: u16) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("compression algorithm {alg}; only 0 (none) and 1 (deflate) are defined"),
    )
    .at(file.path(), 77)
}
