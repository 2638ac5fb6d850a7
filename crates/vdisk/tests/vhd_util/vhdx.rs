//! Minimal VHDX structure access for tests, written from MS-VHDX: locate
//! the current header, regions and metadata items; write log entries; turn
//! a QEMU-made VHDX into a differencing child. QEMU refuses to create
//! differencing VHDX files ("Backing file not supported") and never leaves
//! a dirty log behind, so these structures are made here.

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// CRC-32C of `b` with the 4 bytes at `at` taken as zero, stored there.
pub fn fix_crc(b: &mut [u8], at: usize) {
    b[at..at + 4].fill(0);
    let c = crc32c::crc32c(b);
    b[at..at + 4].copy_from_slice(&c.to_le_bytes());
}

/// Where things are in a VHDX file.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Offset of the current header.
    pub header: usize,
    /// Log offset and length.
    pub log: (u64, u64),
    /// BAT region offset and length.
    pub bat: (u64, u64),
    /// Metadata region offset and length.
    pub meta: (u64, u64),
    /// DataWriteGuid of the current header.
    pub data_write_guid: [u8; 16],
}

/// Parse the layout of a clean VHDX.
pub fn layout(b: &[u8]) -> Layout {
    let s1 = u64le(b, 0x10000 + 8);
    let s2 = u64le(b, 0x20000 + 8);
    let header = if s1 > s2 { 0x10000 } else { 0x20000 };
    let mut bat = (0, 0);
    let mut meta = (0, 0);
    let rt = 0x30000;
    for i in 0..u32le(b, rt + 8) as usize {
        let e = rt + 16 + 32 * i;
        let r = (u64le(b, e + 16), u32le(b, e + 24) as u64);
        match &b[e..e + 4] {
            [0x66, 0x77, 0xc2, 0x2d] => bat = r,
            [0x06, 0xa2, 0x7c, 0x8b] => meta = r,
            _ => {}
        }
    }
    Layout {
        header,
        log: (u64le(b, header + 72), u32le(b, header + 68) as u64),
        bat,
        meta,
        data_write_guid: b[header + 32..header + 48].try_into().unwrap(),
    }
}

/// Format a GUID the Windows way, lowercase, in braces.
pub fn guid_braced(g: &[u8; 16]) -> String {
    format!(
        "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}}}",
        u32le(g, 0),
        u16le(g, 4),
        u16le(g, 6),
        g[8],
        g[9],
        g[10..]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// Payload BAT entry index of block `blk` for chunk ratio `cr`.
pub fn payload_index(blk: u64, cr: u64) -> usize {
    (blk + blk / cr) as usize
}

/// Set BAT entry `i`.
pub fn set_bat(b: &mut [u8], l: &Layout, i: usize, state: u64, file_off: u64) {
    let o = l.bat.0 as usize + 8 * i;
    let v = (file_off >> 20) << 20 | state;
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// Read BAT entry `i`.
pub fn bat(b: &[u8], l: &Layout, i: usize) -> u64 {
    u64le(b, l.bat.0 as usize + 8 * i)
}

/// A log descriptor.
pub enum Desc {
    /// Write a 4 KiB sector at a file offset.
    Data(u64, Vec<u8>),
    /// Zero a range.
    Zero(u64, u64),
}

/// Encode one log entry (descriptor sectors then data sectors), CRC set.
pub fn log_entry(
    seq: u64,
    tail: u32,
    guid: &[u8; 16],
    flushed: u64,
    last: u64,
    descs: &[Desc],
) -> Vec<u8> {
    let dsec = (64 + 32 * descs.len()).div_ceil(4096);
    let ndata = descs.iter().filter(|d| matches!(d, Desc::Data(..))).count();
    let mut e = vec![0u8; (dsec + ndata) * 4096];
    let len = e.len() as u32;
    e[0..4].copy_from_slice(b"loge");
    e[8..12].copy_from_slice(&len.to_le_bytes());
    e[12..16].copy_from_slice(&tail.to_le_bytes());
    e[16..24].copy_from_slice(&seq.to_le_bytes());
    e[24..28].copy_from_slice(&(descs.len() as u32).to_le_bytes());
    e[32..48].copy_from_slice(guid);
    e[48..56].copy_from_slice(&flushed.to_le_bytes());
    e[56..64].copy_from_slice(&last.to_le_bytes());
    let mut di = 0;
    for (i, d) in descs.iter().enumerate() {
        let o = 64 + 32 * i;
        match d {
            Desc::Zero(off, zl) => {
                e[o..o + 4].copy_from_slice(b"zero");
                e[o + 8..o + 16].copy_from_slice(&zl.to_le_bytes());
                e[o + 16..o + 24].copy_from_slice(&off.to_le_bytes());
            }
            Desc::Data(off, sector) => {
                assert_eq!(sector.len(), 4096);
                e[o..o + 4].copy_from_slice(b"desc");
                e[o + 4..o + 8].copy_from_slice(&sector[4092..4096]);
                e[o + 8..o + 16].copy_from_slice(&sector[0..8]);
                e[o + 16..o + 24].copy_from_slice(&off.to_le_bytes());
                let s = (dsec + di) * 4096;
                e[s..s + 4].copy_from_slice(b"data");
                e[s + 4..s + 8].copy_from_slice(&((seq >> 32) as u32).to_le_bytes());
                e[s + 8..s + 4092].copy_from_slice(&sector[8..4092]);
                e[s + 4092..s + 4096].copy_from_slice(&(seq as u32).to_le_bytes());
                di += 1;
            }
        }
        e[o + 24..o + 32].copy_from_slice(&seq.to_le_bytes());
    }
    fix_crc(&mut e, 4);
    e
}

/// Put `entries` at the start of the log and set LogGuid in the current
/// header (header CRC recomputed).
pub fn install_log(b: &mut [u8], l: &Layout, guid: &[u8; 16], entries: &[Vec<u8>]) {
    let mut pos = l.log.0 as usize;
    for e in entries {
        b[pos..pos + e.len()].copy_from_slice(e);
        pos += e.len();
    }
    let h = l.header;
    b[h + 48..h + 64].copy_from_slice(guid);
    fix_crc(&mut b[h..h + 4096], 4);
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Turn a clean VHDX into a differencing one: HasParent set and a VHDX
/// parent locator with the given key/value pairs added to the metadata.
pub fn make_differencing(b: &mut [u8], l: &Layout, kv: &[(&str, String)]) {
    let m = l.meta.0 as usize;
    let count = u16le(b, m + 10) as usize;
    let mut end = 0usize;
    let fp_guid = [0x37, 0x67, 0xa1, 0xca];
    for i in 0..count {
        let e = m + 32 + 32 * i;
        let off = u32le(b, e + 16) as usize;
        let len = u32le(b, e + 20) as usize;
        end = end.max(off + len);
        if b[e..e + 4] == fp_guid {
            b[m + off + 4] |= 2; // HasParent
        }
    }
    // Build the locator item.
    let mut item = vec![0u8; 20 + 12 * kv.len()];
    item[0..16].copy_from_slice(&[
        0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a, 0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59,
        0x13,
    ]);
    item[18..20].copy_from_slice(&(kv.len() as u16).to_le_bytes());
    for (i, (k, v)) in kv.iter().enumerate() {
        let (kb, vb) = (utf16(k), utf16(v));
        let ko = item.len();
        item.extend_from_slice(&kb);
        let vo = item.len();
        item.extend_from_slice(&vb);
        let o = 20 + 12 * i;
        item[o..o + 4].copy_from_slice(&(ko as u32).to_le_bytes());
        item[o + 4..o + 8].copy_from_slice(&(vo as u32).to_le_bytes());
        item[o + 8..o + 10].copy_from_slice(&(kb.len() as u16).to_le_bytes());
        item[o + 10..o + 12].copy_from_slice(&(vb.len() as u16).to_le_bytes());
    }
    let ioff = end.div_ceil(4096) * 4096;
    assert!(ioff + item.len() <= l.meta.1 as usize);
    b[m + ioff..m + ioff + item.len()].copy_from_slice(&item);
    let e = m + 32 + 32 * count;
    b[e..e + 16].copy_from_slice(&[
        0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab,
        0x0c,
    ]);
    b[e + 16..e + 20].copy_from_slice(&(ioff as u32).to_le_bytes());
    b[e + 20..e + 24].copy_from_slice(&(item.len() as u32).to_le_bytes());
    b[e + 24..e + 28].copy_from_slice(&4u32.to_le_bytes()); // IsRequired
    b[m + 10..m + 12].copy_from_slice(&((count + 1) as u16).to_le_bytes());
}
