//! VHDX metadata region (MS-VHDX 2.6): table and known items.

use super::header::{guid, guid_string, Guid};
use super::log::Src;
use crate::error::{Error, Result};
use crate::file::le;

const FILE_PARAMETERS: Guid = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: Guid = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE83: Guid = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR: Guid = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR: Guid = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const PARENT_LOCATOR: Guid = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);
/// Locator type of a VHDX parent, B04AEFB7-D19E-4A81-B789-25B8E9445913.
const LOCATOR_VHDX: Guid = guid(
    0xB04A_EFB7,
    0xD19E,
    0x4A81,
    [0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13],
);

/// Largest virtual size the spec allows (64 TiB).
pub const MAX_VIRTUAL_SIZE: u64 = 64 << 40;

/// The parsed metadata items.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Payload block size (1 MiB ..= 256 MiB, power of two).
    pub block_size: u32,
    /// LeaveBlocksAllocated flag (a fixed VHDX).
    pub leave_blocks_allocated: bool,
    /// HasParent flag (a differencing VHDX).
    pub has_parent: bool,
    /// Virtual disk size in bytes.
    pub virtual_size: u64,
    /// Logical sector size (512 or 4096).
    pub logical_sector: u32,
    /// Physical sector size (512 or 4096), if present.
    pub physical_sector: Option<u32>,
    /// Page 83 data (the virtual disk id), if present.
    pub page83: Option<Guid>,
    /// Parent locator key/value pairs, for differencing disks.
    pub parent_locator: Vec<(String, String)>,
}

impl Metadata {
    /// Value of parent locator key `k`.
    pub fn locator(&self, k: &str) -> Option<&str> {
        self.parent_locator
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the metadata region at `off` (length `len`) through the log view.
pub fn parse(src: &Src, off: u64, len: u64) -> Result<Metadata> {
    let path = src.file().path();
    if len < (64 << 10) {
        return Err(Error::corrupt(
            path,
            off,
            format!("VHDX metadata region is {len} bytes, smaller than its 64 KiB table"),
        ));
    }
    let mut table = vec![0u8; 64 << 10];
    src.read(&mut table, off)?;
    if &table[0..8] != b"metadata" {
        return Err(Error::corrupt(
            path,
            off,
            "VHDX metadata table: expected signature \"metadata\"",
        ));
    }
    let count = le::u16(&table, 10) as usize;
    if count > 2047 {
        return Err(Error::corrupt(
            path,
            off + 10,
            format!("VHDX metadata table has {count} entries, at most 2047 allowed"),
        ));
    }
    let mut fp = None;
    let mut vds = None;
    let mut lss = None;
    let mut pss = None;
    let mut page83 = None;
    let mut locator_raw: Option<(u64, Vec<u8>)> = None;
    for i in 0..count {
        let e = &table[32 + 32 * i..64 + 32 * i];
        let eoff = off + 32 + 32 * i as u64;
        let id: Guid = e[0..16].try_into().unwrap();
        let ioff = le::u32(e, 16) as u64;
        let ilen = le::u32(e, 20) as u64;
        let flags = le::u32(e, 24);
        let is_user = flags & 1 != 0;
        let required = flags & 4 != 0;
        if ilen > (1 << 20) || (ilen > 0 && (ioff < (64 << 10) || ioff + ilen > len)) {
            return Err(Error::corrupt(
                path,
                eoff,
                format!(
                    "VHDX metadata item {} at {ioff:#x} length {ilen}: expected at most 1 MiB, after the 64 KiB table, inside the {len}-byte region",
                    guid_string(&id)
                ),
            ));
        }
        let mut item = vec![0u8; ilen as usize];
        src.read(&mut item, off + ioff)?;
        let need = |n: usize| -> Result<()> {
            if item.len() < n {
                Err(Error::corrupt(
                    path,
                    eoff,
                    format!(
                        "VHDX metadata item {} is {} bytes, expected at least {n}",
                        guid_string(&id),
                        item.len()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        if is_user {
            continue;
        }
        match id {
            FILE_PARAMETERS => {
                need(8)?;
                fp = Some((le::u32(&item, 0), le::u32(&item, 4), off + ioff));
            }
            VIRTUAL_DISK_SIZE => {
                need(8)?;
                vds = Some((le::u64(&item, 0), off + ioff));
            }
            LOGICAL_SECTOR => {
                need(4)?;
                lss = Some((le::u32(&item, 0), off + ioff));
            }
            PHYSICAL_SECTOR => {
                need(4)?;
                pss = Some((le::u32(&item, 0), off + ioff));
            }
            PAGE83 => {
                need(16)?;
                page83 = Some(item[0..16].try_into().unwrap());
            }
            PARENT_LOCATOR => locator_raw = Some((off + ioff, item)),
            _ if required => {
                return Err(Error::unsupported(
                    path,
                    format!(
                        "VHDX metadata table entry {i} at {eoff:#x}: unknown required item {}",
                        guid_string(&id)
                    ),
                ))
            }
            _ => {}
        }
    }
    let missing = |what: &str| {
        Error::corrupt(
            path,
            off,
            format!("VHDX metadata lacks the required {what} item"),
        )
    };
    let (block_size, fflags, fp_off) = fp.ok_or_else(|| missing("File Parameters"))?;
    if !block_size.is_power_of_two() || !((1 << 20)..=(256 << 20)).contains(&block_size) {
        return Err(Error::corrupt(
            path,
            fp_off,
            format!("VHDX block size {block_size} is not a power of two between 1 MiB and 256 MiB"),
        ));
    }
    let (logical_sector, lss_off) = lss.ok_or_else(|| missing("Logical Sector Size"))?;
    if logical_sector != 512 && logical_sector != 4096 {
        return Err(Error::corrupt(
            path,
            lss_off,
            format!("VHDX logical sector size {logical_sector}, expected 512 or 4096"),
        ));
    }
    if let Some((p, poff)) = pss {
        if p != 512 && p != 4096 {
            return Err(Error::corrupt(
                path,
                poff,
                format!("VHDX physical sector size {p}, expected 512 or 4096"),
            ));
        }
    }
    let (virtual_size, vds_off) = vds.ok_or_else(|| missing("Virtual Disk Size"))?;
    if !virtual_size.is_multiple_of(logical_sector as u64) || virtual_size > MAX_VIRTUAL_SIZE {
        return Err(Error::corrupt(
            path,
            vds_off,
            format!(
                "VHDX virtual disk size {virtual_size} is not a multiple of the {logical_sector}-byte sector or exceeds 64 TiB"
            ),
        ));
    }
    let has_parent = fflags & 2 != 0;
    let mut parent_locator = Vec::new();
    if has_parent {
        let (loff, item) = locator_raw.ok_or_else(|| missing("Parent Locator"))?;
        parent_locator = parse_locator(&item, path, loff)?;
    }
    Ok(Metadata {
        block_size,
        leave_blocks_allocated: fflags & 1 != 0,
        has_parent,
        virtual_size,
        logical_sector,
        physical_sector: pss.map(|p| p.0),
        page83,
        parent_locator,
    })
}

fn parse_locator(item: &[u8], path: &std::path::Path, off: u64) -> Result<Vec<(String, String)>> {
    let bad = |msg: String| Error::corrupt(path, off, format!("VHDX parent locator: {msg}"));
    if item.len() < 20 {
        return Err(bad(format!("{} bytes, expected at least 20", item.len())));
    }
    let ty: Guid = item[0..16].try_into().unwrap();
    if ty != LOCATOR_VHDX {
        return Err(Error::unsupported(
            path,
            format!(
                "VHDX parent locator type {} (only the VHDX type {} is supported)",
                guid_string(&ty),
                guid_string(&LOCATOR_VHDX)
            ),
        ));
    }
    let n = le::u16(item, 18) as usize;
    if 20 + 12 * n > item.len() {
        return Err(bad(format!(
            "{n} key/value entries do not fit in {} bytes",
            item.len()
        )));
    }
    let text = |o: usize, l: usize| -> Result<String> {
        if o == 0 || l == 0 || o + l > item.len() || !l.is_multiple_of(2) {
            return Err(bad(format!(
                "string at {o} length {l} lies outside the {}-byte item",
                item.len()
            )));
        }
        Ok(crate::vhd::format::decode_utf16le(&item[o..o + l]))
    };
    let mut out = Vec::new();
    for i in 0..n {
        let e = &item[20 + 12 * i..32 + 12 * i];
        let k = text(le::u32(e, 0) as usize, le::u16(e, 8) as usize)?;
        let v = text(le::u32(e, 4) as usize, le::u16(e, 10) as usize)?;
        out.push((k, v));
    }
    Ok(out)
}
