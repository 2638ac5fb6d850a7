//! The NTFS boot sector (BIOS parameter block) and BitLocker detection.

use crate::error::{corrupt, Error, Result};
use crate::util::{u16le, u64le};
use serde::Serialize;

/// Geometry read from the boot sector.
#[derive(Debug, Clone, Serialize)]
pub struct BootSector {
    /// Bytes per sector (512..4096).
    pub sector_size: u32,
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Sectors in the volume (from the boot sector).
    pub total_sectors: u64,
    /// First cluster of $MFT.
    pub mft_lcn: u64,
    /// First cluster of $MFTMirr.
    pub mftmirr_lcn: u64,
    /// Bytes per MFT record.
    pub record_size: u32,
    /// Bytes per index block.
    pub index_block_size: u32,
    /// Volume serial number.
    pub serial: u64,
}

/// Signature BitLocker writes at byte 3 of an encrypted volume.
pub const BITLOCKER_SIG: &[u8; 8] = b"-FVE-FS-";

/// True when the first sector carries BitLocker's signature.
pub fn is_bitlocker(sector0: &[u8]) -> bool {
    sector0.len() >= 11 && &sector0[3..11] == BITLOCKER_SIG
}

/// Decode the "clusters per record" byte: positive = clusters, negative
/// = 2^-n bytes.
fn per_record(v: u8, cluster: u32) -> Option<u32> {
    let s = v as i8;
    if s > 0 {
        (s as u32).checked_mul(cluster)
    } else if (-s) < 32 && s != 0 {
        Some(1u32 << (-(s as i32)))
    } else {
        None
    }
}

impl BootSector {
    /// Parse the first 512 bytes of a volume.
    pub fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < 512 {
            return Err(corrupt(0, "boot sector shorter than 512 bytes"));
        }
        if is_bitlocker(b) {
            return Err(Error::Refused(
                "volume is encrypted with BitLocker (-FVE-FS- signature): decrypt it in \
                 Windows (manage-bde -off) before migrating"
                    .into(),
            ));
        }
        if &b[3..11] != b"NTFS    " {
            return Err(corrupt(
                3,
                format!(
                    "OEM id is {:?}, expected \"NTFS    \"",
                    String::from_utf8_lossy(&b[3..11])
                ),
            ));
        }
        let sector_size = u32::from(u16le(b, 0x0b));
        if !(256..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(corrupt(
                0x0b,
                format!("bytes per sector {sector_size} is not a power of two in 256..4096"),
            ));
        }
        let spc = b[0x0d];
        let spc: u32 = if spc <= 0x80 {
            u32::from(spc)
        } else {
            let sh = 256 - u32::from(spc);
            if sh > 20 {
                0
            } else {
                1 << sh
            }
        };
        if spc == 0 || !spc.is_power_of_two() {
            return Err(corrupt(
                0x0d,
                "sectors per cluster is 0 or not a power of two",
            ));
        }
        let cluster_size = sector_size * spc;
        if cluster_size > 2 * 1024 * 1024 {
            return Err(corrupt(
                0x0d,
                format!("cluster size {cluster_size} above 2 MiB"),
            ));
        }
        let record_size = per_record(b[0x40], cluster_size)
            .filter(|s| (256..=65536).contains(s) && s.is_power_of_two())
            .ok_or_else(|| corrupt(0x40, "MFT record size is not a power of two in 256..64K"))?;
        let index_block_size = per_record(b[0x44], cluster_size)
            .filter(|s| (512..=65536).contains(s) && s.is_power_of_two())
            .ok_or_else(|| corrupt(0x44, "index block size is not a power of two in 512..64K"))?;
        Ok(BootSector {
            sector_size,
            cluster_size,
            total_sectors: u64le(b, 0x28),
            mft_lcn: u64le(b, 0x30),
            mftmirr_lcn: u64le(b, 0x38),
            record_size,
            index_block_size,
            serial: u64le(b, 0x48),
        })
    }

    /// Clusters in the volume.
    pub fn total_clusters(&self) -> u64 {
        self.total_sectors * u64::from(self.sector_size) / u64::from(self.cluster_size)
    }
}
