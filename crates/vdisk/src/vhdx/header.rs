//! VHDX header section (MS-VHDX 2.2): file type identifier, the two
//! headers and the region table. All fields are little-endian; GUIDs use
//! the Microsoft mixed-endian layout.

use crate::error::{Error, Result};
use crate::file::{le, ImageFile};
use std::path::Path;

/// A GUID as stored on disk (16 bytes, Microsoft layout).
pub type Guid = [u8; 16];

/// Format a GUID the Windows way (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`,
/// lowercase): the first three groups are little-endian.
pub fn guid_string(g: &Guid) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        le::u32(g, 0),
        le::u16(g, 4),
        le::u16(g, 6),
        g[8],
        g[9],
        g[10..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Parse a GUID string (with or without braces) into its on-disk form.
pub fn guid_parse(s: &str) -> Option<Guid> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut g = raw;
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    Some(g)
}

/// A constant GUID from its text form.
pub const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

/// BAT region 2DC27766-F623-4200-9D64-115E9BFD4A08.
pub const REGION_BAT: Guid = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
/// Metadata region 8B7CA206-4790-4B9A-B8FE-575F050F886E.
pub const REGION_METADATA: Guid = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);

/// Offsets of the two headers.
pub const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
/// Offsets of the two region tables.
pub const REGION_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
const HEADER_SIZE: usize = 4096;
const REGION_SIZE: usize = 64 << 10;

/// CRC-32C of `buf` with the 4-byte checksum field at `at` taken as zero.
pub fn crc_with_zeroed(buf: &[u8], at: usize) -> u32 {
    let c = crc32c::crc32c(&buf[..at]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &buf[at + 4..])
}

/// One VHDX header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Sequence number (higher is newer).
    pub sequence: u64,
    /// FileWriteGuid.
    pub file_write_guid: Guid,
    /// DataWriteGuid (a child's parent_linkage names it).
    pub data_write_guid: Guid,
    /// LogGuid; all zero when the log is clean.
    pub log_guid: Guid,
    /// Log format version (0).
    pub log_version: u16,
    /// Format version (1).
    pub version: u16,
    /// Log length in bytes.
    pub log_length: u32,
    /// Log offset in bytes.
    pub log_offset: u64,
}

fn parse_header(b: &[u8], path: &Path, off: u64) -> Result<Header> {
    if &b[0..4] != b"head" {
        return Err(Error::corrupt(
            path,
            off,
            "VHDX header: expected signature \"head\"",
        ));
    }
    let stored = le::u32(b, 4);
    let calc = crc_with_zeroed(b, 4);
    if stored != calc {
        return Err(Error::corrupt(
            path,
            off,
            format!("VHDX header CRC-32C is {stored:#010x}, computed {calc:#010x}"),
        ));
    }
    Ok(Header {
        sequence: le::u64(b, 8),
        file_write_guid: b[16..32].try_into().unwrap(),
        data_write_guid: b[32..48].try_into().unwrap(),
        log_guid: b[48..64].try_into().unwrap(),
        log_version: le::u16(b, 64),
        version: le::u16(b, 66),
        log_length: le::u32(b, 68),
        log_offset: le::u64(b, 72),
    })
}

/// Check the file type identifier and choose the current header (valid,
/// highest sequence number). Returns the header and any warning.
pub fn read_current_header(file: &ImageFile, warnings: &mut Vec<String>) -> Result<Header> {
    let path = file.path();
    let mut id = [0u8; 8];
    file.read_exact_at(&mut id, 0)?;
    if &id != b"vhdxfile" {
        return Err(Error::corrupt(
            path,
            0,
            "expected VHDX file identifier \"vhdxfile\"",
        ));
    }
    let mut parsed = Vec::new();
    for off in HEADER_OFFSETS {
        let mut b = vec![0u8; HEADER_SIZE];
        parsed.push(
            file.read_exact_at(&mut b, off)
                .and_then(|_| parse_header(&b, path, off)),
        );
    }
    let h2 = parsed.pop().unwrap();
    let h1 = parsed.pop().unwrap();
    let h = match (h1, h2) {
        (Ok(a), Ok(b)) => {
            if a.sequence > b.sequence {
                a
            } else if b.sequence > a.sequence {
                b
            } else if a == b {
                a
            } else {
                return Err(Error::corrupt(
                    path,
                    HEADER_OFFSETS[0],
                    format!(
                        "both VHDX headers are valid with the same sequence number {} but differ; cannot tell which is current",
                        a.sequence
                    ),
                ));
            }
        }
        (Ok(a), Err(e)) | (Err(e), Ok(a)) => {
            warnings.push(format!("one VHDX header is invalid ({e}); using the other"));
            a
        }
        (Err(e1), Err(e2)) => {
            return Err(Error::corrupt(
                path,
                HEADER_OFFSETS[0],
                format!(
                    "neither VHDX header is valid: {}; {}",
                    e1.message, e2.message
                ),
            ))
        }
    };
    if h.version != 1 {
        return Err(Error::unsupported(
            path,
            format!("VHDX header version {}, expected 1", h.version),
        ));
    }
    Ok(h)
}

/// A region table entry.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// Region GUID.
    pub guid: Guid,
    /// File offset.
    pub offset: u64,
    /// Length in bytes.
    pub length: u32,
}

/// Parse one region table copy (64 KiB) read at `off`.
pub fn parse_region_table(b: &[u8], path: &Path, off: u64) -> Result<Vec<Region>> {
    if b.len() < REGION_SIZE || &b[0..4] != b"regi" {
        return Err(Error::corrupt(
            path,
            off,
            "VHDX region table: expected signature \"regi\"",
        ));
    }
    let stored = le::u32(b, 4);
    let calc = crc_with_zeroed(&b[..REGION_SIZE], 4);
    if stored != calc {
        return Err(Error::corrupt(
            path,
            off,
            format!("VHDX region table CRC-32C is {stored:#010x}, computed {calc:#010x}"),
        ));
    }
    let count = le::u32(b, 8);
    if count > 2047 {
        return Err(Error::corrupt(
            path,
            off + 8,
            format!("VHDX region table has {count} entries, at most 2047 allowed"),
        ));
    }
    let mut out = Vec::new();
    for i in 0..count as usize {
        let o = 16 + 32 * i;
        let guid: Guid = b[o..o + 16].try_into().unwrap();
        let offset = le::u64(b, o + 16);
        let length = le::u32(b, o + 24);
        let required = le::u32(b, o + 28) & 1 != 0;
        if guid != REGION_BAT && guid != REGION_METADATA {
            if required {
                return Err(Error::unsupported(
                    path,
                    format!(
                        "VHDX region table entry {i} at {:#x}: unknown required region {}",
                        off + o as u64,
                        guid_string(&guid)
                    ),
                ));
            }
            continue;
        }
        if offset < (1 << 20) || !offset.is_multiple_of(1 << 20) {
            return Err(Error::corrupt(
                path,
                off + o as u64 + 16,
                format!(
                    "VHDX region {} at offset {offset:#x}: expected a multiple of 1 MiB, at least 1 MiB",
                    guid_string(&guid)
                ),
            ));
        }
        out.push(Region {
            guid,
            offset,
            length,
        });
    }
    Ok(out)
}

/// Size of a region table copy.
pub const REGION_TABLE_SIZE: usize = REGION_SIZE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_roundtrip() {
        let s = guid_string(&REGION_BAT);
        assert_eq!(s, "2dc27766-f623-4200-9d64-115e9bfd4a08");
        assert_eq!(guid_parse(&format!("{{{s}}}")), Some(REGION_BAT));
        assert_eq!(guid_parse("{zz}"), None);
    }
}
