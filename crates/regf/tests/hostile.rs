//! Hostile hives: clear errors, never a panic, bounded work.
mod support;

use regf::{Hive, ReplayPolicy, Value};

fn sample() -> Vec<u8> {
    let mut h = Hive::new_empty("ROOT").unwrap();
    for i in 0..40 {
        h.create_key(&format!("K{i}\\Sub")).unwrap();
        h.set_value(&format!("K{i}"), "v", &Value::String("x".repeat(i * 10)))
            .unwrap();
    }
    h.set_value("K1", "big", &Value::Binary(vec![7; 40000]))
        .unwrap();
    h.commit()
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn fix(b: &mut [u8]) {
    let c = regf::checksum(b);
    put32(b, 508, c);
}

/// Exercise everything a caller might do; must not panic.
fn exercise(bytes: Vec<u8>) -> Result<(), String> {
    let (mut h, _) =
        Hive::open_with_logs(bytes, &[], ReplayPolicy::IgnoreLogs).map_err(|e| e.to_string())?;
    let _ = h.check();
    let walk = h.walk("", |_, k| {
        for v in k.values()? {
            v.data()?;
        }
        k.class_name()?;
        Ok(())
    });
    let _ = h.export_reg("", "");
    let _ = h.export_json("");
    let _ = h.create_key("K3\\New");
    let _ = h.set_value("K3", "n", &Value::Dword(1));
    let _ = h.delete_key("K5", true);
    let _ = h.delete_value("K7", "v");
    let _ = h.commit();
    walk.map_err(|e| e.to_string())
}

fn root_nk(b: &[u8]) -> usize {
    4096 + le32(b, 36) as usize + 4
}

#[test]
fn bad_checksum_and_signature() {
    let mut b = sample();
    b[100] ^= 1;
    let e = Hive::open(b.clone()).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    b[0] = b'x';
    let e = Hive::open(b).unwrap_err();
    assert!(e.to_string().contains("regf"), "{e}");
    assert!(Hive::open(vec![0; 10]).is_err());
}

#[test]
fn root_offset_out_of_bounds() {
    let mut b = sample();
    put32(&mut b, 36, 0x7fff_0000);
    fix(&mut b);
    let e = Hive::open(b).unwrap_err();
    assert!(e.to_string().contains("root"), "{e}");
}

#[test]
fn bins_size_larger_than_file() {
    let mut b = sample();
    put32(&mut b, 40, 0x1000_0000);
    fix(&mut b);
    let e = Hive::open(b).unwrap_err();
    assert!(e.to_string().contains("bytes"), "{e}");
}

#[test]
fn wrong_cell_size() {
    let mut b = sample();
    let r = 4096 + le32(&b, 36) as usize;
    put32(&mut b, r, (-13i32) as u32);
    fix(&mut b);
    let e = Hive::open(b.clone()).unwrap_err();
    assert!(e.to_string().contains("multiple of 8"), "{e}");
    put32(&mut b, r, (-0x7fff_fff0i32) as u32);
    fix(&mut b);
    assert!(Hive::open(b).is_err());
}

#[test]
fn subkey_cycle_is_reported() {
    let mut b = sample();
    let nk = root_nk(&b);
    let list = 4096 + le32(&b, nk + 28) as usize + 4;
    // Point the first subkey entry at the root itself.
    let root = le32(&b, 36);
    put32(&mut b, list + 4, root);
    fix(&mut b);
    let e = exercise(b.clone()).unwrap_err();
    assert!(e.contains("twice"), "{e}");
    let h = Hive::open(b).unwrap();
    assert!(h.check().iter().any(|p| p.message.contains("twice")));
}

#[test]
fn huge_counts() {
    let mut b = sample();
    let nk = root_nk(&b);
    put32(&mut b, nk + 20, 0xFFFF_FFFF);
    fix(&mut b);
    let e = exercise(b).unwrap_err();
    assert!(e.contains("subkey list"), "{e}");
    let mut b = sample();
    let k1 = Hive::open(b.clone()).unwrap().key("K1").unwrap().offset() as usize + 4096 + 4;
    put32(&mut b, k1 + 36, 0x4000_0000);
    fix(&mut b);
    let e = exercise(b).unwrap_err();
    assert!(e.contains("value list"), "{e}");
}

#[test]
fn offsets_out_of_bounds() {
    let mut b = sample();
    let k1 = Hive::open(b.clone()).unwrap().key("K1").unwrap().offset() as usize + 4096 + 4;
    put32(&mut b, k1 + 40, 0xFFFF_FFF0);
    fix(&mut b);
    let e = exercise(b).unwrap_err();
    assert!(e.contains("offset"), "{e}");
}

#[test]
fn random_corruption_never_panics() {
    use rand::{Rng, SeedableRng};
    let base = sample();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut errors = 0;
    for _ in 0..1500 {
        let mut b = base.clone();
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(4096..b.len());
            match rng.gen_range(0..3) {
                0 => b[i] ^= 1 << rng.gen_range(0..8),
                1 => b[i] = rng.gen(),
                _ => {
                    let o = i & !3;
                    if o + 4 <= b.len() {
                        put32(&mut b, o, rng.gen());
                    }
                }
            }
        }
        if exercise(b).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0);
}
