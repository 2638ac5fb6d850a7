//! Transaction-log replay: the real dirty NTUSER.DAT against regipy's
//! recovery; synthetic legacy (DIRT) and HvLE logs for ordering, gaps,
//! hashes and refusals.
mod support;

use regf::{Hive, ReplayPolicy, Value};
use support::*;

#[test]
fn dirty_ntuser_replay_equals_regipy_recovery() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "dirty-NTUSER.DAT");
    let l1 = unxz(d.path(), "dirty-NTUSER.DAT.LOG1");
    let l2 = unxz(d.path(), "dirty-NTUSER.DAT.LOG2");
    // Plain open refuses the dirty hive.
    assert_eq!(
        Hive::from_file(&p).unwrap_err().kind,
        regf::ErrorKind::Dirty
    );
    let (mut h, rep) = regf::open_file_with_logs(&p, ReplayPolicy::Strict).unwrap();
    assert!(rep.was_dirty);
    assert!(!rep.applied.is_empty());
    // Entries are applied in sequence order starting at the primary's
    // secondary sequence number.
    let seqs: Vec<u32> = rep.applied.iter().map(|a| a.1).collect();
    let first = regf::BaseBlock::parse(&std::fs::read(&p).unwrap(), 0)
        .unwrap()
        .seq2;
    assert_eq!(seqs[0], first);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_clean(&h, "replayed NTUSER");
    let ours = d.path().join("ours.dat");
    h.write_to(&ours).unwrap();
    assert!(regf::check_bytes(&std::fs::read(&ours).unwrap()).is_empty());
    // The written sequence number is above every log entry.
    let b = regf::BaseBlock::parse(&std::fs::read(&ours).unwrap(), 0).unwrap();
    assert_eq!(b.seq1, b.seq2);
    assert!(b.seq1 > rep.max_seq.max(*seqs.last().unwrap()));
    // LOG2 holds only a stale entry (below the primary's sequence number):
    // it must be skipped. regipy applies every HvLE block it finds without
    // looking at sequence numbers, so given LOG2 it writes stale pages over
    // the primary and produces a hive hivex refuses; its recovery from the
    // log that holds the subsequent entries (LOG1) is the oracle.
    assert!(
        rep.notes.iter().any(|n| n.contains("already-applied")),
        "{:?}",
        rep.notes
    );
    assert!(rep.applied.iter().all(|a| a.0.ends_with("LOG1")));
    let theirs = d.path().join("theirs.dat");
    regipy_recover(&p, &[&l1], &theirs);
    assert_same(
        &hivex_listing(&ours),
        &hivex_listing(&theirs),
        "replayed NTUSER vs regipy recovery",
    );
    // And the replay changed something: the primary alone differs.
    let (raw, _) = regf::open_file_with_logs(&p, ReplayPolicy::IgnoreLogs).unwrap();
    assert_ne!(listing(&raw), listing(&Hive::from_file(&ours).unwrap()));
    // Logs to reset after writing: found case-insensitively next to the hive.
    std::fs::rename(&l2, d.path().join("dirty-NTUSER.DAT.log2")).unwrap();
    let found = regf::log_files(&p).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
}

/// Two versions of a small hive with the same bins size.
fn two_versions() -> (Vec<u8>, Vec<u8>) {
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.create_key("Software\\A").unwrap();
    h.set_value("Software\\A", "x", &Value::Dword(1)).unwrap();
    let a = h.commit();
    let mut h = Hive::open(a.clone()).unwrap();
    h.set_value("Software\\A", "x", &Value::Dword(2)).unwrap();
    h.create_key("Software\\B").unwrap();
    h.set_value("Software\\B", "s", &Value::String("logged".into()))
        .unwrap();
    let b = h.commit();
    (a, b)
}

#[test]
fn legacy_dirt_log_replay_equals_regipy() {
    let (a, b) = two_versions();
    assert_eq!(a.len(), b.len());
    let mut primary = a.clone();
    let s = u32::from_le_bytes(a[8..12].try_into().unwrap());
    set_seq(&mut primary, s + 1, s);
    let logb = legacy_log(&primary, &b);
    let (h, rep) = Hive::open_with_logs(
        primary.clone(),
        &[log("X.LOG", logb.clone())],
        ReplayPolicy::Strict,
    )
    .unwrap();
    assert_eq!(rep.applied.len(), 1);
    assert_eq!(listing(&h), listing(&Hive::open(b.clone()).unwrap()));
    assert_clean(&h, "legacy replay");
    // regipy agrees.
    let d = tempfile::tempdir().unwrap();
    let (pp, lp, out) = (
        d.path().join("P"),
        d.path().join("P.LOG"),
        d.path().join("R"),
    );
    std::fs::write(&pp, &primary).unwrap();
    std::fs::write(&lp, &logb).unwrap();
    regipy_recover(&pp, &[&lp], &out);
    assert_same(
        &listing(&h),
        &hivex_listing(&out),
        "legacy replay vs regipy",
    );
    // A log whose timestamp does not match is not applicable: refused.
    let mut other = logb.clone();
    other[12] ^= 1;
    let c = regf::checksum(&other);
    other[508..512].copy_from_slice(&c.to_le_bytes());
    let e =
        Hive::open_with_logs(primary, &[log("X.LOG", other)], ReplayPolicy::Strict).unwrap_err();
    assert_eq!(e.kind, regf::ErrorKind::Log, "{e}");
}

#[test]
fn hvle_chain_across_logs_gaps_and_bad_hashes() {
    // Three states; the hive grows between them.
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.create_key("A").unwrap();
    let s0 = h.commit();
    let mut h1 = Hive::open(s0.clone()).unwrap();
    h1.set_value("A", "v", &Value::Dword(1)).unwrap();
    let s1 = h1.commit();
    let mut h2 = Hive::open(s1.clone()).unwrap();
    for i in 0..200 {
        h2.create_key(&format!("A\\K{i}")).unwrap();
    }
    h2.set_value("A", "big", &Value::Binary(vec![5; 30000]))
        .unwrap();
    let s2 = h2.commit();
    assert!(s2.len() > s1.len());
    let mut primary = s0.clone();
    let q = u32::from_le_bytes(s0[8..12].try_into().unwrap());
    set_seq(&mut primary, q + 1, q);
    let e1 = hvle_entry(&s0, &s1, q);
    let e2 = hvle_entry(&s1, &s2, q + 1);
    let stale = hvle_entry(&s0, &s0, q - 1);
    let want = listing(&Hive::open(s2.clone()).unwrap());
    // Entry q in LOG2 and q+1 in LOG1: chained by sequence number.
    let logs = [
        log("H.LOG1", new_log(&primary, &[stale.clone(), e2.clone()])),
        log("H.LOG2", new_log(&primary, std::slice::from_ref(&e1))),
    ];
    let (h, rep) = Hive::open_with_logs(primary.clone(), &logs, ReplayPolicy::Strict).unwrap();
    assert_eq!(
        rep.applied.iter().map(|a| a.1).collect::<Vec<_>>(),
        vec![q, q + 1]
    );
    assert_eq!(listing(&h), want);
    assert_clean(&h, "hvle replay");
    // Only q+1 present (q missing from every log): by sequence numbers
    // alone this is a partial reconcile (Windows 8.1+ wrote entry q into the
    // primary without updating its base block), so the chain from q+1 is
    // applied and the rule says so (tests/partial_reconcile.rs covers the
    // states in detail); IgnoreLogs takes the primary as it is.
    let gap = [log("H.LOG1", new_log(&primary, std::slice::from_ref(&e2)))];
    let (_, rep) = Hive::open_with_logs(primary.clone(), &gap, ReplayPolicy::Strict).unwrap();
    assert_eq!(
        rep.rule,
        regf::ReplayRule::PartialReconcile {
            expected: q,
            first: q + 1,
            last: q + 1
        }
    );
    let (h, _) = Hive::open_with_logs(primary.clone(), &gap, ReplayPolicy::IgnoreLogs).unwrap();
    assert_eq!(listing(&h), listing(&Hive::open(s0.clone()).unwrap()));
    // A corrupted entry stops the parse of its log: only e1 applies.
    let mut bad = e2.clone();
    let n = bad.len();
    bad[n - 1] ^= 0xFF;
    let logs = [log("H.LOG1", new_log(&primary, &[e1.clone(), bad]))];
    let (h, rep) = Hive::open_with_logs(primary.clone(), &logs, ReplayPolicy::Strict).unwrap();
    assert_eq!(rep.applied.len(), 1);
    assert!(
        rep.notes.iter().any(|n| n.contains("hash-1")),
        "{:?}",
        rep.notes
    );
    assert_eq!(listing(&h), listing(&Hive::open(s1.clone()).unwrap()));
    // Two different entries with the same sequence number: refused.
    let mut other = e1.clone();
    other[16..20].copy_from_slice(&((s0.len() - 4096 + 4096) as u32).to_le_bytes());
    let other = {
        let mut o = other;
        let h1 = regf::marvin32(&o[40..], regf::LOG_SEED);
        o[24..32].copy_from_slice(&h1.to_le_bytes());
        let h2 = regf::marvin32(&o[..32], regf::LOG_SEED);
        o[32..40].copy_from_slice(&h2.to_le_bytes());
        o
    };
    let logs = [
        log("H.LOG1", new_log(&primary, std::slice::from_ref(&e1))),
        log("H.LOG2", new_log(&primary, &[other])),
    ];
    assert!(Hive::open_with_logs(primary.clone(), &logs, ReplayPolicy::Strict).is_err());
    // A clean hive with newer log entries: refused in strict mode.
    let logs = [log("H.LOG1", new_log(&s0, &[hvle_entry(&s0, &s1, q)]))];
    let e = Hive::open_with_logs(s0.clone(), &logs, ReplayPolicy::Strict).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
    // A clean hive with only stale entries opens; commit goes above them.
    let logs = [log("H.LOG1", new_log(&s0, &[hvle_entry(&s0, &s0, q - 1)]))];
    let (mut h, _) = Hive::open_with_logs(s0.clone(), &logs, ReplayPolicy::Strict).unwrap();
    let out = h.commit();
    assert!(u32::from_le_bytes(out[4..8].try_into().unwrap()) > q);
}
