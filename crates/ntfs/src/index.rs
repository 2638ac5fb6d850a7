//! Directory indexes: $FILE_NAME keys, index entries, INDX blocks and the
//! read side of the B+tree ($INDEX_ROOT / $INDEX_ALLOCATION / $BITMAP).

use crate::error::{corrupt, Result};
use crate::util::{
    align, get, put16, put32, put64, u16le, u32le, u64le, units_to_bytes, utf16_units,
};

/// $FILE_NAME namespaces.
pub mod ns {
    /// Case-sensitive POSIX name.
    pub const POSIX: u8 = 0;
    /// Win32 long name.
    pub const WIN32: u8 = 1;
    /// DOS 8.3 name.
    pub const DOS: u8 = 2;
    /// A name valid in both Win32 and DOS.
    pub const WIN32_DOS: u8 = 3;
}

/// $FILE_NAME flag: the file is a directory (has a $I30 index).
pub const FN_DIRECTORY: u32 = 0x1000_0000;

/// A $FILE_NAME attribute value (also the key of a $I30 index entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// Parent directory reference (record | seq << 48).
    pub parent: u64,
    /// Creation time.
    pub ctime: u64,
    /// Modification time.
    pub mtime: u64,
    /// MFT change time.
    pub mft_time: u64,
    /// Access time.
    pub atime: u64,
    /// Allocated size.
    pub alloc: u64,
    /// Data size.
    pub size: u64,
    /// File attribute flags.
    pub flags: u32,
    /// Reparse tag or EA size.
    pub reparse: u32,
    /// Namespace (see [`ns`]).
    pub namespace: u8,
    /// Name (UTF-16 units).
    pub name: Vec<u16>,
}

impl FileName {
    /// Parse a $FILE_NAME value.
    pub fn parse(b: &[u8], pos: u64) -> Result<Self> {
        if b.len() < 0x42 {
            return Err(corrupt(
                pos,
                format!(
                    "$FILE_NAME value of {} bytes, expected at least 0x42",
                    b.len()
                ),
            ));
        }
        let n = usize::from(b[0x40]);
        let name = get(b, 0x42, 2 * n).ok_or_else(|| {
            corrupt(
                pos,
                format!("$FILE_NAME name of {n} characters runs past the value"),
            )
        })?;
        Ok(FileName {
            parent: u64le(b, 0),
            ctime: u64le(b, 8),
            mtime: u64le(b, 0x10),
            mft_time: u64le(b, 0x18),
            atime: u64le(b, 0x20),
            alloc: u64le(b, 0x28),
            size: u64le(b, 0x30),
            flags: u32le(b, 0x38),
            reparse: u32le(b, 0x3c),
            namespace: b[0x41],
            name: utf16_units(name),
        })
    }
    /// Serialize.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 0x42 + 2 * self.name.len()];
        put64(&mut b, 0, self.parent);
        put64(&mut b, 8, self.ctime);
        put64(&mut b, 0x10, self.mtime);
        put64(&mut b, 0x18, self.mft_time);
        put64(&mut b, 0x20, self.atime);
        put64(&mut b, 0x28, self.alloc);
        put64(&mut b, 0x30, self.size);
        put32(&mut b, 0x38, self.flags);
        put32(&mut b, 0x3c, self.reparse);
        b[0x40] = self.name.len() as u8;
        b[0x41] = self.namespace;
        b[0x42..].copy_from_slice(&units_to_bytes(&self.name));
        b
    }
    /// Record number of the parent.
    pub fn parent_no(&self) -> u64 {
        self.parent & 0xffff_ffff_ffff
    }
}

/// One index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IEntry {
    /// File reference (record | seq << 48) of the named file.
    pub fileref: u64,
    /// Key ($FILE_NAME bytes); empty for the end entry.
    pub key: Vec<u8>,
    /// VCN of the child node holding smaller keys.
    pub child: Option<u64>,
    /// The last entry of a node (no key).
    pub end: bool,
}

impl IEntry {
    /// An end entry.
    pub fn end(child: Option<u64>) -> Self {
        IEntry {
            fileref: 0,
            key: Vec::new(),
            child,
            end: true,
        }
    }
    /// On-disk length.
    pub fn disk_len(&self) -> usize {
        align(0x10 + self.key.len(), 8) + if self.child.is_some() { 8 } else { 0 }
    }
    /// The key decoded as a $FILE_NAME.
    pub fn file_name(&self) -> Result<FileName> {
        FileName::parse(&self.key, 0)
    }
    /// The name units of the key (fast path, no allocation of the rest).
    pub fn name(&self) -> &[u8] {
        if self.key.len() < 0x42 {
            return &[];
        }
        let n = usize::from(self.key[0x40]);
        self.key.get(0x42..0x42 + 2 * n).unwrap_or(&[])
    }
    fn write(&self, out: &mut Vec<u8>) {
        let len = self.disk_len();
        let s = out.len();
        out.resize(s + len, 0);
        let b = &mut out[s..];
        put64(b, 0, self.fileref);
        put16(b, 8, len as u16);
        put16(b, 10, self.key.len() as u16);
        let flags = u16::from(self.child.is_some()) | if self.end { 2 } else { 0 };
        put16(b, 12, flags);
        b[0x10..0x10 + self.key.len()].copy_from_slice(&self.key);
        if let Some(c) = self.child {
            put64(b, len - 8, c);
        }
    }
}

/// Parse the entries of a node: `b[start..end]`; the last must be an end
/// entry.
pub fn parse_entries(b: &[u8], start: usize, end: usize, pos: u64) -> Result<Vec<IEntry>> {
    let mut out = Vec::new();
    let mut o = start;
    loop {
        if o + 0x10 > end || end > b.len() {
            return Err(corrupt(
                pos + o as u64,
                "index entry past the node's used size (no end entry)",
            ));
        }
        let len = usize::from(u16le(b, o + 8));
        let klen = usize::from(u16le(b, o + 10));
        let flags = u16le(b, o + 12);
        if len < 0x10 || len % 8 != 0 || o + len > end || 0x10 + klen > len {
            return Err(corrupt(
                pos + o as u64,
                format!("index entry length {len:#x} (key {klen:#x}) invalid or past the node end"),
            ));
        }
        let has_child = flags & 1 != 0;
        if has_child && len < 0x18 + if flags & 2 != 0 { 0 } else { klen } {
            return Err(corrupt(
                pos + o as u64,
                "index entry too short for its child VCN",
            ));
        }
        let child = has_child.then(|| u64le(b, o + len - 8));
        let is_end = flags & 2 != 0;
        let key = if is_end {
            Vec::new()
        } else {
            b[o + 0x10..o + 0x10 + klen].to_vec()
        };
        if !is_end && key.len() < 0x42 {
            return Err(corrupt(
                pos + o as u64,
                "index key shorter than a $FILE_NAME",
            ));
        }
        out.push(IEntry {
            fileref: u64le(b, o),
            key,
            child,
            end: is_end,
        });
        o += len;
        if is_end {
            return Ok(out);
        }
        if out.len() > 65536 {
            return Err(corrupt(pos, "more than 65536 entries in one index node"));
        }
    }
}

/// Serialize entries (the last must be an end entry).
pub fn write_entries(e: &[IEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for x in e {
        x.write(&mut out);
    }
    out
}

/// Bytes the entries take.
pub fn entries_len(e: &[IEntry]) -> usize {
    e.iter().map(IEntry::disk_len).sum()
}

/// The 16-byte header of an $INDEX_ROOT value, followed by a node header.
#[derive(Debug, Clone)]
pub struct RootHeader {
    /// Indexed attribute type (0x30 for directories).
    pub indexed_type: u32,
    /// Collation rule (1 = file names).
    pub collation: u32,
    /// Bytes per index block.
    pub block_size: u32,
    /// Clusters per index block (or 2^-n encoding byte).
    pub clusters_per_block: u8,
}

/// Parse an $INDEX_ROOT value: header + entries.
pub fn parse_root(v: &[u8], pos: u64) -> Result<(RootHeader, Vec<IEntry>, bool)> {
    if v.len() < 0x20 {
        return Err(corrupt(pos, "$INDEX_ROOT shorter than its 32-byte header"));
    }
    let h = RootHeader {
        indexed_type: u32le(v, 0),
        collation: u32le(v, 4),
        block_size: u32le(v, 8),
        clusters_per_block: v[12],
    };
    if !(512..=65536).contains(&h.block_size) || !h.block_size.is_power_of_two() {
        return Err(corrupt(
            pos,
            format!(
                "$INDEX_ROOT block size {} is not a power of two in 512..64K",
                h.block_size
            ),
        ));
    }
    let eo = u32le(v, 0x10) as usize;
    let used = u32le(v, 0x14) as usize;
    let large = v[0x1c] & 1 != 0;
    let e = parse_entries(v, 0x10 + eo, (0x10 + used).min(v.len()), pos)?;
    Ok((h, e, large))
}

/// Build an $INDEX_ROOT value.
pub fn build_root(h: &RootHeader, e: &[IEntry]) -> Vec<u8> {
    let ent = write_entries(e);
    let mut v = vec![0u8; 0x20];
    put32(&mut v, 0, h.indexed_type);
    put32(&mut v, 4, h.collation);
    put32(&mut v, 8, h.block_size);
    v[12] = h.clusters_per_block;
    put32(&mut v, 0x10, 0x10);
    put32(&mut v, 0x14, (0x10 + ent.len()) as u32);
    put32(&mut v, 0x18, (0x10 + ent.len()) as u32);
    v[0x1c] = u8::from(e.iter().any(|x| x.child.is_some()));
    v.extend_from_slice(&ent);
    v
}

/// Offset of the entries in an INDX block of `block_size` bytes.
pub fn indx_entries_offset(block_size: usize) -> usize {
    align(0x28 + 2 * (block_size / 512 + 1), 8)
}

/// Parse an INDX block (fixups already applied); checks its VCN.
pub fn parse_indx(b: &[u8], vcn: u64, pos: u64) -> Result<Vec<IEntry>> {
    if &b[0..4] != b"INDX" {
        return Err(corrupt(
            pos,
            format!(
                "index block VCN {vcn}: signature {:?}, expected \"INDX\"",
                String::from_utf8_lossy(&b[0..4])
            ),
        ));
    }
    if u64le(b, 0x10) != vcn {
        return Err(corrupt(
            pos,
            format!("index block says VCN {}, expected {vcn}", u64le(b, 0x10)),
        ));
    }
    let eo = u32le(b, 0x18) as usize;
    let used = u32le(b, 0x1c) as usize;
    if 0x18 + used > b.len() {
        return Err(corrupt(
            pos,
            format!("index block VCN {vcn}: used size {used:#x} past the block"),
        ));
    }
    parse_entries(b, 0x18 + eo, 0x18 + used, pos)
}

/// Build a clean INDX block (fixups not yet applied; USA zeroed).
pub fn build_indx(block_size: usize, vcn: u64, e: &[IEntry]) -> Option<Vec<u8>> {
    let eo = indx_entries_offset(block_size);
    let ent = write_entries(e);
    if eo + ent.len() > block_size {
        return None;
    }
    let mut b = vec![0u8; block_size];
    b[0..4].copy_from_slice(b"INDX");
    put16(&mut b, 4, 0x28);
    put16(&mut b, 6, (block_size / 512 + 1) as u16);
    put64(&mut b, 0x10, vcn);
    put32(&mut b, 0x18, (eo - 0x18) as u32);
    put32(&mut b, 0x1c, (eo - 0x18 + ent.len()) as u32);
    put32(&mut b, 0x20, (block_size - 0x18) as u32);
    b[0x24] = u8::from(e.iter().any(|x| x.child.is_some()));
    b[eo..eo + ent.len()].copy_from_slice(&ent);
    Some(b)
}

/// Capacity of an INDX block's entry area.
pub fn indx_capacity(block_size: usize) -> usize {
    block_size - indx_entries_offset(block_size)
}
