//! `.reg` text (regedit "Windows Registry Editor Version 5.00" format, plus
//! hivex's `str(N):` extension on import) and JSON export; tree walking.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::error::{Error, ErrorKind, Result};
use crate::hive::Hive;
use crate::names;
use crate::read::Key;
use crate::value::{kind_name, Value, REG_BINARY, REG_DWORD, REG_SZ};

/// Counts of what an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportStats {
    /// Keys created or visited.
    pub keys: usize,
    /// Keys deleted.
    pub keys_deleted: usize,
    /// Values set.
    pub values: usize,
    /// Values deleted.
    pub values_deleted: usize,
}

impl Hive {
    /// Visit `start` and every key below it, depth first in on-disk order,
    /// with its path relative to the root. Cycles are reported as errors.
    pub fn walk<F>(&self, start: &str, mut f: F) -> Result<()>
    where
        F: FnMut(&str, Key<'_>) -> Result<()>,
    {
        let top = self.key(start)?;
        // The path as stored (real case), not as the caller spelled it.
        let mut parts = Vec::new();
        let mut k = self.root();
        for comp in names::split_path(start) {
            k = k
                .subkey(comp)?
                .ok_or_else(|| Error::not_found(format!("key {start}")))?;
            parts.push(k.name()?);
        }
        let base = parts.join("\\");
        let mut seen = HashSet::new();
        let mut stack = vec![(base, top)];
        while let Some((path, k)) = stack.pop() {
            if !seen.insert(k.off) {
                return Err(Error::corrupt_cell(
                    k.off,
                    "key reachable twice (cycle in subkey lists)",
                ));
            }
            f(&path, k)?;
            let subs = k.subkeys()?;
            for s in subs.into_iter().rev() {
                let n = s.name()?;
                let p = if path.is_empty() {
                    n
                } else {
                    format!("{path}\\{n}")
                };
                stack.push((p, s));
            }
        }
        Ok(())
    }

    /// Export `start` and its subtree as `.reg` text. Key headers are
    /// `[PREFIX\path]`; with an empty prefix they look like hivexregedit's
    /// (`[\]`, `[\A\B]`).
    pub fn export_reg(&self, start: &str, prefix: &str) -> Result<String> {
        let mut out = String::from("Windows Registry Editor Version 5.00\n\n");
        self.walk(start, |path, k| {
            let head = match (prefix.is_empty(), path.is_empty()) {
                (true, _) => format!("\\{path}"),
                (false, true) => prefix.to_string(),
                (false, false) => format!("{prefix}\\{path}"),
            };
            let _ = writeln!(out, "[{head}]");
            for v in k.values()? {
                let name = v.name()?;
                let lhs = if name.is_empty() {
                    "@".to_string()
                } else {
                    format!("\"{}\"", escape(&name))
                };
                let kind = v.kind()?;
                let raw = v.raw()?;
                out.push_str(&format_value(&lhs, kind, &raw));
                out.push('\n');
            }
            out.push('\n');
            Ok(())
        })?;
        Ok(out)
    }

    /// Export `start` and its subtree as JSON: nested objects with `name`,
    /// `values` (name, type, type number, decoded data, hex bytes) and
    /// `subkeys`.
    pub fn export_json(&self, start: &str) -> Result<serde_json::Value> {
        let top = self.key(start)?;
        let mut seen = HashSet::new();
        self.json_key(top, &mut seen, 0)
    }

    fn json_key(
        &self,
        k: Key<'_>,
        seen: &mut HashSet<u32>,
        depth: usize,
    ) -> Result<serde_json::Value> {
        if !seen.insert(k.off) || depth > 512 {
            return Err(Error::corrupt_cell(
                k.off,
                "key reachable twice or nesting too deep",
            ));
        }
        let mut vals = Vec::new();
        for v in k.values()? {
            let raw = v.raw()?;
            let kind = v.kind()?;
            vals.push(serde_json::json!({
                "name": v.name()?,
                "type": kind_name(kind),
                "type_id": kind,
                "value": Value::from_raw(kind, raw.clone()),
                "hex": hex(&raw),
            }));
        }
        let mut subs = Vec::new();
        for s in k.subkeys()? {
            subs.push(self.json_key(s, seen, depth + 1)?);
        }
        Ok(serde_json::json!({
            "name": k.name()?,
            "last_written": k.last_written()?,
            "class": k.class_name()?,
            "values": vals,
            "subkeys": subs,
        }))
    }

    /// Merge `.reg` text into the hive: `[KEY]` creates, `[-KEY]` deletes
    /// recursively, `"name"=-` deletes a value, `@=` is the default value.
    /// Key paths lose `prefix` (case-insensitive) when given; otherwise a
    /// leading `\` or a root such as `HKEY_LOCAL_MACHINE\SYSTEM` is dropped.
    pub fn import_reg(&mut self, text: &str, prefix: Option<&str>) -> Result<ImportStats> {
        let mut stats = ImportStats::default();
        let mut cur: Option<String> = None;
        for (lineno, line) in logical_lines(text) {
            let syn = |m: String| Error {
                offset: Some(lineno as u64),
                ..Error::new(ErrorKind::Syntax, m)
            };
            let l = line.trim();
            if l.is_empty()
                || l.starts_with(';')
                || l == "Windows Registry Editor Version 5.00"
                || l == "REGEDIT4"
            {
                continue;
            }
            if let Some(inner) = l.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| syn("key line without closing ']'".into()))?;
                if let Some(del) = inner.strip_prefix('-') {
                    let p = map_path(del, prefix).map_err(syn)?;
                    match self.delete_key(&p, true) {
                        Ok(()) => stats.keys_deleted += 1,
                        Err(e) if e.kind == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                    cur = None;
                } else {
                    let p = map_path(inner, prefix).map_err(syn)?;
                    self.create_key(&p)?;
                    stats.keys += 1;
                    cur = Some(p);
                }
                continue;
            }
            let (name, rest) = parse_name(l).map_err(syn)?;
            let key = cur
                .as_deref()
                .ok_or_else(|| syn("value outside of a key section".into()))?;
            let rest = rest.trim_start();
            let rest = rest
                .strip_prefix('=')
                .ok_or_else(|| syn("expected '=' after the value name".into()))?
                .trim();
            if rest == "-" {
                match self.delete_value(key, &name) {
                    Ok(()) => stats.values_deleted += 1,
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            let (kind, data) = parse_data(rest).map_err(syn)?;
            self.set_value_raw(key, &name, kind, &data)?;
            stats.values += 1;
        }
        Ok(stats)
    }
}

/// Decode `.reg` file bytes (UTF-16LE with BOM, or UTF-8 with/without BOM).
pub fn decode_reg_bytes(b: &[u8]) -> Result<String> {
    if b.starts_with(&[0xFF, 0xFE]) {
        let u: Vec<u16> = b[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&u)
            .map_err(|_| Error::new(ErrorKind::Syntax, "invalid UTF-16 in .reg file"));
    }
    let b = b.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(b);
    String::from_utf8(b.to_vec())
        .map_err(|_| Error::new(ErrorKind::Syntax, "invalid UTF-8 in .reg file"))
}

fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut acc: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let piece = if acc.is_some() {
            line.trim_start()
        } else {
            line
        };
        let cont = {
            let t = piece.trim_end();
            t.ends_with('\\') && !t.trim_start().starts_with('[') && !t.ends_with("\\\\\"")
        };
        let (n, mut s) = acc.take().unwrap_or((i + 1, String::new()));
        if cont {
            let t = piece.trim_end();
            s.push_str(&t[..t.len() - 1]);
            acc = Some((n, s));
        } else {
            s.push_str(piece);
            out.push((n, s));
        }
    }
    if let Some(a) = acc {
        out.push(a);
    }
    out
}

fn map_path(p: &str, prefix: Option<&str>) -> std::result::Result<String, String> {
    let comps = names::split_path(p);
    if let Some(pre) = prefix {
        let pc = names::split_path(pre);
        if comps.len() < pc.len()
            || !comps
                .iter()
                .zip(&pc)
                .all(|(a, b)| names::eq(&names::units(a), &names::units(b)))
        {
            return Err(format!("key '{p}' does not start with the prefix '{pre}'"));
        }
        return Ok(comps[pc.len()..].join("\\"));
    }
    let skip = match comps.first().map(|s| s.to_ascii_uppercase()) {
        Some(r) if r == "HKEY_LOCAL_MACHINE" || r == "HKLM" || r == "HKEY_USERS" || r == "HKU" => 2,
        Some(r)
            if r == "HKEY_CURRENT_USER"
                || r == "HKCU"
                || r == "HKEY_CLASSES_ROOT"
                || r == "HKCR" =>
        {
            1
        }
        _ => 0,
    };
    Ok(comps[skip.min(comps.len())..].join("\\"))
}

/// Parse `@` or a quoted, escaped name; returns (name, rest of line).
fn parse_name(l: &str) -> std::result::Result<(String, &str), String> {
    if let Some(r) = l.strip_prefix('@') {
        return Ok((String::new(), r));
    }
    let r = l
        .strip_prefix('"')
        .ok_or("expected a quoted value name or '@'")?;
    let (s, used) = parse_quoted(r)?;
    Ok((s, &r[used..]))
}

/// Parse an escaped string up to its closing quote (the opening quote is
/// already consumed); returns (string, bytes consumed including the quote).
fn parse_quoted(r: &str) -> std::result::Result<(String, usize), String> {
    let mut out = String::new();
    let mut it = r.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match it.next() {
                Some((_, e)) => out.push(e),
                None => return Err("string ends with a lone backslash".into()),
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

fn parse_hex_bytes(s: &str) -> std::result::Result<Vec<u8>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|t| {
            let t = t.trim();
            u8::from_str_radix(t, 16).map_err(|_| format!("bad hex byte '{t}'"))
        })
        .collect()
}

fn parse_data(rest: &str) -> std::result::Result<(u32, Vec<u8>), String> {
    if let Some(r) = rest.strip_prefix('"') {
        let (s, used) = parse_quoted(r)?;
        if !r[used..].trim().is_empty() {
            return Err("text after the closing quote".into());
        }
        return Ok((REG_SZ, Value::String(s).to_bytes()));
    }
    let lower = rest.to_ascii_lowercase();
    if let Some(d) = lower.strip_prefix("dword:") {
        let n = u32::from_str_radix(d.trim(), 16).map_err(|_| format!("bad dword '{d}'"))?;
        return Ok((REG_DWORD, n.to_le_bytes().to_vec()));
    }
    if let Some(d) = lower.strip_prefix("hex:") {
        return Ok((REG_BINARY, parse_hex_bytes(d)?));
    }
    for (tag, is_str) in [("hex(", false), ("str(", true)] {
        if let Some(d) = lower.strip_prefix(tag) {
            let close = d.find("):").ok_or(format!("expected '{tag}N):'"))?;
            let kind = u32::from_str_radix(&d[..close], 16)
                .map_err(|_| format!("bad type '{}'", &d[..close]))?;
            let body = &rest[tag.len() + close + 2..];
            if is_str {
                let r = body
                    .trim()
                    .strip_prefix('"')
                    .ok_or("expected a quoted string after str(N):")?;
                let (s, _) = parse_quoted(r)?;
                return Ok((kind, Value::String(s).to_bytes()));
            }
            return Ok((kind, parse_hex_bytes(body)?));
        }
    }
    Err(format!("unrecognised value data '{rest}'"))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Format one value line (with regedit's 80-column `\` continuation).
fn format_value(lhs: &str, kind: u32, raw: &[u8]) -> String {
    match (kind, Value::from_raw(kind, raw.to_vec())) {
        (REG_SZ, Value::String(s)) if !s.chars().any(|c| c.is_control()) => {
            return format!("{lhs}=\"{}\"", escape(&s));
        }
        (REG_DWORD, Value::Dword(n)) => return format!("{lhs}=dword:{n:08x}"),
        _ => {}
    }
    let mut line = if kind == REG_BINARY {
        format!("{lhs}=hex:")
    } else {
        format!("{lhs}=hex({kind:x}):")
    };
    let mut out = String::new();
    for (i, b) in raw.iter().enumerate() {
        let tok = format!("{b:02x}");
        let last = i + 1 == raw.len();
        if line.len() + 3 > 79 && !last {
            out.push_str(&line);
            out.push_str("\\\n");
            line = String::from("  ");
        }
        line.push_str(&tok);
        if !last {
            line.push(',');
        }
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_round_trip() {
        let mut h = Hive::new_empty("ROOT").unwrap();
        let text = "Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\SYSTEM\\A\\B]\n@=\"def\"\n\"s\"=\"a\\\\b\\\"c\"\n\"d\"=dword:0000002a\n\"m\"=hex(7):61,00,00,00,\\\n  00,00\n\"h\"=str(2):\"%x%\"\n\n[-HKEY_LOCAL_MACHINE\\SYSTEM\\Gone]\n";
        let st = h.import_reg(text, None).unwrap();
        assert_eq!(st.values, 5);
        let k = h.key("a\\b").unwrap();
        assert_eq!(
            k.value("").unwrap().unwrap().data().unwrap(),
            Value::String("def".into())
        );
        assert_eq!(
            k.value("S").unwrap().unwrap().data().unwrap(),
            Value::String("a\\b\"c".into())
        );
        assert_eq!(
            k.value("m").unwrap().unwrap().data().unwrap(),
            Value::MultiString(vec!["a".into()])
        );
        assert_eq!(
            k.value("h").unwrap().unwrap().data().unwrap(),
            Value::ExpandString("%x%".into())
        );
        let out = h.export_reg("", "").unwrap();
        let mut h2 = Hive::new_empty("ROOT").unwrap();
        h2.import_reg(&out, None).unwrap();
        assert_eq!(h2.export_reg("", "").unwrap(), out);
        assert!(h.check().is_empty());
    }
}
