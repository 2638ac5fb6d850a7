#![no_main]
//! Replay fuzzed transaction-log bytes over a fixed, valid, dirty primary.
//! The first input byte picks: how the log is framed (bits 0-1: raw, or
//! behind a valid new-format or legacy log header so entry parsing is
//! reached), whether the rest is split into two logs (bit 2, `.LOG1` and
//! `.LOG2`, for the chain across logs: continuous, partial reconcile,
//! gaps), whether the harness fixes the Marvin32 hashes of the `HvLE`
//! entries it finds (bit 3, so the chain rules are reached, not only the
//! hash checks), and the policy (bit 4: Strict or ReadOnlyBestEffort).
use libfuzzer_sys::fuzz_target;
use regf::{Hive, LogFile, ReplayPolicy, Value};

fn primary() -> Vec<u8> {
    static CACHE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    CACHE.get_or_init(build).clone()
}

fn build() -> Vec<u8> {
    let mut h = Hive::new_empty("ROOT").unwrap();
    h.create_key("A\\B").unwrap();
    h.set_value("A", "v", &Value::Dword(1)).unwrap();
    let mut b = h.commit();
    let s = u32::from_le_bytes(b[8..12].try_into().unwrap());
    b[4..8].copy_from_slice(&(s + 1).to_le_bytes());
    let c = regf::checksum(&b);
    b[508..512].copy_from_slice(&c.to_le_bytes());
    b
}

fn frame(p: &[u8], mode: u8, body: &[u8]) -> Vec<u8> {
    match mode % 3 {
        0 => body.to_vec(),
        m => {
            let mut head = p[..512].to_vec();
            let t: u32 = if m == 1 { 6 } else { 1 };
            head[28..32].copy_from_slice(&t.to_le_bytes());
            let s = u32::from_le_bytes(p[8..12].try_into().unwrap());
            head[4..8].copy_from_slice(&s.to_le_bytes());
            let c = regf::checksum(&head);
            head[508..512].copy_from_slice(&c.to_le_bytes());
            head.extend_from_slice(body);
            head
        }
    }
}

/// Recompute both hashes of each `HvLE` entry, following the size fields.
fn fix_hashes(log: &mut [u8]) {
    let mut off = 512;
    while off + 40 <= log.len() && &log[off..off + 4] == b"HvLE" {
        let size = u32::from_le_bytes(log[off + 4..off + 8].try_into().unwrap()) as usize;
        if size < 40 || off + size > log.len() {
            break;
        }
        let h1 = regf::marvin32(&log[off + 40..off + size], regf::LOG_SEED);
        log[off + 24..off + 32].copy_from_slice(&h1.to_le_bytes());
        let h2 = regf::marvin32(&log[off..off + 32], regf::LOG_SEED);
        log[off + 32..off + 40].copy_from_slice(&h2.to_le_bytes());
        off += size;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let p = primary();
    let bodies: Vec<&[u8]> = if mode & 4 != 0 {
        let (a, b) = rest.split_at(rest.len() / 2);
        vec![a, b]
    } else {
        vec![rest]
    };
    let logs: Vec<LogFile> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut bytes = frame(&p, mode & 3, body);
            if mode & 8 != 0 {
                fix_hashes(&mut bytes);
            }
            LogFile {
                name: format!("F.LOG{}", i + 1),
                bytes,
            }
        })
        .collect();
    let policy = if mode & 16 != 0 {
        ReplayPolicy::ReadOnlyBestEffort
    } else {
        ReplayPolicy::Strict
    };
    if let Ok((mut h, rep)) = Hive::open_with_logs(p, &logs, policy) {
        let _ = rep.warning();
        let _ = h.check();
        let _ = h.walk("", |_, k| {
            for v in k.values()? {
                let _ = v.raw()?;
            }
            Ok(())
        });
        let _ = h.commit();
    }
});
