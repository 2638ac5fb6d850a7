//! `hivexregedit --export` of a whole hive read into a map, and the exact
//! before/after diff check: the keys and values that changed between two
//! exports must be exactly the registry actions a plan holds for that hive
//! (nothing more, nothing less). The oracle is hivex; the plan is the one
//! `fix-windows --json` printed. Included with
//! `#[path = "support/regdiff.rs"] mod regdiff;`.
#![allow(dead_code)]

use guest::plan::{Action, HiveRef, PlannedAction, RegData};
use std::collections::{BTreeMap, BTreeSet};

#[allow(unused_imports)] // each test crate that includes this module uses a part
pub use testkit::regexport::{export, parse, val, Export};

/// RegData as hivexregedit prints it: `dword:` for a 4-byte REG_DWORD
/// (whether the plan typed it as a DWORD or as raw bytes of type 4),
/// `hex(N):` for everything else.
pub fn hivex_text(d: &RegData) -> String {
    let v = d.to_value();
    let bytes = v.to_bytes();
    if v.kind() == 4 && bytes.len() == 4 {
        return format!(
            "dword:{:08x}",
            u32::from_le_bytes(bytes[..4].try_into().unwrap())
        );
    }
    format!(
        "hex({:x}):{}",
        v.kind(),
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Decode hivex's `hex(N):aa,bb,…` / `dword:…` text: (type, bytes).
pub fn decode(text: &str) -> (u32, Vec<u8>) {
    if let Some(d) = text.strip_prefix("dword:") {
        return (
            4,
            u32::from_str_radix(d, 16).unwrap().to_le_bytes().to_vec(),
        );
    }
    let (kind, hex) = if let Some(h) = text.strip_prefix("hex:") {
        (3, h)
    } else {
        let rest = text.strip_prefix("hex(").expect(text);
        let (k, h) = rest.split_once("):").expect(text);
        (u32::from_str_radix(k, 16).unwrap(), h)
    };
    let bytes = hex
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|b| u8::from_str_radix(b.trim(), 16).unwrap())
        .collect();
    (kind, bytes)
}

/// UTF-16LE bytes to text, up to the first NUL.
pub fn utf16(bytes: &[u8]) -> String {
    let u: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&c| c != 0)
        .collect();
    String::from_utf16_lossy(&u)
}

/// The strings of a REG_MULTI_SZ's bytes.
pub fn multi(bytes: &[u8]) -> Vec<String> {
    let u: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    u.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

/// The control sets `Select` references (`ControlSet001`, …), deduplicated,
/// Current first.
pub fn selected_sets(e: &Export) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for n in ["current", "default", "lastknowngood"] {
        if let Some(t) = val(e, "select", n) {
            let (_, b) = decode(t);
            let k = format!(
                "controlset{:03}",
                u32::from_le_bytes(b[..4].try_into().unwrap())
            );
            let sub = format!("{k}\\");
            let present = e.keys().any(|x| *x == k || x.starts_with(&sub));
            if present && !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// The keys and values changed between two exports of one hive.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Keys present only after.
    pub keys_added: BTreeSet<String>,
    /// Keys present only before.
    pub keys_removed: BTreeSet<String>,
    /// Values new or with new data: (key, name) -> data after.
    pub values_set: BTreeMap<(String, String), String>,
    /// Values present only before.
    pub values_removed: BTreeSet<(String, String)>,
}

fn flat(e: &Export) -> BTreeMap<(String, String), String> {
    e.iter()
        .flat_map(|(k, vs)| {
            vs.iter()
                .map(move |(n, d)| ((k.clone(), n.clone()), d.clone()))
        })
        .collect()
}

/// What changed from `before` to `after`, read from the exports alone.
pub fn diff(before: &Export, after: &Export) -> Diff {
    let (b, a) = (flat(before), flat(after));
    Diff {
        keys_added: after
            .keys()
            .filter(|k| !before.contains_key(*k))
            .cloned()
            .collect(),
        keys_removed: before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect(),
        values_set: a
            .iter()
            .filter(|(kn, d)| b.get(*kn) != Some(d))
            .map(|(kn, d)| (kn.clone(), d.clone()))
            .collect(),
        values_removed: b
            .keys()
            .filter(|kn| !a.contains_key(*kn))
            .cloned()
            .collect(),
    }
}

/// The diff the plan's registry actions on `hive` make to `before`,
/// computed by replaying them on the export model in plan order.
pub fn planned_diff(before: &Export, hive: &HiveRef, plan: &[PlannedAction]) -> Diff {
    let mut model = before.clone();
    let add_key = |m: &mut Export, k: &str| {
        let mut p = String::new();
        for c in k.split('\\').filter(|c| !c.is_empty()) {
            if !p.is_empty() {
                p.push('\\');
            }
            p.push_str(&c.to_lowercase());
            m.entry(p.clone()).or_default();
        }
    };
    for a in plan.iter().filter(|a| a.action.hive() == Some(hive)) {
        match &a.action {
            Action::CreateKey { key, .. } => add_key(&mut model, key),
            Action::SetValue {
                key, name, data, ..
            } => {
                add_key(&mut model, key);
                model
                    .get_mut(&key.to_lowercase())
                    .unwrap()
                    .insert(name.to_lowercase(), hivex_text(data));
            }
            Action::DeleteKey { key, .. } => {
                let k = key.to_lowercase();
                let sub = format!("{k}\\");
                model.retain(|x, _| *x != k && !x.starts_with(&sub));
            }
            Action::DeleteValue { key, name, .. } => {
                if let Some(vs) = model.get_mut(&key.to_lowercase()) {
                    vs.remove(&name.to_lowercase());
                }
            }
            other => panic!("not a registry action: {other:?}"),
        }
    }
    diff(before, &model)
}

/// Assert that `after` differs from `before` exactly by the plan's
/// registry actions on `hive`; `what` names the case in the message.
/// Returns the diff.
pub fn assert_exact_diff(
    what: &str,
    before: &Export,
    after: &Export,
    hive: &HiveRef,
    plan: &[PlannedAction],
) -> Diff {
    let got = diff(before, after);
    let want = planned_diff(before, hive, plan);
    assert_eq!(
        got.keys_added, want.keys_added,
        "{what}: keys added by the run vs by the plan"
    );
    assert_eq!(
        got.keys_removed, want.keys_removed,
        "{what}: keys removed by the run vs by the plan"
    );
    for (kn, d) in &got.values_set {
        assert_eq!(
            want.values_set.get(kn),
            Some(d),
            "{what}: value {kn:?} changed but the plan does not set it so"
        );
    }
    for kn in want.values_set.keys() {
        assert!(
            got.values_set.contains_key(kn),
            "{what}: planned value {kn:?} is not in the result"
        );
    }
    assert_eq!(
        got.values_removed, want.values_removed,
        "{what}: values removed by the run vs by the plan"
    );
    got
}
