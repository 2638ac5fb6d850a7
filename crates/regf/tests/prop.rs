//! Property tests: random edit sequences keep every invariant and read
//! back identically, through us and through hivex.
mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use regf::{ErrorKind, Hive};
use support::*;

#[derive(Debug, Clone)]
enum Op {
    Create(Vec<u8>),
    Delete(Vec<u8>),
    Set(Vec<u8>, u8, u32, Vec<u8>),
    Unset(Vec<u8>, u8),
}

const NAMES: [&str; 5] = ["alpha", "Beta", "gamma\u{e9}", "\u{3a9}mega", "d"];

fn path(p: &[u8]) -> String {
    p.iter()
        .map(|&i| NAMES[i as usize % NAMES.len()])
        .collect::<Vec<_>>()
        .join("\\")
}
fn vname(i: u8) -> String {
    ["", "v", "Value", "x\u{1F600}"][i as usize % 4].to_string()
}

fn op() -> impl Strategy<Value = Op> {
    let p = prop::collection::vec(0u8..5, 1..4);
    let data = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..6),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(any::<u8>(), 16340..20000),
    ];
    prop_oneof![
        3 => p.clone().prop_map(Op::Create),
        1 => p.clone().prop_map(Op::Delete),
        4 => (p.clone(), 0u8..4, prop_oneof![0u32..12, Just(0xdead_beef)], data).prop_map(|(p, n, k, d)| Op::Set(p, n, k, d)),
        1 => (p, 0u8..4).prop_map(|(p, n)| Op::Unset(p, n)),
    ]
}

type Model = BTreeMap<String, BTreeMap<String, (u32, Vec<u8>)>>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn model_listing(m: &Model) -> Vec<String> {
    let mut out = vec!["K\t".to_string()];
    for (k, vals) in m {
        out.push(format!("K\t{k}"));
        for (n, (t, d)) in vals {
            out.push(format!("V\t{k}\t{n}\t{t}\t{}", hex(d)));
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, .. ProptestConfig::default() })]
    #[test]
    fn random_edit_sequences(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Hive::new_empty("ROOT").unwrap();
        let mut m: Model = BTreeMap::new();
        for op in &ops {
            match op {
                Op::Create(p) => {
                    h.create_key(&path(p)).unwrap();
                    for i in 1..=p.len() {
                        m.entry(path(&p[..i])).or_default();
                    }
                }
                Op::Delete(p) => {
                    let k = path(p);
                    match h.delete_key(&k, true) {
                        Ok(()) => {
                            prop_assert!(m.contains_key(&k));
                            m.retain(|x, _| x != &k && !x.starts_with(&format!("{k}\\")));
                        }
                        Err(e) => {
                            prop_assert_eq!(e.kind, ErrorKind::NotFound);
                            prop_assert!(!m.contains_key(&k));
                        }
                    }
                }
                Op::Set(p, n, kind, d) => {
                    let k = path(p);
                    match h.set_value_raw(&k, &vname(*n), *kind, d) {
                        Ok(()) => { m.get_mut(&k).unwrap().insert(vname(*n), (*kind, d.clone())); }
                        Err(e) => {
                            prop_assert_eq!(e.kind, ErrorKind::NotFound);
                            prop_assert!(!m.contains_key(&k));
                        }
                    }
                }
                Op::Unset(p, n) => {
                    let k = path(p);
                    let had = m.get_mut(&k).and_then(|v| v.remove(&vname(*n))).is_some();
                    prop_assert_eq!(h.delete_value(&k, &vname(*n)).is_ok(), had);
                }
            }
            let probs = h.check();
            prop_assert!(probs.is_empty(), "{:?} after {:?}", probs, op);
        }
        let ours = listing(&h);
        prop_assert_eq!(&ours, &model_listing(&m));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("h");
        h.write_to(&f).unwrap();
        prop_assert_eq!(&hivex_listing(&f), &ours);
        prop_assert!(regf::check_bytes(&std::fs::read(&f).unwrap()).is_empty());
    }
}
