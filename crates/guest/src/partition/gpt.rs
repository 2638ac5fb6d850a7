//! GUID partition tables: headers at LBA 1 and at the last sector, entry
//! arrays, CRC32 checks, fallback to the backup.

use super::{disk_path, Partition, PartitionRole, SECTOR};
use serde::Serialize;
use vdisk::{Disk, Error, Result};

/// Most GPT entries accepted (the spec's minimum array is 128 entries;
/// real tools never exceed a few thousand).
pub const MAX_ENTRIES: u32 = 16384;
/// Largest accepted entry size in bytes.
pub const MAX_ENTRY_SIZE: u32 = 4096;
/// Largest accepted entry array in bytes.
pub const MAX_ARRAY_BYTES: u64 = 4 << 20;

/// A parsed GPT header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GptHeader {
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other header.
    pub alternate_lba: u64,
    /// First usable LBA.
    pub first_usable: u64,
    /// Last usable LBA.
    pub last_usable: u64,
    /// Disk GUID.
    pub disk_guid: String,
    /// LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries.
    pub num_entries: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// CRC32 of the entry array as stored.
    pub entries_crc: u32,
}

/// GPT facts for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GptInfo {
    /// The header the partitions were read from.
    pub header: GptHeader,
    /// Primary header and array valid.
    pub primary_ok: bool,
    /// Backup header and array valid.
    pub backup_ok: bool,
    /// Which copy was used: "primary" or "backup".
    pub used: String,
    /// The protective MBR also lists other partitions.
    pub hybrid_mbr: bool,
}

fn guid(b: &[u8]) -> String {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    uuid::Uuid::from_bytes_le(a)
        .hyphenated()
        .to_string()
        .to_uppercase()
}

fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}

/// Parse and check one header sector; Err(reason) when invalid.
fn parse_header(
    s: &[u8; 512],
    lba: u64,
    disk_sectors: u64,
) -> std::result::Result<GptHeader, String> {
    if &s[0..8] != b"EFI PART" {
        return Err("no \"EFI PART\" signature".into());
    }
    let hsize = u32le(s, 12);
    if !(92..=512).contains(&hsize) {
        return Err(format!("header size {hsize} (expected 92..=512)"));
    }
    let stored = u32le(s, 16);
    let mut h = s[..hsize as usize].to_vec();
    h[16..20].fill(0);
    let crc = crc32fast::hash(&h);
    if crc != stored {
        return Err(format!("header CRC32 {stored:#010x}, computed {crc:#010x}"));
    }
    let hdr = GptHeader {
        my_lba: u64le(s, 24),
        alternate_lba: u64le(s, 32),
        first_usable: u64le(s, 40),
        last_usable: u64le(s, 48),
        disk_guid: guid(&s[56..72]),
        entries_lba: u64le(s, 72),
        num_entries: u32le(s, 80),
        entry_size: u32le(s, 84),
        entries_crc: u32le(s, 88),
    };
    if hdr.my_lba != lba {
        return Err(format!(
            "header says it lives at LBA {}, found at LBA {lba}",
            hdr.my_lba
        ));
    }
    if hdr.entry_size < 128 || hdr.entry_size > MAX_ENTRY_SIZE || !hdr.entry_size.is_multiple_of(8)
    {
        return Err(format!(
            "entry size {} (expected a multiple of 8 in 128..={MAX_ENTRY_SIZE})",
            hdr.entry_size
        ));
    }
    if hdr.num_entries > MAX_ENTRIES {
        return Err(format!(
            "{} entries (more than the {MAX_ENTRIES} accepted)",
            hdr.num_entries
        ));
    }
    let bytes = hdr.num_entries as u64 * hdr.entry_size as u64;
    let array_sectors = bytes.div_ceil(SECTOR);
    if hdr.entries_lba == 0 || hdr.entries_lba.saturating_add(array_sectors) > disk_sectors {
        return Err(format!(
            "entry array at LBA {} ({array_sectors} sectors) is outside the disk ({disk_sectors} sectors)",
            hdr.entries_lba
        ));
    }
    if hdr.first_usable > hdr.last_usable || hdr.last_usable >= disk_sectors {
        return Err(format!(
            "usable range {}..={} does not fit a disk of {disk_sectors} sectors",
            hdr.first_usable, hdr.last_usable
        ));
    }
    Ok(hdr)
}

fn read_array(disk: &dyn Disk, hdr: &GptHeader) -> Result<Vec<u8>> {
    let bytes = hdr.num_entries as u64 * hdr.entry_size as u64;
    if bytes > MAX_ARRAY_BYTES {
        return Err(Error::corrupt(
            &disk_path(disk),
            hdr.entries_lba * SECTOR,
            format!("GPT entry array of {bytes} bytes (at most {MAX_ARRAY_BYTES} accepted)"),
        ));
    }
    let mut buf = vec![0u8; bytes as usize];
    disk.read_at(&mut buf, hdr.entries_lba * SECTOR)?;
    Ok(buf)
}

/// Read a header and its array at `lba`; Ok(Err(reason)) when invalid.
fn read_copy(
    disk: &dyn Disk,
    lba: u64,
) -> Result<std::result::Result<(GptHeader, Vec<u8>), String>> {
    let sectors = disk.size() / SECTOR;
    if lba == 0 || lba >= sectors {
        return Ok(Err(format!("LBA {lba} is outside the disk")));
    }
    let mut s = [0u8; 512];
    disk.read_at(&mut s, lba * SECTOR)?;
    let hdr = match parse_header(&s, lba, sectors) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let arr = read_array(disk, &hdr)?;
    let crc = crc32fast::hash(&arr);
    if crc != hdr.entries_crc {
        return Ok(Err(format!(
            "entry array CRC32 {:#010x}, computed {crc:#010x}",
            hdr.entries_crc
        )));
    }
    Ok(Ok((hdr, arr)))
}

/// Read the GPT: the primary copy, else the backup.
pub(super) fn read(disk: &dyn Disk, warnings: &mut Vec<String>) -> Result<GptInfo> {
    let path = disk_path(disk);
    let last = disk.size() / SECTOR - 1;
    let primary = read_copy(disk, 1)?;
    let backup_lba = match &primary {
        Ok((h, _)) if h.alternate_lba != 0 && h.alternate_lba <= last => h.alternate_lba,
        _ => last,
    };
    let backup = read_copy(disk, backup_lba)?;
    match (primary, backup) {
        (Ok((h, _)), b) => {
            if let Err(e) = &b {
                warnings.push(format!(
                    "backup GPT at LBA {backup_lba} is invalid ({e}); primary used"
                ));
            }
            Ok(GptInfo {
                header: h,
                primary_ok: true,
                backup_ok: b.is_ok(),
                used: "primary".into(),
                hybrid_mbr: false,
            })
        }
        (Err(pe), Ok((h, _))) => {
            warnings.push(format!(
                "primary GPT header at LBA 1 is invalid ({pe}); backup at LBA {backup_lba} used"
            ));
            Ok(GptInfo {
                header: h,
                primary_ok: false,
                backup_ok: true,
                used: "backup".into(),
                hybrid_mbr: false,
            })
        }
        (Err(pe), Err(be)) => Err(Error::corrupt(
            &path,
            SECTOR,
            format!(
                "protective MBR found but no valid GPT: primary header at LBA 1: {pe}; \
                 backup header at LBA {backup_lba}: {be}"
            ),
        )),
    }
}

/// The used entries of the chosen copy.
pub(super) fn partitions(
    disk: &dyn Disk,
    info: &GptInfo,
    warnings: &mut Vec<String>,
) -> Result<Vec<Partition>> {
    let hdr = &info.header;
    let arr = read_array(disk, hdr)?;
    let mut out = vec![];
    for (i, e) in arr.chunks_exact(hdr.entry_size as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64le(e, 32);
        let last = u64le(e, 40);
        if last < first {
            warnings.push(format!(
                "GPT entry {} ends (LBA {last}) before it starts (LBA {first}); skipped",
                i + 1
            ));
            continue;
        }
        if first < hdr.first_usable || last > hdr.last_usable {
            warnings.push(format!(
                "GPT entry {} (LBA {first}..={last}) lies outside the usable range {}..={}",
                i + 1,
                hdr.first_usable,
                hdr.last_usable
            ));
        }
        let name_units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let sectors = last - first + 1;
        out.push(Partition {
            index: i as u32 + 1,
            start: first.saturating_mul(SECTOR),
            len: sectors.saturating_mul(SECTOR),
            start_lba: first,
            sectors,
            role: PartitionRole::Gpt,
            mbr_type: None,
            type_guid: Some(guid(&e[0..16])),
            guid: Some(guid(&e[16..32])),
            name: Some(String::from_utf16_lossy(&name_units)),
            attributes: Some(u64le(e, 48)),
            bootable: false,
            mbr_entry: None,
            beyond_end: false,
        });
    }
    Ok(out)
}

/// Short names of common GPT partition type GUIDs.
pub fn gpt_type_name(g: &str) -> &'static str {
    match g.to_uppercase().as_str() {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI System",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "Windows recovery",
        "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3" => "Windows LDM metadata",
        "AF9B60A0-1431-4F62-BC68-3311714A69AD" => "Windows LDM data",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        _ => "other",
    }
}
