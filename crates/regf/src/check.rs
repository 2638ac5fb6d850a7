//! The invariant checker: every structural rule a loader relies on.

use std::collections::{HashMap, HashSet};

use crate::base::{le16, le32, BaseBlock};
use crate::edit::aux_for;
use crate::hive::{Hive, HBIN_HEADER};
use crate::names;
use crate::read::{ListKind, BIG_DATA_SEGMENT, KEY_HIVE_ENTRY, NONE};
use crate::security::validate_descriptor;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Severity {
    /// Breaks a rule a loader checks or relies on.
    Error,
    /// Harmless for loading (e.g. an allocated cell nothing refers to).
    Warning,
}

/// One invariant violation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Severity.
    pub severity: Severity,
    /// Cell offset (relative to the hive bins data), when relevant.
    pub cell: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.cell {
            Some(c) => write!(
                f,
                "{s}: cell {c:#x} (file offset {:#x}): {}",
                c as u64 + 4096,
                self.message
            ),
            None => write!(f, "{s}: {}", self.message),
        }
    }
}

/// Names of the cell uses the checker records.
const KINDS: [&str; 12] = [
    "key node",
    "class name",
    "value list",
    "value",
    "subkey list",
    "subkey leaf",
    "value data",
    "big data segment list",
    "big data segment",
    "security",
    "other",
    "other",
];

struct Ck<'h> {
    h: &'h Hive,
    out: Vec<Problem>,
    /// Per 8-byte slot of the hive bins data: index+1 into `KINDS` of the
    /// use recorded for the cell starting there (0 = unused).
    used: Vec<u8>,
    sk_refs: HashMap<u32, u32>,
}

impl Ck<'_> {
    fn err(&mut self, cell: Option<u32>, m: impl Into<String>) {
        self.out.push(Problem {
            severity: Severity::Error,
            cell,
            message: m.into(),
        });
    }
    /// Mark a cell as referenced; false (and a problem) if invalid or reused.
    fn mark(&mut self, off: u32, what: &'static str) -> bool {
        if let Err(e) = self.h.cell(off) {
            self.err(Some(off), format!("{what}: {}", e.message));
            return false;
        }
        let slot = (off / 8) as usize;
        let prev = self.used[slot];
        if prev != 0 {
            self.err(
                Some(off),
                format!(
                    "cell used as {what} is already used as {}",
                    KINDS[prev as usize - 1]
                ),
            );
            return false;
        }
        self.used[slot] = KINDS
            .iter()
            .position(|k| *k == what)
            .map_or(11, |i| i as u8 + 1);
        true
    }
}

impl Hive {
    /// Check every structural invariant of the in-memory hive. An empty
    /// result means a loader will accept it. Checked: base block fields
    /// (version, type, root, bins size); bin headers and exact cell tiling,
    /// 8-byte cell sizes, free-cell index consistency; the key tree (no
    /// cycles, no cell used twice, parent links, root flag, subkey counts,
    /// leaf/ri structure, strictly sorted case-insensitive unique names,
    /// lh hashes and lf hints, value counts, unique value names, data sizes,
    /// inline data <= 4 bytes, big data segment counts, class names, the
    /// nk "largest" fields); security cells (valid self-relative
    /// descriptor, reference count equal to the number of keys using it,
    /// consistent circular flink/blink list containing every sk in use);
    /// and allocated cells nothing refers to (warnings).
    pub fn check(&self) -> Vec<Problem> {
        let mut ck = Ck {
            h: self,
            out: Vec::new(),
            used: vec![0; self.data.len() / 8 + 1],
            sk_refs: HashMap::new(),
        };
        self.check_base(&mut ck);
        self.check_bins(&mut ck);
        self.check_tree(&mut ck);
        self.check_sk(&mut ck);
        // Leaks.
        for &(bo, bs) in &self.bins {
            let mut c = bo + HBIN_HEADER;
            while c < bo + bs {
                let raw = le32(&self.data, c as usize) as i32;
                let sz = raw.unsigned_abs().max(8);
                if raw < 0 && ck.used[(c / 8) as usize] == 0 {
                    ck.out.push(Problem {
                        severity: Severity::Warning,
                        cell: Some(c),
                        message: "allocated cell is not referenced by anything".into(),
                    });
                }
                c += sz;
            }
        }
        ck.out
    }

    /// Number of errors (not warnings) found by [`Hive::check`].
    pub fn check_errors(&self) -> Vec<Problem> {
        self.check()
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect()
    }

    fn check_base(&self, ck: &mut Ck) {
        let b = self.base_block();
        if b.major != 1 || !(2..=6).contains(&b.minor) {
            ck.err(None, format!("version {}.{}", b.major, b.minor));
        }
        if b.file_type != 0 {
            ck.err(None, format!("file type {} (expected 0)", b.file_type));
        }
        if b.bins_size as usize != self.data.len() && self.modified {
            // Fixed on commit; only a problem for unmodified hives.
        } else if b.bins_size as usize != self.data.len() {
            ck.err(
                None,
                format!(
                    "hive bins data size {} but {} bytes of bins",
                    b.bins_size,
                    self.data.len()
                ),
            );
        }
    }

    fn check_bins(&self, ck: &mut Ck) {
        let mut pos = 0u32;
        let mut free = 0usize;
        for &(bo, bs) in &self.bins {
            if bo != pos
                || &self.data[bo as usize..bo as usize + 4] != b"hbin"
                || le32(&self.data, bo as usize + 4) != bo
                || le32(&self.data, bo as usize + 8) != bs
                || bs % 4096 != 0
            {
                ck.err(None, format!("hive bin at {bo:#x}: bad header"));
            }
            let mut c = bo + HBIN_HEADER;
            while c < bo + bs {
                let raw = le32(&self.data, c as usize) as i32;
                let sz = raw.unsigned_abs();
                if sz < 8 || !sz.is_multiple_of(8) || c + sz > bo + bs {
                    ck.err(
                        Some(c),
                        format!("cell size {raw} breaks the tiling of bin {bo:#x}"),
                    );
                    break;
                }
                if !self.is_start(c) {
                    ck.err(Some(c), "cell start index out of date");
                }
                if raw > 0 {
                    free += 1;
                    if self.free_by_off.get(&c) != Some(&sz) {
                        ck.err(Some(c), "free cell missing from the free index");
                    }
                }
                c += sz;
            }
            pos = bo + bs;
        }
        if pos as usize != self.data.len() {
            ck.err(None, "hive bins do not cover the hive bins data");
        }
        if free != self.free_by_off.len() || free != self.free_by_size.len() {
            ck.err(None, "free cell index holds stale entries");
        }
    }

    fn check_tree(&self, ck: &mut Ck) {
        let root = self.root_offset();
        let mut stack = vec![(root, None::<u32>)];
        let mut seen = vec![false; self.data.len() / 8 + 1];
        while let Some((off, parent)) = stack.pop() {
            let slot = seen.get_mut((off / 8) as usize);
            if slot.as_deref() == Some(&true) {
                ck.err(Some(off), "key reachable twice (cycle or shared subtree)");
                continue;
            }
            if let Some(x) = slot {
                *x = true;
            }
            if !ck.mark(off, "key node") {
                continue;
            }
            let nk = match self.nk(off) {
                Ok(n) => n,
                Err(e) => {
                    ck.err(Some(off), e.message);
                    continue;
                }
            };
            match parent {
                None if nk.flags & KEY_HIVE_ENTRY == 0 => {
                    ck.err(Some(off), "root key lacks KEY_HIVE_ENTRY")
                }
                Some(p) => {
                    if nk.parent != p {
                        ck.err(
                            Some(off),
                            format!("parent field {:#x}, expected {p:#x}", nk.parent),
                        );
                    }
                    if nk.flags & KEY_HIVE_ENTRY != 0 {
                        ck.err(Some(off), "non-root key has KEY_HIVE_ENTRY");
                    }
                    if nk.name.is_empty() {
                        ck.err(Some(off), "empty key name");
                    }
                }
                _ => {}
            }
            *ck.sk_refs.entry(nk.sk).or_default() += 1;
            if nk.class_len > 0 && nk.class != NONE && ck.mark(nk.class, "class name") {
                if let Ok(c) = self.cell(nk.class) {
                    if c.len() < nk.class_len as usize {
                        ck.err(Some(nk.class), "class name longer than its cell");
                    }
                }
            }
            let nkc = self.cell(off).unwrap_or(&[]);
            let max_name = le32(nkc, 52) & 0xFFFF;
            let max_class = le32(nkc, 56);
            let max_vname = le32(nkc, 60);
            let max_vdata = le32(nkc, 64);
            // Subkeys.
            let children = self.check_subkeys(ck, off, &nk);
            for &c in &children {
                if let Ok(sub) = self.nk(c) {
                    if (sub.name.len() as u32) * 2 > max_name && sub.name.len() as u32 > max_name {
                        ck.err(
                            Some(off),
                            format!("largest subkey name length {max_name} < {}", sub.name.len()),
                        );
                    }
                    if sub.class_len as u32 > max_class && sub.class != NONE {
                        ck.err(Some(off), "largest subkey class length too small");
                    }
                }
                stack.push((c, Some(off)));
            }
            // Values.
            if nk.value_count > 0 {
                if !ck.mark(nk.values, "value list") {
                    continue;
                }
                let vals = match self.value_offsets(&nk) {
                    Ok(v) => v,
                    Err(e) => {
                        ck.err(Some(off), e.message);
                        continue;
                    }
                };
                let mut vnames: Vec<Vec<u16>> = Vec::new();
                for v in vals {
                    if !ck.mark(v, "value") {
                        continue;
                    }
                    let vk = match self.vk(v) {
                        Ok(x) => x,
                        Err(e) => {
                            ck.err(Some(v), e.message);
                            continue;
                        }
                    };
                    let up: Vec<u16> = vk.name.iter().map(|&c| names::upcase_unit(c)).collect();
                    if vnames.contains(&up) {
                        ck.err(
                            Some(v),
                            format!("duplicate value name '{}'", names::to_string(&vk.name)),
                        );
                    }
                    vnames.push(up);
                    if (vk.name.len() as u32) * 2 > max_vname && vk.name.len() as u32 > max_vname {
                        ck.err(Some(off), "largest value name length too small");
                    }
                    let size = vk.size_raw & 0x7FFF_FFFF;
                    if size > max_vdata {
                        ck.err(
                            Some(off),
                            format!("largest value data size {max_vdata} < {size}"),
                        );
                    }
                    self.check_data(ck, v, vk.size_raw, vk.data_off);
                }
            }
        }
    }

    fn check_subkeys(&self, ck: &mut Ck, off: u32, nk: &crate::read::Nk) -> Vec<u32> {
        if nk.subkey_count == 0 {
            return Vec::new();
        }
        if !ck.mark(nk.subkeys, "subkey list") {
            return Vec::new();
        }
        let c = self.cell(nk.subkeys).unwrap_or(&[]);
        let leaves: Vec<u32> = if c.len() >= 4 && &c[0..2] == b"ri" {
            let n = le16(c, 2) as usize;
            if 4 + n * 4 > c.len() {
                ck.err(Some(nk.subkeys), "index root count exceeds the cell");
                return Vec::new();
            }
            let l: Vec<u32> = (0..n).map(|i| le32(c, 4 + i * 4)).collect();
            let mut ok = Vec::new();
            for x in l {
                if ck.mark(x, "subkey leaf") {
                    ok.push(x);
                }
            }
            ok
        } else {
            vec![nk.subkeys]
        };
        let mut all = Vec::new();
        let mut prev: Option<Vec<u16>> = None;
        for l in leaves {
            let (kind, entries) = match self.leaf(l) {
                Ok(x) => x,
                Err(e) => {
                    ck.err(Some(l), e.message);
                    return Vec::new();
                }
            };
            if entries.is_empty() {
                ck.err(Some(l), "empty subkey leaf");
            }
            for (o, aux) in entries {
                let Ok(sub) = self.nk(o) else {
                    ck.err(Some(l), format!("entry {o:#x} is not a key node"));
                    continue;
                };
                if kind != ListKind::Li && aux != aux_for(kind, &sub.name) {
                    ck.err(
                        Some(l),
                        format!(
                            "wrong {:?} hash/hint for '{}'",
                            kind,
                            names::to_string(&sub.name)
                        ),
                    );
                }
                if let Some(p) = &prev {
                    if names::cmp(p, &sub.name) != std::cmp::Ordering::Less {
                        ck.err(
                            Some(l),
                            format!(
                                "subkeys not strictly sorted at '{}'",
                                names::to_string(&sub.name)
                            ),
                        );
                    }
                }
                prev = Some(sub.name);
                all.push(o);
            }
        }
        if all.len() != nk.subkey_count as usize {
            ck.err(
                Some(off),
                format!(
                    "subkey count {} but lists hold {}",
                    nk.subkey_count,
                    all.len()
                ),
            );
        }
        all
    }

    fn check_data(&self, ck: &mut Ck, v: u32, size_raw: u32, off: u32) {
        if size_raw & 0x8000_0000 != 0 {
            if size_raw & 0x7FFF_FFFF > 4 {
                ck.err(Some(v), "inline data longer than 4 bytes");
            }
            return;
        }
        let n = size_raw as usize;
        if n == 0 {
            return;
        }
        if !ck.mark(off, "value data") {
            return;
        }
        let c = self.cell(off).unwrap_or(&[]);
        if n > BIG_DATA_SEGMENT && self.minor_version() >= 4 && c.len() >= 8 && &c[0..2] == b"db" {
            match self.db_segments(off) {
                Ok((list, segs)) => {
                    ck.mark(list, "big data segment list");
                    if segs.len() != n.div_ceil(BIG_DATA_SEGMENT) {
                        ck.err(Some(off), "big data segment count does not match the size");
                    }
                    let mut left = n;
                    for s in segs {
                        if ck.mark(s, "big data segment") {
                            let want = left.min(BIG_DATA_SEGMENT);
                            if self.cell(s).map(|c| c.len()).unwrap_or(0) < want {
                                ck.err(Some(s), "big data segment too short");
                            }
                            left -= want;
                        }
                    }
                }
                Err(e) => ck.err(Some(off), e.message),
            }
        } else if c.len() < n {
            ck.err(
                Some(off),
                format!("value data of {n} bytes exceeds its cell"),
            );
        }
    }

    fn check_sk(&self, ck: &mut Ck) {
        let root_sk = match self.nk(self.root_offset()) {
            Ok(n) => n.sk,
            Err(_) => return,
        };
        let mut cur = root_sk;
        let mut prev = match self.sk(root_sk) {
            Ok(s) => s.blink,
            Err(e) => {
                ck.err(Some(root_sk), e.message);
                return;
            }
        };
        let mut in_list = HashSet::new();
        loop {
            if !in_list.insert(cur) {
                ck.err(
                    Some(cur),
                    "security list revisits a cell without closing at the root's descriptor",
                );
                break;
            }
            ck.mark(cur, "security");
            let sk = match self.sk(cur) {
                Ok(s) => s,
                Err(e) => {
                    ck.err(Some(cur), e.message);
                    break;
                }
            };
            if sk.blink != prev {
                ck.err(
                    Some(cur),
                    format!("security blink {:#x}, expected {prev:#x}", sk.blink),
                );
            }
            if let Some(m) = validate_descriptor(&sk.descriptor) {
                ck.err(Some(cur), m);
            }
            let refs = ck.sk_refs.get(&cur).copied().unwrap_or(0);
            if refs != sk.refcount {
                ck.err(
                    Some(cur),
                    format!(
                        "security reference count {}, {refs} keys use it",
                        sk.refcount
                    ),
                );
            }
            prev = cur;
            cur = sk.flink;
            if cur == root_sk {
                if self.sk(root_sk).map(|s| s.blink).ok() != Some(prev) {
                    ck.err(Some(root_sk), "security list does not close");
                }
                break;
            }
        }
        for (&s, _) in ck.sk_refs.clone().iter() {
            if !in_list.contains(&s) {
                ck.err(
                    Some(s),
                    "security cell used by keys is not in the security list",
                );
            }
        }
    }
}

/// Check committed file bytes: the base block (signature, checksum, equal
/// sequence numbers, sizes) plus every in-memory invariant.
pub fn check_bytes(bytes: &[u8]) -> Vec<Problem> {
    let mut out = Vec::new();
    let err = |m: String| Problem {
        severity: Severity::Error,
        cell: None,
        message: m,
    };
    match BaseBlock::parse(bytes, 0) {
        Ok(b) => {
            if !b.checksum_ok {
                out.push(err("base block checksum mismatch".into()));
            }
            if b.seq1 != b.seq2 {
                out.push(err(format!(
                    "sequence numbers differ: {} != {}",
                    b.seq1, b.seq2
                )));
            }
        }
        Err(e) => {
            out.push(err(e.to_string()));
            return out;
        }
    }
    match Hive::open_unchecked(bytes.to_vec()) {
        Ok(h) => out.extend(h.check()),
        Err(e) => out.push(err(e.to_string())),
    }
    out
}
