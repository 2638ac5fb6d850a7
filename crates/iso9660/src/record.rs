//! On-disk field helpers shared by the reader and the writer: both-endian
//! integers and the directory record layout (ECMA-119 9.1).

use crate::error::{corrupt, Result};

/// Fixed part of a directory record, before the file identifier.
pub(crate) const DIR_RECORD_FIXED: usize = 33;

/// Flag bits of a directory record.
pub(crate) const FLAG_DIRECTORY: u8 = 0x02;
pub(crate) const FLAG_ASSOCIATED: u8 = 0x04;
pub(crate) const FLAG_MULTI_EXTENT: u8 = 0x80;

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A both-endian 16-bit field (ECMA-119 7.2.3).
pub(crate) fn both16(v: u16) -> [u8; 4] {
    let [a, b] = v.to_le_bytes();
    [a, b, b, a]
}

/// A both-endian 32-bit field (ECMA-119 7.3.3).
pub(crate) fn both32(v: u32) -> [u8; 8] {
    let l = v.to_le_bytes();
    [l[0], l[1], l[2], l[3], l[3], l[2], l[1], l[0]]
}

/// One parsed directory record, borrowing its identifier and System Use field.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    /// Total record length in bytes.
    pub len: usize,
    /// Extended attribute record length in logical blocks.
    pub ear: u8,
    /// First logical block of the extent.
    pub lba: u32,
    /// Data length in bytes.
    pub size: u32,
    pub flags: u8,
    /// File unit size and interleave gap (non-zero: interleaved file).
    pub unit: u8,
    pub gap: u8,
    pub id: &'a [u8],
    /// The System Use field (SUSP entries live here).
    pub su: &'a [u8],
}

impl Record<'_> {
    /// Whether this is the "." (0x00) or ".." (0x01) record.
    pub fn is_dot(&self) -> bool {
        self.id == [0] || self.id == [1]
    }
}

/// Parse the record at the start of `buf` (which holds the rest of the
/// directory extent); `off` is its byte offset in the image, for errors.
pub(crate) fn parse(buf: &[u8], off: u64) -> Result<Record<'_>> {
    let len = usize::from(buf[0]);
    if len < DIR_RECORD_FIXED + 1 {
        return Err(corrupt(
            off,
            format!("directory record length {len} is below the minimum of 34 bytes"),
        ));
    }
    if len > buf.len() {
        return Err(corrupt(
            off,
            format!(
                "directory record of {len} bytes runs past the end of its directory extent ({} bytes left)",
                buf.len()
            ),
        ));
    }
    let idlen = usize::from(buf[32]);
    if idlen == 0 || DIR_RECORD_FIXED + idlen > len {
        return Err(corrupt(
            off,
            format!(
                "file identifier length {idlen} does not fit a directory record of {len} bytes"
            ),
        ));
    }
    let id = &buf[DIR_RECORD_FIXED..DIR_RECORD_FIXED + idlen];
    // A padding byte follows an even-length identifier.
    let su_start = DIR_RECORD_FIXED + idlen + usize::from(idlen.is_multiple_of(2));
    let su = if su_start < len {
        &buf[su_start..len]
    } else {
        &[][..]
    };
    Ok(Record {
        len,
        ear: buf[1],
        lba: le32(buf, 2),
        size: le32(buf, 10),
        flags: buf[25],
        unit: buf[26],
        gap: buf[27],
        id,
        su,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_endian() {
        assert_eq!(both16(0x1234), [0x34, 0x12, 0x12, 0x34]);
        assert_eq!(both32(0x0102_0304), [4, 3, 2, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn short_record_is_an_error() {
        let mut b = [0u8; 40];
        b[0] = 20;
        let e = parse(&b, 0x8000).unwrap_err();
        assert!(e.to_string().contains("0x8000"), "{e}");
        b[0] = 40;
        b[32] = 10;
        assert!(parse(&b, 0).is_err());
        b[32] = 5;
        b[33..38].copy_from_slice(b"A.B;1");
        let r = parse(&b, 0).unwrap();
        assert_eq!(r.id, b"A.B;1");
        assert_eq!(r.su.len(), 2);
    }
}
