//! The BCD store of a phony guest: the real one from the shared test data
//! (a GPT install's), with the partition devices rewritten to the phony
//! disk's layout, so the boot manager and the default loader name
//! partitions that exist (as on a real install of that layout).
//!
//! A partition device element (`11000001` device, `21000001` osdevice) is
//! 16 bytes of options GUID, u32 device type (6 = partition), u32 flags,
//! u32 length, u32 reserved; at 0x20 the partition identifier (GPT:
//! partition GUID; MBR: u64 byte offset), at 0x30 u32 partition style (0
//! GPT, 1 MBR), at 0x38 the disk identifier (GPT: disk GUID; MBR: u32
//! signature, the rest zero). GUIDs are in their on-disk byte order.

use crate::{Error, Result};
use regf::{Hive, Value};

/// The boot manager object.
const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";

/// Where a device element points.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// MBR disk: signature and partition byte offset.
    Mbr {
        /// Disk signature.
        signature: u32,
        /// Partition start in bytes.
        offset: u64,
    },
    /// GPT disk: disk GUID and partition GUID (on-disk byte order).
    Gpt {
        /// Disk GUID bytes.
        disk: [u8; 16],
        /// Partition GUID bytes.
        partition: [u8; 16],
    },
}

fn get(h: &Hive, path: &str) -> Result<Option<Value>> {
    let Some(k) = h.get_key(path)? else {
        return Ok(None);
    };
    match k.value("Element")? {
        Some(v) => Ok(Some(v.data()?)),
        None => Ok(None),
    }
}

/// Point a device element's bytes at `t`. Errors when the element is not
/// a partition device long enough to hold one.
fn retarget(b: &mut [u8], t: Target, what: &str) -> Result<()> {
    if b.len() < 0x48 || b[0x10..0x14] != 6u32.to_le_bytes() {
        return Err(Error::Layout(format!(
            "BCD {what}: not a partition device element ({} bytes)",
            b.len()
        )));
    }
    match t {
        Target::Mbr { signature, offset } => {
            b[0x20..0x30].fill(0);
            b[0x20..0x28].copy_from_slice(&offset.to_le_bytes());
            b[0x30..0x34].copy_from_slice(&1u32.to_le_bytes());
            b[0x38..0x48].fill(0);
            b[0x38..0x3c].copy_from_slice(&signature.to_le_bytes());
        }
        Target::Gpt { disk, partition } => {
            b[0x20..0x30].copy_from_slice(&partition);
            b[0x30..0x34].copy_from_slice(&0u32.to_le_bytes());
            b[0x38..0x48].copy_from_slice(&disk);
        }
    }
    Ok(())
}

/// The store `bcd` with the boot manager's device pointed at `boot` and
/// the default loader's device and osdevice at `system`.
pub fn relocate(bcd: &[u8], boot: Target, system: Target) -> Result<Vec<u8>> {
    let mut h = Hive::open(bcd.to_vec())?;
    let el = |obj: &str, id: &str| format!("Objects\\{obj}\\Elements\\{id}");
    let default = match get(&h, &el(BOOTMGR, "23000003"))? {
        Some(Value::String(s)) => s,
        other => {
            return Err(Error::Layout(format!(
                "BCD: the boot manager's default entry (23000003) is {other:?}"
            )))
        }
    };
    for (obj, id, t) in [
        (BOOTMGR, "11000001", boot),
        (default.as_str(), "11000001", system),
        (default.as_str(), "21000001", system),
    ] {
        let path = el(obj, id);
        let mut b = match get(&h, &path)? {
            Some(Value::Binary(b)) => b,
            other => {
                return Err(Error::Layout(format!(
                    "BCD {path}: expected a binary device element, found {other:?}"
                )))
            }
        };
        retarget(&mut b, t, &path)?;
        h.set_value(&path, "Element", &Value::Binary(b))?;
    }
    Ok(h.commit())
}
