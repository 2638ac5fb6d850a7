#![no_main]
//! Replay fuzzed transaction-log bytes over a fixed, valid, dirty primary.
//! The first input byte picks how the log is framed (raw, or behind a valid
//! new-format or legacy log header so entry parsing is reached).
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

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let p = primary();
    let log = match mode % 3 {
        0 => rest.to_vec(),
        m => {
            let mut head = p[..512].to_vec();
            let t: u32 = if m == 1 { 6 } else { 1 };
            head[28..32].copy_from_slice(&t.to_le_bytes());
            let s = u32::from_le_bytes(p[8..12].try_into().unwrap());
            head[4..8].copy_from_slice(&s.to_le_bytes());
            let c = regf::checksum(&head);
            head[508..512].copy_from_slice(&c.to_le_bytes());
            head.extend_from_slice(rest);
            head
        }
    };
    let logs = [LogFile {
        name: "F.LOG1".into(),
        bytes: log,
    }];
    if let Ok((mut h, _)) = Hive::open_with_logs(p, &logs, ReplayPolicy::Strict) {
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
