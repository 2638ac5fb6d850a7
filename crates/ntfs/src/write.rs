//! Write primitives: MFT records (with $MFTMirr), cluster runs, attribute
//! resizing (resident <-> non-resident, grow/shrink runlists) and
//! in-place attribute writes.

use crate::error::{corrupt, Error, Result};
use crate::record::{
    build_nonresident, protect, Body, Record, ATTR_COMPRESSED, ATTR_ENCRYPTED, ATTR_SPARSE,
};
use crate::runlist::{self, Run};
use crate::util::{align, put16, put64, u16le};
use crate::volume::{Inode, Volume};
use vdisk::DiskWrite;

impl<D: DiskWrite> Volume<D> {
    /// Open a volume for writing. Safety checks run before the first
    /// change; they refuse unless `opts.force`.
    pub fn open_rw(disk: D, opts: crate::WriteOptions) -> Result<Self> {
        let mut v = Volume::open(disk)?;
        v.w = Some(crate::alloc::WriteState {
            force: opts.force,
            ..Default::default()
        });
        Ok(v)
    }

    /// Make all writes durable.
    pub fn flush(&mut self) -> Result<()> {
        self.disk.flush()?;
        Ok(())
    }

    /// Write a record (fixups applied) and its $MFTMirr copy.
    pub(crate) fn write_record(&mut self, rec: &mut Record) -> Result<()> {
        let img = protect(&mut rec.buf);
        let pos = self.record_pos(rec.no)?;
        self.disk.write_at(&img, pos)?;
        if rec.no < self.mirr_records {
            let mpos =
                self.boot.mftmirr_lcn * self.cs() + rec.no * u64::from(self.boot.record_size);
            self.disk.write_at(&img, mpos)?;
        }
        Ok(())
    }

    /// Write `data` at byte `off` of the clusters described by `runs`.
    pub(crate) fn write_runs(&self, runs: &[Run], off: u64, data: &[u8]) -> Result<()> {
        let cs = self.cs();
        let mut done = 0usize;
        while done < data.len() {
            let p = off + done as u64;
            let vcn = p / cs;
            let r = runlist::find(runs, vcn)
                .ok_or_else(|| corrupt(0, format!("write at VCN {vcn} beyond the runlist")))?;
            let lcn = r
                .lcn
                .ok_or_else(|| Error::Unsupported("writing into a sparse hole".into()))?;
            let k = ((r.vcn + r.len) * cs - p).min((data.len() - done) as u64) as usize;
            self.disk
                .write_at(&data[done..done + k], (lcn + vcn - r.vcn) * cs + p % cs)?;
            done += k;
        }
        Ok(())
    }

    /// Write every record of the inode, then the bitmaps.
    pub(crate) fn commit(&mut self, ino: &mut Inode) -> Result<()> {
        for i in 0..ino.recs.len() {
            let mut r = ino.recs[i].clone();
            self.write_record(&mut r)?;
            ino.recs[i] = r;
        }
        Ok(())
    }

    /// Re-parse the attribute headers after an edit.
    pub(crate) fn refresh(&self, ino: &mut Inode) -> Result<()> {
        let mut attrs = Vec::new();
        for (i, r) in ino.recs.iter().enumerate() {
            attrs.extend(r.attrs()?.into_iter().map(|a| (i, a)));
        }
        ino.attrs = attrs;
        Ok(())
    }

    fn single_extent(
        &self,
        ino: &Inode,
        t: u32,
        name: &[u16],
    ) -> Result<(usize, crate::record::Attr)> {
        let mut it = ino
            .attrs
            .iter()
            .filter(|(_, a)| a.ty == t && a.name == name);
        let first = it
            .next()
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("attribute {t:#x} in record {}", ino.no)))?;
        if it.next().is_some() {
            return Err(Error::Unsupported(format!(
                "record {}: attribute {t:#x} is split over several MFT records (attribute list); resizing it is not supported",
                ino.no
            )));
        }
        Ok(first)
    }

    /// Set the size of attribute `t`/`name`, keeping its contents
    /// (zero-extended). Changes the inode in memory and the cluster bitmap;
    /// the caller commits.
    pub(crate) fn resize_attr(
        &mut self,
        ino: &mut Inode,
        t: u32,
        name: &[u16],
        new: u64,
    ) -> Result<()> {
        self.prepare()?;
        let (ri, a) = self.single_extent(ino, t, name)?;
        if a.flags & (ATTR_COMPRESSED | ATTR_ENCRYPTED) != 0 {
            return Err(Error::Unsupported(format!(
                "record {}: resizing a compressed or encrypted attribute",
                ino.no
            )));
        }
        let cs = self.cs();
        match a.body {
            Body::Resident {
                value_off,
                value_len,
            } => {
                let rec = &ino.recs[ri];
                let hdr_len = value_off - a.offset;
                let mut bytes = rec.buf[a.offset..value_off].to_vec();
                let mut val = rec.buf[value_off..value_off + value_len].to_vec();
                val.resize(new as usize, 0);
                let total = align(hdr_len + val.len(), 8);
                if new < 1 << 20 && rec.bytes_used() - a.len + total <= rec.buf.len() {
                    bytes.extend_from_slice(&val);
                    bytes.resize(total, 0);
                    crate::util::put32(&mut bytes, 4, total as u32);
                    crate::util::put32(&mut bytes, 0x10, new as u32);
                    ino.recs[ri].splice(a.offset, a.len, &bytes)?;
                    return self.refresh(ino);
                }
                // make it non-resident
                let old = rec.buf[value_off..value_off + value_len].to_vec();
                let n = new.div_ceil(cs);
                let runs = self.alloc_runs(n, 0, 0)?;
                let mut init = old.clone();
                init.resize((old.len() as u64).div_ceil(cs) as usize * cs as usize, 0);
                let mut nb = build_nonresident(
                    t,
                    name,
                    &runlist::encode(&runs),
                    n.saturating_sub(1),
                    n * cs,
                    new,
                    old.len() as u64,
                );
                if n == 0 {
                    put64(&mut nb, 0x18, u64::MAX);
                }
                put16(&mut nb, 0x0c, a.flags);
                put16(&mut nb, 0x0e, a.id);
                if let Err(e) = ino.recs[ri].splice(a.offset, a.len, &nb) {
                    self.free_runs(&runs)?;
                    return Err(e);
                }
                self.write_runs(&runs, 0, &init)?;
                self.refresh(ino)
            }
            Body::NonResident {
                start_vcn,
                runs_off,
                alloc,
                size: _,
                init,
                ..
            } => {
                if start_vcn != 0 {
                    return Err(corrupt(
                        ino.recs[ri].pos,
                        "single attribute extent does not start at VCN 0",
                    ));
                }
                let rec = &ino.recs[ri];
                let mut runs =
                    runlist::decode(rec.runs_bytes(&a), 0, self.total_clusters(), rec.pos)?;
                let have = runlist::clusters(&runs);
                let want = new.div_ceil(cs);
                let mut added = Vec::new();
                let mut removed = Vec::new();
                if want > have {
                    let hint = runs
                        .iter()
                        .rev()
                        .find_map(|r| r.lcn.map(|l| l + r.len))
                        .unwrap_or(0);
                    added = self.alloc_runs(want - have, have, hint)?;
                    for r in &added {
                        runlist::push(&mut runs, *r);
                    }
                } else if want < have {
                    removed = runlist::truncate(&mut runs, want);
                }
                let hdr_len = runs_off - a.offset;
                let mut nb = rec.buf[a.offset..runs_off].to_vec();
                let enc = runlist::encode(&runs);
                nb.extend_from_slice(&enc);
                nb.resize(align(hdr_len + enc.len(), 8), 0);
                let nl = nb.len() as u32;
                crate::util::put32(&mut nb, 4, nl);
                put64(&mut nb, 0x18, want.wrapping_sub(1));
                put64(&mut nb, 0x28, want * cs);
                put64(&mut nb, 0x30, new);
                // metadata streams are always written in full by their
                // callers (formatted MFT records, index blocks, bitmaps):
                // their initialized size follows the data size
                let new_init = if t != crate::record::ty::DATA || ino.no == 0 {
                    new
                } else {
                    init.min(new)
                };
                put64(&mut nb, 0x38, new_init);
                if a.flags & ATTR_SPARSE != 0 && hdr_len >= 0x48 {
                    let real: u64 = runs.iter().filter(|r| r.lcn.is_some()).map(|r| r.len).sum();
                    put64(&mut nb, 0x40, real * cs);
                }
                let _ = alloc;
                if let Err(e) = ino.recs[ri].splice(a.offset, a.len, &nb) {
                    self.free_runs(&added)?;
                    return Err(e);
                }
                self.free_runs(&removed)?;
                let _ = u16le;
                self.refresh(ino)
            }
        }
    }

    /// Replace the value of a resident attribute; errors when the record
    /// has no room (never moves it out of the record).
    pub(crate) fn set_resident(
        &mut self,
        ino: &mut Inode,
        t: u32,
        name: &[u16],
        value: &[u8],
    ) -> Result<()> {
        let (ri, a) = self.single_extent(ino, t, name)?;
        let Body::Resident { value_off, .. } = a.body else {
            return Err(corrupt(
                ino.recs[ri].pos,
                format!("attribute {t:#x} is not resident"),
            ));
        };
        let rec = &ino.recs[ri];
        let hdr_len = value_off - a.offset;
        let mut nb = rec.buf[a.offset..value_off].to_vec();
        nb.extend_from_slice(value);
        nb.resize(align(hdr_len + value.len(), 8), 0);
        let nl = nb.len() as u32;
        crate::util::put32(&mut nb, 4, nl);
        crate::util::put32(&mut nb, 0x10, value.len() as u32);
        ino.recs[ri].splice(a.offset, a.len, &nb)?;
        self.refresh(ino)
    }

    /// Allocate `n` clusters as runs starting at `vcn`.
    fn alloc_runs(&mut self, n: u64, vcn: u64, hint: u64) -> Result<Vec<Run>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let pieces = self.alloc_clusters(n, hint)?;
        let mut v = vcn;
        let mut out = Vec::new();
        for (l, len) in pieces {
            runlist::push(
                &mut out,
                Run {
                    vcn: v,
                    lcn: Some(l),
                    len,
                },
            );
            v += len;
        }
        Ok(out)
    }

    /// Write bytes into attribute `t`/`name` at `off` (inside its size).
    /// Updates the initialized size; the caller commits the inode.
    pub(crate) fn write_attr_bytes(
        &mut self,
        ino: &mut Inode,
        t: u32,
        name: &[u16],
        off: u64,
        data: &[u8],
    ) -> Result<()> {
        let (ri, a) = self.single_extent(ino, t, name).or_else(|e| {
            // non-resident attributes split over records can still be
            // overwritten in place through the merged runlist
            if ino.find(t, name).is_some() {
                Ok(ino.find(t, name).cloned().expect("present"))
            } else {
                Err(e)
            }
        })?;
        if a.flags & (ATTR_COMPRESSED | ATTR_ENCRYPTED) != 0 {
            return Err(Error::Unsupported(format!(
                "record {}: writing into a compressed or encrypted stream",
                ino.no
            )));
        }
        match a.body {
            Body::Resident {
                value_off,
                value_len,
            } => {
                let end = off as usize + data.len();
                if end > value_len {
                    return Err(Error::Invalid(
                        "write past the end of a resident attribute".into(),
                    ));
                }
                ino.recs[ri].buf[value_off + off as usize..value_off + end].copy_from_slice(data);
                self.commit(ino)
            }
            Body::NonResident { size, init, .. } => {
                let s = self
                    .stream(ino, t, name)?
                    .ok_or_else(|| corrupt(0, "stream vanished"))?;
                let end = off + data.len() as u64;
                if end > size {
                    return Err(Error::Invalid("write past the end of the stream".into()));
                }
                if off > init {
                    let zeros = vec![0u8; (off - init).min(1 << 20) as usize];
                    let mut p = init;
                    while p < off {
                        let k = (off - p).min(zeros.len() as u64) as usize;
                        self.write_runs(&s.runs, p, &zeros[..k])?;
                        p += k as u64;
                    }
                }
                self.write_runs(&s.runs, off, data)?;
                if end > init {
                    let (ri, a) = self.single_extent(ino, t, name)?;
                    put64(&mut ino.recs[ri].buf, a.offset + 0x38, end);
                    self.refresh(ino)?;
                    self.commit(ino)?;
                }
                Ok(())
            }
        }
    }
}
