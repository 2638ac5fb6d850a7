//! INF text layer: byte decoding, line splitting, sections, quoting,
//! comments, continuations and `%key%` substitution.

use super::{MAX_LINES, MAX_LINE_LEN};
use std::collections::HashMap;

/// Decode INF bytes to text (see the module docs for the rules).
pub(super) fn decode(b: &[u8]) -> String {
    if let Some(rest) = b.strip_prefix(&[0xff, 0xfe]) {
        return utf16(rest, false);
    }
    if let Some(rest) = b.strip_prefix(&[0xfe, 0xff]) {
        return utf16(rest, true);
    }
    if let Some(rest) = b.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    // No BOM: UTF-16 is evident when most 16-bit units of the start are
    // ASCII characters with a NUL high byte.
    let probe = &b[..b.len().min(4096) & !1];
    if probe.len() >= 4 {
        let units = probe.len() / 2;
        let le = probe
            .chunks_exact(2)
            .filter(|p| p[1] == 0 && p[0] != 0)
            .count();
        let be = probe
            .chunks_exact(2)
            .filter(|p| p[0] == 0 && p[1] != 0)
            .count();
        if le * 10 >= units * 6 {
            return utf16(b, false);
        }
        if be * 10 >= units * 6 {
            return utf16(b, true);
        }
    }
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

fn utf16(b: &[u8], big_endian: bool) -> String {
    let units = b.chunks_exact(2).map(|p| {
        if big_endian {
            u16::from_be_bytes([p[0], p[1]])
        } else {
            u16::from_le_bytes([p[0], p[1]])
        }
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// A line before substitution.
pub(super) struct RawLine {
    pub key: Option<String>,
    pub values: Vec<String>,
    pub line: usize,
}

/// A section occurrence before merging.
pub(super) struct RawSection {
    pub name: String,
    pub line: usize,
    pub lines: Vec<RawLine>,
}

/// Split text into section occurrences. Errors are `(line, message)`.
pub(super) fn tokenize(text: &str) -> Result<Vec<RawSection>, (usize, String)> {
    let mut out: Vec<RawSection> = Vec::new();
    let mut pending = String::new();
    let mut pending_start = 0usize;
    let mut n = 0usize;
    for phys in text.split('\n') {
        n += 1;
        if n > MAX_LINES {
            return Err((n, format!("more than {MAX_LINES} lines")));
        }
        let phys = phys.strip_suffix('\r').unwrap_or(phys);
        // A DOS end-of-file mark ends the text.
        let (phys, eof) = match phys.find('\u{1a}') {
            Some(i) => (&phys[..i], true),
            None => (phys, false),
        };
        let content = strip_comment(phys).ok_or_else(|| {
            (
                n,
                "unterminated double-quoted string (a '\"' without its closing '\"')".to_string(),
            )
        })?;
        let content = content.trim_end();
        if pending.is_empty() {
            pending_start = n;
        }
        if pending.len() + content.len() > MAX_LINE_LEN {
            return Err((
                pending_start,
                format!("line longer than {MAX_LINE_LEN} characters"),
            ));
        }
        if let Some(body) = content.strip_suffix('\\') {
            pending.push_str(body);
            if !eof {
                continue;
            }
        } else {
            pending.push_str(content);
        }
        let logical = std::mem::take(&mut pending);
        handle_line(&logical, pending_start, &mut out)?;
        if eof {
            break;
        }
    }
    if !pending.is_empty() {
        let logical = std::mem::take(&mut pending);
        handle_line(&logical, pending_start, &mut out)?;
    }
    Ok(out)
}

fn handle_line(s: &str, n: usize, out: &mut Vec<RawSection>) -> Result<(), (usize, String)> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(());
    }
    if let Some(rest) = t.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(|| {
            (
                n,
                format!("section header '{}' has no closing ']'", short(t)),
            )
        })?;
        out.push(RawSection {
            name: rest[..end].trim().to_string(),
            line: n,
            lines: Vec::new(),
        });
        return Ok(());
    }
    // Lines before the first section header are not part of any section.
    if let Some(sec) = out.last_mut() {
        let (key, values) = split_fields(t);
        sec.lines.push(RawLine {
            key,
            values,
            line: n,
        });
    }
    Ok(())
}

fn short(s: &str) -> String {
    let mut o: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        o.push_str("...");
    }
    o
}

/// The part of a physical line before a `;` comment (outside quotes);
/// `None` when a quote is left open.
fn strip_comment(line: &str) -> Option<&str> {
    let mut inq = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => inq = !inq,
            ';' if !inq => return Some(&line[..i]),
            _ => {}
        }
    }
    if inq {
        None
    } else {
        Some(line)
    }
}

#[derive(Default)]
struct Field {
    buf: String,
    quoted_end: usize,
    started: bool,
}

impl Field {
    fn finish(self) -> String {
        let mut b = self.buf;
        let keep = b[self.quoted_end..].trim_end().len() + self.quoted_end;
        b.truncate(keep);
        b
    }
}

/// Split a logical line into an optional key and its values.
fn split_fields(s: &str) -> (Option<String>, Vec<String>) {
    let mut key = None;
    let mut values = Vec::new();
    let mut cur = Field::default();
    let mut inq = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if inq {
            if c == '"' {
                if it.peek() == Some(&'"') {
                    it.next();
                    cur.buf.push('"');
                } else {
                    inq = false;
                    cur.quoted_end = cur.buf.len();
                }
            } else {
                cur.buf.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                inq = true;
                cur.started = true;
            }
            ',' => values.push(std::mem::take(&mut cur).finish()),
            '=' if key.is_none() && values.is_empty() => {
                key = Some(std::mem::take(&mut cur).finish());
            }
            c if c.is_whitespace() && !cur.started => {}
            c => {
                cur.started = true;
                cur.buf.push(c);
            }
        }
    }
    values.push(cur.finish());
    (key, values)
}

/// Replace `%key%` tokens and `%%`. `budget` bounds the total output.
pub(super) fn substitute(
    s: &str,
    strings: &HashMap<String, String>,
    budget: &mut usize,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('%') {
            out.push('%');
            rest = a;
            continue;
        }
        match after.find('%') {
            Some(j) => {
                let name = &after[..j];
                match strings.get(&name.to_ascii_lowercase()) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push('%');
                        out.push_str(name);
                        out.push('%');
                    }
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
        if out.len() > *budget {
            return Err(format!(
                "%key% substitution produces more than the {} byte limit",
                super::MAX_EXPANDED
            ));
        }
    }
    out.push_str(rest);
    if out.len() > *budget {
        return Err(format!(
            "%key% substitution produces more than the {} byte limit",
            super::MAX_EXPANDED
        ));
    }
    *budget -= out.len();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_quotes_and_blanks() {
        let (k, v) = split_fields(r#"HKR, "Parameters\PnpInterface", "5", %REG_DWORD%, 0x1"#);
        assert_eq!(k, None);
        assert_eq!(
            v,
            vec!["HKR", r"Parameters\PnpInterface", "5", "%REG_DWORD%", "0x1"]
        );
        let (k, v) = split_fields(r#"a = " x, ""y"" " , , z"#);
        assert_eq!(k.as_deref(), Some("a"));
        assert_eq!(v, vec![r#" x, "y" "#, "", "z"]);
        let (k, v) = split_fields("k = v=w");
        assert_eq!(k.as_deref(), Some("k"));
        assert_eq!(v, vec!["v=w"]);
        let (k, v) = split_fields("a,b=c");
        assert_eq!(k, None);
        assert_eq!(v, vec!["a", "b=c"]);
    }

    #[test]
    fn substitution() {
        let mut t = HashMap::new();
        t.insert("a".to_string(), "%a%".to_string());
        t.insert("reg_dword".to_string(), "0x00010001".to_string());
        let mut b = 1000;
        assert_eq!(
            substitute("%REG_DWORD%/%a%/%%x%%/%12%\\v/%", &t, &mut b).unwrap(),
            "0x00010001/%a%/%x%/%12%\\v/%"
        );
        let mut small = 4;
        assert!(substitute("%reg_dword%", &t, &mut small).is_err());
    }

    #[test]
    fn decoding() {
        let s = "[Version]\r\nClass=Net\r\n";
        let le: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        assert_eq!(decode(&le), s);
        assert_eq!(decode(&be), s);
        let mut bom = vec![0xff, 0xfe];
        bom.extend_from_slice(&le);
        assert_eq!(decode(&bom), s);
        assert_eq!(decode(b"\xef\xbb\xbfx=\xc3\xa9"), "x=\u{e9}");
        assert_eq!(decode(b"x=\xe9"), "x=\u{e9}");
    }
}
