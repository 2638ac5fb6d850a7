//! Opening a volume, reading MFT records, inodes and attribute streams.

use crate::boot::BootSector;
use crate::error::{corrupt, Error, Result};
use crate::record::{ty, Attr, Body, Record, ATTR_COMPRESSED, ATTR_ENCRYPTED};
use crate::runlist::{self, Run};
use crate::upcase::UpCase;
use crate::util::{u16le, u64le, utf16_units};
use serde::Serialize;
use vdisk::Disk;

/// Record numbers of system files.
pub mod sys {
    /// $MFT
    pub const MFT: u64 = 0;
    /// $MFTMirr
    pub const MFTMIRR: u64 = 1;
    /// $LogFile
    pub const LOGFILE: u64 = 2;
    /// $Volume
    pub const VOLUME: u64 = 3;
    /// Root directory.
    pub const ROOT: u64 = 5;
    /// $Bitmap
    pub const BITMAP: u64 = 6;
    /// $UpCase
    pub const UPCASE: u64 = 10;
}

/// $Volume flag: dirty (chkdsk scheduled).
pub const VOLUME_DIRTY: u16 = 0x0001;

/// Facts about the volume.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    /// Volume label.
    pub label: String,
    /// NTFS major version.
    pub major: u8,
    /// NTFS minor version.
    pub minor: u8,
    /// $VOLUME_INFORMATION flags.
    pub flags: u16,
    /// Boot sector geometry.
    pub boot: BootSector,
    /// Records in $MFT.
    pub mft_records: u64,
}

impl VolumeInfo {
    /// Dirty flag set.
    pub fn dirty(&self) -> bool {
        self.flags & VOLUME_DIRTY != 0
    }
}

/// A file's attributes gathered from its base and extension records.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub no: u64,
    pub recs: Vec<Record>,
    /// (index into recs, attribute)
    pub attrs: Vec<(usize, Attr)>,
}

impl Inode {
    pub fn base(&self) -> &Record {
        &self.recs[0]
    }
    /// First attribute of a type/name with its record index.
    pub fn find(&self, t: u32, name: &[u16]) -> Option<&(usize, Attr)> {
        self.attrs.iter().find(|(_, a)| a.ty == t && a.name == name)
    }
    /// Resident value of the first attribute of that type/name.
    pub fn value(&self, t: u32, name: &[u16]) -> Option<&[u8]> {
        self.find(t, name).map(|(r, a)| self.recs[*r].value(a))
    }
    /// All values of resident attributes of a type.
    pub fn values(&self, t: u32) -> impl Iterator<Item = &[u8]> {
        self.attrs
            .iter()
            .filter(move |(_, a)| a.ty == t)
            .map(|(r, a)| self.recs[*r].value(a))
    }
    pub fn seq(&self) -> u16 {
        self.base().seq()
    }
    pub fn fileref(&self) -> u64 {
        self.no | u64::from(self.seq()) << 48
    }
}

/// One attribute's value, merged over its extents.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub resident: Option<Vec<u8>>,
    pub runs: Vec<Run>,
    pub size: u64,
    pub alloc: u64,
    pub init: u64,
    pub comp_unit: u8,
    pub flags: u16,
}

/// An NTFS volume on any [`Disk`] (a partition window, a whole image...).
#[derive(Debug)]
pub struct Volume<D> {
    pub(crate) disk: D,
    pub(crate) boot: BootSector,
    pub(crate) mft_runs: Vec<Run>,
    pub(crate) upcase: UpCase,
    pub(crate) info: VolumeInfo,
    pub(crate) mirr_records: u64,
    pub(crate) w: Option<crate::alloc::WriteState>,
}

/// Largest attribute value read fully into memory (hives, $Bitmap, ...).
pub(crate) const MAX_READ_ALL: u64 = 1 << 30;

impl<D: Disk> Volume<D> {
    /// Open the NTFS volume that fills `disk`.
    pub fn open(disk: D) -> Result<Self> {
        let mut s0 = vec![0u8; 512];
        disk.read_at(&mut s0, 0)?;
        let boot = BootSector::parse(&s0)?;
        let cs = u64::from(boot.cluster_size);
        let vol_bytes = boot
            .total_sectors
            .saturating_mul(u64::from(boot.sector_size));
        if vol_bytes > disk.size() {
            return Err(corrupt(
                0x28,
                format!(
                    "boot sector claims {vol_bytes} bytes, the volume has only {}",
                    disk.size()
                ),
            ));
        }
        let total = boot.total_clusters();
        if boot.mft_lcn >= total || boot.mftmirr_lcn >= total {
            return Err(corrupt(0x30, "$MFT or $MFTMirr cluster beyond the volume"));
        }
        let rs = u64::from(boot.record_size);
        let mut v = Volume {
            disk,
            mft_runs: vec![Run {
                vcn: 0,
                lcn: Some(boot.mft_lcn),
                len: (16 * rs).div_ceil(cs),
            }],
            upcase: UpCase::ascii(),
            info: VolumeInfo {
                label: String::new(),
                major: 0,
                minor: 0,
                flags: 0,
                boot: boot.clone(),
                mft_records: 16,
            },
            boot,
            mirr_records: 0,
            w: None,
        };
        // Bootstrap: $MFT's own $DATA runlist (possibly through an attribute list).
        let mft = v.inode(sys::MFT)?;
        let s = v
            .stream(&mft, ty::DATA, &[])?
            .ok_or_else(|| corrupt(v.boot.mft_lcn * cs, "$MFT has no $DATA attribute"))?;
        if s.resident.is_some() || s.runs.is_empty() {
            return Err(corrupt(
                v.boot.mft_lcn * cs,
                "$MFT $DATA is resident or empty",
            ));
        }
        v.mft_runs = s.runs;
        v.info.mft_records = s.size / rs;
        let up = v.inode(sys::UPCASE)?;
        let us = v
            .stream(&up, ty::DATA, &[])?
            .ok_or_else(|| corrupt(0, "$UpCase has no $DATA"))?;
        if us.size != 131072 {
            return Err(corrupt(
                0,
                format!("$UpCase is {} bytes, expected 131072", us.size),
            ));
        }
        v.upcase = UpCase::from_bytes(&v.read_all(&us)?);
        let vi = v.inode(sys::VOLUME)?;
        if let Some(x) = vi.value(ty::VOLUME_INFORMATION, &[]) {
            if x.len() >= 12 {
                v.info.major = x[8];
                v.info.minor = x[9];
                v.info.flags = u16le(x, 10);
            }
        }
        if let Some(x) = vi.value(ty::VOLUME_NAME, &[]) {
            v.info.label = String::from_utf16_lossy(&utf16_units(x));
        }
        let mirr = v.inode(sys::MFTMIRR)?;
        if let Some(ms) = v.stream(&mirr, ty::DATA, &[])? {
            v.mirr_records = (ms.size / rs).min(v.info.mft_records);
        }
        Ok(v)
    }

    /// Volume facts (label, version, flags, geometry).
    pub fn info(&self) -> &VolumeInfo {
        &self.info
    }
    /// The underlying disk.
    pub fn disk(&self) -> &D {
        &self.disk
    }
    /// Give the disk back.
    pub fn into_disk(self) -> D {
        self.disk
    }
    pub(crate) fn cs(&self) -> u64 {
        u64::from(self.boot.cluster_size)
    }
    pub(crate) fn total_clusters(&self) -> u64 {
        self.boot.total_clusters()
    }

    /// Volume byte offset of record `no`.
    pub(crate) fn record_pos(&self, no: u64) -> Result<u64> {
        let rs = u64::from(self.boot.record_size);
        let cs = self.cs();
        let off = no
            .checked_mul(rs)
            .ok_or_else(|| Error::NotFound(format!("MFT record {no}")))?;
        let r = runlist::find(&self.mft_runs, off / cs)
            .ok_or_else(|| Error::NotFound(format!("MFT record {no} (beyond $MFT)")))?;
        let lcn = r
            .lcn
            .ok_or_else(|| corrupt(0, format!("MFT record {no} lies in a sparse run of $MFT")))?;
        if rs > cs && off / cs + rs / cs > r.vcn + r.len {
            // record straddles runs: unusual; refuse rather than guess
            return Err(Error::Unsupported(format!(
                "MFT record {no} straddles two $MFT runs"
            )));
        }
        Ok((lcn + (off / cs - r.vcn)) * cs + off % cs)
    }

    /// Read and fix up MFT record `no`.
    pub(crate) fn read_record(&self, no: u64) -> Result<Record> {
        let pos = self.record_pos(no)?;
        let mut buf = vec![0u8; self.boot.record_size as usize];
        self.disk.read_at(&mut buf, pos)?;
        Record::parse(no, buf, pos)
    }

    /// Load a base record with its extension records.
    pub(crate) fn inode(&self, no: u64) -> Result<Inode> {
        let base = self.read_record(no)?;
        if !base.in_use() {
            return Err(Error::NotFound(format!("MFT record {no} is not in use")));
        }
        if base.base_ref() != 0 {
            return Err(corrupt(
                base.pos,
                format!(
                    "MFT record {no} is an extension of record {}, expected a base record",
                    base.base_ref() & 0xffff_ffff_ffff
                ),
            ));
        }
        let mut ino = Inode {
            no,
            attrs: base.attrs()?.into_iter().map(|a| (0, a)).collect(),
            recs: vec![base],
        };
        if let Some((_, al)) = ino.find(ty::ATTRIBUTE_LIST, &[]).cloned() {
            let data = match al.body {
                Body::Resident { .. } => ino.recs[0].value(&al).to_vec(),
                Body::NonResident { .. } => {
                    let s = self.stream_of(&ino, &[(0, al.clone())])?;
                    if s.size > 1 << 22 {
                        return Err(corrupt(ino.recs[0].pos, "attribute list larger than 4 MiB"));
                    }
                    self.read_all(&s)?
                }
            };
            let mut ext: Vec<u64> = Vec::new();
            let mut o = 0usize;
            while o + 0x1a <= data.len() {
                let len = usize::from(u16le(&data, o + 4));
                if len < 0x1a || o + len > data.len() {
                    return Err(corrupt(
                        ino.recs[0].pos,
                        format!("attribute list entry at {o:#x} has length {len:#x}"),
                    ));
                }
                let r = u64le(&data, o + 0x10) & 0xffff_ffff_ffff;
                if r != no && !ext.contains(&r) {
                    ext.push(r);
                }
                o += len;
            }
            if ext.len() > 4096 {
                return Err(corrupt(
                    ino.recs[0].pos,
                    "attribute list names more than 4096 extension records",
                ));
            }
            for r in ext {
                let rec = self.read_record(r)?;
                if rec.base_ref() & 0xffff_ffff_ffff != no || !rec.in_use() {
                    return Err(corrupt(
                        rec.pos,
                        format!("extension record {r} does not belong to base record {no}"),
                    ));
                }
                let i = ino.recs.len();
                let attrs = rec.attrs()?;
                ino.recs.push(rec);
                ino.attrs.extend(attrs.into_iter().map(|a| (i, a)));
            }
        }
        Ok(ino)
    }

    /// The stream of attribute type `t` named `name`, merged over extents.
    pub(crate) fn stream(&self, ino: &Inode, t: u32, name: &[u16]) -> Result<Option<Stream>> {
        let parts: Vec<(usize, Attr)> = ino
            .attrs
            .iter()
            .filter(|(_, a)| a.ty == t && a.name == name)
            .cloned()
            .collect();
        if parts.is_empty() {
            return Ok(None);
        }
        self.stream_of(ino, &parts).map(Some)
    }

    fn stream_of(&self, ino: &Inode, parts: &[(usize, Attr)]) -> Result<Stream> {
        let (r0, a0) = &parts[0];
        if let Body::Resident { .. } = a0.body {
            let v = ino.recs[*r0].value(a0).to_vec();
            let n = v.len() as u64;
            return Ok(Stream {
                resident: Some(v),
                runs: vec![],
                size: n,
                alloc: n,
                init: n,
                comp_unit: 0,
                flags: a0.flags,
            });
        }
        let mut ext: Vec<(u64, usize, &Attr)> = Vec::new();
        for (r, a) in parts {
            match a.body {
                Body::NonResident { start_vcn, .. } => ext.push((start_vcn, *r, a)),
                Body::Resident { .. } => {
                    return Err(corrupt(
                        ino.recs[*r].pos,
                        "attribute mixes resident and non-resident extents",
                    ))
                }
            }
        }
        ext.sort_by_key(|e| e.0);
        let mut runs: Vec<Run> = Vec::new();
        let mut first = None;
        for (svcn, r, a) in ext {
            let rec = &ino.recs[r];
            let next = runs.last().map(|x| x.vcn + x.len).unwrap_or(0);
            if svcn != next {
                return Err(corrupt(
                    rec.pos,
                    format!("attribute extent starts at VCN {svcn}, expected {next}"),
                ));
            }
            let pos = rec.pos + a.offset as u64;
            let rr = runlist::decode(rec.runs_bytes(a), svcn, self.total_clusters(), pos)?;
            runs.extend(rr);
            if svcn == 0 {
                first = Some(a.clone());
            }
        }
        let a = first.ok_or_else(|| corrupt(0, "attribute has no extent at VCN 0"))?;
        let Body::NonResident {
            alloc,
            size,
            init,
            comp_unit,
            ..
        } = a.body
        else {
            unreachable!()
        };
        let cs = self.cs();
        if runlist::clusters(&runs) * cs < size.min(alloc) && a.flags & ATTR_COMPRESSED == 0 {
            return Err(corrupt(
                0,
                format!(
                    "record {}: runlist covers {} clusters, data size is {size}",
                    ino.no,
                    runlist::clusters(&runs)
                ),
            ));
        }
        Ok(Stream {
            resident: None,
            runs,
            size,
            alloc,
            init,
            comp_unit,
            flags: a.flags,
        })
    }

    /// Read up to `buf.len()` bytes of a stream at `off`; returns bytes read.
    pub(crate) fn read_stream(&self, s: &Stream, off: u64, buf: &mut [u8]) -> Result<usize> {
        if off >= s.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(s.size - off) as usize;
        let buf = &mut buf[..n];
        if let Some(v) = &s.resident {
            buf.copy_from_slice(&v[off as usize..off as usize + n]);
            return Ok(n);
        }
        if s.flags & ATTR_ENCRYPTED != 0 {
            return Err(Error::Unsupported("reading EFS-encrypted files".into()));
        }
        if s.flags & ATTR_COMPRESSED != 0 && s.comp_unit != 0 {
            self.read_compressed(s, off, buf)?;
            return Ok(n);
        }
        let cs = self.cs();
        let mut done = 0usize;
        while done < n {
            let p = off + done as u64;
            let want = n - done;
            if p >= s.init {
                buf[done..].fill(0);
                break;
            }
            let vcn = p / cs;
            let r = runlist::find(&s.runs, vcn)
                .ok_or_else(|| corrupt(0, format!("VCN {vcn} not mapped by the runlist")))?;
            let run_end = (r.vcn + r.len) * cs;
            let k = (want as u64).min(run_end - p).min(s.init - p) as usize;
            match r.lcn {
                None => buf[done..done + k].fill(0),
                Some(l) => {
                    let at = (l + (vcn - r.vcn)) * cs + p % cs;
                    self.disk.read_at(&mut buf[done..done + k], at)?;
                }
            }
            done += k;
        }
        Ok(n)
    }

    fn read_compressed(&self, s: &Stream, off: u64, buf: &mut [u8]) -> Result<()> {
        let cs = self.cs();
        let cu = 1u64 << s.comp_unit;
        let cub = cu * cs;
        if cub > 1 << 24 {
            return Err(Error::Unsupported("compression unit above 16 MiB".into()));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let p = off + done as u64;
            let unit = p / cub;
            let data = self.read_unit(s, unit * cu, cu)?;
            let i = (p - unit * cub) as usize;
            let k = (buf.len() - done).min(cub as usize - i);
            buf[done..done + k].copy_from_slice(&data[i..i + k]);
            done += k;
        }
        Ok(())
    }

    /// One decompressed compression unit starting at `vcn0`.
    fn read_unit(&self, s: &Stream, vcn0: u64, cu: u64) -> Result<Vec<u8>> {
        let cs = self.cs();
        let cub = (cu * cs) as usize;
        let mut raw = Vec::with_capacity(cub);
        let mut stored = 0u64;
        let mut vcn = vcn0;
        while vcn < vcn0 + cu {
            let Some(r) = runlist::find(&s.runs, vcn) else {
                break;
            };
            let k = (r.vcn + r.len - vcn).min(vcn0 + cu - vcn);
            match r.lcn {
                None => break,
                Some(l) => {
                    let mut b = vec![0u8; (k * cs) as usize];
                    self.disk.read_at(&mut b, (l + vcn - r.vcn) * cs)?;
                    raw.extend_from_slice(&b);
                    stored += k;
                }
            }
            vcn += k;
        }
        if stored == 0 {
            return Ok(vec![0u8; cub]);
        }
        if stored == cu {
            return Ok(raw);
        }
        let mut out = Vec::with_capacity(cub);
        crate::lznt1::decompress(&raw, &mut out, cub)?;
        out.resize(cub, 0);
        Ok(out)
    }

    /// Read a whole stream (capped at 1 GiB).
    pub(crate) fn read_all(&self, s: &Stream) -> Result<Vec<u8>> {
        if s.size > MAX_READ_ALL {
            return Err(Error::Unsupported(format!(
                "stream of {} bytes is too large to load at once",
                s.size
            )));
        }
        let mut b = vec![0u8; s.size as usize];
        self.read_stream(s, 0, &mut b)?;
        Ok(b)
    }
}
