//! Volume boot sectors: the BIOS parameter block of FAT12/16/32 and NTFS
//! volumes (the geometry fields NT-era boot code uses for CHS reads), the
//! backup boot sector, and filesystem detection by signature.
//!
//! Geometry fields (all little endian, same offsets in FAT and NTFS):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0x0B   | 2    | bytes per sector |
//! | 0x0D   | 1    | sectors per cluster |
//! | 0x18   | 2    | sectors per track (CHS) |
//! | 0x1A   | 2    | number of heads (CHS) |
//! | 0x1C   | 4    | hidden sectors = LBA of the volume's first sector |
//!
//! The backup boot sector is sector `BPB_BkBootSec` (0x32, normally 6) of a
//! FAT32 volume, and the last sector of an NTFS volume (sector number
//! "total sectors" at 0x28: NTFS counts the volume without its backup).

use serde::Serialize;
use vdisk::{Disk, Result};

/// Offset of the sectors-per-track field.
pub const OFF_SPT: usize = 0x18;
/// Offset of the heads field.
pub const OFF_HEADS: usize = 0x1A;
/// Offset of the hidden-sectors field.
pub const OFF_HIDDEN: usize = 0x1C;

/// A filesystem recognised by its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    /// NTFS (`NTFS    ` OEM id).
    Ntfs,
    /// FAT12.
    Fat12,
    /// FAT16.
    Fat16,
    /// FAT32.
    Fat32,
    /// exFAT.
    Exfat,
    /// BitLocker-encrypted volume (`-FVE-FS-`).
    Bitlocker,
    /// ext2.
    Ext2,
    /// ext3.
    Ext3,
    /// ext4.
    Ext4,
    /// XFS.
    Xfs,
    /// btrfs.
    Btrfs,
    /// Linux swap.
    Swap,
    /// LVM2 physical volume.
    LvmPv,
}

impl FsKind {
    /// True for filesystems whose boot sector carries a BPB with CHS
    /// geometry fields.
    pub fn has_chs_bpb(self) -> bool {
        matches!(
            self,
            FsKind::Ntfs | FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32
        )
    }
}

/// The BPB fields this project cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bpb {
    /// Filesystem family.
    pub fs: FsKind,
    /// OEM id (bytes 3..11).
    pub oem: String,
    /// Bytes per sector.
    pub bytes_per_sector: u16,
    /// Sectors per cluster (NTFS: decoded, may exceed 128).
    pub sectors_per_cluster: u32,
    /// Reserved sectors (FAT).
    pub reserved_sectors: u16,
    /// Sectors per track (0x18).
    pub sectors_per_track: u16,
    /// Heads (0x1A).
    pub heads: u16,
    /// Hidden sectors (0x1C): where the boot code believes the volume starts.
    pub hidden_sectors: u32,
    /// Total sectors of the volume as the BPB states it.
    pub total_sectors: u64,
    /// BIOS drive number the boot code passes (0x24 FAT12/16, 0x40 FAT32, 0x24 NTFS).
    pub drive_number: u8,
    /// Sector (relative to the volume) of the backup boot sector, if any.
    pub backup_sector: Option<u64>,
}

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Bpb {
    /// Parse a FAT or NTFS boot sector; None when it is not one.
    pub fn parse(s: &[u8]) -> Option<Bpb> {
        if s.len() < 512 {
            return None;
        }
        let oem = String::from_utf8_lossy(&s[3..11]).trim_end().to_string();
        let bps = u16le(s, 0x0B);
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return None;
        }
        let common = |fs, spc, reserved, total, drive, backup| Bpb {
            fs,
            oem: oem.clone(),
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            reserved_sectors: reserved,
            sectors_per_track: u16le(s, OFF_SPT),
            heads: u16le(s, OFF_HEADS),
            hidden_sectors: u32le(s, OFF_HIDDEN),
            total_sectors: total,
            drive_number: drive,
            backup_sector: backup,
        };
        if &s[3..11] == b"NTFS    " {
            let raw = s[0x0D];
            let spc = if raw <= 0x80 {
                raw as u32
            } else {
                1u32.checked_shl(256 - raw as u32).unwrap_or(0)
            };
            let total = u64::from_le_bytes(s[0x28..0x30].try_into().ok()?);
            return Some(common(FsKind::Ntfs, spc, 0, total, s[0x24], Some(total)));
        }
        // FAT: jump instruction, sane BPB, signature.
        if !(s[0] == 0xEB || s[0] == 0xE9) || s[510] != 0x55 || s[511] != 0xAA {
            return None;
        }
        let spc = s[0x0D];
        let reserved = u16le(s, 0x0E);
        let fats = s[0x10];
        let root_entries = u16le(s, 0x11) as u64;
        if spc == 0 || !spc.is_power_of_two() || reserved == 0 || !(1..=2).contains(&fats) {
            return None;
        }
        let total16 = u16le(s, 0x13) as u64;
        let total = if total16 != 0 {
            total16
        } else {
            u32le(s, 0x20) as u64
        };
        let fat16 = u16le(s, 0x16) as u64;
        let fat_size = if fat16 != 0 {
            fat16
        } else {
            u32le(s, 0x24) as u64
        };
        if total == 0 || fat_size == 0 {
            return None;
        }
        let root_sectors = (root_entries * 32).div_ceil(bps as u64);
        let data = total.checked_sub(reserved as u64 + fats as u64 * fat_size + root_sectors)?;
        let clusters = data / spc as u64;
        // Cluster-count rule of the FAT specification.
        let fs = if fat16 == 0 {
            FsKind::Fat32
        } else if clusters < 4085 {
            FsKind::Fat12
        } else {
            FsKind::Fat16
        };
        let (drive, backup) = if fs == FsKind::Fat32 {
            let bk = u16le(s, 0x32);
            (s[0x40], (bk != 0 && bk != 0xFFFF).then_some(bk as u64))
        } else {
            (s[0x24], None)
        };
        Some(common(fs, spc as u32, reserved, total, drive, backup))
    }
}

/// Identify the filesystem at `[start, start+len)` of `disk` by its
/// signature (reads at most the first 68 KiB).
pub fn detect_fs(disk: &dyn Disk, start: u64, len: u64) -> Result<Option<FsKind>> {
    let n = len.min(0x11000).min(disk.size().saturating_sub(start)) as usize;
    if n < 512 {
        return Ok(None);
    }
    let mut b = vec![0u8; n];
    disk.read_at(&mut b, start)?;
    Ok(detect_bytes(&b))
}

/// Identify a filesystem from the first bytes of a volume (up to 68 KiB
/// for btrfs; shorter buffers detect what fits).
pub fn detect_bytes(b: &[u8]) -> Option<FsKind> {
    if b.len() < 512 {
        return None;
    }
    match &b[3..11] {
        b"-FVE-FS-" => return Some(FsKind::Bitlocker),
        b"EXFAT   " => return Some(FsKind::Exfat),
        _ => {}
    }
    if let Some(bpb) = Bpb::parse(&b[..512]) {
        return Some(bpb.fs);
    }
    if &b[0..4] == b"XFSB" {
        return Some(FsKind::Xfs);
    }
    for lvm in 0..4 {
        let o = lvm * 512;
        if b.len() >= o + 32 && &b[o..o + 8] == b"LABELONE" && &b[o + 24..o + 32] == b"LVM2 001" {
            return Some(FsKind::LvmPv);
        }
    }
    if b.len() >= 1024 + 0x68 && u16le(b, 1024 + 0x38) == 0xEF53 {
        let compat = u32le(b, 1024 + 0x5C);
        let incompat = u32le(b, 1024 + 0x60);
        let ro_compat = u32le(b, 1024 + 0x64);
        // ext4-only features: extents, 64bit, flex_bg, huge_file, dir_nlink...
        return Some(
            if incompat & (0x40 | 0x80 | 0x200) != 0 || ro_compat & (0x8 | 0x20) != 0 {
                FsKind::Ext4
            } else if compat & 0x4 != 0 {
                FsKind::Ext3
            } else {
                FsKind::Ext2
            },
        );
    }
    if b.len() >= 4096 {
        let tail = &b[4096 - 10..4096];
        if tail == b"SWAPSPACE2" || tail == b"SWAP-SPACE" {
            return Some(FsKind::Swap);
        }
    }
    if b.len() >= 0x10048 && &b[0x10040..0x10048] == b"_BHRfS_M" {
        return Some(FsKind::Btrfs);
    }
    None
}
