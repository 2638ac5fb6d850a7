//! `hivexregedit --export` of a whole hive read into a map: the oracle's
//! view of a hive, for exact before/after comparisons in tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// (key lower-case) -> (value name lower-case) -> data as hivex prints it
/// (`dword:0000001c`, `hex(1):41,00,00,00`, …; `""` names the default value).
pub type Export = BTreeMap<String, BTreeMap<String, String>>;

/// `hivexregedit --export HIVE \` parsed.
pub fn export(hive: &Path) -> Export {
    crate::need("hivexregedit");
    let text = crate::run(
        Command::new("hivexregedit")
            .arg("--export")
            .arg(hive)
            .arg("\\"),
    );
    parse(&text)
}

/// Parse the text of a `hivexregedit --export`.
pub fn parse(text: &str) -> Export {
    let mut out: Export = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("[\\").and_then(|l| l.strip_suffix(']')) {
            cur = k.to_lowercase();
            out.entry(cur.clone()).or_default();
        } else if let Some(rest) = line.strip_prefix("@=") {
            out.entry(cur.clone())
                .or_default()
                .insert(String::new(), rest.into());
        } else if let Some(rest) = line.strip_prefix('"') {
            let mut name = String::new();
            let mut it = rest.chars();
            while let Some(c) = it.next() {
                match c {
                    '\\' => name.extend(it.next()),
                    '"' => break,
                    c => name.push(c),
                }
            }
            let data: String = it.collect();
            let data = data.strip_prefix('=').unwrap_or(&data).to_string();
            out.entry(cur.clone())
                .or_default()
                .insert(name.to_lowercase(), data);
        }
    }
    out
}

/// A value of an export (key and name case-insensitive).
pub fn val<'a>(e: &'a Export, key: &str, name: &str) -> Option<&'a str> {
    e.get(&key.to_lowercase())?
        .get(&name.to_lowercase())
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_default_and_escaped_names() {
        let e = parse(
            "Windows Registry Editor Version 5.00\n\n[\\A\\B]\n@=hex(1):41,00,00,00\n\"N\\\"x\"=dword:0000001c\n\n[\\C]\n",
        );
        assert_eq!(val(&e, "a\\b", ""), Some("hex(1):41,00,00,00"));
        assert_eq!(val(&e, "A\\B", "n\"X"), Some("dword:0000001c"));
        assert!(e.contains_key("c") && e["c"].is_empty());
    }
}
