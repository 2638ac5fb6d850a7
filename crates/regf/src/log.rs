//! Transaction-log replay (legacy `DIRT` logs and the incremental `HvLE`
//! format) and the rules for what to do with logs after our writes.
//!
//! Rules implemented (Windows' own, per the format specifications):
//! - A hive is dirty when its base block checksum is wrong or its two
//!   sequence numbers differ. A clean hive's logs are never applied.
//! - New format (file type 6): log entries start at offset 512, each at a
//!   512-byte boundary. An entry is valid when its signature is `HvLE`, its
//!   size is a multiple of 512 within the file, its hive-bins size is a
//!   multiple of 4096, its page references fit, and both Marvin32 hashes
//!   match. Parsing a log stops at the first invalid entry.
//! - Entries from all logs are chained by sequence number starting at the
//!   primary's secondary sequence number and going up by one; the chain
//!   stops at the first gap. Whichever log holds the next number supplies
//!   it (this gives the LOG1-then-LOG2 / older-log-first order).
//! - Each entry first resizes the hive bins data to its recorded size, then
//!   writes its dirty pages; the base block flags come from the entry.
//! - Legacy format (file type 1 or 2): the log is applicable when its base
//!   block is valid with equal sequence numbers and its timestamp equals the
//!   primary's; its `DIRT` bitmap marks 512-byte pages whose copies follow.
//! - A primary with a bad checksum gets its base block from the newest valid
//!   log base block.
//! - After replay both sequence numbers are set above every applied entry.
//!
//! After our own edits [`crate::Hive::commit`] writes equal sequence numbers
//! higher than any sequence number found in the primary or in any log entry
//! (valid or stale). Windows applies logs only to dirty hives, so nothing
//! stale can be replayed over our changes; still, when writing into a guest,
//! truncate the files named by [`log_files`] to zero bytes so a later crash
//! recovery never sees entries of an older lineage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::base::{self, le32, put32, BaseBlock, BASE_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::hive::{Hive, MAX_BINS_SIZE};
use crate::marvin::{marvin32, LOG_SEED};

/// What to do with transaction logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayPolicy {
    /// Replay logs of a dirty hive; refuse (with an error) when the logs are
    /// corrupt, inconsistent, do not recover the hive, or a clean hive has
    /// log entries newer than itself.
    #[default]
    Strict,
    /// Take the primary file as it is, even when dirty (explicit choice).
    IgnoreLogs,
}

/// A transaction log given to [`Hive::open_with_logs`].
#[derive(Debug, Clone)]
pub struct LogFile {
    /// Name for messages (e.g. `SYSTEM.LOG1`).
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// What replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The primary was dirty.
    pub was_dirty: bool,
    /// The base block was restored from a log.
    pub base_recovered: bool,
    /// Applied entries: (log name, sequence number, pages).
    pub applied: Vec<(String, u32, usize)>,
    /// Notes about logs (stale entries, stopped parses, ignored logs).
    pub notes: Vec<String>,
    /// Highest sequence number seen anywhere.
    pub max_seq: u32,
}

struct Entry {
    log: usize,
    offset: usize,
    seq: u32,
    bins_size: u32,
    flags: u32,
    pages: Vec<(u32, usize, usize)>, // (hive bins offset, log offset, len)
}

enum Parsed {
    Empty,
    New {
        base: BaseBlock,
        entries: Vec<Entry>,
    },
    Legacy {
        base: BaseBlock,
    },
}

fn parse_log(i: usize, log: &LogFile, notes: &mut Vec<String>) -> Result<Parsed> {
    let b = &log.bytes;
    if b.is_empty() || b.iter().take(512).all(|&x| x == 0) {
        return Ok(Parsed::Empty);
    }
    let base = BaseBlock::parse(b, 0)
        .map_err(|e| Error::log(0, format!("{}: {}", log.name, e.message)))?;
    if !base.checksum_ok {
        return Err(Error::log(
            508,
            format!("{}: base block checksum mismatch", log.name),
        ));
    }
    match base.file_type {
        1 | 2 => return Ok(Parsed::Legacy { base }),
        6 => {}
        t => {
            return Err(Error::log(
                28,
                format!("{}: file type {t}, expected 1, 2 or 6 for a log", log.name),
            ))
        }
    }
    let mut entries = Vec::new();
    let mut off = 512usize;
    while off + 40 <= b.len() {
        if &b[off..off + 4] != b"HvLE" {
            break;
        }
        let stop = |why: &str, notes: &mut Vec<String>| {
            notes.push(format!(
                "{}: log entry at offset {off:#x} is invalid ({why}); later entries ignored",
                log.name
            ));
        };
        let size = le32(b, off + 4) as usize;
        if size < 40 || !size.is_multiple_of(512) || off + size > b.len() {
            stop(&format!("size {size:#x}"), notes);
            break;
        }
        let e = &b[off..off + size];
        let bins_size = le32(e, 16);
        if bins_size == 0 || !bins_size.is_multiple_of(4096) || bins_size as u64 > MAX_BINS_SIZE {
            stop(&format!("hive bins size {bins_size:#x}"), notes);
            break;
        }
        if marvin32(&e[40..], LOG_SEED) != base::le64(e, 24) {
            stop("hash-1 mismatch", notes);
            break;
        }
        if marvin32(&e[..32], LOG_SEED) != base::le64(e, 32) {
            stop("hash-2 mismatch", notes);
            break;
        }
        let count = le32(e, 20) as usize;
        if count > (size - 40) / 8 {
            stop(&format!("{count} dirty pages do not fit"), notes);
            break;
        }
        let mut pages = Vec::with_capacity(count);
        let mut data = 40 + count * 8;
        let mut ok = true;
        for p in 0..count {
            let po = le32(e, 40 + p * 8);
            let ps = le32(e, 44 + p * 8) as usize;
            if data + ps > size || po as u64 + ps as u64 > bins_size as u64 {
                ok = false;
                break;
            }
            pages.push((po, off + data, ps));
            data += ps;
        }
        if !ok {
            stop("dirty page outside the entry or the hive", notes);
            break;
        }
        entries.push(Entry {
            log: i,
            offset: off,
            seq: le32(e, 12),
            bins_size,
            flags: le32(e, 8),
            pages,
        });
        off += size;
    }
    Ok(Parsed::New { base, entries })
}

impl Hive {
    /// Open a primary hive with its transaction logs (any of `.LOG`,
    /// `.LOG1`, `.LOG2`, in any order). A dirty hive is recovered per the
    /// rules in this module; see [`ReplayPolicy`] for refusals.
    pub fn open_with_logs(
        primary: Vec<u8>,
        logs: &[LogFile],
        policy: ReplayPolicy,
    ) -> Result<(Hive, ReplayReport)> {
        let mut rep = ReplayReport::default();
        let pb = BaseBlock::parse(&primary, 0)?;
        rep.was_dirty = !pb.checksum_ok || pb.seq1 != pb.seq2;
        rep.max_seq = pb.seq1.max(pb.seq2);
        if policy == ReplayPolicy::IgnoreLogs {
            if rep.was_dirty {
                rep.notes
                    .push("hive is dirty; logs ignored by request".into());
            }
            let mut h = Hive::open_unchecked(primary)?;
            h.log_seq = rep.max_seq;
            return Ok((h, rep));
        }
        let mut parsed = Vec::new();
        for (i, l) in logs.iter().enumerate() {
            match parse_log(i, l, &mut rep.notes) {
                Ok(p) => parsed.push(p),
                Err(e) if !rep.was_dirty => {
                    rep.notes.push(format!("ignored: {e}"));
                    parsed.push(Parsed::Empty);
                }
                Err(e) => return Err(e),
            }
        }
        for p in &parsed {
            match p {
                Parsed::New { base, entries } => {
                    rep.max_seq = rep.max_seq.max(base.seq1).max(base.seq2);
                    for e in entries {
                        rep.max_seq = rep.max_seq.max(e.seq);
                    }
                }
                Parsed::Legacy { base } => rep.max_seq = rep.max_seq.max(base.seq1).max(base.seq2),
                Parsed::Empty => {}
            }
        }
        if !rep.was_dirty {
            let newer: Vec<String> = parsed
                .iter()
                .filter_map(|p| match p {
                    Parsed::New { entries, .. } => {
                        entries.iter().find(|e| e.seq >= pb.seq2).map(|e| {
                            format!(
                                "{} holds entry {} at offset {:#x}",
                                logs[e.log].name, e.seq, e.offset
                            )
                        })
                    }
                    _ => None,
                })
                .collect();
            if !newer.is_empty() {
                return Err(Error::new(
                    ErrorKind::Log,
                    format!(
                        "the primary is clean (sequence {}) but logs hold newer entries ({}); Windows would ignore them; pass IgnoreLogs to use the primary as it is",
                        pb.seq2,
                        newer.join(", ")
                    ),
                ));
            }
            let mut h = Hive::open_unchecked(primary)?;
            h.log_seq = rep.max_seq;
            return Ok((h, rep));
        }
        let mut bytes = primary;
        if !pb.checksum_ok {
            // Recover the base block from the newest valid log base block.
            let best = parsed
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match p {
                    Parsed::New { base, .. } | Parsed::Legacy { base } => Some((base.seq1, i)),
                    Parsed::Empty => None,
                })
                .max();
            let Some((_, i)) = best else {
                return Err(Error::new(
                    ErrorKind::Log,
                    "base block checksum is wrong and no log holds a valid base block",
                ));
            };
            if bytes.len() < BASE_SIZE {
                bytes.resize(BASE_SIZE, 0);
            }
            bytes[..512].copy_from_slice(&logs[i].bytes[..512]);
            put32(&mut bytes, 28, 0);
            rep.base_recovered = true;
        }
        let legacy = parsed.iter().any(|p| matches!(p, Parsed::Legacy { .. }));
        let newfmt = parsed.iter().any(|p| matches!(p, Parsed::New { .. }));
        if newfmt {
            replay_new(&mut bytes, logs, &parsed, &mut rep)?;
        } else if legacy {
            replay_legacy(&mut bytes, logs, &parsed, &mut rep)?;
        } else {
            return Err(Error::new(
                ErrorKind::Dirty,
                "the hive is dirty and no transaction log was found; pass IgnoreLogs to use the primary as it is",
            ));
        }
        // Clean base block.
        let seq = rep.max_seq.max(le32(&bytes, 4)).max(le32(&bytes, 8));
        put32(&mut bytes, 4, seq);
        put32(&mut bytes, 8, seq);
        let c = base::checksum(&bytes);
        put32(&mut bytes, 508, c);
        let mut h = Hive::open_unchecked(bytes)?;
        h.log_seq = rep.max_seq;
        h.modified = true;
        Ok((h, rep))
    }
}

fn replay_new(
    bytes: &mut Vec<u8>,
    logs: &[LogFile],
    parsed: &[Parsed],
    rep: &mut ReplayReport,
) -> Result<()> {
    let mut by_seq: BTreeMap<u32, &Entry> = BTreeMap::new();
    for p in parsed {
        if let Parsed::New { entries, .. } = p {
            for e in entries {
                if let Some(prev) = by_seq.get(&e.seq) {
                    let a = &logs[prev.log].bytes[prev.offset
                        ..prev.offset + le32(&logs[prev.log].bytes, prev.offset + 4) as usize];
                    let b = &logs[e.log].bytes
                        [e.offset..e.offset + le32(&logs[e.log].bytes, e.offset + 4) as usize];
                    if a != b {
                        return Err(Error::log(
                            e.offset as u64,
                            format!(
                                "{} and {} both hold a different entry with sequence number {}",
                                logs[prev.log].name, logs[e.log].name, e.seq
                            ),
                        ));
                    }
                    continue;
                }
                by_seq.insert(e.seq, e);
            }
        }
    }
    let start = le32(bytes, 8);
    let mut seq = start;
    while let Some(e) = by_seq.get(&seq) {
        let old = bytes.len().saturating_sub(BASE_SIZE) as u64;
        let want = e.bins_size as u64;
        let size = le32(&logs[e.log].bytes, e.offset + 4) as u64;
        if want > old.max(le32(bytes, 40) as u64) + size.div_ceil(4096) * 4096 {
            return Err(Error::log(
                e.offset as u64,
                format!(
                    "{}: entry {} grows the hive to {want:#x} bytes, more than its pages can fill",
                    logs[e.log].name, e.seq
                ),
            ));
        }
        bytes.resize(BASE_SIZE + want as usize, 0);
        for &(po, lo, len) in &e.pages {
            let dst = BASE_SIZE + po as usize;
            bytes[dst..dst + len].copy_from_slice(&logs[e.log].bytes[lo..lo + len]);
        }
        put32(bytes, 40, e.bins_size);
        put32(bytes, 144, e.flags);
        rep.applied
            .push((logs[e.log].name.clone(), e.seq, e.pages.len()));
        seq = seq.wrapping_add(1);
    }
    if rep.applied.is_empty() {
        return Err(Error::new(
            ErrorKind::Log,
            format!(
                "the hive is dirty but no log entry has the expected sequence number {start} (found: {:?}); pass IgnoreLogs to use the primary as it is",
                by_seq.keys().collect::<Vec<_>>()
            ),
        ));
    }
    for (&s, e) in by_seq.range(seq..) {
        rep.notes.push(format!(
            "{}: entry {s} after a gap in the sequence was not applied",
            logs[e.log].name
        ));
    }
    let stale = by_seq.range(..start).count();
    if stale > 0 {
        rep.notes
            .push(format!("{stale} already-applied log entries skipped"));
    }
    rep.max_seq = rep.max_seq.max(seq);
    Ok(())
}

fn replay_legacy(
    bytes: &mut Vec<u8>,
    logs: &[LogFile],
    parsed: &[Parsed],
    rep: &mut ReplayReport,
) -> Result<()> {
    let ts = base::le64(bytes, 12);
    let pick = parsed.iter().enumerate().find_map(|(i, p)| match p {
        Parsed::Legacy { base } if base.seq1 == base.seq2 && base.timestamp == ts => {
            Some((i, base.clone()))
        }
        _ => None,
    });
    let Some((i, lb)) = pick else {
        return Err(Error::new(
            ErrorKind::Log,
            "the hive is dirty and no legacy log is applicable (valid, equal sequence numbers, same timestamp as the primary)",
        ));
    };
    let l = &logs[i].bytes;
    if l.len() < 516 || &l[512..516] != b"DIRT" {
        return Err(Error::log(
            512,
            format!(
                "{}: expected the dirty vector signature \"DIRT\"",
                logs[i].name
            ),
        ));
    }
    let size = lb.bins_size as usize;
    if !size.is_multiple_of(4096) || size as u64 > MAX_BINS_SIZE || size / 512 / 8 + 516 > l.len() {
        return Err(Error::log(
            40,
            format!(
                "{}: hive bins size {size:#x} does not fit the log",
                logs[i].name
            ),
        ));
    }
    let bits = size / 512;
    let bitmap = &l[516..516 + bits.div_ceil(8)];
    let mut src = (516 + bitmap.len()).div_ceil(512) * 512;
    bytes.resize(BASE_SIZE + size.max(bytes.len() - BASE_SIZE), 0);
    let mut pages = 0;
    for bit in 0..bits {
        if bitmap[bit / 8] >> (bit % 8) & 1 == 1 {
            if src + 512 > l.len() {
                return Err(Error::log(
                    src as u64,
                    format!("{}: dirty page missing (log truncated)", logs[i].name),
                ));
            }
            let dst = BASE_SIZE + bit * 512;
            bytes[dst..dst + 512].copy_from_slice(&l[src..src + 512]);
            src += 512;
            pages += 1;
        }
    }
    bytes.truncate(BASE_SIZE + size);
    put32(bytes, 40, lb.bins_size);
    rep.applied.push((logs[i].name.clone(), lb.seq1, pages));
    rep.max_seq = rep.max_seq.max(lb.seq1);
    Ok(())
}

/// The transaction log files that exist next to `primary`: `NAME.LOG`,
/// `NAME.LOG1`, `NAME.LOG2`, matched case-insensitively, in that order of
/// suffix. These are the files to truncate to zero bytes after writing a
/// hive into a guest.
pub fn log_files(primary: &Path) -> Result<Vec<PathBuf>> {
    let dir = match primary.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = primary
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: not a file path", primary.display())))?
        .to_string_lossy()
        .to_lowercase();
    let mut found = Vec::new();
    let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(&dir, e))?;
        let f = ent.file_name().to_string_lossy().to_lowercase();
        for (rank, suf) in [".log", ".log1", ".log2"].iter().enumerate() {
            if f == format!("{name}{suf}") && ent.path().is_file() {
                found.push((rank, ent.path()));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|x| x.1).collect())
}

/// Truncate the transaction logs next to `primary` to zero bytes (Windows
/// treats empty logs as "nothing to replay" and reinitialises them); call
/// after writing an edited primary into a guest. Returns the files reset.
pub fn reset_logs(primary: &Path) -> Result<Vec<PathBuf>> {
    let logs = log_files(primary)?;
    for l in &logs {
        std::fs::File::create(l).map_err(|e| Error::io(l, e))?;
    }
    Ok(logs)
}

/// Read a hive file and the logs next to it, replaying as needed.
pub fn open_file_with_logs(primary: &Path, policy: ReplayPolicy) -> Result<(Hive, ReplayReport)> {
    const CAP: u64 = MAX_BINS_SIZE + 4096;
    let read = |p: &Path| -> Result<Vec<u8>> {
        let len = std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len();
        if len > CAP {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("{} is {len} bytes, larger than any hive", p.display()),
            ));
        }
        std::fs::read(p).map_err(|e| Error::io(p, e))
    };
    let bytes = read(primary)?;
    let mut logs = Vec::new();
    if policy != ReplayPolicy::IgnoreLogs {
        for p in log_files(primary)? {
            logs.push(LogFile {
                name: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                bytes: read(&p)?,
            });
        }
    }
    Hive::open_with_logs(bytes, &logs, policy).map_err(|e| e.with_path(primary))
}
