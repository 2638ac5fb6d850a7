//! MFT records ("FILE") and the multi-sector fixups shared with index
//! blocks ("INDX"); attribute headers inside a record.

use crate::error::{corrupt, Error, Result};
use crate::util::{get, put16, put32, u16le, u32le, u64le, utf16_units};

/// Attribute type codes.
pub mod ty {
    /// $STANDARD_INFORMATION
    pub const STANDARD_INFORMATION: u32 = 0x10;
    /// $ATTRIBUTE_LIST
    pub const ATTRIBUTE_LIST: u32 = 0x20;
    /// $FILE_NAME
    pub const FILE_NAME: u32 = 0x30;
    /// $SECURITY_DESCRIPTOR
    pub const SECURITY_DESCRIPTOR: u32 = 0x50;
    /// $VOLUME_NAME
    pub const VOLUME_NAME: u32 = 0x60;
    /// $VOLUME_INFORMATION
    pub const VOLUME_INFORMATION: u32 = 0x70;
    /// $DATA
    pub const DATA: u32 = 0x80;
    /// $INDEX_ROOT
    pub const INDEX_ROOT: u32 = 0x90;
    /// $INDEX_ALLOCATION
    pub const INDEX_ALLOCATION: u32 = 0xa0;
    /// $BITMAP
    pub const BITMAP: u32 = 0xb0;
    /// $REPARSE_POINT
    pub const REPARSE_POINT: u32 = 0xc0;
    /// End marker.
    pub const END: u32 = 0xffff_ffff;
}

/// Attribute flag: compressed.
pub const ATTR_COMPRESSED: u16 = 0x0001;
/// Attribute flag: encrypted.
pub const ATTR_ENCRYPTED: u16 = 0x4000;
/// Attribute flag: sparse.
pub const ATTR_SPARSE: u16 = 0x8000;

/// Record flag: in use.
pub const REC_IN_USE: u16 = 0x0001;
/// Record flag: directory (has a $I30 index).
pub const REC_DIRECTORY: u16 = 0x0002;

/// Undo the update-sequence protection of a multi-sector structure in
/// place. `pos` is only used in error messages.
pub fn apply_fixups(buf: &mut [u8], pos: u64, what: &str) -> Result<()> {
    if buf.len() < 512 || !buf.len().is_multiple_of(512) {
        return Err(corrupt(
            pos,
            format!("{what}: size {} is not a multiple of 512", buf.len()),
        ));
    }
    let usa_ofs = usize::from(u16le(buf, 4));
    let usa_cnt = usize::from(u16le(buf, 6));
    let sectors = buf.len() / 512;
    if usa_cnt != sectors + 1 || usa_ofs % 2 != 0 || usa_ofs + 2 * usa_cnt > 512 {
        return Err(corrupt(
            pos,
            format!("{what}: update sequence array at {usa_ofs:#x} with {usa_cnt} entries, expected {} entries inside the first sector", sectors + 1),
        ));
    }
    let usn = u16le(buf, usa_ofs);
    for i in 0..sectors {
        let end = (i + 1) * 512 - 2;
        if u16le(buf, end) != usn {
            return Err(corrupt(
                pos + end as u64,
                format!("{what}: fixup mismatch in sector {i} (torn or corrupt write): found {:#06x}, expected {usn:#06x}", u16le(buf, end)),
            ));
        }
        let v = u16le(buf, usa_ofs + 2 * (i + 1));
        put16(buf, end, v);
    }
    Ok(())
}

/// Protect a multi-sector structure for writing: bump the update sequence
/// number and move each sector's last two bytes into the array. Returns
/// the on-disk image; `buf` keeps its clean form (with the new USN).
pub fn protect(buf: &mut [u8]) -> Vec<u8> {
    let usa_ofs = usize::from(u16le(buf, 4));
    let sectors = buf.len() / 512;
    let mut usn = u16le(buf, usa_ofs).wrapping_add(1);
    if usn == 0 || usn == 0xffff {
        usn = 1;
    }
    put16(buf, usa_ofs, usn);
    let mut out = buf.to_vec();
    for i in 0..sectors {
        let end = (i + 1) * 512 - 2;
        let v = u16le(buf, end);
        put16(&mut out, usa_ofs + 2 * (i + 1), v);
        put16(buf, usa_ofs + 2 * (i + 1), v);
        put16(&mut out, end, usn);
    }
    out
}

/// Parsed attribute header (positions are offsets inside the record).
#[derive(Debug, Clone)]
pub struct Attr {
    /// Type code.
    pub ty: u32,
    /// Attribute name (UTF-16 units).
    pub name: Vec<u16>,
    /// Flags (compressed/encrypted/sparse).
    pub flags: u16,
    /// Attribute instance id.
    pub id: u16,
    /// Offset of the header in the record.
    pub offset: usize,
    /// Total length of the attribute in the record.
    pub len: usize,
    /// Resident or not.
    pub body: Body,
}

/// Resident value or non-resident description.
#[derive(Debug, Clone)]
pub enum Body {
    /// Value stored in the record.
    Resident {
        /// Offset of the value in the record.
        value_off: usize,
        /// Value length.
        value_len: usize,
    },
    /// Value stored in clusters.
    NonResident {
        /// First VCN described by this extent.
        start_vcn: u64,
        /// Last VCN described by this extent.
        last_vcn: u64,
        /// Offset of the mapping pairs in the record.
        runs_off: usize,
        /// log2 of the compression unit in clusters (0 = none).
        comp_unit: u8,
        /// Allocated bytes.
        alloc: u64,
        /// Data size.
        size: u64,
        /// Initialized size.
        init: u64,
    },
}

impl Attr {
    /// True for a resident attribute.
    pub fn resident(&self) -> bool {
        matches!(self.body, Body::Resident { .. })
    }
}

/// An MFT record with fixups applied.
#[derive(Debug, Clone)]
pub struct Record {
    /// Record number.
    pub no: u64,
    /// Clean bytes (fixups undone).
    pub buf: Vec<u8>,
    /// Volume byte offset (for messages).
    pub pos: u64,
}

impl Record {
    /// Parse a raw record read from `pos`.
    pub fn parse(no: u64, mut buf: Vec<u8>, pos: u64) -> Result<Self> {
        if &buf[0..4] != b"FILE" {
            if buf[0..4] == [0, 0, 0, 0] {
                return Err(corrupt(
                    pos,
                    format!("MFT record {no} is empty (never used), expected FILE"),
                ));
            }
            return Err(corrupt(
                pos,
                format!(
                    "MFT record {no}: signature {:?}, expected \"FILE\"",
                    String::from_utf8_lossy(&buf[0..4])
                ),
            ));
        }
        apply_fixups(&mut buf, pos, &format!("MFT record {no}"))?;
        let r = Record { no, buf, pos };
        let first = r.first_attr();
        let used = r.bytes_used();
        if first < 0x18 || first >= r.buf.len() || used > r.buf.len() || used < first {
            return Err(corrupt(pos, format!("MFT record {no}: first attribute at {first:#x}, bytes in use {used:#x}, record size {:#x}", r.buf.len())));
        }
        Ok(r)
    }
    /// Sequence number.
    pub fn seq(&self) -> u16 {
        u16le(&self.buf, 0x10)
    }
    /// Hard link count.
    pub fn links(&self) -> u16 {
        u16le(&self.buf, 0x12)
    }
    /// Offset of the first attribute.
    pub fn first_attr(&self) -> usize {
        usize::from(u16le(&self.buf, 0x14))
    }
    /// Record flags.
    pub fn flags(&self) -> u16 {
        u16le(&self.buf, 0x16)
    }
    /// Bytes in use.
    pub fn bytes_used(&self) -> usize {
        u32le(&self.buf, 0x18) as usize
    }
    /// Base record reference (0 for a base record).
    pub fn base_ref(&self) -> u64 {
        u64le(&self.buf, 0x20)
    }
    /// Next attribute instance id.
    pub fn next_id(&self) -> u16 {
        u16le(&self.buf, 0x28)
    }
    /// In use?
    pub fn in_use(&self) -> bool {
        self.flags() & REC_IN_USE != 0
    }
    /// Directory flag.
    pub fn is_dir(&self) -> bool {
        self.flags() & REC_DIRECTORY != 0
    }

    /// All attributes, validated against the record bounds.
    pub fn attrs(&self) -> Result<Vec<Attr>> {
        let mut out = Vec::new();
        let mut o = self.first_attr();
        let used = self.bytes_used();
        loop {
            let hdr = get(&self.buf, o, 4)
                .ok_or_else(|| self.err(o, "attribute header past the record end"))?;
            let t = u32::from_le_bytes(hdr.try_into().expect("4"));
            if t == ty::END {
                break;
            }
            if o + 0x18 > used {
                return Err(self.err(o, "attribute header past bytes in use"));
            }
            out.push(self.parse_attr(o)?);
            o += out.last().map(|a| a.len).unwrap_or(0);
            if out.len() > 512 {
                return Err(self.err(o, "more than 512 attributes in one record"));
            }
        }
        Ok(out)
    }

    fn err(&self, o: usize, m: &str) -> Error {
        corrupt(self.pos + o as u64, format!("MFT record {}: {m}", self.no))
    }

    /// Parse the attribute header at offset `o`.
    pub fn parse_attr(&self, o: usize) -> Result<Attr> {
        let b = &self.buf;
        let used = self.bytes_used();
        let t = u32le(b, o);
        let len = u32le(b, o + 4) as usize;
        if len < 0x18 || !len.is_multiple_of(8) || o + len > used {
            return Err(self.err(o, &format!("attribute type {t:#x} length {len:#x} is not a multiple of 8 inside bytes in use {used:#x}")));
        }
        let nonres = b[o + 8];
        let name_len = usize::from(b[o + 9]);
        let name_off = usize::from(u16le(b, o + 10));
        let name = if name_len > 0 {
            let n = get(b, o + name_off, name_len * 2)
                .filter(|_| name_off + name_len * 2 <= len)
                .ok_or_else(|| self.err(o, "attribute name past the attribute end"))?;
            utf16_units(n)
        } else {
            Vec::new()
        };
        let flags = u16le(b, o + 0x0c);
        let id = u16le(b, o + 0x0e);
        let body = if nonres == 0 {
            let value_len = u32le(b, o + 0x10) as usize;
            let value_off = usize::from(u16le(b, o + 0x14));
            if value_off.checked_add(value_len).is_none_or(|e| e > len) {
                return Err(self.err(o, &format!("resident value {value_off:#x}+{value_len:#x} past attribute length {len:#x}")));
            }
            Body::Resident {
                value_off: o + value_off,
                value_len,
            }
        } else {
            if len < 0x40 {
                return Err(self.err(
                    o,
                    "non-resident attribute shorter than its 0x40-byte header",
                ));
            }
            let runs_off = usize::from(u16le(b, o + 0x20));
            if runs_off >= len {
                return Err(self.err(o, "mapping pairs offset past the attribute end"));
            }
            let start_vcn = u64le(b, o + 0x10);
            let last_vcn = u64le(b, o + 0x18);
            let alloc = u64le(b, o + 0x28);
            let size = u64le(b, o + 0x30);
            let init = u64le(b, o + 0x38);
            if start_vcn == 0 && (size > alloc || init > size) {
                return Err(self.err(o, &format!("sizes: allocated {alloc}, data {size}, initialized {init}: expected init <= data <= allocated")));
            }
            Body::NonResident {
                start_vcn,
                last_vcn,
                runs_off: o + runs_off,
                comp_unit: b[o + 0x22],
                alloc,
                size,
                init,
            }
        };
        Ok(Attr {
            ty: t,
            name,
            flags,
            id,
            offset: o,
            len,
            body,
        })
    }

    /// Resident value bytes of `a`.
    pub fn value(&self, a: &Attr) -> &[u8] {
        match a.body {
            Body::Resident {
                value_off,
                value_len,
            } => &self.buf[value_off..value_off + value_len],
            Body::NonResident { .. } => &[],
        }
    }

    /// Mapping pair bytes of a non-resident `a`.
    pub fn runs_bytes(&self, a: &Attr) -> &[u8] {
        match a.body {
            Body::NonResident { runs_off, .. } => &self.buf[runs_off..a.offset + a.len],
            Body::Resident { .. } => &[],
        }
    }

    /// Free bytes in the record.
    pub fn free(&self) -> usize {
        self.buf.len().saturating_sub(self.bytes_used())
    }

    /// Replace the `len` bytes of the attribute at `o` with `new` (a whole
    /// attribute, 8-aligned), shifting the rest. Errors when it does not fit.
    pub fn splice(&mut self, o: usize, old_len: usize, new: &[u8]) -> Result<()> {
        let used = self.bytes_used();
        let new_used = used - old_len + new.len();
        if new_used > self.buf.len() {
            return Err(Error::NoSpace(format!(
                "MFT record {} would need {new_used} bytes, it has {} (attribute lists are not created by this engine)",
                self.no,
                self.buf.len()
            )));
        }
        let tail: Vec<u8> = self.buf[o + old_len..used].to_vec();
        self.buf[o..o + new.len()].copy_from_slice(new);
        self.buf[o + new.len()..o + new.len() + tail.len()].copy_from_slice(&tail);
        for x in &mut self.buf[new_used..used.max(new_used)] {
            *x = 0;
        }
        put32(&mut self.buf, 0x18, new_used as u32);
        Ok(())
    }

    /// Insert a whole attribute in type/name order; returns its offset.
    /// The attribute id inside `bytes` is set from the record's counter.
    pub fn insert_attr(&mut self, mut bytes: Vec<u8>) -> Result<usize> {
        let t = u32le(&bytes, 0);
        let id = self.next_id();
        put16(&mut bytes, 0x0e, id);
        let attrs = self.attrs()?;
        let name_len = usize::from(bytes[9]);
        let name_off = usize::from(u16le(&bytes, 10));
        let name = utf16_units(&bytes[name_off..name_off + 2 * name_len]);
        let pos = attrs
            .iter()
            .find(|a| a.ty > t || (a.ty == t && a.name > name))
            .map(|a| a.offset)
            .unwrap_or_else(|| self.bytes_used() - 8);
        self.splice(pos, 0, &bytes)?;
        put16(&mut self.buf, 0x28, id.wrapping_add(1));
        Ok(pos)
    }

    /// Find the first attribute of type `t` named `name` (in this record).
    pub fn find(&self, t: u32, name: &[u16]) -> Result<Option<Attr>> {
        Ok(self
            .attrs()?
            .into_iter()
            .find(|a| a.ty == t && a.name == name))
    }
}

/// Build a resident attribute (header + name + value), id 0.
pub fn build_resident(t: u32, name: &[u16], value: &[u8], indexed: bool) -> Vec<u8> {
    let name_off = 0x18;
    let value_off = crate::util::align(name_off + 2 * name.len(), 8);
    let len = crate::util::align(value_off + value.len(), 8);
    let mut b = vec![0u8; len];
    put32(&mut b, 0, t);
    put32(&mut b, 4, len as u32);
    b[8] = 0;
    b[9] = name.len() as u8;
    put16(&mut b, 10, name_off as u16);
    put32(&mut b, 0x10, value.len() as u32);
    put16(&mut b, 0x14, value_off as u16);
    b[0x16] = u8::from(indexed);
    b[name_off..name_off + 2 * name.len()].copy_from_slice(&crate::util::units_to_bytes(name));
    b[value_off..value_off + value.len()].copy_from_slice(value);
    b
}

/// Build a non-resident attribute with the given mapping pairs and sizes.
pub fn build_nonresident(
    t: u32,
    name: &[u16],
    runs: &[u8],
    last_vcn: u64,
    alloc: u64,
    size: u64,
    init: u64,
) -> Vec<u8> {
    let name_off = 0x40;
    let runs_off = crate::util::align(name_off + 2 * name.len(), 8);
    let len = crate::util::align(runs_off + runs.len(), 8);
    let mut b = vec![0u8; len];
    put32(&mut b, 0, t);
    put32(&mut b, 4, len as u32);
    b[8] = 1;
    b[9] = name.len() as u8;
    put16(&mut b, 10, name_off as u16);
    crate::util::put64(&mut b, 0x10, 0);
    crate::util::put64(&mut b, 0x18, last_vcn);
    put16(&mut b, 0x20, runs_off as u16);
    crate::util::put64(&mut b, 0x28, alloc);
    crate::util::put64(&mut b, 0x30, size);
    crate::util::put64(&mut b, 0x38, init);
    b[name_off..name_off + 2 * name.len()].copy_from_slice(&crate::util::units_to_bytes(name));
    b[runs_off..runs_off + runs.len()].copy_from_slice(runs);
    b
}
