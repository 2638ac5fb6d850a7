//! Dirty hives: a primary file whose last change lives only in its
//! transaction log (the incremental `HvLE` format of Windows 8.1+, which
//! regf, regipy and Windows replay), as after a crash or a hard power-off.

use crate::{Error, Result};

const BASE: usize = 4096;
const PAGE: usize = 4096;

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// From `old` and `new` (two committed hive files, `new` = `old` plus the
/// changes to log), make the dirty primary and its `.LOG1`: the primary is
/// `old` with its sequence numbers unequal; the log holds one entry with
/// every 4 KiB page of the hive bins that differs.
pub fn make_dirty(old: &[u8], new: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    if old.len() < BASE + PAGE || new.len() < BASE + PAGE || &old[..4] != b"regf" {
        return Err(Error::Layout("make_dirty: not two committed hives".into()));
    }
    let seq = le32(old, 4);
    let mut primary = old.to_vec();
    put32(&mut primary, 4, seq.wrapping_add(1));
    put32(&mut primary, 8, seq);
    let c = regf::checksum(&primary);
    put32(&mut primary, 508, c);

    // the log's base block: the new state's, file type 6 (log)
    let mut log = vec![0u8; 512];
    log.copy_from_slice(&new[..512]);
    put32(&mut log, 4, seq.wrapping_add(1));
    put32(&mut log, 8, seq.wrapping_add(1));
    put32(&mut log, 28, 6);
    let c = regf::checksum(&log);
    put32(&mut log, 508, c);

    let old_bins = &old[BASE..];
    let new_bins = &new[BASE..];
    let mut pages: Vec<(u32, &[u8])> = vec![];
    for (i, p) in new_bins.chunks(PAGE).enumerate() {
        let o = i * PAGE;
        if old_bins.get(o..o + p.len()) != Some(p) {
            pages.push((o as u32, p));
        }
    }
    let hdr = 40 + 8 * pages.len();
    let size = (hdr + pages.len() * PAGE).div_ceil(512) * 512;
    let mut e = vec![0u8; size];
    e[0..4].copy_from_slice(b"HvLE");
    put32(&mut e, 4, size as u32);
    put32(&mut e, 8, 0);
    put32(&mut e, 12, seq);
    put32(&mut e, 16, new_bins.len() as u32);
    put32(&mut e, 20, pages.len() as u32);
    let mut d = hdr;
    for (k, (o, p)) in pages.iter().enumerate() {
        put32(&mut e, 40 + 8 * k, *o);
        put32(&mut e, 44 + 8 * k, p.len() as u32);
        e[d..d + p.len()].copy_from_slice(p);
        d += p.len();
    }
    let h1 = regf::marvin32(&e[40..], regf::LOG_SEED);
    e[24..32].copy_from_slice(&h1.to_le_bytes());
    let h2 = regf::marvin32(&e[..32], regf::LOG_SEED);
    e[32..40].copy_from_slice(&h2.to_le_bytes());
    log.extend_from_slice(&e);
    Ok((primary, log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regf::{Hive, LogFile, ReplayPolicy, Value};

    #[test]
    fn replay_of_the_log_gives_the_new_state() {
        let mut h = Hive::new_empty("ROOT").unwrap();
        h.create_key("A").unwrap();
        h.set_value("A", "v", &Value::String("old".into())).unwrap();
        let old = h.commit();
        h.set_value("A", "v", &Value::String("new and longer".into()))
            .unwrap();
        for i in 0..200 {
            h.create_key(&format!("B\\k{i}")).unwrap();
        }
        let new = h.commit();
        let (primary, log) = make_dirty(&old, &new).unwrap();
        assert!(
            Hive::open(primary.clone()).is_err(),
            "primary must be dirty"
        );
        let logs = [LogFile {
            name: "SYSTEM.LOG1".into(),
            bytes: log,
        }];
        let (r, rep) = Hive::open_with_logs(primary, &logs, ReplayPolicy::Strict).unwrap();
        assert!(rep.was_dirty && !rep.applied.is_empty());
        let v = r
            .key("A")
            .unwrap()
            .value("v")
            .unwrap()
            .unwrap()
            .data()
            .unwrap();
        assert_eq!(v, Value::String("new and longer".into()));
        assert!(r.key("B\\k199").is_ok());
        assert!(r.check().is_empty());
    }
}
