#![no_main]
//! Parse a hive, walk the whole tree reading every value, run the checker,
//! export, edit and commit: errors are fine, panics and unbounded work are
//! not (every walk is bounded by the cells present; cycles are detected).
use libfuzzer_sys::fuzz_target;
use regf::{Hive, ReplayPolicy, Value};

/// A small valid hive whose cells the fuzzer can overwrite directly.
fn sample() -> Vec<u8> {
    static CACHE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    CACHE.get_or_init(build).clone()
}

fn build() -> Vec<u8> {
    let mut h = Hive::new_empty("ROOT").unwrap();
    for i in 0..8 {
        h.create_key(&format!("K{i}\\S")).unwrap();
        h.set_value(&format!("K{i}"), "v", &Value::String("x".repeat(i * 7)))
            .unwrap();
    }
    h.set_value("K1", "big", &Value::Binary(vec![7; 17000]))
        .unwrap();
    h.commit()
}

fuzz_target!(|data: &[u8]| {
    // Inputs starting with "regf" are whole hives; others are spliced into
    // the cells of a valid sample hive at an offset chosen by the first
    // two bytes.
    let bytes = if data.starts_with(b"regf") || data.len() < 2 {
        data.to_vec()
    } else {
        let mut b = sample();
        let at = 4096 + (u16::from_le_bytes([data[0], data[1]]) as usize * 8) % (b.len() - 4096);
        for (i, &x) in data[2..].iter().enumerate() {
            if let Some(t) = b.get_mut(at + i) {
                *t = x;
            }
        }
        b
    };
    let Ok((mut h, _)) = Hive::open_with_logs(bytes, &[], ReplayPolicy::IgnoreLogs) else {
        return;
    };
    let _ = h.walk("", |_, k| {
        for v in k.values()? {
            let _ = v.data()?;
        }
        let _ = k.class_name()?;
        let _ = k.security_descriptor();
        Ok(())
    });
    let _ = h.check();
    let _ = h.current_control_set();
    let _ = h.export_reg("", "");
    if h.create_key("Fuzz\\Key").is_ok() {
        let _ = h.set_value("Fuzz\\Key", "v", &Value::Binary(vec![1; 20000]));
        let _ = h.delete_key("Fuzz", true);
    }
    let bytes = h.commit();
    let _ = Hive::open(bytes);
});
