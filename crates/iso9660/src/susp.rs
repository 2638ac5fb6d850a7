//! System Use Sharing Protocol entries and the parts of Rock Ridge the
//! reader needs: `SP` (SUSP in use, bytes to skip), `CE` (continuation
//! areas), `NM` (alternate names), `CL`/`RE` (relocated deep directories)
//! and the entries that show Rock Ridge is in use (`ER` with an RRIP id,
//! `RR`, `PX`, `TF`, `SL`, `PN`).

use crate::error::{corrupt, io, too_large, Result};
use crate::read::Budget;
use crate::record::le32;
use crate::ReadAt;
use std::collections::HashSet;

/// Most continuation areas followed for one directory record.
pub(crate) const MAX_CE_HOPS: usize = 16;
/// Longest Rock Ridge name accepted (Linux allows 255 bytes).
const MAX_NAME: usize = 1024;

/// What the System Use field of one record says.
#[derive(Debug, Default)]
pub(crate) struct Susp {
    /// `SP` found: its LEN_SKP byte.
    pub sp_skip: Option<u8>,
    /// Rock Ridge entries seen.
    pub rock_ridge: bool,
    /// Concatenated `NM` content ("." / ".." for the CURRENT / PARENT flags).
    pub name: Option<Vec<u8>>,
    /// `RE`: this directory was relocated; its real place is a `CL` elsewhere.
    pub relocated: bool,
    /// `CL`: this file entry stands for a directory at that block.
    pub child_link: Option<u32>,
}

/// Parse a System Use field (`su`, found at byte `su_off` of the image)
/// and every continuation area it chains to.
pub(crate) fn parse<R: ReadAt + ?Sized>(
    r: &R,
    image_size: u64,
    block: u64,
    su: &[u8],
    su_off: u64,
    budget: &mut Budget,
) -> Result<Susp> {
    let mut out = Susp::default();
    let mut area = su.to_vec();
    let mut area_off = su_off;
    let mut seen = HashSet::new();
    let mut hops = 0;
    loop {
        let next = parse_area(&area, area_off, &mut out)?;
        let Some((lba, offset, len)) = next else {
            return Ok(out);
        };
        hops += 1;
        if hops > MAX_CE_HOPS {
            return Err(corrupt(
                area_off,
                format!("more than {MAX_CE_HOPS} SUSP continuation areas (CE) chained from one record (a CE loop?)"),
            ));
        }
        if u64::from(len) > block || u64::from(offset) >= block {
            return Err(corrupt(
                area_off,
                format!(
                    "SUSP continuation area (CE) at block {lba} offset {offset} length {len}; expected it within one {block}-byte block"
                ),
            ));
        }
        let pos = u64::from(lba) * block + u64::from(offset);
        if pos + u64::from(len) > image_size {
            return Err(corrupt(
                area_off,
                format!(
                    "SUSP continuation area (CE) at byte {pos:#x} ({len} bytes) lies past the end of the image ({image_size} bytes)"
                ),
            ));
        }
        if !seen.insert(pos) {
            return Err(corrupt(
                pos,
                "SUSP continuation area (CE) chain returns to an area already read (CE loop)",
            ));
        }
        budget.charge_ce(u64::from(len), pos)?;
        area = vec![0u8; len as usize];
        r.read_at(&mut area, pos)
            .map_err(|e| io(Some(pos), "reading a SUSP continuation area", e))?;
        area_off = pos;
    }
}

/// Parse the entries of one area into `out`; return the last `CE` seen.
fn parse_area(area: &[u8], area_off: u64, out: &mut Susp) -> Result<Option<(u32, u32, u32)>> {
    let mut ce = None;
    let mut p = 0usize;
    while p + 4 <= area.len() {
        let sig = [area[p], area[p + 1]];
        let len = usize::from(area[p + 2]);
        if sig == [0, 0] {
            break; // padding to the end of the field
        }
        if len < 4 || p + len > area.len() {
            return Err(corrupt(
                area_off + p as u64,
                format!(
                    "System Use entry {:?} has length {len}; expected 4..={} bytes",
                    String::from_utf8_lossy(&sig),
                    area.len() - p
                ),
            ));
        }
        let data = &area[p + 4..p + len];
        let at = area_off + p as u64;
        match &sig {
            b"ST" => break,
            b"CE" => {
                if data.len() < 24 {
                    return Err(corrupt(at, "SUSP CE entry shorter than its 28 bytes"));
                }
                ce = Some((le32(data, 0), le32(data, 8), le32(data, 16)));
            }
            b"SP" if data.len() >= 3 && data[0] == 0xBE && data[1] == 0xEF => {
                out.sp_skip = Some(data[2]);
            }
            b"NM" => {
                out.rock_ridge = true;
                let flags = data.first().copied().unwrap_or(0);
                let name = out.name.get_or_insert_with(Vec::new);
                if flags & 0x02 != 0 {
                    *name = b".".to_vec();
                } else if flags & 0x04 != 0 {
                    *name = b"..".to_vec();
                } else if data.len() > 1 {
                    if name.len() + data.len() - 1 > MAX_NAME {
                        return Err(too_large(
                            Some(at),
                            format!("Rock Ridge name (NM) longer than {MAX_NAME} bytes"),
                        ));
                    }
                    name.extend_from_slice(&data[1..]);
                }
            }
            b"RE" => {
                out.rock_ridge = true;
                out.relocated = true;
            }
            b"CL" => {
                out.rock_ridge = true;
                if data.len() < 8 {
                    return Err(corrupt(at, "Rock Ridge CL entry shorter than its 12 bytes"));
                }
                out.child_link = Some(le32(data, 0));
            }
            b"RR" | b"PX" | b"TF" | b"SL" | b"PN" => out.rock_ridge = true,
            b"ER" if data.len() >= 4 => {
                let id_len = usize::from(data[0]);
                let id = &data[4..(4 + id_len).min(data.len())];
                if id.starts_with(b"RRIP")
                    || id.starts_with(b"IEEE_P1282")
                    || id.starts_with(b"IEEE_1282")
                {
                    out.rock_ridge = true;
                }
            }
            _ => {}
        }
        p += len;
    }
    Ok(ce)
}
