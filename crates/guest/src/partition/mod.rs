//! The partition parser of the project: MBR (primaries, extended/logical
//! chains), GPT (protective MBR, primary and backup headers with CRC
//! checks) and hybrid-MBR detection, over any [`vdisk::Disk`].
//!
//! Numbering follows what users and Linux see: for MBR, 1-4 are the
//! primary slots (empty slots keep their number free) and 5.. the logical
//! partitions in chain order; for GPT, 1.. are the entry indices of the
//! array (empty entries keep their number free, like `sgdisk -p`).
//!
//! Hostile input never panics: loops in EBR chains, overlapping
//! partitions and partitions past the end of the disk become
//! [`PartitionTable::warnings`]; unreadable GPT headers fall back to the
//! backup; absurd entry counts are refused with an error naming the
//! offset.
//!
//! ```no_run
//! # fn main() -> Result<(), vdisk::Error> {
//! let disk = vdisk::open(std::path::Path::new("disk.vmdk"))?;
//! let table = guest::partition::read_table(&*disk)?;
//! for p in table.partitions() {
//!     println!("{} {} +{} {}", p.index, p.start, p.len, p.type_name());
//! }
//! let part1 = guest::partition::open_partition(&*disk, table.get(1).unwrap())?;
//! # let _ = part1; Ok(()) }
//! ```

mod gpt;
mod mbr;

pub use gpt::{gpt_type_name, GptHeader, GptInfo};
pub use mbr::{is_extended as mbr_is_extended, mbr_type_name, Mbr, MbrEntry, RawChs};

use serde::Serialize;
use vdisk::window::Window;
use vdisk::{Disk, Error, ErrorKind, Result};

/// Logical sector size assumed for partition tables (512-byte sectors;
/// 4Kn disks are not handled yet).
pub const SECTOR: u64 = 512;

/// Which scheme the disk uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// No partition table (no 0x55AA signature, or a bare filesystem).
    None,
    /// DOS/MBR partition table.
    Mbr,
    /// GUID partition table.
    Gpt,
}

/// What kind of entry a partition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionRole {
    /// MBR primary slot 1-4 (not an extended container).
    Primary,
    /// MBR extended container (types 0x05, 0x0F, 0x85).
    Extended,
    /// MBR logical partition inside the extended container.
    Logical,
    /// GPT entry.
    Gpt,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// User-visible number: 1-4 primaries, 5.. logicals; GPT entry index + 1.
    pub index: u32,
    /// Start in bytes from the start of the disk.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// First sector (LBA, 512-byte sectors).
    pub start_lba: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// Kind of entry.
    pub role: PartitionRole,
    /// MBR system id (None for GPT).
    pub mbr_type: Option<u8>,
    /// GPT partition type GUID (upper case, as sgdisk prints it).
    pub type_guid: Option<String>,
    /// GPT unique partition GUID.
    pub guid: Option<String>,
    /// GPT partition name (UTF-16 decoded).
    pub name: Option<String>,
    /// GPT attribute bits.
    pub attributes: Option<u64>,
    /// MBR active flag (0x80).
    pub bootable: bool,
    /// The raw MBR/EBR entry (CHS fields) for MBR partitions.
    pub mbr_entry: Option<MbrEntry>,
    /// True when the partition extends beyond the end of the disk.
    pub beyond_end: bool,
}

impl Partition {
    /// A short human name of the partition type.
    pub fn type_name(&self) -> String {
        if let Some(t) = self.mbr_type {
            format!("{t:#04x} {}", mbr_type_name(t))
        } else if let Some(g) = &self.type_guid {
            format!("{g} {}", gpt_type_name(g))
        } else {
            "unknown".into()
        }
    }
    /// True for an MBR extended container (not a data partition).
    pub fn is_container(&self) -> bool {
        self.role == PartitionRole::Extended
    }
}

/// A parsed partition table.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionTable {
    /// The scheme found.
    pub kind: TableKind,
    /// Disk size in bytes.
    pub disk_size: u64,
    /// The MBR (also present, as protective/hybrid MBR, on GPT disks).
    pub mbr: Option<Mbr>,
    /// GPT details when the disk is GPT.
    pub gpt: Option<GptInfo>,
    /// All partitions (primaries, extended containers, logicals; GPT
    /// entries), sorted by index.
    pub partitions: Vec<Partition>,
    /// Non-fatal problems found (overlaps, loops, damaged primary GPT...).
    pub warnings: Vec<String>,
}

impl PartitionTable {
    /// All partitions, including MBR extended containers.
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }
    /// Partitions that hold data (extended containers left out).
    pub fn data_partitions(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().filter(|p| !p.is_container())
    }
    /// The partition with user-visible number `index`.
    pub fn get(&self, index: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.index == index)
    }
}

/// Read the partition table of `disk` (MBR or GPT).
///
/// Errors only when the disk cannot be read or a GPT disk has neither a
/// valid primary nor a valid backup header; other oddities are warnings.
pub fn read_table(disk: &dyn Disk) -> Result<PartitionTable> {
    let size = disk.size();
    let mut table = PartitionTable {
        kind: TableKind::None,
        disk_size: size,
        mbr: None,
        gpt: None,
        partitions: vec![],
        warnings: vec![],
    };
    if size < SECTOR {
        return Ok(table);
    }
    let mut sector0 = [0u8; 512];
    disk.read_at(&mut sector0, 0)?;
    let Some(mbr) = Mbr::parse(&sector0) else {
        return Ok(table);
    };
    let protective = mbr.entries.iter().flatten().any(|e| e.ptype == 0xEE);
    if protective {
        let info = gpt::read(disk, &mut table.warnings)?;
        let others = mbr
            .entries
            .iter()
            .flatten()
            .filter(|e| e.ptype != 0xEE)
            .count();
        let mut info = info;
        info.hybrid_mbr = others > 0;
        if info.hybrid_mbr {
            table.warnings.push(format!(
                "hybrid MBR: the protective MBR also describes {others} partition(s); \
                 BIOS boot code sees those, UEFI sees the GPT"
            ));
        }
        table.partitions = gpt::partitions(disk, &info, &mut table.warnings)?;
        table.kind = TableKind::Gpt;
        table.gpt = Some(info);
        table.mbr = Some(mbr);
    } else {
        if mbr.entries.iter().all(|e| e.is_none()) && looks_like_boot_sector(&sector0) {
            // A bare FAT/NTFS volume (superfloppy): its BPB sits where a
            // partition table would be, not a table.
            return Ok(table);
        }
        table.partitions = mbr::partitions(disk, &mbr, &mut table.warnings)?;
        table.kind = TableKind::Mbr;
        table.mbr = Some(mbr);
    }
    check_layout(&mut table);
    table.partitions.sort_by_key(|p| p.index);
    Ok(table)
}

/// True when sector 0 looks like a volume boot record (FAT/NTFS/exFAT
/// OEM id) rather than an MBR.
fn looks_like_boot_sector(s: &[u8; 512]) -> bool {
    matches!(&s[3..11], b"NTFS    " | b"EXFAT   " | b"-FVE-FS-")
        || (s[0] == 0xEB || s[0] == 0xE9) && crate::bpb::Bpb::parse(s).is_some()
}

/// Flag overlaps and partitions past the end of the disk.
fn check_layout(table: &mut PartitionTable) {
    let size = table.disk_size;
    for p in &mut table.partitions {
        if p.start.saturating_add(p.len) > size {
            p.beyond_end = true;
            table.warnings.push(format!(
                "partition {} ends at byte {} beyond the end of the disk ({size} bytes)",
                p.index,
                p.start.saturating_add(p.len)
            ));
        }
    }
    let data: Vec<&Partition> = table
        .partitions
        .iter()
        .filter(|p| p.role != PartitionRole::Extended && p.len > 0)
        .collect();
    for (i, a) in data.iter().enumerate() {
        for b in &data[i + 1..] {
            let (a_end, b_end) = (a.start.saturating_add(a.len), b.start.saturating_add(b.len));
            if a.start < b_end && b.start < a_end {
                table.warnings.push(format!(
                    "partitions {} and {} overlap (bytes {}..{} and {}..{})",
                    a.index, b.index, a.start, a_end, b.start, b_end
                ));
            }
        }
    }
}

/// Open partition `p` of `disk` as a disk of its own.
pub fn open_partition<'a>(disk: &'a dyn Disk, p: &Partition) -> Result<Window<&'a dyn Disk>> {
    if p.beyond_end {
        return Err(Error::new(
            ErrorKind::OutOfRange,
            format!(
                "partition {} ({}+{} bytes) extends beyond the disk ({} bytes)",
                p.index,
                p.start,
                p.len,
                disk.size()
            ),
        ));
    }
    Window::new(disk, p.start, p.len)
}

/// Path of the disk's top layer, for error messages.
pub(crate) fn disk_path(disk: &dyn Disk) -> std::path::PathBuf {
    disk.layer().path
}
