//! The 4096-byte base block (file header) of a primary file or a log.

use crate::error::{Error, Result};

/// Size of the base block.
pub const BASE_SIZE: usize = 4096;

/// Little-endian u32 at `off` (caller guarantees bounds).
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
/// Little-endian u16 at `off`.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
/// Little-endian u64 at `off`.
pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
/// Store a little-endian u32.
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
/// Store a little-endian u16.
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
/// Store a little-endian u64.
pub(crate) fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// XOR-32 checksum of the first 508 bytes, with Windows' two fix-ups
/// (0 becomes 1, 0xFFFFFFFF becomes 0xFFFFFFFE).
pub fn checksum(b: &[u8]) -> u32 {
    let mut c = 0u32;
    for i in 0..127 {
        c ^= le32(b, i * 4);
    }
    match c {
        0 => 1,
        0xFFFF_FFFF => 0xFFFF_FFFE,
        c => c,
    }
}

/// Decoded fields of a base block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBlock {
    /// Primary sequence number (incremented when a write starts).
    pub seq1: u32,
    /// Secondary sequence number (incremented when a write ends).
    pub seq2: u32,
    /// Last written FILETIME.
    pub timestamp: u64,
    /// Major version (1).
    pub major: u32,
    /// Minor version (3..=6).
    pub minor: u32,
    /// File type: 0 primary, 1/2 legacy log, 6 new-format log.
    pub file_type: u32,
    /// Root cell offset.
    pub root: u32,
    /// Hive bins data size.
    pub bins_size: u32,
    /// Flags (Windows 10).
    pub flags: u32,
    /// Whether the stored checksum matches.
    pub checksum_ok: bool,
}

impl BaseBlock {
    /// Parse the first 512 bytes (signature checked, values not validated).
    pub fn parse(b: &[u8], file_offset: u64) -> Result<BaseBlock> {
        if b.len() < 512 {
            return Err(Error::corrupt(
                file_offset,
                format!("file is {} bytes, a base block needs 512", b.len()),
            ));
        }
        if &b[0..4] != b"regf" {
            return Err(Error::corrupt(
                file_offset,
                format!("signature {:02x?}, expected \"regf\"", &b[0..4]),
            ));
        }
        Ok(BaseBlock {
            seq1: le32(b, 4),
            seq2: le32(b, 8),
            timestamp: le64(b, 12),
            major: le32(b, 20),
            minor: le32(b, 24),
            file_type: le32(b, 28),
            root: le32(b, 36),
            bins_size: le32(b, 40),
            flags: le32(b, 144),
            checksum_ok: checksum(b) == le32(b, 508),
        })
    }
}

/// FILETIME of now.
pub fn filetime_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() + 11_644_473_600) * 10_000_000 + d.subsec_nanos() as u64 / 100
}
