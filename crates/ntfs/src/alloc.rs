//! Allocation state for writing: the cluster bitmap ($Bitmap) and the MFT
//! record bitmap ($MFT's $BITMAP), kept in memory and written back.

use crate::error::{corrupt, Error, Result};
use crate::record::ty;
use crate::runlist::Run;
use crate::volume::{sys, Volume};
use std::collections::BTreeSet;
use vdisk::DiskWrite;

/// First MFT record handed to new files (like ntfs-3g: records below are
/// reserved for system files and $MFT extension records).
pub(crate) const FIRST_USER_RECORD: u64 = 64;

/// In-memory allocation bitmaps, loaded on the first write.
#[derive(Debug, Default)]
pub(crate) struct WriteState {
    pub force: bool,
    pub ready: bool,
    pub bitmap: Vec<u8>,
    pub bitmap_dirty: BTreeSet<usize>,
    pub mft_bitmap: Vec<u8>,
    pub mft_bitmap_dirty: bool,
    pub hint: u64,
}

fn bit(b: &[u8], i: u64) -> bool {
    b[(i / 8) as usize] & (1 << (i % 8)) != 0
}
fn set(b: &mut [u8], i: u64, v: bool) {
    let m = 1u8 << (i % 8);
    if v {
        b[(i / 8) as usize] |= m;
    } else {
        b[(i / 8) as usize] &= !m;
    }
}

impl<D: DiskWrite> Volume<D> {
    pub(crate) fn ws(&mut self) -> Result<&mut WriteState> {
        self.w
            .as_mut()
            .ok_or_else(|| Error::Refused("volume was opened read-only".into()))
    }

    /// Load bitmaps and empty the journal before the first change.
    pub(crate) fn prepare(&mut self) -> Result<()> {
        if self.ws()?.ready {
            return Ok(());
        }
        let force = self.ws()?.force;
        let s = self.safety()?;
        if !s.ok() && !force {
            return Err(Error::Refused(format!(
                "{}; {}",
                s.problems.join("; "),
                crate::safety::ADVICE
            )));
        }
        let bi = self.inode(sys::BITMAP)?;
        let bs = self
            .stream(&bi, ty::DATA, &[])?
            .ok_or_else(|| corrupt(0, "$Bitmap has no $DATA"))?;
        let bitmap = self.read_all(&bs)?;
        if (bitmap.len() as u64) * 8 < self.total_clusters() {
            return Err(corrupt(
                0,
                format!(
                    "$Bitmap has {} bits for {} clusters",
                    bitmap.len() * 8,
                    self.total_clusters()
                ),
            ));
        }
        let mi = self.inode(sys::MFT)?;
        let ms = self
            .stream(&mi, ty::BITMAP, &[])?
            .ok_or_else(|| corrupt(0, "$MFT has no $BITMAP"))?;
        let mft_bitmap = self.read_all(&ms)?;
        // Empty the journal like ntfs-3g does on a read-write mount: a
        // $LogFile of 0xFF bytes tells Windows there is nothing to replay
        // and it re-initialises the log at the next mount.
        let li = self.inode(sys::LOGFILE)?;
        if let Some(ls) = self.stream(&li, ty::DATA, &[])? {
            if ls.resident.is_none() && self.logfile_state()? != crate::safety::LogState::Empty {
                let ff = vec![0xffu8; 1 << 20];
                let mut off = 0;
                while off < ls.size {
                    let n = (ls.size - off).min(ff.len() as u64) as usize;
                    self.write_runs(&ls.runs, off, &ff[..n])?;
                    off += n as u64;
                }
            }
        }
        let w = self.ws()?;
        w.bitmap = bitmap;
        w.mft_bitmap = mft_bitmap;
        w.ready = true;
        Ok(())
    }

    /// Allocate `n` clusters near `hint`: one run if possible, else pieces.
    pub(crate) fn alloc_clusters(&mut self, n: u64, hint: u64) -> Result<Vec<(u64, u64)>> {
        let total = self.total_clusters();
        let w = self.ws()?;
        let start = if hint > 0 && hint < total {
            hint
        } else {
            w.hint.min(total.saturating_sub(1))
        };
        // first pass: a single free run of n clusters
        let mut found = None;
        let mut i = start;
        let mut scanned = 0u64;
        while scanned < total {
            if i >= total {
                i = 0;
            }
            if !bit(&w.bitmap, i) {
                let s = i;
                while i < total && !bit(&w.bitmap, i) && i - s < n {
                    i += 1;
                }
                scanned += i - s;
                if i - s == n {
                    found = Some(s);
                    break;
                }
            } else {
                i += 1;
                scanned += 1;
            }
        }
        let mut out = Vec::new();
        if let Some(s) = found {
            out.push((s, n));
        } else {
            let mut need = n;
            let mut i = 0;
            while i < total && need > 0 {
                if !bit(&w.bitmap, i) {
                    let s = i;
                    while i < total && !bit(&w.bitmap, i) && i - s < need {
                        i += 1;
                    }
                    out.push((s, i - s));
                    need -= i - s;
                } else {
                    i += 1;
                }
            }
            if need > 0 {
                return Err(Error::NoSpace(format!(
                    "{n} clusters requested, volume is full"
                )));
            }
        }
        for &(s, l) in &out {
            for c in s..s + l {
                set(&mut w.bitmap, c, true);
                w.bitmap_dirty.insert((c / 8 / 512) as usize);
            }
            w.hint = s + l;
        }
        Ok(out)
    }

    /// Mark runs free.
    pub(crate) fn free_runs(&mut self, runs: &[Run]) -> Result<()> {
        let w = self.ws()?;
        for r in runs {
            if let Some(l) = r.lcn {
                for c in l..l + r.len {
                    set(&mut w.bitmap, c, false);
                    w.bitmap_dirty.insert((c / 8 / 512) as usize);
                }
            }
        }
        Ok(())
    }

    /// Write the dirty parts of $Bitmap and the MFT bitmap.
    pub(crate) fn flush_bitmaps(&mut self) -> Result<()> {
        let bi = self.inode(sys::BITMAP)?;
        let bs = self
            .stream(&bi, ty::DATA, &[])?
            .ok_or_else(|| corrupt(0, "$Bitmap has no $DATA"))?;
        let w = self.ws()?;
        let dirty: Vec<usize> = std::mem::take(&mut w.bitmap_dirty).into_iter().collect();
        let chunks: Vec<(u64, Vec<u8>)> = dirty
            .iter()
            .map(|&c| {
                let s = c * 512;
                let e = (s + 512).min(w.bitmap.len());
                (s as u64, w.bitmap[s..e].to_vec())
            })
            .collect();
        let mft_dirty = std::mem::take(&mut w.mft_bitmap_dirty);
        let mb = w.mft_bitmap.clone();
        for (off, b) in chunks {
            if bs.resident.is_some() {
                return Err(Error::Unsupported("resident $Bitmap".into()));
            }
            self.write_runs(&bs.runs, off, &b)?;
        }
        if mft_dirty {
            let mut mi = self.inode(sys::MFT)?;
            self.write_attr_bytes(&mut mi, ty::BITMAP, &[], 0, &mb)?;
        }
        Ok(())
    }

    /// Allocate an MFT record number (growing $MFT when full).
    pub(crate) fn alloc_record(&mut self) -> Result<u64> {
        loop {
            let recs = self.info.mft_records;
            let w = self.ws()?;
            let lim = recs.min(w.mft_bitmap.len() as u64 * 8);
            if let Some(no) = (FIRST_USER_RECORD..lim).find(|&i| !bit(&w.mft_bitmap, i)) {
                set(&mut w.mft_bitmap, no, true);
                w.mft_bitmap_dirty = true;
                return Ok(no);
            }
            self.grow_mft()?;
        }
    }

    /// Mark a record free in the MFT bitmap.
    pub(crate) fn free_record_bit(&mut self, no: u64) -> Result<()> {
        let w = self.ws()?;
        if (no / 8) < w.mft_bitmap.len() as u64 {
            set(&mut w.mft_bitmap, no, false);
            w.mft_bitmap_dirty = true;
        }
        Ok(())
    }

    /// Add room for 64 records (at least one cluster) to $MFT.
    fn grow_mft(&mut self) -> Result<()> {
        let rs = u64::from(self.boot.record_size);
        let cs = self.cs();
        let old = self.info.mft_records;
        if old > 1 << 32 {
            return Err(Error::NoSpace("MFT is at its maximum size".into()));
        }
        let add = (64 * rs).div_ceil(cs) * cs / rs;
        let new = old + add.max(1);
        let mut mi = self.inode(sys::MFT)?;
        self.resize_attr(&mut mi, ty::DATA, &[], new * rs)?;
        // format the new records as unused FILE records before they are
        // reachable
        let s = self
            .stream(&mi, ty::DATA, &[])?
            .ok_or_else(|| corrupt(0, "$MFT lost its $DATA"))?;
        self.mft_runs = s.runs.clone();
        for no in old..new {
            let mut r = crate::create::blank_record(no, rs as usize, 0);
            let img = crate::record::protect(&mut r);
            let pos = self.record_pos(no)?;
            self.disk.write_at(&img, pos)?;
        }
        let bytes = crate::util::align(new.div_ceil(8) as usize, 8);
        let cur = self
            .stream(&mi, ty::BITMAP, &[])?
            .map(|s| s.size)
            .unwrap_or(0);
        if cur < bytes as u64 {
            self.resize_attr(&mut mi, ty::BITMAP, &[], bytes as u64)?;
        }
        self.commit(&mut mi)?;
        let w = self.ws()?;
        if w.mft_bitmap.len() < bytes {
            w.mft_bitmap.resize(bytes, 0);
            w.mft_bitmap_dirty = true;
        }
        self.info.mft_records = new;
        Ok(())
    }
}
