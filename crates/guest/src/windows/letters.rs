//! Drive letters from the SYSTEM hive's `MountedDevices`: each
//! `\DosDevices\X:` value names a volume by MBR disk signature and
//! partition byte offset (12 bytes), or by GPT partition GUID
//! (`DMIO:ID:` + 16 bytes). Other values (CD-ROMs, USB sticks) name
//! devices, not volumes of this VM, and are skipped.

use super::reg;
use crate::inspect::DiskInfo;
use crate::plan::VolumeRef;
use regf::Hive;
use vdisk::Disk;

/// What a `MountedDevices` value points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mounted {
    /// An MBR partition: disk signature and byte offset.
    Mbr {
        /// Disk signature.
        signature: u32,
        /// Partition start in bytes.
        offset: u64,
    },
    /// A GPT partition by its unique GUID (upper case, hyphenated).
    Gpt(String),
}

/// Decode a `MountedDevices` value's data.
pub fn parse_mounted(data: &[u8]) -> Option<Mounted> {
    if data.len() == 12 {
        let signature = u32::from_le_bytes(data[..4].try_into().ok()?);
        let offset = u64::from_le_bytes(data[4..12].try_into().ok()?);
        return Some(Mounted::Mbr { signature, offset });
    }
    if data.len() == 24 && &data[..8] == b"DMIO:ID:" {
        let g: [u8; 16] = data[8..24].try_into().ok()?;
        return Some(Mounted::Gpt(
            uuid::Uuid::from_bytes_le(g)
                .hyphenated()
                .to_string()
                .to_uppercase(),
        ));
    }
    None
}

/// Where a volume is, as `MountedDevices` names it.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The volume.
    pub volume: VolumeRef,
    /// Its disk's MBR signature.
    pub mbr_signature: Option<u32>,
    /// Start in bytes.
    pub start: u64,
    /// GPT partition GUID (upper case), when the disk is GPT.
    pub gpt_guid: Option<String>,
}

/// The layouts of every volume in `infos`; GPT GUIDs are read from the
/// partition tables of `disks` (a table that cannot be read gives none).
pub fn layouts(disks: &[&dyn Disk], infos: &[DiskInfo]) -> Vec<Layout> {
    let mut out = Vec::new();
    for (disk, d) in disks.iter().zip(infos) {
        let table = (d.table == "gpt")
            .then(|| crate::partition::read_table(*disk).ok())
            .flatten();
        for v in &d.volumes {
            let gpt_guid = table.as_ref().and_then(|t| {
                v.volume
                    .partition
                    .and_then(|n| t.get(n))
                    .and_then(|p| p.guid.clone())
            });
            out.push(Layout {
                volume: v.volume.clone(),
                mbr_signature: d.mbr_signature,
                start: v.start,
                gpt_guid,
            });
        }
    }
    out
}

/// Drive letters (`C:`) of the VM's volumes, in letter order.
pub fn drive_letters(system: &Hive, layouts: &[Layout]) -> Vec<(String, VolumeRef)> {
    let Some(k) = reg::key(system, "MountedDevices") else {
        return vec![];
    };
    let mut out: Vec<(String, VolumeRef)> = Vec::new();
    for v in k.values().unwrap_or_default() {
        let (Ok(name), Ok(data)) = (v.name(), v.raw()) else {
            continue;
        };
        let Some(letter) = name
            .strip_prefix("\\DosDevices\\")
            .filter(|l| l.len() == 2 && l.ends_with(':'))
        else {
            continue;
        };
        let Some(m) = parse_mounted(&data) else {
            continue;
        };
        let hit = layouts.iter().find(|l| match &m {
            Mounted::Mbr { signature, offset } => {
                l.mbr_signature == Some(*signature) && l.start == *offset
            }
            Mounted::Gpt(g) => l.gpt_guid.as_deref() == Some(g.as_str()),
        });
        if let Some(l) = hit {
            out.push((letter.to_ascii_uppercase(), l.volume.clone()));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_and_gpt_values() {
        let mbr = [0x3e, 0xa0, 0xbe, 0x5c, 0, 0, 0x10, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_mounted(&mbr),
            Some(Mounted::Mbr {
                signature: 0x5cbea03e,
                offset: 1 << 20
            })
        );
        let mut gpt = b"DMIO:ID:".to_vec();
        gpt.extend_from_slice(&[
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34,
            0x56, 0x78,
        ]);
        assert_eq!(
            parse_mounted(&gpt),
            Some(Mounted::Gpt("12345678-1234-5678-9ABC-DEF012345678".into()))
        );
        assert_eq!(parse_mounted(b"\\\0?\0?\0"), None);
    }
}
