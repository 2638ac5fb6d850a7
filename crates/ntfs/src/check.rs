//! Consistency checker: MFT bitmap vs records in use, cluster bitmap vs
//! runlists (leaks, cross-links, unmarked clusters), fixups and attribute
//! sanity of every record, directory index order and entries pointing at
//! live records.

use crate::dir::I30;
use crate::error::Result;
use crate::index::ns;
use crate::record::{ty, Body};
use crate::runlist;
use crate::util::utf16_units;
use crate::volume::{sys, Volume};
use serde::Serialize;
use std::cmp::Ordering;
use vdisk::Disk;

/// What the checker found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Records examined.
    pub records: u64,
    /// Directories whose index was walked.
    pub directories: u64,
    /// Errors (the volume is inconsistent).
    pub errors: Vec<String>,
    /// Warnings (harmless, e.g. leaked clusters).
    pub warnings: Vec<String>,
}

const MAX_MSGS: usize = 200;

impl CheckReport {
    fn err(&mut self, m: String) {
        if self.errors.len() < MAX_MSGS {
            self.errors.push(m);
        }
    }
    fn warn(&mut self, m: String) {
        if self.warnings.len() < MAX_MSGS {
            self.warnings.push(m);
        }
    }
}

fn bit(b: &[u8], i: u64) -> bool {
    b.get((i / 8) as usize)
        .is_some_and(|x| x & (1 << (i % 8)) != 0)
}

impl<D: Disk> Volume<D> {
    /// Check the volume; never writes.
    pub fn check(&self) -> Result<CheckReport> {
        let mut rep = CheckReport::default();
        let mi = self.inode(sys::MFT)?;
        let mbm = match self.stream(&mi, ty::BITMAP, &[])? {
            Some(s) => self.read_all(&s)?,
            None => {
                rep.err("$MFT has no $BITMAP".into());
                Vec::new()
            }
        };
        let bi = self.inode(sys::BITMAP)?;
        let cbm = match self.stream(&bi, ty::DATA, &[])? {
            Some(s) => self.read_all(&s)?,
            None => Vec::new(),
        };
        let total = self.total_clusters();
        let mut used = vec![0u8; total.div_ceil(8) as usize];
        let mut dirs = Vec::new();
        for no in 0..self.info.mft_records.min(1 << 24) {
            let rec = match self.read_record(no) {
                Ok(r) => r,
                Err(e) => {
                    if bit(&mbm, no) {
                        rep.err(format!(
                            "record {no} marked in use in the MFT bitmap but unreadable: {e}"
                        ));
                    }
                    continue;
                }
            };
            rep.records += 1;
            if rec.in_use() != bit(&mbm, no) && no >= 16 {
                rep.err(format!(
                    "record {no}: in-use flag {} but MFT bitmap bit {}",
                    rec.in_use(),
                    bit(&mbm, no)
                ));
            }
            if !rec.in_use() {
                continue;
            }
            let attrs = match rec.attrs() {
                Ok(a) => a,
                Err(e) => {
                    rep.err(format!("record {no}: {e}"));
                    continue;
                }
            };
            for a in &attrs {
                if let Body::NonResident { start_vcn, .. } = a.body {
                    match runlist::decode(rec.runs_bytes(a), start_vcn, total, rec.pos) {
                        Ok(runs) => {
                            for r in runs {
                                let Some(l) = r.lcn else { continue };
                                for c in l..l + r.len {
                                    if bit(&used, c) {
                                        rep.err(format!(
                                            "cluster {c} used twice (record {no}, attribute {:#x})",
                                            a.ty
                                        ));
                                        break;
                                    }
                                    used[(c / 8) as usize] |= 1 << (c % 8);
                                    if !bit(&cbm, c) {
                                        rep.err(format!(
                                            "cluster {c} used by record {no} but free in $Bitmap"
                                        ));
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => rep.err(format!("record {no}: {e}")),
                    }
                }
            }
            if rec.base_ref() == 0 && rec.is_dir() {
                dirs.push(no);
            }
        }
        // clusters marked but not used: leaks (harmless)
        let mut leaked = 0u64;
        for c in 0..total {
            if bit(&cbm, c) && !bit(&used, c) {
                leaked += 1;
            }
        }
        // the boot sector cluster(s) are marked but not in any runlist
        // except $Boot's; allow a handful
        if leaked > 0 {
            rep.warn(format!(
                "{leaked} clusters marked in use but not referenced by any record"
            ));
        }
        for d in dirs {
            rep.directories += 1;
            if let Err(e) = self.check_dir(d, &mbm, &mut rep) {
                rep.err(format!("directory record {d}: {e}"));
            }
        }
        Ok(rep)
    }

    fn check_dir(&self, d: u64, mbm: &[u8], rep: &mut CheckReport) -> Result<()> {
        let ino = self.inode(d)?;
        if ino.value(ty::INDEX_ROOT, &I30).is_none() {
            return Ok(());
        }
        let di = self.dir_index(&ino)?;
        let mut prev: Option<Vec<u16>> = None;
        let mut msgs = Vec::new();
        self.walk_index(&di, &mut |e| {
            let f = e.file_name()?;
            let rno = e.fileref & 0xffff_ffff_ffff;
            let seq = (e.fileref >> 48) as u16;
            if f.parent_no() != d {
                msgs.push(format!(
                    "directory {d}: entry {:?} names parent {}",
                    String::from_utf16_lossy(&f.name),
                    f.parent_no()
                ));
            }
            if !bit(mbm, rno) {
                msgs.push(format!(
                    "directory {d}: entry {:?} points to free record {rno}",
                    String::from_utf16_lossy(&f.name)
                ));
            } else if let Ok(r) = self.read_record(rno) {
                if seq != 0 && r.seq() != seq {
                    msgs.push(format!(
                        "directory {d}: entry {:?} has sequence {seq}, record {rno} has {}",
                        String::from_utf16_lossy(&f.name),
                        r.seq()
                    ));
                }
            }
            let n = utf16_units(e.name());
            if let Some(p) = &prev {
                if self.upcase.collate(p, &n) != Ordering::Less {
                    msgs.push(format!(
                        "directory {d}: entries out of order: {:?} before {:?}",
                        String::from_utf16_lossy(p),
                        String::from_utf16_lossy(&n)
                    ));
                }
            }
            let _ = ns::DOS;
            prev = Some(n);
            Ok(())
        })?;
        for m in msgs {
            rep.err(m);
        }
        Ok(())
    }
}
