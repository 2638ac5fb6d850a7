//! VHDX metadata log (MS-VHDX 2.3): find the active sequence and replay it
//! **in memory**. The result is a [`Src`]: a view of the file in which every
//! read sees the logged updates; the file itself is never written.
//!
//! Memory bound: the log region is read once (at most [`MAX_LOG_BYTES`]);
//! the replay map holds at most one 4 KiB sector per data sector of the
//! active sequence plus one range per zero descriptor, so it never exceeds
//! the log size.

use super::header::{crc_with_zeroed, guid_string, Guid, Header};
use crate::error::{Error, Result};
use crate::file::{le, ImageFile};
use std::sync::Arc;

/// Largest log region accepted (Hyper-V and QEMU use 1 MiB).
pub const MAX_LOG_BYTES: u64 = 64 << 20;
const SECTOR: u64 = 4096;

/// One replayed write: `len` bytes at `offset`, data or zeros.
#[derive(Debug)]
struct Patch {
    offset: u64,
    len: u64,
    data: Option<Box<[u8]>>,
}

/// The image file as seen after log replay.
#[derive(Debug)]
pub struct Src {
    file: Arc<ImageFile>,
    /// Patches in replay order (later ones win).
    patches: Vec<Patch>,
    /// Smallest start and largest end of all patches.
    span: (u64, u64),
    /// Effective file length after replay.
    len: u64,
    /// Number of log entries replayed.
    pub entries: usize,
}

impl Src {
    /// A view without a log.
    pub fn clean(file: Arc<ImageFile>) -> Src {
        let len = file.len();
        Src {
            file,
            patches: Vec::new(),
            span: (0, 0),
            len,
            entries: 0,
        }
    }

    /// Effective file length (after replay extended it, if it did).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The underlying file.
    pub fn file(&self) -> &ImageFile {
        &self.file
    }

    /// Read exactly `buf.len()` bytes at `offset` of the replayed view.
    pub fn read(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(
                self.file.path(),
                offset,
                format!(
                    "expected {} bytes but the file ends at {:#x}",
                    buf.len(),
                    self.len
                ),
            ));
        }
        let end = offset + buf.len() as u64;
        self.file.read_at_padded(buf, offset)?;
        if self.patches.is_empty() || end <= self.span.0 || offset >= self.span.1 {
            return Ok(());
        }
        for p in &self.patches {
            let (ps, pe) = (p.offset, p.offset + p.len);
            if pe <= offset || ps >= end {
                continue;
            }
            let s = ps.max(offset);
            let e = pe.min(end);
            let dst = &mut buf[(s - offset) as usize..(e - offset) as usize];
            match &p.data {
                Some(d) => dst.copy_from_slice(&d[(s - ps) as usize..(e - ps) as usize]),
                None => dst.fill(0),
            }
        }
        Ok(())
    }
}

/// Validated entry header summary.
#[derive(Debug, Clone, Copy)]
struct EntryInfo {
    seq: u64,
    len: u64,
    tail: u64,
    flushed: u64,
    last: u64,
}

struct Log<'a> {
    buf: &'a [u8],
    guid: Guid,
    /// Bytes that may still be checksummed: a valid log checksums each
    /// byte once; overlapping hostile entries would otherwise cost
    /// O(sectors x log size).
    crc_budget: std::cell::Cell<u64>,
}

impl Log<'_> {
    fn size(&self) -> u64 {
        self.buf.len() as u64
    }

    /// `len` bytes at log position `pos`, wrapping around the ring.
    fn bytes(&self, pos: u64, len: u64) -> Vec<u8> {
        let size = self.size();
        let mut out = Vec::with_capacity(len as usize);
        let mut p = pos % size;
        let mut left = len;
        while left > 0 {
            let n = left.min(size - p);
            out.extend_from_slice(&self.buf[p as usize..(p + n) as usize]);
            left -= n;
            p = (p + n) % size;
        }
        out
    }

    /// Validate the entry at `pos`. `Err(reason)` names why it is not a
    /// valid entry (`None` reason: no entry signature there at all).
    fn entry(&self, pos: u64) -> std::result::Result<EntryInfo, Option<String>> {
        let h = self.bytes(pos, 64);
        if &h[0..4] != b"loge" {
            return Err(None);
        }
        let len = le::u32(&h, 8) as u64;
        let tail = le::u32(&h, 12) as u64;
        let seq = le::u64(&h, 16);
        let count = le::u32(&h, 24) as u64;
        let guid: Guid = h[32..48].try_into().unwrap();
        if guid != self.guid {
            return Err(Some(format!(
                "log GUID {} does not match the header's LogGuid {}",
                guid_string(&guid),
                guid_string(&self.guid)
            )));
        }
        if len == 0 || !len.is_multiple_of(SECTOR) || len > self.size() {
            return Err(Some(format!(
                "entry length {len} is not a non-zero multiple of 4096 within the log size {}",
                self.size()
            )));
        }
        if !tail.is_multiple_of(SECTOR) || tail >= self.size() {
            return Err(Some(format!(
                "tail {tail:#x} is not a 4 KiB-aligned log position"
            )));
        }
        if seq == 0 {
            return Err(Some("sequence number is zero".into()));
        }
        let desc_bytes = 64 + 32 * count;
        if desc_bytes > len {
            return Err(Some(format!(
                "{count} descriptors do not fit in an entry of {len} bytes"
            )));
        }
        if self.crc_budget.get() < len {
            return Err(Some(
                "log scan work limit reached (overlapping entries)".into(),
            ));
        }
        self.crc_budget.set(self.crc_budget.get() - len);
        let entry = self.bytes(pos, len);
        let stored = le::u32(&entry, 4);
        let calc = crc_with_zeroed(&entry, 4);
        if stored != calc {
            return Err(Some(format!(
                "CRC-32C is {stored:#010x}, computed {calc:#010x}"
            )));
        }
        let desc_sectors = desc_bytes.div_ceil(SECTOR);
        let mut data_i = 0u64;
        for i in 0..count {
            let d = &entry[(64 + 32 * i) as usize..(96 + 32 * i) as usize];
            let dseq = le::u64(d, 24);
            let foff = le::u64(d, 16);
            if dseq != seq {
                return Err(Some(format!(
                    "descriptor {i} has sequence number {dseq}, expected {seq}"
                )));
            }
            if !foff.is_multiple_of(SECTOR) {
                return Err(Some(format!(
                    "descriptor {i} file offset {foff:#x} is not 4 KiB aligned"
                )));
            }
            match &d[0..4] {
                b"zero" => {
                    let zl = le::u64(d, 8);
                    if !zl.is_multiple_of(SECTOR) || foff.checked_add(zl).is_none() {
                        return Err(Some(format!(
                            "zero descriptor {i} length {zl:#x} is not a multiple of 4 KiB"
                        )));
                    }
                }
                b"desc" => {
                    let so = (desc_sectors + data_i) * SECTOR;
                    if so + SECTOR > len {
                        return Err(Some(format!(
                            "data descriptor {i} has no data sector inside the entry"
                        )));
                    }
                    let s = &entry[so as usize..(so + SECTOR) as usize];
                    let hi = le::u32(s, 4) as u64;
                    let lo = le::u32(s, 4092) as u64;
                    if &s[0..4] != b"data" || (hi << 32 | lo) != seq {
                        return Err(Some(format!(
                            "data sector {data_i} lacks the \"data\" signature or sequence number {seq}"
                        )));
                    }
                    data_i += 1;
                }
                _ => {
                    return Err(Some(format!(
                        "descriptor {i} has neither \"desc\" nor \"zero\" signature"
                    )))
                }
            }
        }
        Ok(EntryInfo {
            seq,
            len,
            tail,
            flushed: le::u64(&h, 48),
            last: le::u64(&h, 56),
        })
    }

    /// Build the patches of the entry at `pos` (already validated).
    fn patches(&self, pos: u64, info: &EntryInfo, out: &mut Vec<Patch>) {
        let entry = self.bytes(pos, info.len);
        let count = le::u32(&entry, 24) as u64;
        let desc_sectors = (64 + 32 * count).div_ceil(SECTOR);
        let mut data_i = 0u64;
        for i in 0..count {
            let d = &entry[(64 + 32 * i) as usize..(96 + 32 * i) as usize];
            let foff = le::u64(d, 16);
            if &d[0..4] == b"zero" {
                let zl = le::u64(d, 8);
                if zl > 0 {
                    out.push(Patch {
                        offset: foff,
                        len: zl,
                        data: None,
                    });
                }
            } else {
                let so = ((desc_sectors + data_i) * SECTOR) as usize;
                let s = &entry[so..so + SECTOR as usize];
                let mut sector = vec![0u8; SECTOR as usize];
                sector[0..8].copy_from_slice(&d[8..16]);
                sector[8..4092].copy_from_slice(&s[8..4092]);
                sector[4092..4096].copy_from_slice(&d[4..8]);
                out.push(Patch {
                    offset: foff,
                    len: SECTOR,
                    data: Some(sector.into_boxed_slice()),
                });
                data_i += 1;
            }
        }
    }
}

/// Replay the log named by `hdr` in memory. `hdr.log_guid` must be
/// non-zero. Fails (corrupt) when there is no valid active sequence or the
/// file is shorter than the head entry's FlushedFileOffset.
pub fn replay(file: Arc<ImageFile>, hdr: &Header) -> Result<Src> {
    let path = file.path().to_path_buf();
    if hdr.log_version != 0 {
        return Err(Error::unsupported(
            &path,
            format!(
                "VHDX log version {} (only 0 is defined) with a dirty log",
                hdr.log_version
            ),
        ));
    }
    let lo = hdr.log_offset;
    let ll = hdr.log_length as u64;
    if ll == 0 || !ll.is_multiple_of(1 << 20) || lo < (1 << 20) || !lo.is_multiple_of(1 << 20) {
        return Err(Error::corrupt(
            &path,
            super::header::HEADER_OFFSETS[0],
            format!("VHDX log at {lo:#x} length {ll:#x}: both must be non-zero multiples of 1 MiB"),
        ));
    }
    let buf = crate::vhd::format::read_bounded(&file, lo, ll, MAX_LOG_BYTES, "VHDX log")?;
    let log = Log {
        buf: &buf,
        guid: hdr.log_guid,
        crc_budget: std::cell::Cell::new(4 * ll),
    };
    let nsec = (ll / SECTOR) as usize;
    let mut memo: Vec<Option<std::result::Result<EntryInfo, Option<String>>>> = vec![None; nsec];
    let mut first_reason: Option<(u64, String)> = None;
    let mut entry_at = |pos: u64, first_reason: &mut Option<(u64, String)>| {
        let i = (pos / SECTOR) as usize;
        if memo[i].is_none() {
            memo[i] = Some(log.entry(pos));
        }
        let r = memo[i].clone().unwrap();
        if let Err(Some(why)) = &r {
            if first_reason.is_none() {
                *first_reason = Some((pos, why.clone()));
            }
        }
        r.ok()
    };
    // Spec 2.3.3: scan for the newest valid, complete sequence.
    let mut best: Option<Vec<(u64, EntryInfo)>> = None;
    let mut cur_tail = 0u64;
    let mut old_tail = 0u64;
    let mut rounds = 0usize;
    loop {
        rounds += 1;
        let mut seqv: Vec<(u64, EntryInfo)> = Vec::new();
        let mut head = cur_tail;
        while seqv.len() < nsec {
            let Some(e) = entry_at(head, &mut first_reason) else {
                break;
            };
            if let Some((_, last)) = seqv.last() {
                if e.seq != last.seq.wrapping_add(1) {
                    break;
                }
            }
            seqv.push((head, e));
            head = (head + e.len) % ll;
        }
        let valid = match seqv.last() {
            Some((_, h)) => seqv.iter().position(|(p, _)| *p == h.tail),
            None => None,
        };
        if let Some(start) = valid {
            let head_seq = seqv.last().unwrap().1.seq;
            if best
                .as_ref()
                .and_then(|v| v.last())
                .is_none_or(|(_, h)| h.seq < head_seq)
            {
                best = Some(seqv[start..].to_vec());
            }
            cur_tail = head;
        } else {
            cur_tail = (cur_tail + SECTOR) % ll;
        }
        if cur_tail <= old_tail || rounds > nsec {
            break;
        }
        old_tail = cur_tail;
    }
    let Some(active) = best else {
        let detail = match first_reason {
            Some((pos, why)) => format!("log entry at file offset {:#x}: {why}", lo + pos),
            None => "no log entry (\"loge\") found".into(),
        };
        return Err(Error::corrupt(
            &path,
            lo,
            format!(
                "VHDX log is dirty (LogGuid {}) but has no valid log sequence; {detail}",
                guid_string(&hdr.log_guid)
            ),
        ));
    };
    let (head_pos, head) = *active.last().unwrap();
    if file.len() < head.flushed {
        return Err(Error::corrupt(
            &path,
            lo + head_pos,
            format!(
                "VHDX log head entry says the file was at least {:#x} bytes (FlushedFileOffset) but it has {:#x}: the file was truncated",
                head.flushed,
                file.len()
            ),
        ));
    }
    let mut patches = Vec::new();
    for (pos, info) in &active {
        log.patches(*pos, info, &mut patches);
    }
    let mut span = (u64::MAX, 0u64);
    let mut len = file.len().max(head.last);
    for p in &patches {
        span.0 = span.0.min(p.offset);
        span.1 = span.1.max(p.offset + p.len);
        len = len.max(p.offset + p.len);
    }
    Ok(Src {
        file,
        patches,
        span,
        len,
        entries: active.len(),
    })
}
