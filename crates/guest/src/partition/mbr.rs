//! DOS/MBR partition tables: the four primary slots and the EBR chain of
//! an extended partition.

use super::{disk_path, Partition, PartitionRole, SECTOR};
use serde::Serialize;
use vdisk::{Disk, Result};

/// Offset of the first partition entry in an MBR/EBR.
pub const TABLE_OFFSET: usize = 0x1BE;
/// Most logical partitions followed in one EBR chain.
pub const MAX_LOGICALS: usize = 256;

/// A CHS address as stored in a partition entry (3 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RawChs {
    /// Cylinder (10 bits).
    pub cylinder: u16,
    /// Head (8 bits).
    pub head: u8,
    /// Sector (6 bits, 1-based; 0 is invalid).
    pub sector: u8,
}

impl RawChs {
    /// Decode the 3 on-disk bytes (head, sector|cyl-high<<6, cyl-low).
    pub fn from_bytes(b: &[u8]) -> Self {
        RawChs {
            head: b[0],
            sector: b[1] & 0x3F,
            cylinder: (((b[1] & 0xC0) as u16) << 2) | b[2] as u16,
        }
    }
    /// Encode to the 3 on-disk bytes.
    pub fn to_bytes(self) -> [u8; 3] {
        let c = self.cylinder.min(1023);
        [
            self.head,
            (self.sector & 0x3F) | (((c >> 8) as u8) << 6),
            (c & 0xFF) as u8,
        ]
    }
    /// True when all three bytes are zero (no CHS recorded).
    pub fn is_zero(self) -> bool {
        self.cylinder == 0 && self.head == 0 && self.sector == 0
    }
    /// The LBA this address names under a geometry of `heads` heads and
    /// `spt` sectors per track (None when the address is invalid there).
    pub fn to_lba(self, heads: u32, spt: u32) -> Option<u64> {
        if self.sector == 0 || self.sector as u32 > spt || self.head as u32 >= heads {
            return None;
        }
        Some(
            (self.cylinder as u64 * heads as u64 + self.head as u64) * spt as u64
                + self.sector as u64
                - 1,
        )
    }
    /// The address of `lba` under `heads`/`spt`; addresses past cylinder
    /// 1023 are stored as the conventional maximum (1023, heads-1, spt).
    pub fn from_lba(lba: u64, heads: u32, spt: u32) -> Self {
        let (heads, spt) = (heads.clamp(1, 255) as u64, spt.clamp(1, 63) as u64);
        let cyl = lba / (heads * spt);
        if cyl > 1023 {
            return RawChs {
                cylinder: 1023,
                head: (heads - 1) as u8,
                sector: spt as u8,
            };
        }
        let rem = lba % (heads * spt);
        RawChs {
            cylinder: cyl as u16,
            head: (rem / spt) as u8,
            sector: (rem % spt + 1) as u8,
        }
    }
}

impl std::fmt::Display for RawChs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.cylinder, self.head, self.sector)
    }
}

/// One 16-byte partition entry of an MBR or EBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MbrEntry {
    /// Status byte (0x80 = active, 0x00 = inactive, others invalid).
    pub status: u8,
    /// CHS of the first sector.
    pub start_chs: RawChs,
    /// System id.
    pub ptype: u8,
    /// CHS of the last sector.
    pub end_chs: RawChs,
    /// LBA field as stored (relative for EBR entries).
    pub lba_start: u32,
    /// Sector count as stored.
    pub sectors: u32,
    /// LBA of the sector holding this entry (0 for the MBR).
    pub table_lba: u64,
    /// Slot 0-3 inside that sector.
    pub slot: u8,
}

impl MbrEntry {
    /// Parse slot `slot` of a table sector; None for an all-zero entry.
    pub fn parse(sector: &[u8], slot: usize, table_lba: u64) -> Option<Self> {
        let e = &sector[TABLE_OFFSET + slot * 16..TABLE_OFFSET + slot * 16 + 16];
        if e.iter().all(|&b| b == 0) {
            return None;
        }
        Some(MbrEntry {
            status: e[0],
            start_chs: RawChs::from_bytes(&e[1..4]),
            ptype: e[4],
            end_chs: RawChs::from_bytes(&e[5..8]),
            lba_start: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
            sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
            table_lba,
            slot: slot as u8,
        })
    }
    /// Byte offset of this entry on the disk.
    pub fn disk_offset(&self) -> u64 {
        self.table_lba * SECTOR + TABLE_OFFSET as u64 + self.slot as u64 * 16
    }
    /// True for an extended-container type.
    pub fn is_extended(&self) -> bool {
        is_extended(self.ptype)
    }
}

/// True for the extended-container system ids 0x05, 0x0F and 0x85.
pub fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0F | 0x85)
}

/// The master boot record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mbr {
    /// Disk signature at 0x1B8 (Windows uses it to find its disks).
    pub disk_signature: u32,
    /// True when the 440-byte boot code area is not all zeros.
    pub boot_code_present: bool,
    /// The four primary slots.
    pub entries: [Option<MbrEntry>; 4],
}

impl Mbr {
    /// Parse sector 0; None without the 0x55AA signature.
    pub fn parse(s: &[u8; 512]) -> Option<Self> {
        if s[510] != 0x55 || s[511] != 0xAA {
            return None;
        }
        Some(Mbr {
            disk_signature: u32::from_le_bytes([s[0x1B8], s[0x1B9], s[0x1BA], s[0x1BB]]),
            boot_code_present: s[..440].iter().any(|&b| b != 0),
            entries: [0, 1, 2, 3].map(|i| MbrEntry::parse(s, i, 0)),
        })
    }
}

/// Partitions of an MBR disk: primaries, then logicals from the first
/// extended partition's EBR chain.
pub(super) fn partitions(
    disk: &dyn Disk,
    mbr: &Mbr,
    warnings: &mut Vec<String>,
) -> Result<Vec<Partition>> {
    let mut out = vec![];
    let mut ext: Option<MbrEntry> = None;
    for (i, e) in mbr.entries.iter().enumerate() {
        let Some(e) = e else { continue };
        if e.ptype == 0 {
            continue;
        }
        if e.status != 0 && e.status != 0x80 {
            warnings.push(format!(
                "MBR entry {} has invalid status byte {:#04x} (expected 0x00 or 0x80)",
                i + 1,
                e.status
            ));
        }
        if e.is_extended() {
            if ext.is_some() {
                warnings.push(format!(
                    "second extended partition in slot {} ignored (only one is followed)",
                    i + 1
                ));
            } else {
                ext = Some(*e);
            }
        }
        out.push(entry_partition(
            (i + 1) as u32,
            e,
            e.lba_start as u64,
            if e.is_extended() {
                PartitionRole::Extended
            } else {
                PartitionRole::Primary
            },
        ));
    }
    if let Some(ext) = ext {
        follow_chain(disk, &ext, &mut out, warnings)?;
    }
    Ok(out)
}

fn entry_partition(index: u32, e: &MbrEntry, start_lba: u64, role: PartitionRole) -> Partition {
    Partition {
        index,
        start: start_lba * SECTOR,
        len: e.sectors as u64 * SECTOR,
        start_lba,
        sectors: e.sectors as u64,
        role,
        mbr_type: Some(e.ptype),
        type_guid: None,
        guid: None,
        name: None,
        attributes: None,
        bootable: e.status == 0x80,
        mbr_entry: Some(*e),
        beyond_end: false,
    }
}

fn follow_chain(
    disk: &dyn Disk,
    ext: &MbrEntry,
    out: &mut Vec<Partition>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let ext_start = ext.lba_start as u64;
    let ext_end = ext_start + ext.sectors as u64;
    let disk_sectors = disk.size() / SECTOR;
    let mut seen = std::collections::HashSet::new();
    let mut ebr_lba = ext_start;
    let mut next_index = 5u32;
    loop {
        if !seen.insert(ebr_lba) {
            warnings.push(format!(
                "EBR chain loops back to sector {ebr_lba}; chain cut there"
            ));
            break;
        }
        if seen.len() > MAX_LOGICALS {
            warnings.push(format!(
                "EBR chain longer than {MAX_LOGICALS} entries; cut there"
            ));
            break;
        }
        if ebr_lba >= disk_sectors {
            warnings.push(format!(
                "EBR at sector {ebr_lba} lies beyond the end of the disk ({disk_sectors} sectors)"
            ));
            break;
        }
        let mut s = [0u8; 512];
        disk.read_at(&mut s, ebr_lba * SECTOR)?;
        if s[510] != 0x55 || s[511] != 0xAA {
            warnings.push(format!(
                "{}: EBR at sector {ebr_lba} (byte {:#x}) lacks the 0x55AA signature; chain cut there",
                disk_path(disk).display(),
                ebr_lba * SECTOR
            ));
            break;
        }
        let mut next = None;
        for slot in 0..4 {
            let Some(e) = MbrEntry::parse(&s, slot, ebr_lba) else {
                continue;
            };
            if e.ptype == 0 || e.sectors == 0 {
                continue;
            }
            if e.is_extended() {
                if next.is_none() {
                    next = Some(ext_start + e.lba_start as u64);
                }
            } else {
                let start = ebr_lba + e.lba_start as u64;
                if start + e.sectors as u64 > ext_end {
                    warnings.push(format!(
                        "logical partition {next_index} (sectors {start}..{}) extends beyond \
                         its extended partition (ends at sector {ext_end})",
                        start + e.sectors as u64
                    ));
                }
                out.push(entry_partition(
                    next_index,
                    &e,
                    start,
                    PartitionRole::Logical,
                ));
                next_index += 1;
            }
        }
        match next {
            Some(n) => ebr_lba = n,
            None => break,
        }
    }
    Ok(())
}

/// Short names of common MBR system ids.
pub fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x00 => "empty",
        0x01 => "FAT12",
        0x04 => "FAT16 <32M",
        0x05 => "extended",
        0x06 => "FAT16",
        0x07 => "NTFS/exFAT/HPFS",
        0x0B => "FAT32",
        0x0C => "FAT32 (LBA)",
        0x0E => "FAT16 (LBA)",
        0x0F => "extended (LBA)",
        0x11 | 0x14 | 0x16 | 0x17 | 0x1B | 0x1C | 0x1E => "hidden FAT/NTFS",
        0x27 => "Windows recovery",
        0x42 => "Windows dynamic disk (LDM)",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x85 => "Linux extended",
        0x8E => "Linux LVM",
        0xA5 => "FreeBSD",
        0xEE => "GPT protective",
        0xEF => "EFI system",
        0xFD => "Linux RAID",
        _ => "other",
    }
}
