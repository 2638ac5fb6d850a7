//! Boot loader configuration: which kernel, initrd and command line the
//! guest boots by default.
//!
//! * grub2 `grub.cfg`: `set` statements (with `if`/`else`/`fi` over simple
//!   `[ ... ]` tests), `menuentry` and `submenu` blocks, `linux`/`initrd`
//!   lines (also `linux16`/`linuxefi`...); `default` as an index, a
//!   `submenu>entry` path, a title or an id, or `${saved_entry}` etc. from
//!   `grubenv`. A `blscfg` command adds the BLS entries.
//! * BLS (`/boot/loader/entries/*.conf`): `title`, `version`, `linux`,
//!   `initrd`, `options` (with `$kernelopts` from `grubenv`), sorted newest
//!   version first as grub's `blscfg` does; the default is `saved_entry`.
//!
//! Paths are as written (relative to the filesystem grub reads them from:
//! `/vmlinuz-...` when `/boot` is its own partition).

use super::{LinuxError, Result};
use std::collections::BTreeMap;

/// One bootable entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootEntry {
    /// Title.
    pub title: String,
    /// `--id` (grub) or the file name without `.conf` (BLS).
    pub id: Option<String>,
    /// Kernel path.
    pub kernel: String,
    /// Initrd paths (an early-microcode image may come first).
    pub initrd: Vec<String>,
    /// Kernel command line.
    pub cmdline: String,
    /// Titles of the enclosing submenus (grub).
    pub submenu: Vec<String>,
}

/// Longest config accepted (bytes).
pub const MAX_CONFIG: usize = 4 << 20;
/// Deepest `menuentry`/`submenu` nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most entries kept.
pub const MAX_ENTRIES: usize = 4096;

/// Parse `grubenv` (`key=value` lines; `#` padding ignored).
pub fn parse_grubenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .take(10_000)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Split a grub script line into words: `'...'` literal, `"..."` with
/// variable expansion, `\` escapes, `$x`/`${x}` expanded from `vars`.
/// Comments (`#` at a word start) end the line.
fn words(line: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' | ';' => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
                if c == ';' {
                    out.push(";".into());
                }
            }
            '#' if !have => break,
            '\'' => {
                have = true;
                for d in it.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                have = true;
                while let Some(d) = it.next() {
                    match d {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = it.next() {
                                cur.push(e);
                            }
                        }
                        '$' => cur.push_str(&expand(&mut it, vars)),
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(e) = it.next() {
                    cur.push(e);
                }
            }
            '$' => {
                have = true;
                cur.push_str(&expand(&mut it, vars));
            }
            _ => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

fn expand(
    it: &mut std::iter::Peekable<std::str::Chars>,
    vars: &BTreeMap<String, String>,
) -> String {
    let mut name = String::new();
    if it.peek() == Some(&'{') {
        it.next();
        for d in it.by_ref() {
            if d == '}' {
                break;
            }
            name.push(d);
        }
    } else {
        while let Some(&d) = it.peek() {
            if d.is_ascii_alphanumeric() || d == '_' {
                name.push(d);
                it.next();
            } else {
                break;
            }
        }
    }
    if name == "menuentry_id_option" {
        return "--id".into();
    }
    vars.get(&name).cloned().unwrap_or_default()
}

/// The non-empty words (an unset `$var` expands to nothing).
fn nonempty(w: &[String]) -> Vec<String> {
    w.iter().filter(|x| !x.is_empty()).cloned().collect()
}

/// Evaluate a `[ ... ]` test; None when it is not one we understand.
fn test(w: &[String]) -> Option<bool> {
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    let inner = match w.as_slice() {
        ["[", rest @ .., "]"] => rest.to_vec(),
        _ => return None,
    };
    Some(match inner.as_slice() {
        [] => false,
        [s] => !s.is_empty(),
        ["-n", s] => !s.is_empty(),
        ["-z", s] => s.is_empty(),
        ["-s" | "-f" | "-e" | "-d", _] => true,
        [a, "=" | "==", b] => a == b,
        [a, "!=", b] => a != b,
        _ => return None,
    })
}

#[derive(Debug)]
enum Block {
    Menu(BootEntry),
    Sub(String, usize),
    Other,
}

/// What `grub.cfg` says.
#[derive(Clone, Debug, Default)]
pub struct GrubConfig {
    /// Entries in menu order (submenu entries flattened, with their
    /// submenu titles).
    pub entries: Vec<BootEntry>,
    /// Top-level items: `(title, id, index of the first entry, count)`.
    tops: Vec<(String, Option<String>, usize, usize)>,
    /// The `default` variable after the script ran.
    pub default: Option<String>,
    /// The script calls `blscfg` (entries come from `loader/entries`).
    pub uses_bls: bool,
}

/// Parse `grub.cfg` with the variables of `grubenv`.
pub fn parse_grub_cfg(text: &str, grubenv: &BTreeMap<String, String>) -> Result<GrubConfig> {
    if text.len() > MAX_CONFIG {
        return Err(LinuxError::Limit {
            what: "grub.cfg",
            offset: MAX_CONFIG as u64,
            limit: MAX_CONFIG as u64,
        });
    }
    let mut vars = grubenv.clone();
    let mut cfg = GrubConfig::default();
    let mut blocks: Vec<Block> = Vec::new();
    // if-stack: (this branch runs, some branch already ran, parent runs)
    let mut ifs: Vec<(bool, bool, bool)> = Vec::new();
    let running = |ifs: &Vec<(bool, bool, bool)>| ifs.last().is_none_or(|t| t.0);
    for (lineno, line) in text.lines().enumerate() {
        let w = words(line, &vars);
        for part in w.split(|x| x == ";") {
            let cmd: Vec<String> = match part.first().map(String::as_str) {
                Some("then" | "do") => part[1..].to_vec(),
                _ => part.to_vec(),
            };
            let Some(first) = cmd.first().cloned() else {
                continue;
            };
            match first.as_str() {
                "if" | "elif" => {
                    let cond = test(&cmd[1..]).unwrap_or(true);
                    if first == "if" {
                        let parent = running(&ifs);
                        ifs.push((parent && cond, parent && cond, parent));
                    } else if let Some(t) = ifs.last_mut() {
                        let run = t.2 && !t.1 && cond;
                        t.0 = run;
                        t.1 |= run;
                    }
                    continue;
                }
                "else" => {
                    if let Some(t) = ifs.last_mut() {
                        t.0 = t.2 && !t.1;
                        t.1 = true;
                    }
                    continue;
                }
                "fi" => {
                    ifs.pop();
                    continue;
                }
                _ => {}
            }
            if !running(&ifs) && !matches!(first.as_str(), "menuentry" | "submenu" | "}") {
                continue;
            }
            match first.as_str() {
                "set" if cmd.len() >= 2 => {
                    if let Some((k, v)) = cmd[1].split_once('=') {
                        vars.insert(k.to_string(), v.to_string());
                        if k == "default" {
                            cfg.default = Some(v.to_string());
                        }
                    }
                }
                "menuentry" | "submenu" => {
                    let title = cmd.get(1).cloned().unwrap_or_default();
                    let id = cmd
                        .iter()
                        .position(|x| x == "--id")
                        .and_then(|i| cmd.get(i + 1))
                        .cloned();
                    if first == "submenu" {
                        let start = cfg.entries.len();
                        cfg.tops.push((title.clone(), id, start, 0));
                        blocks.push(Block::Sub(title, cfg.tops.len() - 1));
                    } else {
                        blocks.push(Block::Menu(BootEntry {
                            title,
                            id,
                            ..Default::default()
                        }));
                    }
                }
                "function" => blocks.push(Block::Other),
                "}" => match blocks.pop() {
                    Some(Block::Menu(mut e)) => {
                        if cfg.entries.len() >= MAX_ENTRIES {
                            return Err(LinuxError::Limit {
                                what: "grub.cfg menu entries",
                                offset: lineno as u64 + 1,
                                limit: MAX_ENTRIES as u64,
                            });
                        }
                        e.submenu = blocks
                            .iter()
                            .filter_map(|b| match b {
                                Block::Sub(t, _) => Some(t.clone()),
                                _ => None,
                            })
                            .collect();
                        if e.submenu.is_empty() {
                            cfg.tops
                                .push((e.title.clone(), e.id.clone(), cfg.entries.len(), 1));
                        }
                        cfg.entries.push(e);
                    }
                    Some(Block::Sub(_, top)) => {
                        let t = &mut cfg.tops[top];
                        t.3 = cfg.entries.len() - t.2;
                    }
                    Some(_) | None => {}
                },
                "linux" | "linux16" | "linuxefi" | "kernel" => {
                    if let Some(Block::Menu(e)) = blocks.last_mut() {
                        e.kernel = cmd.get(1).cloned().unwrap_or_default();
                        e.cmdline = nonempty(cmd.get(2..).unwrap_or_default()).join(" ");
                    }
                }
                "initrd" | "initrd16" | "initrdefi" => {
                    if let Some(Block::Menu(e)) = blocks.last_mut() {
                        e.initrd = nonempty(&cmd[1..]);
                    }
                }
                "blscfg" => cfg.uses_bls = true,
                _ => {
                    if cmd.last().is_some_and(|x| x == "{") {
                        blocks.push(Block::Other);
                    }
                }
            }
            if blocks.len() > MAX_DEPTH {
                return Err(LinuxError::Limit {
                    what: "grub.cfg block nesting (line)",
                    offset: lineno as u64 + 1,
                    limit: MAX_DEPTH as u64,
                });
            }
        }
    }
    Ok(cfg)
}

impl GrubConfig {
    /// The entry `default` selects (index, title, id, `a>b` path); entry 0
    /// when unset or not found.
    pub fn default_entry(&self) -> Option<&BootEntry> {
        let d = self.default.as_deref().unwrap_or("0").trim();
        self.select(d).or_else(|| self.entries.first())
    }

    fn select(&self, d: &str) -> Option<&BootEntry> {
        if d.is_empty() {
            return None;
        }
        self.select_path(d).or_else(|| {
            // A title or id of a nested entry given without its submenu.
            self.entries
                .iter()
                .find(|e| e.id.as_deref() == Some(d) || e.title == d)
        })
    }

    fn select_path(&self, d: &str) -> Option<&BootEntry> {
        let mut parts = d.split('>');
        let top = parts.next()?;
        let sub = parts.next();
        let t = if let Ok(i) = top.parse::<usize>() {
            self.tops.get(i)?
        } else {
            self.tops
                .iter()
                .find(|t| t.1.as_deref() == Some(top) || t.0 == top)?
        };
        let range = &self.entries[t.2..(t.2 + t.3).min(self.entries.len())];
        match sub {
            None => range.first(),
            Some(s) => match s.parse::<usize>() {
                Ok(i) => range.get(i),
                Err(_) => range
                    .iter()
                    .find(|e| e.id.as_deref() == Some(s) || e.title == s),
            },
        }
    }
}

/// Parse one BLS entry file (`name` is the file name, `id` is it without
/// `.conf`), expanding `$var` in `options` from `grubenv`.
pub fn parse_bls(name: &str, text: &str, grubenv: &BTreeMap<String, String>) -> Result<BootEntry> {
    if text.len() > 1 << 20 {
        return Err(LinuxError::Limit {
            what: "BLS entry",
            offset: 0,
            limit: 1 << 20,
        });
    }
    let mut e = BootEntry {
        id: Some(name.trim_end_matches(".conf").to_string()),
        ..Default::default()
    };
    let mut version = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let v = v.trim();
        match k {
            "title" => e.title = v.to_string(),
            "version" => version = v.to_string(),
            "linux" => e.kernel = v.to_string(),
            "initrd" => e.initrd.extend(nonempty(&words(v, grubenv))),
            "options" => {
                let w = words(v, grubenv);
                e.cmdline = w
                    .iter()
                    .filter(|x| !x.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            _ => {}
        }
    }
    if e.title.is_empty() {
        e.title = version;
    }
    if e.kernel.is_empty() {
        return Err(LinuxError::Format {
            what: "BLS entry",
            offset: 0,
            detail: format!("{name}: no `linux` line"),
        });
    }
    Ok(e)
}

/// Compare version-ish strings the rpm way: runs of digits numerically,
/// runs of letters lexically.
pub fn vercmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut v = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let d = b[i].is_ascii_digit();
            let st = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == d {
                i += 1;
            }
            v.push((d, &s[st..i]));
        }
        v
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (p, q) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                p.len().cmp(&q.len()).then(p.cmp(q))
            }
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => x.1.cmp(y.1),
        };
        if o.is_ne() {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

/// The guest's default boot entry, from whatever configuration exists:
/// `grub_cfg` (text), `grubenv` (text), BLS files `(file name, text)`.
/// BLS entries are used when there is no `grub.cfg` or it runs `blscfg`.
pub fn default_boot(
    grub_cfg: Option<&str>,
    grubenv: Option<&str>,
    bls: &[(String, String)],
) -> Result<BootEntry> {
    let env = grubenv.map(parse_grubenv).unwrap_or_default();
    let grub = grub_cfg.map(|t| parse_grub_cfg(t, &env)).transpose()?;
    let use_bls = !bls.is_empty()
        && grub
            .as_ref()
            .is_none_or(|g| g.uses_bls || g.entries.is_empty());
    if use_bls {
        let mut entries = bls
            .iter()
            .take(MAX_ENTRIES)
            .map(|(n, t)| parse_bls(n, t, &env))
            .collect::<Result<Vec<_>>>()?;
        entries
            .sort_by(|a, b| vercmp(b.id.as_deref().unwrap_or(""), a.id.as_deref().unwrap_or("")));
        let want = grub
            .as_ref()
            .and_then(|g| g.default.clone())
            .filter(|d| !d.is_empty())
            .or_else(|| env.get("saved_entry").cloned());
        let pick = want
            .as_deref()
            .and_then(|w| match w.parse::<usize>() {
                Ok(i) => entries.get(i).cloned(),
                Err(_) => entries
                    .iter()
                    .find(|e| e.id.as_deref() == Some(w) || e.title == w)
                    .cloned(),
            })
            .or_else(|| entries.first().cloned());
        return pick.ok_or_else(|| LinuxError::NotFound("no BLS entry".into()));
    }
    let g = grub.ok_or_else(|| LinuxError::NotFound("no grub.cfg and no BLS entries".into()))?;
    g.default_entry()
        .cloned()
        .ok_or_else(|| LinuxError::NotFound("grub.cfg has no menuentry".into()))
}
