//! Key security cells (`sk`): parsing, reference counts, the circular list,
//! and a default descriptor for new hives.

use crate::base::{le16, le32, put32};
use crate::error::{Error, Result};
use crate::hive::Hive;

/// A decoded `sk` cell.
#[derive(Debug, Clone)]
pub(crate) struct Sk {
    pub flink: u32,
    pub blink: u32,
    pub refcount: u32,
    pub descriptor: Vec<u8>,
}

impl Hive {
    pub(crate) fn sk(&self, off: u32) -> Result<Sk> {
        let c = self.cell(off)?;
        if c.len() < 20 || &c[0..2] != b"sk" {
            return Err(Error::corrupt_cell(
                off,
                "expected a key security record (sk)",
            ));
        }
        let n = le32(c, 16) as usize;
        if 20 + n > c.len() {
            return Err(Error::corrupt_cell(
                off,
                format!("security descriptor of {n} bytes exceeds the cell"),
            ));
        }
        Ok(Sk {
            flink: le32(c, 4),
            blink: le32(c, 8),
            refcount: le32(c, 12),
            descriptor: c[20..20 + n].to_vec(),
        })
    }

    /// Add `delta` to an sk reference count; frees and unlinks the cell when
    /// it reaches zero.
    pub(crate) fn sk_ref(&mut self, off: u32, delta: i32) -> Result<()> {
        let sk = self.sk(off)?;
        let n = sk.refcount as i64 + delta as i64;
        if n > 0 {
            put32(self.cell_mut(off)?, 12, n as u32);
            return Ok(());
        }
        // Unlink from the circular list, then free.
        if sk.flink != off {
            self.sk(sk.flink)?;
            self.sk(sk.blink)?;
            put32(self.cell_mut(sk.blink)?, 4, sk.flink);
            put32(self.cell_mut(sk.flink)?, 8, sk.blink);
            self.free(off);
        } else {
            // Last descriptor of the hive: keep it (the root needs one).
            put32(self.cell_mut(off)?, 12, 0);
        }
        Ok(())
    }

    /// Store a new `sk` cell with `descriptor`, linked after `after` (or as a
    /// single-element list when `after` is `None`); reference count 0.
    pub(crate) fn sk_new(&mut self, descriptor: &[u8], after: Option<u32>) -> Result<u32> {
        let off = self.alloc(20 + descriptor.len())?;
        {
            let c = self.cell_mut(off)?;
            c[0..2].copy_from_slice(b"sk");
            put32(c, 16, descriptor.len() as u32);
            c[20..20 + descriptor.len()].copy_from_slice(descriptor);
        }
        match after {
            None => {
                let c = self.cell_mut(off)?;
                put32(c, 4, off);
                put32(c, 8, off);
            }
            Some(prev) => {
                let next = self.sk(prev)?.flink;
                self.sk(next)?;
                put32(self.cell_mut(off)?, 4, next);
                put32(self.cell_mut(off)?, 8, prev);
                put32(self.cell_mut(prev)?, 4, off);
                put32(self.cell_mut(next)?, 8, off);
            }
        }
        Ok(off)
    }
}

fn sid(out: &mut Vec<u8>, auth: u8, subs: &[u32]) {
    out.push(1);
    out.push(subs.len() as u8);
    out.extend_from_slice(&[0, 0, 0, 0, 0, auth]);
    for s in subs {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// A self-relative security descriptor for the root of a new hive: owner
/// and group BUILTIN\Administrators / SYSTEM; DACL (inherited by subkeys):
/// full control for Administrators and SYSTEM, read for Everyone.
pub fn default_descriptor() -> Vec<u8> {
    let mut owner = Vec::new();
    sid(&mut owner, 5, &[32, 544]);
    let mut group = Vec::new();
    sid(&mut group, 5, &[18]);
    let mut aces = Vec::new();
    let mut ace = |mask: u32, s: &[u8]| {
        aces.push(0u8); // ACCESS_ALLOWED_ACE_TYPE
        aces.push(0x02); // CONTAINER_INHERIT_ACE
        aces.extend_from_slice(&((8 + s.len()) as u16).to_le_bytes());
        aces.extend_from_slice(&mask.to_le_bytes());
        aces.extend_from_slice(s);
    };
    ace(0x000F_003F, &owner);
    ace(0x000F_003F, &group);
    let mut everyone = Vec::new();
    sid(&mut everyone, 1, &[0]);
    ace(0x0002_0019, &everyone);
    let mut acl = vec![2u8, 0];
    acl.extend_from_slice(&((8 + aces.len()) as u16).to_le_bytes());
    acl.extend_from_slice(&3u16.to_le_bytes());
    acl.extend_from_slice(&[0, 0]);
    acl.extend(aces);
    let mut sd = vec![1u8, 0];
    // SE_SELF_RELATIVE | SE_DACL_PRESENT
    sd.extend_from_slice(&0x8004u16.to_le_bytes());
    let owner_off = 20u32;
    let group_off = owner_off + owner.len() as u32;
    let dacl_off = group_off + group.len() as u32;
    sd.extend_from_slice(&owner_off.to_le_bytes());
    sd.extend_from_slice(&group_off.to_le_bytes());
    sd.extend_from_slice(&0u32.to_le_bytes());
    sd.extend_from_slice(&dacl_off.to_le_bytes());
    sd.extend(owner);
    sd.extend(group);
    sd.extend(acl);
    sd
}

/// Light validation of a self-relative security descriptor; returns a
/// description of the first problem.
pub(crate) fn validate_descriptor(sd: &[u8]) -> Option<String> {
    if sd.len() < 20 {
        return Some(format!(
            "descriptor of {} bytes, at least 20 expected",
            sd.len()
        ));
    }
    if sd[0] != 1 {
        return Some(format!("descriptor revision {}, expected 1", sd[0]));
    }
    if le16(sd, 2) & 0x8000 == 0 {
        return Some("descriptor is not self-relative".into());
    }
    for (i, what) in [(4, "owner"), (8, "group"), (12, "SACL"), (16, "DACL")] {
        let o = le32(sd, i) as usize;
        if o != 0 && o + 2 > sd.len() {
            return Some(format!(
                "{what} offset {o} outside the {}-byte descriptor",
                sd.len()
            ));
        }
    }
    None
}
