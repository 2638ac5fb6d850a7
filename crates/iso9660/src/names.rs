//! File identifiers: decoding the three name sources, making strict
//! level-1 primary names and Joliet names, and the ECMA-119 9.3 ordering.

use crate::error::{invalid, Result};
use std::cmp::Ordering;
use std::collections::HashSet;

/// Longest Joliet name, in UCS-2 code units.
pub(crate) const JOLIET_MAX: usize = 64;

/// A primary (ISO 9660) identifier as text: bytes as Latin-1, the `;N`
/// version and then one trailing `.` removed from file names.
pub(crate) fn plain(id: &[u8], is_dir: bool) -> String {
    let mut s: String = id.iter().map(|&b| char::from(b)).collect();
    if !is_dir {
        strip_version(&mut s);
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// A Joliet identifier (UCS-2 big endian) as text, without a `;N` version.
pub(crate) fn joliet(id: &[u8], is_dir: bool) -> String {
    let units = id.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
    let mut s: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if !is_dir {
        strip_version(&mut s);
    }
    s
}

/// A Rock Ridge `NM` name: UTF-8 when it is valid UTF-8, else Latin-1.
pub(crate) fn rock_ridge(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Remove a trailing `;` followed by digits (or nothing).
fn strip_version(s: &mut String) {
    if let Some(i) = s.rfind(';') {
        if s[i + 1..].bytes().all(|b| b.is_ascii_digit()) {
            s.truncate(i);
        }
    }
}

/// Whether a decoded name can be a path component.
pub(crate) fn usable(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Check a caller's name for use in both hierarchies; returns its UCS-2 form.
pub(crate) fn check_component(name: &str, path: &str) -> Result<Vec<u16>> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(invalid(format!(
            "path {path:?}: component {name:?} is not a file name"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c < ' ' || matches!(c, '*' | '/' | ':' | ';' | '?' | '\\'))
    {
        return Err(invalid(format!(
            "path {path:?}: character {c:?} is not allowed in Joliet names"
        )));
    }
    if name.chars().any(|c| u32::from(c) > 0xFFFF) {
        return Err(invalid(format!(
            "path {path:?}: {name:?} has characters outside the Basic Multilingual Plane (Joliet is UCS-2)"
        )));
    }
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.len() > JOLIET_MAX {
        return Err(invalid(format!(
            "path {path:?}: name {name:?} has {} characters; Joliet allows at most {JOLIET_MAX}",
            units.len()
        )));
    }
    Ok(units)
}

/// Map to d-characters (A-Z, 0-9, `_`), upper-casing ASCII letters.
fn d_chars(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| match c.to_ascii_uppercase() {
            u @ ('A'..='Z' | '0'..='9' | '_') => u,
            _ => '_',
        })
        .take(max)
        .collect()
}

/// The volume identifier of the primary descriptor: d-characters, ≤ 32.
pub(crate) fn volume_id(s: &str) -> String {
    d_chars(s, 32)
}

/// Strict level-1 primary identifiers for the entries of one directory,
/// in the order given (`(name, is_dir)`); collisions get `~N` suffixes in
/// that order. Files come back as `NAME.EXT;1`, directories as `NAME`.
pub(crate) fn level1_names(entries: &[(&str, bool)]) -> Vec<String> {
    let mut used = HashSet::new();
    entries
        .iter()
        .map(|&(name, is_dir)| {
            let (base, ext) = if is_dir {
                (d_chars(name, 8), String::new())
            } else {
                match name.rfind('.') {
                    Some(i) => (d_chars(&name[..i], 8), d_chars(&name[i + 1..], 3)),
                    None => (d_chars(name, 8), String::new()),
                }
            };
            let base = if base.is_empty() {
                "_".to_string()
            } else {
                base
            };
            let make = |b: &str| {
                if is_dir {
                    b.to_string()
                } else {
                    format!("{b}.{ext};1")
                }
            };
            let mut id = make(&base);
            let mut n = 1u32;
            while used.contains(&id) {
                let suffix = format!("~{n}");
                let keep = 8usize.saturating_sub(suffix.len()).min(base.len());
                id = make(&format!("{}{suffix}", &base[..keep]));
                n += 1;
            }
            used.insert(id.clone());
            id
        })
        .collect()
}

/// ECMA-119 9.3 order of two file identifiers given as code units: by
/// name, then by extension, each padded with spaces, then by version
/// descending. Directory identifiers (no `.`) compare as names only.
pub(crate) fn cmp_ids<T: Copy + Ord + From<u8>>(a: &[T], b: &[T]) -> Ordering {
    let (an, ae, av) = split(a);
    let (bn, be, bv) = split(b);
    padded(an, bn)
        .then_with(|| padded(ae, be))
        .then_with(|| padded(bv, av))
}

fn split<T: Copy + PartialEq + From<u8>>(id: &[T]) -> (&[T], &[T], &[T]) {
    let (main, ver) = match id.iter().rposition(|&c| c == T::from(b';')) {
        Some(i) => (&id[..i], &id[i + 1..]),
        None => (id, &id[id.len()..]),
    };
    match main.iter().rposition(|&c| c == T::from(b'.')) {
        Some(i) => (&main[..i], &main[i + 1..], ver),
        None => (main, &main[main.len()..], ver),
    }
}

fn padded<T: Copy + Ord + From<u8>>(a: &[T], b: &[T]) -> Ordering {
    let n = a.len().max(b.len());
    let sp = T::from(b' ');
    (0..n)
        .map(|i| {
            let x = a.get(i).copied().unwrap_or(sp);
            let y = b.get(i).copied().unwrap_or(sp);
            x.cmp(&y)
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(plain(b"README.;1", false), "README");
        assert_eq!(plain(b"A.TXT;1", false), "A.TXT");
        assert_eq!(plain(b"DIR", true), "DIR");
        assert_eq!(joliet(&[0, b'a', 0, b';', 0, b'1'], false), "a");
        assert_eq!(joliet(&[0, b'a', 0, b';', 0, b'x'], false), "a;x");
        assert_eq!(rock_ridge(b"caf\xe9"), "caf\u{e9}");
    }

    #[test]
    fn level1() {
        let got = level1_names(&[
            ("viostor.inf", false),
            ("VIOSTOR.INF", false),
            ("Viostor.Inf", false),
            ("readme", false),
            ("w10", true),
            ("a.long-extension", false),
            (".hidden", false),
            ("amd64.dir.name", true),
        ]);
        assert_eq!(
            got,
            [
                "VIOSTOR.INF;1",
                "VIOSTO~1.INF;1",
                "VIOSTO~2.INF;1",
                "README.;1",
                "W10",
                "A.LON;1",
                "_.HID;1",
                "AMD64_DI"
            ]
        );
    }

    #[test]
    fn order() {
        let ids = |v: &[&str]| {
            let mut v: Vec<Vec<u8>> = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            v.sort_by(|a, b| cmp_ids(a, b));
            v.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect::<Vec<_>>()
        };
        // "AB.C" sorts before "A_.C" because the name is compared first,
        // and "A" (padded "A ") before "AB".
        assert_eq!(
            ids(&["AB.C;1", "A.Z;1", "A_.C;1", "A.B;1"]),
            ["A.B;1", "A.Z;1", "AB.C;1", "A_.C;1"]
        );
    }
}
