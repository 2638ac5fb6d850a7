//! Windows INF file parser.
//!
//! Input bytes are decoded as UTF-16LE/BE (with a byte-order mark, or
//! without one when the NUL bytes make UTF-16 evident), UTF-8 (with or
//! without BOM), else Latin-1. The text is split into sections (names
//! compared case-insensitively; repeated sections are merged in file
//! order) of lines `key = v1, v2, ...` or `v1, v2, ...`. Double-quoted
//! strings may hold commas, `=` and `;` (`""` inside quotes is one `"`);
//! `;` outside quotes starts a comment; a `\` ending a line joins it to the
//! next. `%key%` tokens are replaced by the value of `key` in `[Strings]`
//! (then any `[Strings.<locale>]` section, `0409` first) and `%%` becomes
//! `%`; unknown tokens such as directory ids (`%12%`) stay as written.
//! String values are not themselves expanded, so there is no recursion.
//!
//! Limits (inputs are untrusted): [`MAX_INF_SIZE`] bytes, [`MAX_LINES`]
//! lines, [`MAX_LINE_LEN`] characters per logical line, and a cap on the
//! total text produced by `%key%` expansion. Errors name the INF file and
//! the line.
//!
//! Typed accessors ([`Inf::version`], [`Inf::models`],
//! [`Inf::install_section`], [`Inf::add_reg`], [`Inf::summary`], ...) live
//! in the submodules and are re-exported here.

mod addreg;
mod files;
mod text;
mod typed;

pub use addreg::{AddRegLine, RegData};
pub use files::{CopyFileEntry, CopyFilesRef, DestinationDir, SourceDisk, SourceFile};
pub use typed::{
    AddService, DriverSummary, InstallSection, Manufacturer, Model, ModelsSection, OsVersion,
    ServiceInstall, ServiceSummary, TargetOs, Version,
};

use std::collections::HashMap;
use std::fmt;

/// Largest INF accepted, in bytes.
pub const MAX_INF_SIZE: usize = 16 << 20;
/// Most physical lines accepted.
pub const MAX_LINES: usize = 1_000_000;
/// Longest logical line (after joining continuations), in characters.
pub const MAX_LINE_LEN: usize = 64 << 10;
/// Most text produced by `%key%` substitution over the whole file, in bytes.
pub const MAX_EXPANDED: usize = 64 << 20;

/// An INF parse or content error, naming the file and (when known) the
/// line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfError {
    /// INF file name as given to [`Inf::parse`].
    pub file: String,
    /// 1-based line number, when the problem is on a line.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for InfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.msg),
            None => write!(f, "{}: {}", self.file, self.msg),
        }
    }
}

impl std::error::Error for InfError {}

/// One line of a section, after unquoting and `%key%` substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The text left of `=`, when the line has one.
    pub key: Option<String>,
    /// The comma-separated values (empty fields kept as empty strings).
    pub values: Vec<String>,
    /// 1-based line number where the (logical) line starts.
    pub line: usize,
}

impl Line {
    /// Value `i`, or `""` when absent.
    pub fn value(&self, i: usize) -> &str {
        self.values.get(i).map(String::as_str).unwrap_or("")
    }

    /// Whether the key equals `k` (case-insensitive).
    pub fn key_is(&self, k: &str) -> bool {
        self.key
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(k))
    }
}

/// A section: its name as first written and its lines (all occurrences of
/// the section merged in file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name as written in the first header.
    pub name: String,
    /// Line number of the first header.
    pub line: usize,
    /// Lines in file order.
    pub lines: Vec<Line>,
}

impl Section {
    /// First line whose key is `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.key_is(key))
    }

    /// Every line whose key is `key` (case-insensitive).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
        self.lines.iter().filter(move |l| l.key_is(key))
    }

    /// First value of the first line keyed `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|l| l.value(0))
    }
}

/// A parsed INF file.
#[derive(Debug, Clone)]
pub struct Inf {
    file: String,
    sections: Vec<Section>,
    index: HashMap<String, usize>,
    strings: HashMap<String, String>,
}

impl Inf {
    /// Parse INF bytes. `file` names the INF in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Inf, InfError> {
        let err = |line: Option<usize>, msg: String| InfError {
            file: file.to_string(),
            line,
            msg,
        };
        if bytes.len() > MAX_INF_SIZE {
            return Err(err(
                None,
                format!(
                    "{} bytes is larger than the {} byte limit for an INF file",
                    bytes.len(),
                    MAX_INF_SIZE
                ),
            ));
        }
        let text = text::decode(bytes);
        let raw = text::tokenize(&text).map_err(|(l, m)| err(Some(l), m))?;

        // Sections, merged by case-insensitive name.
        let mut sections: Vec<Section> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for rs in raw {
            let lname = rs.name.to_ascii_lowercase();
            let i = match index.get(&lname) {
                Some(&i) => i,
                None => {
                    sections.push(Section {
                        name: rs.name.clone(),
                        line: rs.line,
                        lines: Vec::new(),
                    });
                    index.insert(lname, sections.len() - 1);
                    sections.len() - 1
                }
            };
            sections[i].lines.extend(rs.lines.into_iter().map(|l| Line {
                key: l.key,
                values: l.values,
                line: l.line,
            }));
        }

        // String table: [Strings] first, then locale sections as fallback
        // (0409 first, then in file order).
        let mut strings: HashMap<String, String> = HashMap::new();
        let mut order: Vec<usize> = Vec::new();
        if let Some(&i) = index.get("strings") {
            order.push(i);
        }
        if let Some(&i) = index.get("strings.0409") {
            order.push(i);
        }
        for (i, s) in sections.iter().enumerate() {
            let l = s.name.to_ascii_lowercase();
            if l.starts_with("strings.") && l != "strings.0409" {
                order.push(i);
            }
        }
        for i in order {
            for l in &sections[i].lines {
                if let Some(k) = &l.key {
                    strings
                        .entry(k.to_ascii_lowercase())
                        .or_insert_with(|| l.values.join(","));
                }
            }
        }

        // Substitute %key% everywhere except in string sections.
        let mut budget = MAX_EXPANDED;
        for s in sections.iter_mut() {
            let l = s.name.to_ascii_lowercase();
            if l == "strings" || l.starts_with("strings.") {
                continue;
            }
            for line in s.lines.iter_mut() {
                let n = line.line;
                if let Some(k) = &line.key {
                    line.key = Some(
                        text::substitute(k, &strings, &mut budget).map_err(|m| err(Some(n), m))?,
                    );
                }
                for v in line.values.iter_mut() {
                    if v.contains('%') {
                        *v = text::substitute(v, &strings, &mut budget)
                            .map_err(|m| err(Some(n), m))?;
                    }
                }
            }
        }
        Ok(Inf {
            file: file.to_string(),
            sections,
            index,
            strings,
        })
    }

    /// The file name given to [`Inf::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// All sections in order of first appearance.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// A section by name (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.index
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.sections[i])
    }

    /// The value of a `[Strings]` key (case-insensitive), unexpanded.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.strings
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// An error about this INF at `line`.
    pub(crate) fn error(&self, line: Option<usize>, msg: impl Into<String>) -> InfError {
        InfError {
            file: self.file.clone(),
            line,
            msg: msg.into(),
        }
    }
}

/// Parse an INF number: `0x` hexadecimal or decimal, surrounding blanks
/// ignored. `None` when it is not a number or does not fit 32 bits.
pub fn parse_number(s: &str) -> Option<u32> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if h.is_empty() {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
}
