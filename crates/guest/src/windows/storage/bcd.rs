//! BCD stores: a one-time backup beside each store, a check that the
//! default loader's `device` and `osdevice` name partitions that exist,
//! and on UEFI the removable-media fallback loader (`\EFI\BOOT\BOOTX64.EFI`;
//! NVRAM boot entries do not move with the disk).
//!
//! A partition device element (`11000001` device, `21000001` osdevice) is
//! stored as: 16 bytes of options GUID, u32 device type (6 = partition),
//! u32 flags, u32 length (0x48), u32 reserved; at 0x20 the partition
//! identifier (GPT: partition GUID; MBR: u64 byte offset), at 0x30 u32
//! partition style (0 GPT, 1 MBR), at 0x38 the disk identifier (GPT: disk
//! GUID; MBR: u32 signature). GUIDs have their first three fields
//! little-endian.

use super::{GuestAccess, Out};
use crate::drivers::Arch;
use crate::inspect::{Firmware, WindowsInstall};
use crate::plan::{Action, FileSource, VolumeRef};
use regf::{Hive, Value};

/// The boot manager object.
pub const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/// Largest BCD store or boot loader read.
pub const MAX_BOOT_FILE: u64 = 16 << 20;

/// A partition of the VM as the BCD names partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionId {
    /// Where it is.
    pub volume: VolumeRef,
    /// Byte offset on its disk.
    pub start: u64,
    /// MBR disk signature (MBR disks).
    pub mbr_signature: Option<u32>,
    /// GPT disk GUID (GPT disks), any case, braces optional.
    pub gpt_disk: Option<String>,
    /// GPT unique partition GUID (GPT disks).
    pub gpt_partition: Option<String>,
}

/// A partition named by a BCD device element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BcdPartition {
    /// MBR: disk signature and partition byte offset.
    Mbr {
        /// Disk signature.
        signature: u32,
        /// Partition offset in bytes.
        offset: u64,
    },
    /// GPT: disk and partition GUIDs.
    Gpt {
        /// Disk GUID.
        disk: uuid::Uuid,
        /// Partition GUID.
        partition: uuid::Uuid,
    },
}

impl std::fmt::Display for BcdPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BcdPartition::Mbr { signature, offset } => write!(
                f,
                "MBR disk signature 0x{signature:08x}, partition at byte {offset}"
            ),
            BcdPartition::Gpt { disk, partition } => {
                write!(f, "GPT disk {{{disk}}}, partition {{{partition}}}")
            }
        }
    }
}

/// Parse a device element; `None` when it is not a partition device (boot
/// device, ramdisk, locate) or is too short.
pub fn parse_device(b: &[u8]) -> Option<BcdPartition> {
    let u32at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    if b.len() < 0x48 || u32at(0x10)? != 6 {
        return None;
    }
    let guid = |o: usize| -> Option<uuid::Uuid> {
        let a: [u8; 16] = b.get(o..o + 16)?.try_into().ok()?;
        Some(uuid::Uuid::from_bytes_le(a))
    };
    match u32at(0x30)? {
        0 => Some(BcdPartition::Gpt {
            partition: guid(0x20)?,
            disk: guid(0x38)?,
        }),
        1 => Some(BcdPartition::Mbr {
            offset: u64::from_le_bytes(b.get(0x20..0x28)?.try_into().ok()?),
            signature: u32at(0x38)?,
        }),
        _ => None,
    }
}

fn parse_guid(s: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(s.trim().trim_start_matches('{').trim_end_matches('}')).ok()
}

/// The partition `p` names, among `parts`.
pub fn find<'a>(p: &BcdPartition, parts: &'a [PartitionId]) -> Option<&'a PartitionId> {
    parts.iter().find(|x| match p {
        BcdPartition::Mbr { signature, offset } => {
            x.mbr_signature == Some(*signature) && x.start == *offset
        }
        BcdPartition::Gpt { disk, partition } => {
            x.gpt_disk.as_deref().and_then(parse_guid) == Some(*disk)
                && x.gpt_partition.as_deref().and_then(parse_guid) == Some(*partition)
        }
    })
}

fn element(h: &Hive, obj: &str, el: &str) -> Option<Value> {
    super::get_value(h, &format!(r"Objects\{obj}\Elements\{el}"), "Element")
}

/// The devices of a loader: (`device` or `osdevice`, the partition named,
/// `None` when it is not a partition device).
pub type LoaderDevices = Vec<(&'static str, Option<BcdPartition>)>;

/// The default loader's object GUID and partition devices. Errors name
/// what is missing.
pub fn default_devices(h: &Hive) -> Result<(String, LoaderDevices), String> {
    let def = match element(h, BOOTMGR, "23000003") {
        Some(Value::String(s)) => s,
        _ => return Err("the boot manager has no default entry (element 23000003)".into()),
    };
    let mut out = Vec::new();
    for (el, what) in [("11000001", "device"), ("21000001", "osdevice")] {
        match element(h, &def, el) {
            Some(Value::Binary(b)) => out.push((what, parse_device(&b))),
            Some(_) => return Err(format!("{def} element {el} ({what}) is not binary")),
            None => {
                return Err(format!(
                    "the default entry {def} has no {what} (element {el})"
                ))
            }
        }
    }
    Ok((def, out))
}

/// Back up every store, check the default loader, and on UEFI make sure
/// the fallback loader exists.
pub fn plan_bcd(install: &WindowsInstall, guest: &dyn GuestAccess, out: &mut Out) {
    let parts = guest.partitions();
    for store in &install.bcd {
        let dir = store.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let to = if dir.is_empty() {
            "BCD.hyper2kvm-backup".to_string()
        } else {
            format!("{dir}/BCD.hyper2kvm-backup")
        };
        out.action(
            Action::CopyOnce {
                volume: store.volume.clone(),
                from: store.path.clone(),
                to,
            },
            "keep the boot configuration as it was before hyper2kvm (made once)",
        );
        let Some(bytes) = guest.read(&store.volume, &store.path, MAX_BOOT_FILE) else {
            out.warn(format!(
                "BCD {}: cannot be read; its devices are not checked",
                store.path
            ));
            continue;
        };
        let hive = match Hive::open(bytes) {
            Ok(h) => h,
            Err(e) => {
                out.warn(format!(
                    "BCD {}: not a readable hive ({e}); its devices are not checked",
                    store.path
                ));
                continue;
            }
        };
        match default_devices(&hive) {
            Err(m) => out.warn(format!("BCD {}: {m}", store.path)),
            Ok((def, devs)) => {
                for (what, dev) in devs {
                    match dev {
                        None => out.warn(format!(
                            "BCD {}: the default entry {def}'s {what} is not a partition device; not checked",
                            store.path
                        )),
                        Some(p) if find(&p, &parts).is_none() => out.manual(format!(
                            "BCD {}: the default entry {def}'s {what} names {p}, which is not a partition of this VM: \
                             Windows will not find its boot volume; on the source VM run `bcdedit /set {{default}} {what} partition=C:` \
                             (and the boot manager's device) before converting",
                            store.path
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    if install.firmware == Firmware::Uefi {
        plan_fallback_loader(install, guest, out);
    }
}

fn plan_fallback_loader(install: &WindowsInstall, guest: &dyn GuestAccess, out: &mut Out) {
    let esp = install
        .bcd
        .iter()
        .find(|h| h.path.to_ascii_lowercase().starts_with("efi/"))
        .map(|h| h.volume.clone())
        .or_else(|| install.boot_volume.clone());
    let Some(esp) = esp else {
        out.manual("UEFI install without a known EFI system partition: make sure \\EFI\\BOOT\\BOOTX64.EFI exists".into());
        return;
    };
    let name = match install.arch {
        Arch::Amd64 => "EFI/BOOT/BOOTX64.EFI",
        Arch::X86 => "EFI/BOOT/BOOTIA32.EFI",
    };
    if guest.exists(&esp, name) {
        return;
    }
    let from = "EFI/Microsoft/Boot/bootmgfw.efi";
    match guest.digest(&esp, from, MAX_BOOT_FILE) {
        Some((size, sha256)) => out.action(
            Action::PutFile {
                volume: esp.clone(),
                path: name.to_string(),
                source: FileSource::Guest {
                    volume: esp.clone(),
                    path: from.to_string(),
                },
                size,
                sha256,
            },
            "the firmware's boot entries stay behind in the source's NVRAM: the removable-media path boots Windows Boot Manager",
        ),
        None => out.manual(format!(
            "the ESP has neither {name} nor {from}: the VM will not boot under UEFI; repair the boot files on the source VM (`bcdboot C:\\Windows /f UEFI`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_the_real_gpt_device_element() {
        // Element 21000001 of the Windows 10 loader in the shared BCD store.
        let b = hex("0000000000000000000000000000000006000000000000004800000000000000382c0f8eeae4ba47b7fc9d8c74dccf0b0000000000000000a994230b5e097d488d48719ecd4d78ca00000000000000000000000000000000");
        let p = parse_device(&b).unwrap();
        assert_eq!(
            p,
            BcdPartition::Gpt {
                disk: uuid::Uuid::parse_str("0b2394a9-095e-487d-8d48-719ecd4d78ca").unwrap(),
                partition: uuid::Uuid::parse_str("8e0f2c38-e4ea-47ba-b7fc-9d8c74dccf0b").unwrap(),
            }
        );
        // Truncated, or not a partition device: no answer, no panic.
        assert_eq!(parse_device(&b[..0x40]), None);
        let mut other = b.clone();
        other[0x10] = 5;
        assert_eq!(parse_device(&other), None);
    }

    #[test]
    fn mbr_device_matches_signature_and_offset() {
        let mut b = vec![0u8; 0x58];
        b[0x10] = 6;
        b[0x18] = 0x48;
        b[0x20..0x28].copy_from_slice(&(1_048_576u64).to_le_bytes());
        b[0x30] = 1;
        b[0x38..0x3c].copy_from_slice(&0x5cbe_a03eu32.to_le_bytes());
        let p = parse_device(&b).unwrap();
        let part = |sig, start| PartitionId {
            volume: VolumeRef {
                disk: 0,
                partition: Some(1),
            },
            start,
            mbr_signature: Some(sig),
            gpt_disk: None,
            gpt_partition: None,
        };
        assert!(find(&p, &[part(0x5cbe_a03e, 1_048_576)]).is_some());
        assert!(find(&p, &[part(0x5cbe_a03e, 2_048)]).is_none());
        assert!(find(&p, &[part(1, 1_048_576)]).is_none());
    }
}
