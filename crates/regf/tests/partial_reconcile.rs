//! Hives captured from running systems: the log states Windows leaves
//! behind, built with our own writer from a real SYSTEM hive (Windows 7
//! era), and the real dirty NTUSER.DAT. Oracles: hivex (hivexregedit
//! export of the replayed file), regipy's transaction-log recovery on the
//! same files, our checker, and the hive obtained by making the same edits
//! directly.
mod support;

use regf::{Hive, LogFile, Refusal, ReplayPolicy, ReplayRule, Value};
use support::*;

/// Seven states of the real SYSTEM hive: `s[0]` is the file as shipped,
/// `s[k]` is `s[k-1]` plus edit k, each committed by our writer. Built once
/// for all tests of this file.
fn states() -> &'static [Vec<u8>] {
    static S: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    S.get_or_init(build_states)
}

fn build_states() -> Vec<Vec<u8>> {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win7");
    let s0 = std::fs::read(&p).unwrap();
    let svc = "ControlSet001\\Services\\viostor";
    let edits: [&dyn Fn(&mut Hive); 6] = [
        &|h| {
            h.create_key(svc).unwrap();
            h.set_value(svc, "Start", &Value::Dword(0)).unwrap();
            h.set_value(svc, "Type", &Value::Dword(1)).unwrap();
            h.set_value(
                svc,
                "ImagePath",
                &Value::ExpandString("system32\\drivers\\viostor.sys".into()),
            )
            .unwrap();
        },
        &|h| {
            h.create_key(&format!("{svc}\\Parameters")).unwrap();
            h.set_value(&format!("{svc}\\Parameters"), "BusType", &Value::Dword(1))
                .unwrap();
        },
        // 3 and 4 grow the hive (new bins).
        &|h| {
            h.set_value(svc, "Start", &Value::Dword(3)).unwrap();
            h.set_value(svc, "Blob", &Value::Binary(vec![0xA5; 40_000]))
                .unwrap();
        },
        &|h| {
            for i in 0..60 {
                h.create_key(&format!("{svc}\\Enum\\K{i:02}")).unwrap();
                h.set_value(&format!("{svc}\\Enum\\K{i:02}"), "n", &Value::Dword(i))
                    .unwrap();
            }
        },
        // 5 and 6 rewrite what 3 and 4 wrote, in place.
        &|h| {
            h.set_value(svc, "Start", &Value::Dword(0)).unwrap();
            h.delete_key(&format!("{svc}\\Enum\\K07"), false).unwrap();
            h.set_value(&format!("{svc}\\Enum\\K08"), "n", &Value::Dword(800))
                .unwrap();
        },
        &|h| {
            h.delete_value(svc, "ImagePath").unwrap();
            h.set_value(svc, "Group", &Value::String("SCSI miniport".into()))
                .unwrap();
            h.set_value(&format!("{svc}\\Enum\\K09"), "n", &Value::Dword(900))
                .unwrap();
        },
    ];
    let mut out = vec![s0];
    for e in edits {
        let mut h = Hive::open(out.last().unwrap().clone()).unwrap();
        e(&mut h);
        out.push(h.commit());
    }
    out
}

fn seq2(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

/// Entry k (1..=6) takes `s[k-1]` to `s[k]`, sequence number `base + k - 1`.
fn entries(s: &[Vec<u8>], base: u32) -> Vec<Vec<u8>> {
    let mut v = vec![Vec::new()];
    for k in 1..s.len() {
        v.push(hvle_entry(&s[k - 1], &s[k], base + k as u32 - 1));
    }
    v
}

/// A new-format log whose cycle starts at `first` (the log's base block
/// sequence numbers, as Windows writes them when it starts a log), holding
/// `entries`, written over `old` (the previous cycle's bytes stay behind,
/// as on disk).
fn log_cycle(primary: &[u8], first: u32, entries: &[&Vec<u8>], old: &[u8]) -> Vec<u8> {
    let mut head = primary[..512].to_vec();
    head[28..32].copy_from_slice(&6u32.to_le_bytes());
    set_seq(&mut head, first, first);
    for e in entries {
        head.extend_from_slice(e);
    }
    let mut out = old.to_vec();
    if out.len() < head.len() {
        out.resize(head.len(), 0);
    }
    out[..head.len()].copy_from_slice(&head);
    out
}

/// The dirty primary of a partial reconcile: hive bins data as of `data`
/// (what the partial reconcile wrote), base block of `base` (never updated
/// since), marked dirty.
fn partial_primary(base: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = data.to_vec();
    p[..4096].copy_from_slice(&base[..4096]);
    let s = seq2(base);
    set_seq(&mut p, s + 1, s);
    p
}

/// The naive reading: every entry of each log in file order, LOG1 first,
/// without looking at sequence numbers; bins size from the last entry.
fn naive(primary: &[u8], logs: &[&[u8]]) -> Vec<u8> {
    let mut b = primary.to_vec();
    for l in logs {
        let mut off = 512;
        while off + 40 <= l.len() && &l[off..off + 4] == b"HvLE" {
            let le = |o: usize| u32::from_le_bytes(l[o..o + 4].try_into().unwrap()) as usize;
            let (size, bins, count) = (le(off + 4), le(off + 16), le(off + 20));
            b.resize(4096 + bins, 0);
            let mut data = off + 40 + count * 8;
            for p in 0..count {
                let (po, ps) = (le(off + 40 + p * 8), le(off + 44 + p * 8));
                b[4096 + po..4096 + po + ps].copy_from_slice(&l[data..data + ps]);
                data += ps;
            }
            b[40..44].copy_from_slice(&(bins as u32).to_le_bytes());
            off += size;
        }
    }
    let s = seq2(&b) + 100;
    set_seq(&mut b, s, s);
    b
}

fn listing_of(bytes: Vec<u8>) -> Result<Vec<String>, String> {
    let h = Hive::open(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    h.walk("", |path, k| {
        out.push(format!("K\t{path}"));
        for v in k.values()? {
            out.push(format!("V\t{path}\t{}\t{:?}", v.name()?, v.raw()?));
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The hive bins data of a hive file, with the first bin's timestamp
/// (which our commit sets to now) blanked.
fn bins(file: &[u8]) -> Vec<u8> {
    let mut d = file[4096..].to_vec();
    d[20..28].fill(0);
    d
}

const SVC: &str = "\\ControlSet001\\Services\\viostor";

/// hivexregedit's export of the subtree the edits touch (the whole 11 MiB
/// hive takes seconds through its Perl layer; the subtree needs hivex to
/// walk from the root all the same).
fn hivex_subtree(file: &std::path::Path, key: &str) -> Vec<String> {
    require("hivexregedit");
    let o = std::process::Command::new("hivexregedit")
        .arg("--export")
        .arg(file)
        .arg(key)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hivexregedit {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    reg_listing(&String::from_utf8_lossy(&o.stdout))
}

/// Replay, write, and check the written file: our checker finds nothing,
/// its hive bins data are byte for byte those of making the same edits
/// directly (`want`), and (with `hivex`) hivex reads the edited subtree the
/// same from both files (the subtree `hivex` names). Returns the report.
fn replay_equals(
    dir: &std::path::Path,
    primary: &[u8],
    logs: &[LogFile],
    want: &[u8],
    what: &str,
    hivex: Option<&str>,
) -> regf::ReplayReport {
    let (mut h, rep) = Hive::open_with_logs(primary.to_vec(), logs, ReplayPolicy::Strict).unwrap();
    let out = dir.join(format!("{what}.replayed"));
    h.write_to(&out).unwrap();
    let got = std::fs::read(&out).unwrap();
    let problems = regf::check_bytes(&got);
    assert!(problems.is_empty(), "{what}: {problems:?}");
    assert!(
        bins(&got) == bins(want),
        "{what}: hive bins differ from the direct edits"
    );
    if let Some(key) = hivex {
        let direct = dir.join(format!("{what}.direct"));
        std::fs::write(&direct, want).unwrap();
        let theirs = hivex_subtree(&out, key);
        assert!(theirs.len() > 3, "{theirs:?}");
        assert_same(&theirs, &hivex_subtree(&direct, key), what);
    }
    rep
}

/// The viostor Start value as our reader sees it, if the hive opens.
fn start_of(file: &[u8]) -> Option<u32> {
    let mut b = file.to_vec();
    let s = seq2(&b);
    set_seq(&mut b, s, s);
    let h = Hive::open(b).ok()?;
    match h.key(&SVC[1..]).ok()?.value("Start").ok()??.data().ok()? {
        Value::Dword(n) => Some(n),
        _ => None,
    }
}

#[test]
fn partial_reconcile_states() {
    let d = tempfile::tempdir().unwrap();
    let s = states();
    // Edits 5 and 6 fit in place: the primary file, as the partial
    // reconcile left it (state 4), is already as large as state 6.
    assert!(s[4].len() > s[2].len() && s[2].len() > s[0].len());
    assert_eq!(s[6].len(), s[4].len());
    let q = seq2(&s[0]);
    let e = entries(s, q);
    // Windows 8.1+ after two rotations with a partial reconcile: the
    // primary holds state 4 under the base block of state 0 (expects q);
    // entries q..q+1 are gone (reconciled, then overwritten); one log holds
    // q+2..q+3, the other q+4..q+5 written over its old cycle (q, q+1).
    let primary = partial_primary(&s[0], &s[4]);
    let old = log_cycle(&s[0], q, &[&e[1], &e[2]], &[]);
    let earlier = log_cycle(&s[0], q + 2, &[&e[3], &e[4]], &[]);
    let later = log_cycle(&s[0], q + 4, &[&e[5], &e[6]], &old);
    // Windows' own ordering of the leftovers: the old cycle's bytes after
    // the new entries do not start an entry, so every reader stops there.
    let end = 512 + e[5].len() + e[6].len();
    assert_ne!(&later[end..end + 4], b"HvLE");
    let want_rule = ReplayRule::PartialReconcile {
        expected: q,
        first: q + 2,
        last: q + 5,
    };

    // (a) LOG1 holds the later chain, LOG2 the earlier one.
    let logs = [
        log("SYSTEM.LOG1", later.clone()),
        log("SYSTEM.LOG2", earlier.clone()),
    ];
    let rep = replay_equals(d.path(), &primary, &logs, &s[6], "later-in-LOG1", Some(SVC));
    assert_eq!(rep.rule, want_rule);
    // As `hive replay --json` prints it.
    assert_eq!(
        serde_json::to_value(&rep.rule).unwrap(),
        serde_json::json!({"rule": "partial-reconcile", "expected": q, "first": q + 2, "last": q + 5})
    );
    assert_eq!(
        rep.applied
            .iter()
            .map(|a| (a.0.as_str(), a.1))
            .collect::<Vec<_>>(),
        [
            ("SYSTEM.LOG2", q + 2),
            ("SYSTEM.LOG2", q + 3),
            ("SYSTEM.LOG1", q + 4),
            ("SYSTEM.LOG1", q + 5)
        ]
    );
    assert!(
        rep.notes.iter().any(|n| n.contains("partial reconcile")),
        "{:?}",
        rep.notes
    );
    // The naive reading (LOG1's first entry first) brings back state 4 in
    // the pages entries q+2..q+3 touched: a different, wrong hive (Start is
    // 3 again, among others).
    let bad = naive(&primary, &[&later, &earlier]);
    assert_eq!(start_of(&s[6]), Some(0));
    assert_eq!(start_of(&bad), Some(3));
    assert_ne!(listing_of(bad), listing_of(s[6].clone()));
    // regipy applies its secondary log first, then its primary log, every
    // HvLE entry in file order without looking at sequence numbers. Given
    // LOG2 as the secondary it happens to follow the sequence order here:
    // the same hive bins data as ours.
    let (pp, l1, l2, rr) = (
        d.path().join("A"),
        d.path().join("A.LOG1"),
        d.path().join("A.LOG2"),
        d.path().join("A.regipy"),
    );
    std::fs::write(&pp, &primary).unwrap();
    std::fs::write(&l1, &later).unwrap();
    std::fs::write(&l2, &earlier).unwrap();
    regipy_recover(&pp, &[&l1, &l2], &rr);
    let ours = std::fs::read(d.path().join("later-in-LOG1.replayed")).unwrap();
    assert!(
        bins(&std::fs::read(&rr).unwrap()) == bins(&ours),
        "regipy, LOG2 then LOG1"
    );

    // (b) The reverse: LOG1 holds the earlier chain, LOG2 the later one.
    let logs = [
        log("SYSTEM.LOG1", earlier.clone()),
        log("SYSTEM.LOG2", later.clone()),
    ];
    let rep = replay_equals(d.path(), &primary, &logs, &s[6], "later-in-LOG2", Some(SVC));
    assert_eq!(rep.rule, want_rule);
    assert_eq!(
        rep.applied.first().map(|a| a.0.as_str()),
        Some("SYSTEM.LOG1")
    );
    // Here the naive LOG1-first order is the sequence order (so it agrees):
    // only ordering by sequence number is right in both cases.
    assert!(bins(&naive(&primary, &[&earlier, &later])) == bins(&s[6]));
    // regipy, given the files in their names' order (LOG1 primary, LOG2
    // secondary), applies LOG2 (the later chain) first and then LOG1 over
    // it: state 4 comes back in the pages entries q+2..q+3 touched (Start is
    // 3 again), unlike ours and the direct edits. That is regipy's
    // ordering, not a disagreement on the entries: swapping its arguments
    // gives our bytes.
    std::fs::write(&l1, &earlier).unwrap();
    std::fs::write(&l2, &later).unwrap();
    regipy_recover(&pp, &[&l1, &l2], &rr);
    assert_eq!(start_of(&std::fs::read(&rr).unwrap()), Some(3));
    regipy_recover(&pp, &[&l2, &l1], &rr);
    let ours = std::fs::read(d.path().join("later-in-LOG2.replayed")).unwrap();
    assert!(
        bins(&std::fs::read(&rr).unwrap()) == bins(&ours),
        "regipy, LOG1 then LOG2"
    );

    // A torn final write (the newest entry's data fails hash-1): dropped,
    // as Windows does; the rest of the chain applies (state 5).
    let mut torn = e[6].clone();
    let n = torn.len();
    torn[n - 100] ^= 0xFF;
    let logs = [
        log(
            "SYSTEM.LOG1",
            log_cycle(&s[0], q + 4, &[&e[5], &torn], &old),
        ),
        log("SYSTEM.LOG2", earlier.clone()),
    ];
    let rep = replay_equals(d.path(), &primary, &logs, &s[5], "torn", None);
    assert_eq!(
        rep.rule,
        ReplayRule::PartialReconcile {
            expected: q,
            first: q + 2,
            last: q + 4
        }
    );
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("torn") && n.contains("hash-1")),
        "{:?}",
        rep.notes
    );
}

/// Refused states: each error names its state and what --ignore-logs
/// loses; ReadOnlyBestEffort reads the primary as it is with a warning.
#[test]
fn unsafe_states_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = states();
    let q = seq2(&s[0]);
    let e = entries(s, q);
    let partial = partial_primary(&s[0], &s[4]);
    let refused = |primary: &[u8], logs: &[LogFile]| -> (regf::Error, Refusal) {
        let err = Hive::open_with_logs(primary.to_vec(), logs, ReplayPolicy::Strict).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--ignore-logs"), "{msg}");
        let (h, rep) =
            Hive::open_with_logs(primary.to_vec(), logs, ReplayPolicy::ReadOnlyBestEffort).unwrap();
        let ReplayRule::ReadAsIs {
            seq1,
            seq2,
            refusal,
        } = rep.rule.clone()
        else {
            panic!("{:?}", rep.rule)
        };
        assert_eq!((seq1, seq2), (q + 1, q));
        assert!(rep.applied.is_empty());
        let w = rep.warning().unwrap();
        assert!(w.contains(&format!("{} != {}", q + 1, q)), "{w}");
        // Read as it is: the primary's own base block and data (a partial
        // reconcile's primary read as it is may be inconsistent: that is
        // why it is for reading only), and not writable.
        let (mut raw, _) =
            Hive::open_with_logs(primary.to_vec(), &[], ReplayPolicy::IgnoreLogs).unwrap();
        assert_eq!(h.base_block(), raw.base_block());
        let blank = |mut b: Vec<u8>| {
            b[4096 + 20..4096 + 28].fill(0); // our commit's timestamp
            b.split_off(4096)
        };
        assert_eq!(blank(h.clone().commit()), blank(raw.commit()));
        assert!(h.read_only_reason().is_some());
        let mut h = h;
        let we = h.write_to(d.path().join("nope")).unwrap_err();
        assert_eq!(we.kind, regf::ErrorKind::Dirty, "{we}");
        assert!(!d.path().join("nope").exists());
        (err, refusal)
    };

    // A hole in the middle of a partial-reconcile chain (q+3 missing).
    let logs = [
        log("SYSTEM.LOG1", log_cycle(&s[0], q + 4, &[&e[5], &e[6]], &[])),
        log("SYSTEM.LOG2", log_cycle(&s[0], q + 2, &[&e[3]], &[])),
    ];
    let (err, r) = refused(&partial, &logs);
    assert_eq!(
        r,
        Refusal::Gap {
            expected: q,
            first: q + 2,
            reached: q + 2,
            next: q + 4,
            newest: q + 5,
            cause: None
        }
    );
    assert!(err.to_string().contains("hole"), "{err}");
    // A hole in a normal chain (primary at state 0, q+2 missing).
    let mut p0 = s[0].clone();
    set_seq(&mut p0, q + 1, q);
    let logs = [
        log("SYSTEM.LOG1", log_cycle(&s[0], q, &[&e[1], &e[2]], &[])),
        log("SYSTEM.LOG2", log_cycle(&s[0], q + 3, &[&e[4], &e[5]], &[])),
    ];
    let (_, r) = refused(&p0, &logs);
    assert!(
        matches!(r, Refusal::Gap { reached, next, .. } if reached == q + 1 && next == q + 3),
        "{r:?}"
    );
    // A corrupted entry (hash-1) in the middle of the older log: the hole
    // it leaves is refused, with the entry as its cause.
    let mut bad = e[2].clone();
    bad[600] ^= 1;
    let logs = [
        log("SYSTEM.LOG1", log_cycle(&s[0], q, &[&e[1], &bad], &[])),
        log("SYSTEM.LOG2", log_cycle(&s[0], q + 2, &[&e[3], &e[4]], &[])),
    ];
    let (err, r) = refused(&p0, &logs);
    assert!(
        matches!(&r, Refusal::Gap { cause: Some(c), .. } if c.contains("hash-1") && c.contains("SYSTEM.LOG1")),
        "{r:?}"
    );
    assert!(err.to_string().contains("hash-1"), "{err}");
    // A corrupted entry followed by newer entries in the same log: damage,
    // not a torn write.
    let logs = [log(
        "SYSTEM.LOG1",
        log_cycle(&s[0], q, &[&e[1], &bad, &e[3]], &[]),
    )];
    let (_, r) = refused(&p0, &logs);
    assert!(
        matches!(&r, Refusal::CorruptEntry { log, newer, reason, .. } if log == "SYSTEM.LOG1" && *newer == q + 2 && reason.contains("hash-1")),
        "{r:?}"
    );
    // Logs older than the primary: the base block expects q+4, the logs
    // end at q+2.
    let mut p4 = s[4].clone();
    set_seq(&mut p4, q + 5, q + 4);
    let logs = [log(
        "SYSTEM.LOG1",
        log_cycle(&s[0], q, &[&e[1], &e[2], &e[3]], &[]),
    )];
    let err = Hive::open_with_logs(p4.clone(), &logs, ReplayPolicy::Strict).unwrap_err();
    assert!(err.to_string().contains("older than the primary"), "{err}");
    let (_, rep) = Hive::open_with_logs(p4, &logs, ReplayPolicy::ReadOnlyBestEffort).unwrap();
    assert!(
        matches!(
            rep.rule,
            ReplayRule::ReadAsIs {
                refusal: Refusal::LogsOlderThanPrimary { expected, newest: Some(n) },
                ..
            } if expected == q + 4 && n == q + 2
        ),
        "{:?}",
        rep.rule
    );
    // What looks like a partial reconcile over a primary that is really
    // older than the chain (the log with q..q+2 lost): entry q+3 alone over
    // state 0 needs hive bins the primary lacks: refused.
    let logs = [log("SYSTEM.LOG1", log_cycle(&s[0], q + 3, &[&e[4]], &[]))];
    let (_, r) = refused(&p0, &logs);
    assert!(
        matches!(&r, Refusal::BadEntry { seq, reason, .. } if *seq == q + 3 && reason.contains("grows")),
        "{r:?}"
    );
    // The same without growth: an entry holding state 6's pages that lie
    // within state 0's size (the Services subkey list among them, pointing
    // at the viostor key in a bin state 0 lacks). The chain applies, but the
    // result fails the checker: refused, not returned.
    let cut = hvle_entry(&s[0], &s[6][..s[0].len()], q + 2);
    let logs = [log("SYSTEM.LOG1", log_cycle(&s[0], q + 2, &[&cut], &[]))];
    let (err, r) = refused(&p0, &logs);
    assert!(
        matches!(&r, Refusal::InconsistentResult { expected, first, .. } if *expected == q && *first == q + 2),
        "{r:?}"
    );
    assert!(err.to_string().contains("fails the checker"), "{err}");
    // No logs at all.
    let (err, r) = refused(&p0, &[]);
    assert_eq!(r, Refusal::NoLogs);
    assert_eq!(err.kind, regf::ErrorKind::Dirty);
}

/// The normal states: Windows 8.1+ entries chained across both logs from
/// the expected sequence number; Windows 7 dual legacy logs and XP's
/// single .LOG.
#[test]
fn continuous_chain_and_legacy_logs() {
    let d = tempfile::tempdir().unwrap();
    let s = states();
    let q = seq2(&s[0]);
    let e = entries(s, q);
    let mut p0 = s[0].clone();
    set_seq(&mut p0, q + 1, q);
    // LOG2 holds the first half (older cycle), LOG1 the rest plus stale
    // entries of a previous lineage below q.
    let stale = hvle_entry(&s[0], &s[0], q - 3);
    let logs = [
        log(
            "SYSTEM.LOG1",
            log_cycle(&s[0], q + 3, &[&e[4], &e[5], &e[6]], &[]),
        ),
        log(
            "SYSTEM.LOG2",
            log_cycle(
                &s[0],
                q,
                &[&e[1], &e[2], &e[3]],
                &log_cycle(&s[0], q - 3, &[&stale], &[]),
            ),
        ),
    ];
    let rep = replay_equals(d.path(), &p0, &logs, &s[6], "continuous", Some(SVC));
    assert_eq!(
        rep.rule,
        ReplayRule::Continuous {
            first: q,
            last: q + 5
        }
    );
    // Legacy (DIRT) logs: an in-place edit (the hive keeps its size).
    let mut h = Hive::open(s[0].clone()).unwrap();
    for (v, n) in [("Current", 2), ("Default", 2), ("LastKnownGood", 3)] {
        h.set_value("Select", v, &Value::Dword(n)).unwrap();
    }
    let l1 = h.commit();
    assert_eq!(l1.len(), s[0].len());
    let mut pl = s[0].clone();
    set_seq(&mut pl, q + 1, q);
    let good = legacy_log(&pl, &l1);
    let mut stale = good.clone();
    stale[12] ^= 1; // another timestamp: written for another primary state
    let c = regf::checksum(&stale);
    stale[508..512].copy_from_slice(&c.to_le_bytes());
    // XP: a single .LOG.
    let rep = replay_equals(
        d.path(),
        &pl,
        &[log("SYSTEM.LOG", good.clone())],
        &l1,
        "xp",
        Some("\\Select"),
    );
    assert_eq!(
        rep.rule,
        ReplayRule::Legacy {
            log: "SYSTEM.LOG".into()
        }
    );
    // Vista/7 dual logs: whichever matches the primary's timestamp.
    for (a, b, used) in [
        (&good, &stale, "SYSTEM.LOG1"),
        (&stale, &good, "SYSTEM.LOG2"),
    ] {
        let logs = [log("SYSTEM.LOG1", a.clone()), log("SYSTEM.LOG2", b.clone())];
        let rep = replay_equals(d.path(), &pl, &logs, &l1, used, None);
        assert_eq!(rep.rule, ReplayRule::Legacy { log: used.into() });
    }
    let logs = [log("SYSTEM.LOG1", stale.clone()), log("SYSTEM.LOG2", stale)];
    let err = Hive::open_with_logs(pl, &logs, ReplayPolicy::Strict).unwrap_err();
    assert!(
        err.to_string().contains("no legacy log is applicable"),
        "{err}"
    );
}

/// The real dirty NTUSER.DAT replays exactly as before this rule was
/// added: same bytes (timestamps of our commit blanked).
#[test]
fn dirty_ntuser_replays_as_before() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "dirty-NTUSER.DAT");
    unxz(d.path(), "dirty-NTUSER.DAT.LOG1");
    unxz(d.path(), "dirty-NTUSER.DAT.LOG2");
    let (mut h, rep) = regf::open_file_with_logs(&p, ReplayPolicy::Strict).unwrap();
    let mut b = h.commit();
    b[12..20].fill(0);
    b[508..512].fill(0);
    b[4096 + 20..4096 + 28].fill(0);
    // Pinned from the replay before partial reconcile existed (commit
    // ed51db2), whose result regipy's recovery confirms (tests/logs.rs).
    assert_eq!(
        testkit::sha256_hex(&b),
        "5e793a7e066c9fbb197bfa795235eca9d8bfc4ea94eb1bf884970476b209cb26"
    );
    assert_eq!(rep.applied.len(), 23);
    assert_eq!(
        rep.rule,
        ReplayRule::Continuous {
            first: 566,
            last: 588
        }
    );
}

/// Damaged logs (random bytes flipped, hashes sometimes fixed so the chain
/// rules are reached) over a small partial-reconcile state: every policy
/// returns a hive or an error, never panics, and a returned hive can be
/// walked, checked and committed.
#[test]
fn damaged_logs_never_panic() {
    let mut t = vec![{
        let mut h = Hive::new_empty("ROOT").unwrap();
        h.create_key("A").unwrap();
        h.commit()
    }];
    for k in 1..5u32 {
        let mut h = Hive::open(t.last().unwrap().clone()).unwrap();
        for i in 0..30 * k {
            h.create_key(&format!("A\\K{k}_{i}")).unwrap();
        }
        h.set_value("A", "v", &Value::Dword(k)).unwrap();
        t.push(h.commit());
    }
    let q = seq2(&t[0]);
    let e = entries(&t, q);
    let primary = partial_primary(&t[0], &t[2]);
    let base = [
        log_cycle(&t[0], q + 3, &[&e[4]], &[]),
        log_cycle(&t[0], q + 1, &[&e[2], &e[3]], &[]),
    ];
    let undamaged = [
        log("T.LOG1", base[0].clone()),
        log("T.LOG2", base[1].clone()),
    ];
    let (h, rep) = Hive::open_with_logs(primary.clone(), &undamaged, ReplayPolicy::Strict).unwrap();
    assert!(matches!(rep.rule, ReplayRule::PartialReconcile { .. }));
    assert_eq!(listing(&h), listing(&Hive::open(t[4].clone()).unwrap()));
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..300 {
        let mut logs = base.clone();
        for _ in 0..1 + next() % 4 {
            let l = &mut logs[(next() % 2) as usize];
            let i = 512 + (next() as usize) % (l.len() - 512);
            l[i] ^= 1 << (next() % 8);
        }
        if next() % 2 == 0 {
            for l in &mut logs {
                fix_entry_hashes(l);
            }
        }
        let logs = [
            log("T.LOG1", logs[0].clone()),
            log("T.LOG2", logs[1].clone()),
        ];
        for policy in [ReplayPolicy::Strict, ReplayPolicy::ReadOnlyBestEffort] {
            let key = match Hive::open_with_logs(primary.clone(), &logs, policy) {
                Ok((mut h, rep)) => {
                    let _ = h.check();
                    let _ = h.walk("", |_, k| {
                        for v in k.values()? {
                            let _ = v.data();
                        }
                        Ok(())
                    });
                    let _ = h.commit();
                    let rule = format!("{:?}", rep.rule);
                    rule[..rule.find([' ', '{']).unwrap_or(rule.len())].to_string()
                }
                Err(err) => format!("{:?}", err.kind),
            };
            *outcomes.entry(key).or_default() += 1;
        }
    }
    // Accepted and refused states were both reached.
    println!("{outcomes:?}");
    assert!(outcomes.len() >= 3, "{outcomes:?}");
}

/// Recompute both Marvin32 hashes of each `HvLE` entry of a log.
fn fix_entry_hashes(l: &mut [u8]) {
    let mut off = 512;
    while off + 40 <= l.len() && &l[off..off + 4] == b"HvLE" {
        let size = u32::from_le_bytes(l[off + 4..off + 8].try_into().unwrap()) as usize;
        if size < 40 || off + size > l.len() {
            break;
        }
        let h1 = regf::marvin32(&l[off + 40..off + size], regf::LOG_SEED);
        l[off + 24..off + 32].copy_from_slice(&h1.to_le_bytes());
        let h2 = regf::marvin32(&l[off..off + 32], regf::LOG_SEED);
        l[off + 32..off + 40].copy_from_slice(&h2.to_le_bytes());
        off += size;
    }
}
