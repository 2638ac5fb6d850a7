//! Shared test helpers: test data, oracle tools, tree listings.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

use regf::{Hive, LogFile};

/// Directory of the shared test hives.
pub fn hives_dir() -> PathBuf {
    testkit::testdata("hives")
}

/// Shared phony-windows directory.
pub fn phony_dir() -> PathBuf {
    testkit::testdata("phony-windows")
}

pub use testkit::{need as require, run};

/// Decompress `name.xz` from the shared hives into `dir`; returns the path.
pub fn unxz(dir: &Path, name: &str) -> PathBuf {
    require("xz");
    let src = hives_dir().join(format!("{name}.xz"));
    assert!(src.exists(), "missing test data {}", src.display());
    let out = dir.join(name);
    std::fs::write(
        &out,
        testkit::run_bytes(Command::new("xz").arg("-dc").arg(&src)),
    )
    .unwrap();
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Normalised listing of a hive through our reader:
/// `K\tpath` and `V\tpath\tname\ttype\thexdata`, sorted.
pub fn listing(h: &Hive) -> Vec<String> {
    let mut out = Vec::new();
    h.walk("", |path, k| {
        out.push(format!("K\t{path}"));
        for v in k.values()? {
            out.push(format!(
                "V\t{path}\t{}\t{}\t{}",
                v.name()?,
                v.kind()?,
                hex(&v.raw()?)
            ));
        }
        Ok(())
    })
    .unwrap();
    out.sort();
    out
}

fn unquote(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => out.push(it.next().unwrap().1),
            c => out.push(c),
        }
    }
    panic!("unterminated string in {s}");
}

/// Normalised listing of `.reg` text (hivexregedit's or ours).
pub fn reg_listing(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut acc = String::new();
    for l in text.lines() {
        let t = l.trim_end();
        if let Some(x) = t.strip_suffix('\\') {
            if !t.starts_with('[') {
                acc.push_str(x.trim_start());
                continue;
            }
        }
        acc.push_str(t.trim_start());
        lines.push(std::mem::take(&mut acc));
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in lines {
        if l.is_empty() || l.starts_with("Windows Registry Editor") {
            continue;
        }
        if l.starts_with('[') && l.ends_with(']') {
            cur = l[1..l.len() - 1].trim_start_matches('\\').to_string();
            out.push(format!("K\t{cur}"));
            continue;
        }
        let (name, rest) = if let Some(r) = l.strip_prefix('@') {
            (String::new(), r)
        } else {
            unquote(&l[1..])
        };
        let rest = rest.strip_prefix('=').expect("=");
        let (kind, data): (u32, Vec<u8>) = if let Some(d) = rest.strip_prefix("dword:") {
            (
                4,
                u32::from_str_radix(d, 16).unwrap().to_le_bytes().to_vec(),
            )
        } else if let Some(d) = rest.strip_prefix("hex:") {
            (3, hexbytes(d))
        } else if let Some(d) = rest.strip_prefix("hex(") {
            let c = d.find("):").unwrap();
            (
                u32::from_str_radix(&d[..c], 16).unwrap(),
                hexbytes(&d[c + 2..]),
            )
        } else if let Some(d) = rest.strip_prefix('"') {
            let (s, _) = unquote(d);
            let mut b: Vec<u8> = s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
            b.extend([0, 0]);
            (1, b)
        } else {
            panic!("unknown data {rest}");
        };
        out.push(format!("V\t{cur}\t{name}\t{kind}\t{}", hex(&data)));
    }
    out.sort();
    out
}

fn hexbytes(s: &str) -> Vec<u8> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| u8::from_str_radix(t.trim(), 16).unwrap())
        .collect()
}

/// hivex prints names stored one byte per character (Latin-1) as raw
/// bytes and UTF-16 names as UTF-8: decode each path component or line as
/// UTF-8 when valid, else as Latin-1.
fn decode_mixed(b: &[u8]) -> String {
    let piece = |p: &[u8]| match std::str::from_utf8(p) {
        Ok(s) => s.to_string(),
        Err(_) => p.iter().map(|&c| c as char).collect(),
    };
    b.split(|&c| c == b'\n')
        .map(|line| {
            line.split(|&c| c == b'\\')
                .map(piece)
                .collect::<Vec<_>>()
                .join("\\")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// hivexregedit's export of a whole hive, normalised.
pub fn hivex_listing(path: &Path) -> Vec<String> {
    require("hivexregedit");
    let o = Command::new("hivexregedit")
        .arg("--export")
        .arg(path)
        .arg("\\")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hivexregedit --export {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    reg_listing(&decode_mixed(&o.stdout))
}

/// Compare two listings, printing the first differences.
pub fn assert_same(ours: &[String], theirs: &[String], what: &str) {
    if ours == theirs {
        return;
    }
    let a: std::collections::BTreeSet<_> = ours.iter().collect();
    let b: std::collections::BTreeSet<_> = theirs.iter().collect();
    let short = |s: &&String| -> String {
        if s.len() > 160 {
            format!("{}... ({} chars)", &s[..160], s.len())
        } else {
            s.to_string()
        }
    };
    let only_a: Vec<String> = a.difference(&b).take(10).map(short).collect();
    let only_b: Vec<String> = b.difference(&a).take(10).map(short).collect();
    panic!(
        "{what}: listings differ ({} vs {} lines)\nonly ours: {only_a:#?}\nonly theirs: {only_b:#?}",
        ours.len(),
        theirs.len()
    );
}

/// regipy's listing (keys, value names, types; DWORD/QWORD data) of a hive.
pub fn regipy_listing(path: &Path) -> Vec<String> {
    require("python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/regipy_dump.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "regipy dump failed (is regipy installed? pip install regipy): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Our listing in regipy's shape (type names as regipy prints them; data
/// only for well-formed DWORD/QWORD, `*` for malformed ones, whose bytes
/// regipy does not decode exactly).
pub fn regipy_shaped(h: &Hive) -> Vec<String> {
    let mut out = Vec::new();
    h.walk("", |path, k| {
        out.push(format!("K\t{path}"));
        for v in k.values()? {
            let mut kind = v.kind()?;
            // regipy skips type 0x200000 and folds DEVPROP types
            // (0xFFFFxxxx) to their low 16 bits.
            if kind == 0x20_0000 {
                continue;
            }
            if kind > 0xFFFF_0000 {
                kind &= 0xFFFF;
            }
            let d = match regf::Value::from_raw(kind, v.raw()?) {
                regf::Value::Dword(n) => n.to_string(),
                regf::Value::Qword(n) => n.to_string(),
                regf::Value::Raw { kind: 4 | 11, .. } => "*".into(),
                _ => "-".into(),
            };
            let t = if kind == 16 {
                "REG_FILETIME".to_string()
            } else if kind <= 11 {
                regf::kind_name(kind)
            } else {
                kind.to_string()
            };
            out.push(format!("V\t{path}\t{}\t{t}\t{d}", v.name()?));
        }
        Ok(())
    })
    .unwrap();
    out.sort();
    out
}

/// Compare our reading of `h` with regipy's reading of `path`.
pub fn assert_same_as_regipy(h: &Hive, path: &Path, what: &str) {
    let ours = regipy_shaped(h);
    let star: std::collections::HashSet<String> = ours
        .iter()
        .filter(|l| l.ends_with("\t*"))
        .map(|l| l[..l.len() - 1].to_string())
        .collect();
    let mut theirs: Vec<String> = regipy_listing(path)
        .into_iter()
        .map(|l| match l.rfind('\t') {
            Some(i) if star.contains(&l[..=i]) => format!("{}*", &l[..=i]),
            _ => l,
        })
        .collect();
    theirs.sort();
    assert_same(&ours, &theirs, what);
}

/// Assert the hive has no invariant problems.
pub fn assert_clean(h: &Hive, what: &str) {
    let p = h.check();
    assert!(
        p.is_empty(),
        "{what}: {} problems, first: {:#?}",
        p.len(),
        &p[..p.len().min(5)]
    );
}

// ----- transaction log builders: our writer for the log states -----

/// Recover `primary` with regipy's `apply_transaction_logs` (first log as
/// its primary log, second as its secondary one, applied first) into `out`.
pub fn regipy_recover(primary: &Path, logs: &[&Path], out: &Path) {
    require("python3");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/regipy_dump.py");
    let list: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
    run(Command::new("python3")
        .arg(script)
        .arg(primary)
        .arg(list.join(","))
        .arg(out));
    // regipy rewrites the sequence numbers without fixing the base block
    // checksum, which hivex (rightly) rejects: fix just the checksum.
    let mut b = std::fs::read(out).unwrap();
    let c = regf::checksum(&b);
    b[508..512].copy_from_slice(&c.to_le_bytes());
    std::fs::write(out, b).unwrap();
}

/// A named log.
pub fn log(name: &str, bytes: Vec<u8>) -> LogFile {
    LogFile {
        name: name.into(),
        bytes,
    }
}

/// Set both sequence numbers and fix the checksum.
pub fn set_seq(bytes: &mut [u8], s1: u32, s2: u32) {
    bytes[4..8].copy_from_slice(&s1.to_le_bytes());
    bytes[8..12].copy_from_slice(&s2.to_le_bytes());
    let c = regf::checksum(bytes);
    bytes[508..512].copy_from_slice(&c.to_le_bytes());
}

/// A legacy (`DIRT`) log taking `a` to `b` (same size): `a`'s base block
/// (type 1, equal sequence numbers), the dirty vector, the changed pages.
pub fn legacy_log(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut head = a[..512].to_vec();
    head[28..32].copy_from_slice(&1u32.to_le_bytes());
    let s = u32::from_le_bytes(a[8..12].try_into().unwrap());
    set_seq(&mut head, s, s);
    let size = b.len() - 4096;
    let mut bitmap = vec![0u8; size / 4096];
    let mut pages = Vec::new();
    for i in 0..size / 512 {
        let r = 4096 + i * 512..4096 + (i + 1) * 512;
        if a[r.clone()] != b[r.clone()] {
            bitmap[i / 8] |= 1 << (i % 8);
            pages.extend_from_slice(&b[r]);
        }
    }
    let mut out = head;
    out.extend_from_slice(b"DIRT");
    out.extend(bitmap);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend(pages);
    out
}

/// Build an HvLE entry holding the pages of `b` that differ from `a`.
pub fn hvle_entry(a: &[u8], b: &[u8], seq: u32) -> Vec<u8> {
    let size = b.len() - 4096;
    let mut refs = Vec::new();
    let mut pages = Vec::new();
    for i in 0..size / 4096 {
        let r = 4096 + i * 4096..4096 + (i + 1) * 4096;
        if a.get(r.clone()) != Some(&b[r.clone()]) {
            refs.push(((i * 4096) as u32, 4096u32));
            pages.extend_from_slice(&b[r]);
        }
    }
    let mut e = vec![0u8; 40];
    e[0..4].copy_from_slice(b"HvLE");
    e[12..16].copy_from_slice(&seq.to_le_bytes());
    e[16..20].copy_from_slice(&(size as u32).to_le_bytes());
    e[20..24].copy_from_slice(&(refs.len() as u32).to_le_bytes());
    for (o, s) in refs {
        e.extend(o.to_le_bytes());
        e.extend(s.to_le_bytes());
    }
    e.extend(pages);
    e.resize(e.len().div_ceil(512) * 512, 0);
    let n = e.len() as u32;
    e[4..8].copy_from_slice(&n.to_le_bytes());
    let h1 = regf::marvin32(&e[40..], regf::LOG_SEED);
    e[24..32].copy_from_slice(&h1.to_le_bytes());
    let h2 = regf::marvin32(&e[..32], regf::LOG_SEED);
    e[32..40].copy_from_slice(&h2.to_le_bytes());
    e
}

/// A new-format log: `primary`'s base block (type 6, its secondary
/// sequence number), then `entries`.
pub fn new_log(primary: &[u8], entries: &[Vec<u8>]) -> Vec<u8> {
    let mut head = primary[..512].to_vec();
    head[28..32].copy_from_slice(&6u32.to_le_bytes());
    let s = u32::from_le_bytes(primary[8..12].try_into().unwrap());
    set_seq(&mut head, s, s);
    for e in entries {
        head.extend_from_slice(e);
    }
    head
}
