//! Partition tables: an MBR as Windows setup writes it (disk signature,
//! boot flag) and GPT (protective MBR, both headers and entry arrays).

use crate::{Error, Result};
use guest::partition::RawChs;
use vdisk::DiskWrite;

/// GPT type GUID of an EFI system partition.
pub const GPT_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type GUID of the Microsoft reserved partition.
pub const GPT_MSR: &str = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE";
/// GPT type GUID of a Windows basic data partition.
pub const GPT_BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

/// One partition to write.
#[derive(Debug, Clone)]
pub struct Part {
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// MBR type byte (0x07 NTFS/exFAT/BitLocker).
    pub mbr_type: u8,
    /// MBR boot flag.
    pub active: bool,
    /// GPT type GUID.
    pub gpt_type: &'static str,
    /// GPT unique partition GUID.
    pub guid: String,
    /// GPT name.
    pub name: &'static str,
}

/// A GUID string as its 16 on-disk bytes (first three fields
/// little-endian, as Windows and UEFI store them).
pub fn guid_bytes(g: &str) -> Result<[u8; 16]> {
    let hex: String = g.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::Layout(format!("{g:?} is not a GUID")));
    }
    let mut raw = [0u8; 16];
    for (i, r) in raw.iter_mut().enumerate() {
        *r = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| Error::Layout(format!("{g:?} is not a GUID")))?;
    }
    let mut out = raw;
    out[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    out[4..6].copy_from_slice(&[raw[5], raw[4]]);
    out[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Ok(out)
}

/// A deterministic GUID from a seed string and a purpose (FNV-1a based;
/// version-4 bits set).
pub fn make_guid(seed: &str, what: &str) -> String {
    let mut h: [u64; 2] = [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4];
    for (k, hv) in h.iter_mut().enumerate() {
        for b in seed.bytes().chain([0u8, k as u8]).chain(what.bytes()) {
            *hv ^= u64::from(b);
            *hv = hv.wrapping_mul(0x100_0000_01b3);
        }
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&h[0].to_be_bytes());
    b[8..].copy_from_slice(&h[1].to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: Vec<String> = b.iter().map(|v| format!("{v:02X}")).collect();
    let x = x.concat();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// MBR boot code: prints a line and halts (a phony guest does not boot).
fn boot_code() -> Vec<u8> {
    let mut c = vec![
        0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x00, 0x00, 0xac, 0x08, 0xc0, 0x74, 0x06, 0xb4, 0x0e,
        0xcd, 0x10, 0xeb, 0xf5, 0xf4, 0xeb, 0xfd,
    ];
    let msg = b"Phony Windows disk: no operating system\r\n\0";
    let at = 0x7c00 + c.len() as u16;
    c[6..8].copy_from_slice(&at.to_le_bytes());
    c.extend_from_slice(msg);
    c
}

fn mbr_entry(sector: &mut [u8], slot: usize, active: bool, ty: u8, start: u64, len: u64) {
    let o = 0x1be + 16 * slot;
    sector[o] = if active { 0x80 } else { 0 };
    sector[o + 1..o + 4].copy_from_slice(&RawChs::from_lba(start, 255, 63).to_bytes());
    sector[o + 4] = ty;
    sector[o + 5..o + 8].copy_from_slice(&RawChs::from_lba(start + len - 1, 255, 63).to_bytes());
    sector[o + 8..o + 12].copy_from_slice(&(start.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    sector[o + 12..o + 16].copy_from_slice(&(len.min(u64::from(u32::MAX)) as u32).to_le_bytes());
}

/// Write an MBR with `signature` and up to four primary partitions.
pub fn write_mbr<D: DiskWrite>(disk: &D, signature: u32, parts: &[Part]) -> Result<()> {
    if parts.len() > 4 {
        return Err(Error::Layout("more than four MBR partitions".into()));
    }
    let mut s = vec![0u8; 512];
    let code = boot_code();
    s[..code.len()].copy_from_slice(&code);
    s[0x1b8..0x1bc].copy_from_slice(&signature.to_le_bytes());
    for (i, p) in parts.iter().enumerate() {
        if p.start + p.sectors > u64::from(u32::MAX) {
            return Err(Error::Layout(format!(
                "partition {} ends past 2 TiB: not addressable by an MBR",
                i + 1
            )));
        }
        mbr_entry(&mut s, i, p.active, p.mbr_type, p.start, p.sectors);
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    disk.write_at(&s, 0)?;
    Ok(())
}

fn gpt_header(
    disk_sectors: u64,
    my: u64,
    alt: u64,
    entries_lba: u64,
    disk_guid: &[u8; 16],
    entries_crc: u32,
) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my.to_le_bytes());
    h[32..40].copy_from_slice(&alt.to_le_bytes());
    h[40..48].copy_from_slice(&34u64.to_le_bytes());
    h[48..56].copy_from_slice(&(disk_sectors - 34).to_le_bytes());
    h[56..72].copy_from_slice(disk_guid);
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&128u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Write a protective MBR and both GPT copies.
pub fn write_gpt<D: DiskWrite>(disk: &D, disk_guid: &str, parts: &[Part]) -> Result<()> {
    let sectors = disk.size() / 512;
    if parts.len() > 128 {
        return Err(Error::Layout("more than 128 GPT partitions".into()));
    }
    let mut arr = vec![0u8; 128 * 128];
    for (i, p) in parts.iter().enumerate() {
        let e = &mut arr[i * 128..(i + 1) * 128];
        e[0..16].copy_from_slice(&guid_bytes(p.gpt_type)?);
        e[16..32].copy_from_slice(&guid_bytes(&p.guid)?);
        e[32..40].copy_from_slice(&p.start.to_le_bytes());
        e[40..48].copy_from_slice(&(p.start + p.sectors - 1).to_le_bytes());
        if p.gpt_type == GPT_MSR {
            e[48..56].copy_from_slice(&(1u64 << 63).to_le_bytes());
        }
        for (k, u) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&arr);
    let dg = guid_bytes(disk_guid)?;
    let mut pmbr = vec![0u8; 512];
    mbr_entry(&mut pmbr, 0, false, 0xee, 1, sectors - 1);
    pmbr[510] = 0x55;
    pmbr[511] = 0xaa;
    disk.write_at(&pmbr, 0)?;
    disk.write_at(&gpt_header(sectors, 1, sectors - 1, 2, &dg, crc), 512)?;
    disk.write_at(&arr, 2 * 512)?;
    disk.write_at(&arr, (sectors - 33) * 512)?;
    disk.write_at(
        &gpt_header(sectors, sectors - 1, 1, sectors - 33, &dg, crc),
        (sectors - 1) * 512,
    )?;
    Ok(())
}
