//! Transaction-log replay (legacy `DIRT` logs and the incremental `HvLE`
//! format) and the rules for what to do with logs after our writes.
//!
//! Rules implemented (Windows' own, per the format specifications):
//! - A hive is dirty when its base block checksum is wrong or its two
//!   sequence numbers differ. A clean hive's logs are never applied.
//! - New format (file type 6, Windows 8.1 and later): log entries start at
//!   offset 512, each at a 512-byte boundary. An entry is valid when its
//!   signature is `HvLE`, its size is a multiple of 512 within the file, its
//!   hive-bins size is a multiple of 4096, its page references fit, and both
//!   Marvin32 hashes match. Parsing a log stops at the first invalid entry.
//! - Entries from all logs are ordered by sequence number (whichever log
//!   holds the next number supplies it: Windows rotates between `.LOG1` and
//!   `.LOG2`, so either may hold the earlier entries). Entries below the
//!   primary's secondary sequence number are already in the primary and are
//!   skipped. The entries left must form one chain without holes:
//!   - **continuous**: the chain starts at the secondary sequence number;
//!   - **partial reconcile**: no entry has the secondary sequence number,
//!     but the chain starts above it. Since Windows 8.1 the kernel, before
//!     overwriting unreconciled entries of a log, writes the dirty pages into
//!     the primary *without updating its base block* ("partial reconcile"):
//!     the primary then holds data as of the entry before the lowest one left
//!     in the logs, and Windows applies the whole chain from that lowest
//!     entry. We do the same, then require the result to pass the checker
//!     (a primary older than the chain, e.g. with a log file missing, gives
//!     an inconsistent hive and is refused).
//! - Refused as unsafe (see [`Refusal`]): a hole in the chain (entries
//!   newer than the hole would be dropped); an invalid entry (failing
//!   hashes) followed by newer entries in the same log; logs holding
//!   nothing newer than the primary while it is dirty; two different
//!   entries with one sequence number. The newest entry of a log failing
//!   its hashes with nothing newer after it is a torn write (the crash
//!   interrupted it; Windows discards it, and so do we, with a note).
//! - Each entry first resizes the hive bins data to its recorded size, then
//!   writes its dirty pages; the base block flags come from the entry.
//! - Legacy format (file type 1 or 2; XP's single `.LOG`, Vista/7's
//!   `.LOG1`/`.LOG2`): a log is applicable when its base block is valid with
//!   equal sequence numbers and its timestamp equals the primary's; the
//!   first applicable log in `.LOG`, `.LOG1`, `.LOG2` order is used (as the
//!   boot loader does); its `DIRT` bitmap marks 512-byte pages whose copies
//!   follow.
//! - A primary with a bad checksum gets its base block from the newest valid
//!   log base block.
//! - After replay both sequence numbers are set above every applied entry.
//!
//! [`ReplayReport::rule`] says which rule applied. With
//! [`ReplayPolicy::ReadOnlyBestEffort`] a dirty hive whose logs cannot be
//! used is read as it is ([`ReplayRule::ReadAsIs`], with a one-line
//! [`ReplayReport::warning`]), for reading only.
//!
//! After our own edits [`crate::Hive::commit`] writes equal sequence numbers
//! higher than any sequence number found in the primary or in any log entry
//! (valid or stale). Windows applies logs only to dirty hives, so nothing
//! stale can be replayed over our changes; still, when writing into a guest,
//! truncate the files named by [`log_files`] to zero bytes so a later crash
//! recovery never sees entries of an older lineage.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::base::{self, le32, put32, BaseBlock, BASE_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::hive::{Hive, MAX_BINS_SIZE};
use crate::marvin::{marvin32, LOG_SEED};

/// What to do with transaction logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayPolicy {
    /// Replay logs of a dirty hive; refuse (with an error naming the
    /// [`Refusal`] state) when the logs are missing, corrupt, inconsistent,
    /// do not recover the hive, or a clean hive has log entries newer than
    /// itself.
    #[default]
    Strict,
    /// For reading only (export, inspection, planning): replay as
    /// [`ReplayPolicy::Strict`] does when the logs allow it; when Strict
    /// would refuse, take the primary as it is, report
    /// [`ReplayRule::ReadAsIs`] with the reason and a one-line
    /// [`ReplayReport::warning`] (as hivex and regipy read dirty hives). The
    /// hive then refuses [`Hive::write_to`].
    ReadOnlyBestEffort,
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

/// Which rule decided how the logs were used.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum ReplayRule {
    /// The primary was clean: no log applied (stale entries skipped).
    #[default]
    Clean,
    /// New-format entries chained from the primary's secondary sequence
    /// number (`first`) to `last`.
    Continuous {
        /// First applied sequence number (= the primary's secondary one).
        first: u32,
        /// Last applied sequence number.
        last: u32,
    },
    /// Partial reconcile detected: no log entry has the primary's secondary
    /// sequence number (`expected`); the chain `first..=last` (all entries
    /// above it, without holes) was applied, as Windows 8.1+ does.
    PartialReconcile {
        /// The primary's secondary sequence number.
        expected: u32,
        /// Lowest sequence number present (first applied).
        first: u32,
        /// Last applied sequence number.
        last: u32,
    },
    /// A legacy (`DIRT`) log was applied: XP's `.LOG` or Vista/7's
    /// `.LOG1`/`.LOG2`.
    Legacy {
        /// Name of the applied log.
        log: String,
    },
    /// A dirty primary taken as it is because the caller asked
    /// ([`ReplayPolicy::IgnoreLogs`]).
    IgnoredByRequest {
        /// Primary sequence number of the base block.
        seq1: u32,
        /// Secondary sequence number of the base block.
        seq2: u32,
    },
    /// A dirty primary read as it is ([`ReplayPolicy::ReadOnlyBestEffort`])
    /// because its logs cannot be used.
    ReadAsIs {
        /// Primary sequence number of the base block.
        seq1: u32,
        /// Secondary sequence number of the base block.
        seq2: u32,
        /// Why the logs were not used.
        refusal: Refusal,
    },
}

/// Why the logs of a hive cannot be used (what [`ReplayPolicy::Strict`]
/// refuses). Its `Display` says which state and what ignoring the logs
/// would lose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Refusal {
    /// The hive is dirty and no transaction log was given or found.
    NoLogs,
    /// A log of a dirty hive cannot be read at all (base block, file type).
    UnreadableLog {
        /// Log name.
        log: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The base block checksum is wrong and no log holds a valid base block.
    NoBaseBlock,
    /// The hive is dirty but no log entry is at or above its secondary
    /// sequence number: the logs are older than the primary (or empty).
    LogsOlderThanPrimary {
        /// The primary's secondary sequence number.
        expected: u32,
        /// Newest entry found, if any.
        newest: Option<u32>,
    },
    /// The entries newer than the primary have a hole: `first..=reached`
    /// chain, then `next..=newest` follow after the missing numbers.
    Gap {
        /// The primary's secondary sequence number.
        expected: u32,
        /// Lowest usable entry.
        first: u32,
        /// Last entry before the hole.
        reached: u32,
        /// First entry after the hole.
        next: u32,
        /// Newest entry.
        newest: u32,
        /// An invalid entry that explains the hole, when one was found.
        cause: Option<String>,
    },
    /// A log entry is invalid (hashes, framing) and newer entries of the
    /// same log follow it: not a torn final write.
    CorruptEntry {
        /// Log name.
        log: String,
        /// Offset of the invalid entry in the log.
        offset: u64,
        /// What is wrong with it.
        reason: String,
        /// Newest sequence number found after it.
        newer: u32,
    },
    /// Two logs hold different entries with the same sequence number.
    ConflictingEntries {
        /// The sequence number.
        seq: u32,
        /// The two logs.
        logs: [String; 2],
    },
    /// An entry cannot be applied (e.g. grows the hive beyond its pages).
    BadEntry {
        /// Log name.
        log: String,
        /// Offset of the entry in the log.
        offset: u64,
        /// Sequence number.
        seq: u32,
        /// What is wrong.
        reason: String,
    },
    /// The chain applied after a partial reconcile gives a hive that fails
    /// the checker: the primary is older than the logs (a log is missing?).
    InconsistentResult {
        /// The primary's secondary sequence number.
        expected: u32,
        /// First applied entry.
        first: u32,
        /// Last applied entry.
        last: u32,
        /// The first problem found.
        problem: String,
    },
    /// No legacy log is applicable to the primary.
    NoApplicableLegacyLog {
        /// Why.
        reason: String,
    },
    /// The replayed bytes do not open as a hive.
    ReplayedHiveInvalid {
        /// The error.
        message: String,
    },
    /// The primary is clean but logs hold entries newer than it (Windows
    /// ignores them).
    CleanWithNewerLogs {
        /// The primary's sequence number.
        seq: u32,
        /// Where the newer entries are.
        newer: Vec<String>,
    },
}

impl Refusal {
    /// What ignoring the logs would lose, as one clause.
    fn loss(&self) -> String {
        const AS_IS: &str =
            "ignoring the logs (--ignore-logs, ReplayPolicy::IgnoreLogs) uses the primary as it is";
        match self {
            Refusal::Gap {
                first, newest, ..
            }
            | Refusal::InconsistentResult {
                first,
                last: newest,
                ..
            } => format!(
                "{AS_IS} and loses what log entries {first}..={newest} ({} entries) hold that is not yet in it",
                newest.wrapping_sub(*first).wrapping_add(1)
            ),
            Refusal::CorruptEntry { newer, .. } => format!(
                "{AS_IS} and loses what the log entries up to {newer} hold that is not yet in it"
            ),
            Refusal::LogsOlderThanPrimary { .. } => format!(
                "{AS_IS}; what Windows wrote after that sequence number is in no log given, so it is lost either way"
            ),
            Refusal::NoLogs => format!(
                "{AS_IS} and loses whatever Windows had logged but not yet written into it; if the .LOG1/.LOG2 (or .LOG) files exist, put them next to the hive"
            ),
            Refusal::CleanWithNewerLogs { .. } => format!(
                "{AS_IS}, as Windows does, and leaves the newer entries unapplied"
            ),
            _ => format!(
                "{AS_IS} and loses whatever Windows had logged but not yet written into it"
            ),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoLogs => write!(f, "the hive is dirty and no transaction log was found"),
            Refusal::UnreadableLog { log, reason } => {
                write!(f, "the hive is dirty and its log {log} cannot be read ({reason})")
            }
            Refusal::NoBaseBlock => write!(
                f,
                "the base block checksum is wrong and no log holds a valid base block"
            ),
            Refusal::LogsOlderThanPrimary { expected, newest } => match newest {
                Some(n) => write!(
                    f,
                    "the hive is dirty but its logs are older than the primary: the newest entry is {n}, the primary expects {expected} or later"
                ),
                None => write!(
                    f,
                    "the hive is dirty but its logs hold no entry (the primary expects sequence number {expected})"
                ),
            },
            Refusal::Gap {
                expected,
                first,
                reached,
                next,
                newest,
                cause,
            } => {
                write!(
                    f,
                    "the hive is dirty (expected sequence number {expected}) and its log entries have a hole: {first}..={reached} chain, then {} missing, then {next}..={newest}",
                    if next - reached == 2 {
                        format!("{}", reached + 1)
                    } else {
                        format!("{}..={}", reached + 1, next - 1)
                    }
                )?;
                if let Some(c) = cause {
                    write!(f, " ({c})")?;
                }
                Ok(())
            }
            Refusal::CorruptEntry {
                log,
                offset,
                reason,
                newer,
            } => write!(
                f,
                "{log}: the log entry at offset {offset:#x} is invalid ({reason}) while newer entries (up to {newer}) follow it: the log is damaged, not just cut by a crash"
            ),
            Refusal::ConflictingEntries { seq, logs } => write!(
                f,
                "{} and {} both hold a different entry with sequence number {seq}",
                logs[0], logs[1]
            ),
            Refusal::BadEntry {
                log,
                offset,
                seq,
                reason,
            } => write!(f, "{log}: entry {seq} at offset {offset:#x} {reason}"),
            Refusal::InconsistentResult {
                expected,
                first,
                last,
                problem,
            } => write!(
                f,
                "partial reconcile assumed (no entry {expected}, chain {first}..={last}) but the result fails the checker ({problem}): the primary is older than the logs (is a log file missing?)"
            ),
            Refusal::NoApplicableLegacyLog { reason } => {
                write!(f, "the hive is dirty and no legacy log is applicable ({reason})")
            }
            Refusal::ReplayedHiveInvalid { message } => {
                write!(f, "the replayed hive is not valid ({message})")
            }
            Refusal::CleanWithNewerLogs { seq, newer } => write!(
                f,
                "the primary is clean (sequence {seq}) but logs hold newer entries ({}); Windows would ignore them",
                newer.join(", ")
            ),
        }?;
        write!(f, "; {}", self.loss())
    }
}

/// What replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The primary was dirty.
    pub was_dirty: bool,
    /// Which rule applied.
    pub rule: ReplayRule,
    /// The base block was restored from a log.
    pub base_recovered: bool,
    /// Applied entries: (log name, sequence number, pages).
    pub applied: Vec<(String, u32, usize)>,
    /// Notes about logs (stale entries, stopped parses, ignored logs).
    pub notes: Vec<String>,
    /// Highest sequence number seen anywhere.
    pub max_seq: u32,
}

impl ReplayReport {
    /// One line for the user when the hive was read as it is although
    /// dirty ([`ReplayRule::ReadAsIs`] or [`ReplayRule::IgnoredByRequest`]):
    /// the sequence numbers and why; prefix it with the hive's name.
    pub fn warning(&self) -> Option<String> {
        match &self.rule {
            ReplayRule::ReadAsIs {
                seq1,
                seq2,
                refusal,
            } => Some(format!(
                "hive is dirty (sequence numbers {seq1} != {seq2}); read as it is, for reading only: {refusal}"
            )),
            ReplayRule::IgnoredByRequest { seq1, seq2 } => Some(format!(
                "hive is dirty (sequence numbers {seq1} != {seq2}); logs ignored by request: changes Windows had not yet written into the primary are missing"
            )),
            _ => None,
        }
    }
}

/// A refusal with the error kind and log offset it maps to.
struct Refused {
    kind: ErrorKind,
    offset: Option<u64>,
    why: Refusal,
}

impl Refused {
    fn log(why: Refusal) -> Self {
        Refused {
            kind: ErrorKind::Log,
            offset: None,
            why,
        }
    }
    fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
    fn into_error(self) -> Error {
        Error {
            offset: self.offset,
            ..Error::new(self.kind, self.why.to_string())
        }
    }
}

struct Entry {
    log: usize,
    offset: usize,
    size: usize,
    seq: u32,
    bins_size: u32,
    flags: u32,
    pages: Vec<(u32, usize, usize)>, // (hive bins offset, log offset, len)
}

/// Where the parse of a new-format log stopped at an invalid entry.
struct Stop {
    log: usize,
    offset: usize,
    why: String,
    /// Newest sequence number of an entry (with an intact header) after the
    /// invalid one that is newer than every valid entry of this log cycle;
    /// `None` when only older leftovers (or nothing) follow: a torn write.
    newer_after: Option<u32>,
}

enum Parsed {
    Empty,
    New {
        base: BaseBlock,
        entries: Vec<Entry>,
        stop: Option<Stop>,
    },
    Legacy {
        base: BaseBlock,
    },
}

fn parse_log(i: usize, log: &LogFile) -> Result<Parsed> {
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
    let mut stop = None;
    while off + 40 <= b.len() {
        if &b[off..off + 4] != b"HvLE" {
            break;
        }
        match parse_entry(i, b, off) {
            Ok(e) => {
                off += e.size;
                entries.push(e);
            }
            Err(why) => {
                // Entries of this cycle are newer than its last valid entry
                // (or than the cycle start in the log's base block).
                let floor = entries.last().map_or(base.seq2, |e: &Entry| e.seq);
                let newer_after = newer_headers_after(b, off, floor);
                stop = Some(Stop {
                    log: i,
                    offset: off,
                    why,
                    newer_after,
                });
                break;
            }
        }
    }
    Ok(Parsed::New {
        base,
        entries,
        stop,
    })
}

/// Parse and validate the entry at `off` (signature already checked).
fn parse_entry(i: usize, b: &[u8], off: usize) -> std::result::Result<Entry, String> {
    let size = le32(b, off + 4) as usize;
    if size < 40 || !size.is_multiple_of(512) || off + size > b.len() {
        return Err(format!("size {size:#x}"));
    }
    let e = &b[off..off + size];
    let bins_size = le32(e, 16);
    if bins_size == 0 || !bins_size.is_multiple_of(4096) || bins_size as u64 > MAX_BINS_SIZE {
        return Err(format!("hive bins size {bins_size:#x}"));
    }
    if marvin32(&e[40..], LOG_SEED) != base::le64(e, 24) {
        return Err("hash-1 mismatch".into());
    }
    if marvin32(&e[..32], LOG_SEED) != base::le64(e, 32) {
        return Err("hash-2 mismatch".into());
    }
    let count = le32(e, 20) as usize;
    if count > (size - 40) / 8 {
        return Err(format!("{count} dirty pages do not fit"));
    }
    let mut pages = Vec::with_capacity(count);
    let mut data = 40 + count * 8;
    for p in 0..count {
        let po = le32(e, 40 + p * 8);
        let ps = le32(e, 44 + p * 8) as usize;
        if data + ps > size || po as u64 + ps as u64 > bins_size as u64 {
            return Err("dirty page outside the entry or the hive".into());
        }
        pages.push((po, off + data, ps));
        data += ps;
    }
    Ok(Entry {
        log: i,
        offset: off,
        size,
        seq: le32(e, 12),
        bins_size,
        flags: le32(e, 8),
        pages,
    })
}

/// After an invalid entry at `bad`, look for entry headers that are intact
/// (signature and hash-2) and newer than `floor`: they mean the invalid
/// entry sits in the middle of the log, not at its torn end. Returns the
/// newest such sequence number. Scans 512-byte boundaries (bounded by the
/// log size).
fn newer_headers_after(b: &[u8], bad: usize, floor: u32) -> Option<u32> {
    let mut newest = None;
    let mut off = bad + 512;
    while off + 40 <= b.len() {
        if &b[off..off + 4] == b"HvLE"
            && marvin32(&b[off..off + 32], LOG_SEED) == base::le64(b, off + 32)
        {
            let seq = le32(b, off + 12);
            if seq > floor && newest.is_none_or(|n| seq > n) {
                newest = Some(seq);
            }
        }
        off += 512;
    }
    newest
}

impl Hive {
    /// Open a primary hive with its transaction logs (any of `.LOG`,
    /// `.LOG1`, `.LOG2`, in any order). A dirty hive is recovered per the
    /// rules in this module; see [`ReplayPolicy`] for refusals and
    /// [`ReplayReport::rule`] for the rule that applied.
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
                rep.rule = ReplayRule::IgnoredByRequest {
                    seq1: pb.seq1,
                    seq2: pb.seq2,
                };
            }
            let mut h = Hive::open_unchecked(primary)?;
            h.log_seq = rep.max_seq;
            return Ok((h, rep));
        }
        let fallback = (policy == ReplayPolicy::ReadOnlyBestEffort).then(|| primary.clone());
        let refused = match replay(primary, &pb, logs, &mut rep) {
            Ok(h) => return Ok((h, rep)),
            Err(r) => r,
        };
        let Some(primary) = fallback else {
            return Err(refused.into_error());
        };
        // Read as it is: the replay attempt's applied entries do not count.
        rep.applied.clear();
        rep.base_recovered = false;
        rep.rule = ReplayRule::ReadAsIs {
            seq1: pb.seq1,
            seq2: pb.seq2,
            refusal: refused.why,
        };
        let mut h = Hive::open_unchecked(primary)?;
        h.log_seq = rep.max_seq;
        h.read_only = rep.warning();
        Ok((h, rep))
    }
}

/// Parse every log; a log that cannot be read is a note for a clean hive
/// and a refusal for a dirty one.
fn parse_all(
    logs: &[LogFile],
    rep: &mut ReplayReport,
) -> std::result::Result<Vec<Parsed>, Refused> {
    let mut parsed = Vec::new();
    for (i, l) in logs.iter().enumerate() {
        match parse_log(i, l) {
            Ok(p) => parsed.push(p),
            Err(e) if !rep.was_dirty => {
                rep.notes.push(format!("ignored: {e}"));
                parsed.push(Parsed::Empty);
            }
            Err(e) => {
                return Err(Refused::log(Refusal::UnreadableLog {
                    log: l.name.clone(),
                    reason: e.message,
                })
                .at(e.offset.unwrap_or(0)))
            }
        }
    }
    for p in &parsed {
        match p {
            Parsed::New { base, entries, .. } => {
                rep.max_seq = rep.max_seq.max(base.seq1).max(base.seq2);
                for e in entries {
                    rep.max_seq = rep.max_seq.max(e.seq);
                }
            }
            Parsed::Legacy { base } => rep.max_seq = rep.max_seq.max(base.seq1).max(base.seq2),
            Parsed::Empty => {}
        }
    }
    Ok(parsed)
}

/// Everything [`ReplayPolicy::Strict`] does: the clean check, base block
/// recovery, replay of the new or legacy format, the final base block.
fn replay(
    primary: Vec<u8>,
    pb: &BaseBlock,
    logs: &[LogFile],
    rep: &mut ReplayReport,
) -> std::result::Result<Hive, Refused> {
    let parsed = parse_all(logs, rep)?;
    if !rep.was_dirty {
        refuse_newer_than_clean(pb, logs, &parsed)?;
        let mut h = Hive::open_unchecked(primary).map_err(invalid)?;
        h.log_seq = rep.max_seq;
        return Ok(h);
    }
    let mut bytes = primary;
    if !pb.checksum_ok {
        recover_base_block(&mut bytes, logs, &parsed)?;
        rep.base_recovered = true;
    }
    let legacy = parsed.iter().any(|p| matches!(p, Parsed::Legacy { .. }));
    let newfmt = parsed.iter().any(|p| matches!(p, Parsed::New { .. }));
    if newfmt {
        replay_new(&mut bytes, logs, &parsed, rep)?;
    } else if legacy {
        replay_legacy(&mut bytes, logs, &parsed, rep)?;
    } else {
        return Err(Refused {
            kind: ErrorKind::Dirty,
            offset: None,
            why: Refusal::NoLogs,
        });
    }
    // Clean base block.
    let seq = rep.max_seq.max(le32(&bytes, 4)).max(le32(&bytes, 8));
    put32(&mut bytes, 4, seq);
    put32(&mut bytes, 8, seq);
    let c = base::checksum(&bytes);
    put32(&mut bytes, 508, c);
    let mut h = Hive::open_unchecked(bytes).map_err(invalid)?;
    h.log_seq = rep.max_seq;
    h.modified = true;
    if let ReplayRule::PartialReconcile {
        expected,
        first,
        last,
    } = rep.rule
    {
        // The primary's state is only inferred: verify the result.
        if let Some(p) = h.check_errors().into_iter().next() {
            return Err(Refused::log(Refusal::InconsistentResult {
                expected,
                first,
                last,
                problem: p.to_string(),
            }));
        }
    }
    Ok(h)
}

fn invalid(e: Error) -> Refused {
    Refused {
        kind: e.kind,
        offset: e.offset,
        why: Refusal::ReplayedHiveInvalid { message: e.message },
    }
}

fn refuse_newer_than_clean(
    pb: &BaseBlock,
    logs: &[LogFile],
    parsed: &[Parsed],
) -> std::result::Result<(), Refused> {
    let newer: Vec<String> = parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::New { entries, .. } => entries.iter().find(|e| e.seq >= pb.seq2).map(|e| {
                format!(
                    "{} holds entry {} at offset {:#x}",
                    logs[e.log].name, e.seq, e.offset
                )
            }),
            _ => None,
        })
        .collect();
    if newer.is_empty() {
        return Ok(());
    }
    Err(Refused::log(Refusal::CleanWithNewerLogs {
        seq: pb.seq2,
        newer,
    }))
}

/// Restore the base block of a primary with a bad checksum from the newest
/// valid log base block.
fn recover_base_block(
    bytes: &mut Vec<u8>,
    logs: &[LogFile],
    parsed: &[Parsed],
) -> std::result::Result<(), Refused> {
    let best = parsed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Parsed::New { base, .. } | Parsed::Legacy { base } => Some((base.seq1, i)),
            Parsed::Empty => None,
        })
        .max();
    let Some((_, i)) = best else {
        return Err(Refused::log(Refusal::NoBaseBlock));
    };
    if bytes.len() < BASE_SIZE {
        bytes.resize(BASE_SIZE, 0);
    }
    bytes[..512].copy_from_slice(&logs[i].bytes[..512]);
    put32(bytes, 28, 0);
    Ok(())
}

/// Index the valid entries of all new-format logs by sequence number;
/// identical copies are merged, different ones refused.
fn index_entries<'p>(
    logs: &[LogFile],
    parsed: &'p [Parsed],
) -> std::result::Result<BTreeMap<u32, &'p Entry>, Refused> {
    let mut by_seq: BTreeMap<u32, &Entry> = BTreeMap::new();
    for p in parsed {
        let Parsed::New { entries, .. } = p else {
            continue;
        };
        for e in entries {
            if let Some(prev) = by_seq.get(&e.seq) {
                let a = &logs[prev.log].bytes[prev.offset..prev.offset + prev.size];
                let b = &logs[e.log].bytes[e.offset..e.offset + e.size];
                if a != b {
                    return Err(Refused::log(Refusal::ConflictingEntries {
                        seq: e.seq,
                        logs: [logs[prev.log].name.clone(), logs[e.log].name.clone()],
                    })
                    .at(e.offset as u64));
                }
                continue;
            }
            by_seq.insert(e.seq, e);
        }
    }
    Ok(by_seq)
}

/// Choose the chain to apply: the entries at or above `expected`, which
/// must be contiguous; sets `rep.rule`. Returns (first, last).
fn choose_chain(
    expected: u32,
    by_seq: &BTreeMap<u32, &Entry>,
    logs: &[LogFile],
    parsed: &[Parsed],
    rep: &mut ReplayReport,
) -> std::result::Result<(u32, u32), Refused> {
    // An invalid entry with newer entries after it: damage, not a torn write.
    for p in parsed {
        if let Parsed::New {
            stop:
                Some(Stop {
                    log,
                    offset,
                    why,
                    newer_after: Some(n),
                }),
            ..
        } = p
        {
            if *n >= expected {
                let log = *log;
                return Err(Refused::log(Refusal::CorruptEntry {
                    log: logs[log].name.clone(),
                    offset: *offset as u64,
                    reason: why.clone(),
                    newer: *n,
                })
                .at(*offset as u64));
            }
        }
    }
    let live: Vec<u32> = by_seq.range(expected..).map(|(&s, _)| s).collect();
    let Some(&first) = live.first() else {
        return Err(Refused::log(Refusal::LogsOlderThanPrimary {
            expected,
            newest: by_seq.keys().next_back().copied(),
        }));
    };
    let mut last = first;
    for &s in &live[1..] {
        if s != last.wrapping_add(1) {
            // The log whose parse stopped right where the chain breaks.
            let cause = parsed.iter().find_map(|p| match p {
                Parsed::New {
                    stop: Some(st),
                    entries,
                    ..
                } if entries.last().is_none_or(|e| e.seq == last) => Some(format!(
                    "{} stops at an invalid entry at offset {:#x}: {}",
                    logs[st.log].name, st.offset, st.why
                )),
                _ => None,
            });
            return Err(Refused::log(Refusal::Gap {
                expected,
                first,
                reached: last,
                next: s,
                newest: *live.last().unwrap_or(&s),
                cause,
            }));
        }
        last = s;
    }
    rep.rule = if first == expected {
        ReplayRule::Continuous { first, last }
    } else {
        rep.notes.push(format!(
            "partial reconcile detected: no log entry has the expected sequence number {expected}; applied the chain {first}..={last}"
        ));
        ReplayRule::PartialReconcile {
            expected,
            first,
            last,
        }
    };
    Ok((first, last))
}

fn replay_new(
    bytes: &mut Vec<u8>,
    logs: &[LogFile],
    parsed: &[Parsed],
    rep: &mut ReplayReport,
) -> std::result::Result<(), Refused> {
    let by_seq = index_entries(logs, parsed)?;
    let expected = le32(bytes, 8);
    let (first, last) = choose_chain(expected, &by_seq, logs, parsed, rep)?;
    for (_, e) in by_seq.range(first..=last) {
        apply_entry(bytes, &logs[e.log], e)?;
        rep.applied
            .push((logs[e.log].name.clone(), e.seq, e.pages.len()));
    }
    for p in parsed {
        if let Parsed::New { stop: Some(st), .. } = p {
            rep.notes.push(format!(
                "{}: the log entry at offset {:#x} is invalid ({}): a torn final write, not applied, as Windows does",
                logs[st.log].name, st.offset, st.why
            ));
        }
    }
    let stale = by_seq.range(..expected).count();
    if stale > 0 {
        rep.notes
            .push(format!("{stale} already-applied log entries skipped"));
    }
    rep.max_seq = rep.max_seq.max(last.wrapping_add(1));
    Ok(())
}

/// Resize the hive bins data to the entry's size and write its pages.
fn apply_entry(bytes: &mut Vec<u8>, log: &LogFile, e: &Entry) -> std::result::Result<(), Refused> {
    let old = bytes.len().saturating_sub(BASE_SIZE) as u64;
    let want = e.bins_size as u64;
    if want > old.max(le32(bytes, 40) as u64) + (e.size as u64).div_ceil(4096) * 4096 {
        return Err(Refused::log(Refusal::BadEntry {
            log: log.name.clone(),
            offset: e.offset as u64,
            seq: e.seq,
            reason: format!("grows the hive to {want:#x} bytes, more than its pages can fill"),
        })
        .at(e.offset as u64));
    }
    bytes.resize(BASE_SIZE + want as usize, 0);
    for &(po, lo, len) in &e.pages {
        let dst = BASE_SIZE + po as usize;
        bytes[dst..dst + len].copy_from_slice(&log.bytes[lo..lo + len]);
    }
    put32(bytes, 40, e.bins_size);
    put32(bytes, 144, e.flags);
    Ok(())
}

fn replay_legacy(
    bytes: &mut Vec<u8>,
    logs: &[LogFile],
    parsed: &[Parsed],
    rep: &mut ReplayReport,
) -> std::result::Result<(), Refused> {
    let ts = base::le64(bytes, 12);
    let pick = parsed.iter().enumerate().find_map(|(i, p)| match p {
        Parsed::Legacy { base } if base.seq1 == base.seq2 && base.timestamp == ts => {
            Some((i, base.clone()))
        }
        _ => None,
    });
    let Some((i, lb)) = pick else {
        return Err(Refused::log(Refusal::NoApplicableLegacyLog {
            reason: "none is valid with equal sequence numbers and the primary's timestamp".into(),
        }));
    };
    let name = &logs[i].name;
    let unusable = |offset: u64, reason: String| {
        Refused::log(Refusal::UnreadableLog {
            log: name.clone(),
            reason,
        })
        .at(offset)
    };
    let l = &logs[i].bytes;
    if l.len() < 516 || &l[512..516] != b"DIRT" {
        return Err(unusable(
            512,
            "expected the dirty vector signature \"DIRT\"".into(),
        ));
    }
    let size = lb.bins_size as usize;
    if !size.is_multiple_of(4096) || size as u64 > MAX_BINS_SIZE || size / 512 / 8 + 516 > l.len() {
        return Err(unusable(
            40,
            format!("hive bins size {size:#x} does not fit the log"),
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
                return Err(unusable(
                    src as u64,
                    "dirty page missing (log truncated)".into(),
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
    rep.applied.push((name.clone(), lb.seq1, pages));
    rep.max_seq = rep.max_seq.max(lb.seq1);
    rep.rule = ReplayRule::Legacy { log: name.clone() };
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
