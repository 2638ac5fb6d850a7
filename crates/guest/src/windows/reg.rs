//! Lenient value readers over [`regf`] keys for inspection. Real hives
//! carry strings without their NUL, with extra NULs, DWORDs stored as
//! longer binaries: inspection reads what is meant and treats what it
//! cannot read as absent (a corrupt cell never stops inspection).

use regf::{Hive, Key};

const REG_SZ: u32 = 1;
const REG_EXPAND_SZ: u32 = 2;
const REG_BINARY: u32 = 3;
const REG_DWORD: u32 = 4;
const REG_MULTI_SZ: u32 = 7;
const REG_QWORD: u32 = 11;

/// The key at `path` (`\`-separated, case-insensitive), if present and
/// readable.
pub fn key<'h>(h: &'h Hive, path: &str) -> Option<Key<'h>> {
    h.get_key(path).ok().flatten()
}

/// The subkey `name` of `k`.
pub fn sub<'h>(k: &Key<'h>, name: &str) -> Option<Key<'h>> {
    k.subkey(name).ok().flatten()
}

/// Every readable subkey of `k`.
pub fn subkeys<'h>(k: &Key<'h>) -> Vec<Key<'h>> {
    k.subkeys().unwrap_or_default()
}

/// The name of `k` ("" when unreadable).
pub fn name(k: &Key<'_>) -> String {
    k.name().unwrap_or_default()
}

fn raw(k: &Key<'_>, value: &str) -> Option<(u32, Vec<u8>)> {
    let v = k.value(value).ok().flatten()?;
    Some((v.kind().ok()?, v.raw().ok()?))
}

fn utf16_parts(b: &[u8]) -> Vec<String> {
    let u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    u.split(|&c| c == 0)
        .filter(|p| !p.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

/// A string value (REG_SZ / REG_EXPAND_SZ, or the first string of a
/// REG_MULTI_SZ), cut at its first NUL.
pub fn string(k: &Key<'_>, value: &str) -> Option<String> {
    let (kind, b) = raw(k, value)?;
    match kind {
        REG_SZ | REG_EXPAND_SZ => {
            let u: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            Some(String::from_utf16_lossy(&u))
        }
        REG_MULTI_SZ => utf16_parts(&b).into_iter().next(),
        _ => None,
    }
}

/// A list: the strings of a REG_MULTI_SZ, or a REG_SZ split at commas
/// and blanks (how `NameServer` and `ProviderOrder` are stored). Empty
/// entries are dropped.
pub fn list(k: &Key<'_>, value: &str) -> Vec<String> {
    let Some((kind, b)) = raw(k, value) else {
        return vec![];
    };
    match kind {
        REG_MULTI_SZ => utf16_parts(&b),
        REG_SZ | REG_EXPAND_SZ => string(k, value)
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// The strings of a REG_MULTI_SZ keeping empty ones (pair lists such as
/// `PendingFileRenameOperations`, where an empty target means delete);
/// the terminating NULs are not entries.
pub fn multi_with_empty(k: &Key<'_>, value: &str) -> Vec<String> {
    let Some((REG_MULTI_SZ, b)) = raw(k, value) else {
        return vec![];
    };
    let mut u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    while u.last() == Some(&0) {
        u.pop();
    }
    if u.is_empty() {
        return vec![];
    }
    u.split(|&c| c == 0).map(String::from_utf16_lossy).collect()
}

/// A DWORD (also the low half of a QWORD, or a 4+ byte REG_BINARY).
pub fn dword(k: &Key<'_>, value: &str) -> Option<u32> {
    let (kind, b) = raw(k, value)?;
    match kind {
        REG_DWORD | REG_QWORD | REG_BINARY if b.len() >= 4 => {
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        _ => None,
    }
}

/// Whether the value exists.
pub fn has(k: &Key<'_>, value: &str) -> bool {
    k.value(value).ok().flatten().is_some()
}

/// Every readable value of `k` as (name, DWORD) where it is one.
pub fn dwords(k: &Key<'_>) -> Vec<(String, u32)> {
    k.values()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            let n = v.name().ok()?;
            let b = v.raw().ok()?;
            (v.kind().ok()? == REG_DWORD && b.len() >= 4)
                .then(|| (n, u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        })
        .collect()
}
