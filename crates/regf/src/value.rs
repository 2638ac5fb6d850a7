//! Registry value types and their byte encodings.

use serde::Serialize;

/// REG_NONE.
pub const REG_NONE: u32 = 0;
/// REG_SZ.
pub const REG_SZ: u32 = 1;
/// REG_EXPAND_SZ.
pub const REG_EXPAND_SZ: u32 = 2;
/// REG_BINARY.
pub const REG_BINARY: u32 = 3;
/// REG_DWORD.
pub const REG_DWORD: u32 = 4;
/// REG_DWORD_BIG_ENDIAN.
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// REG_LINK.
pub const REG_LINK: u32 = 6;
/// REG_MULTI_SZ.
pub const REG_MULTI_SZ: u32 = 7;
/// REG_RESOURCE_LIST.
pub const REG_RESOURCE_LIST: u32 = 8;
/// REG_FULL_RESOURCE_DESCRIPTOR.
pub const REG_FULL_RESOURCE_DESCRIPTOR: u32 = 9;
/// REG_RESOURCE_REQUIREMENTS_LIST.
pub const REG_RESOURCE_REQUIREMENTS_LIST: u32 = 10;
/// REG_QWORD.
pub const REG_QWORD: u32 = 11;

/// A decoded registry value. Decoding is exact for well-formed data; data
/// that does not fit its type's shape (odd string lengths, a DWORD that is
/// not 4 bytes, ...) and unknown types come back as [`Value::Raw`], so no
/// byte is ever lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum Value {
    /// REG_NONE with its bytes.
    None(Vec<u8>),
    /// REG_SZ (stored UTF-16LE, NUL-terminated).
    String(String),
    /// REG_EXPAND_SZ.
    ExpandString(String),
    /// REG_BINARY.
    Binary(Vec<u8>),
    /// REG_DWORD.
    Dword(u32),
    /// REG_DWORD_BIG_ENDIAN.
    DwordBigEndian(u32),
    /// REG_LINK (UTF-16LE, not terminated).
    Link(String),
    /// REG_MULTI_SZ.
    MultiString(Vec<String>),
    /// REG_RESOURCE_LIST bytes.
    ResourceList(Vec<u8>),
    /// REG_FULL_RESOURCE_DESCRIPTOR bytes.
    FullResourceDescriptor(Vec<u8>),
    /// REG_RESOURCE_REQUIREMENTS_LIST bytes.
    ResourceRequirementsList(Vec<u8>),
    /// REG_QWORD.
    Qword(u64),
    /// Any type with its exact bytes (unknown types, malformed data).
    Raw {
        /// Type number.
        kind: u32,
        /// Bytes.
        data: Vec<u8>,
    },
}

fn utf16(b: &[u8]) -> Option<Vec<u16>> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    Some(
        b.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// Exact decode of a NUL-terminated UTF-16LE string (exactly one trailing
/// NUL, none inside, valid UTF-16).
fn sz(b: &[u8]) -> Option<String> {
    let u = utf16(b)?;
    let (last, body) = u.split_last()?;
    if *last != 0 || body.contains(&0) {
        return None;
    }
    String::from_utf16(body).ok()
}

fn multi_sz(b: &[u8]) -> Option<Vec<String>> {
    let u = utf16(b)?;
    if u.is_empty() {
        return Some(Vec::new());
    }
    // Canonical: s1 NUL s2 NUL ... NUL (an empty list is a single NUL).
    if u.len() == 1 && u[0] == 0 {
        return Some(Vec::new());
    }
    if u.len() < 2 || u[u.len() - 1] != 0 || u[u.len() - 2] != 0 {
        return None;
    }
    let body = &u[..u.len() - 1];
    let parts: Vec<&[u16]> = body[..body.len() - 1].split(|&c| c == 0).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    parts
        .into_iter()
        .map(|p| String::from_utf16(p).ok())
        .collect()
}

fn enc16(s: &str, nul: bool) -> Vec<u8> {
    let mut v: Vec<u8> = s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
    if nul {
        v.extend_from_slice(&[0, 0]);
    }
    v
}

impl Value {
    /// Decode raw bytes of type `kind`.
    pub fn from_raw(kind: u32, data: Vec<u8>) -> Value {
        let decoded = match kind {
            REG_NONE => Some(Value::None(data.clone())),
            REG_SZ => sz(&data).map(Value::String),
            REG_EXPAND_SZ => sz(&data).map(Value::ExpandString),
            REG_BINARY => Some(Value::Binary(data.clone())),
            REG_DWORD if data.len() == 4 => Some(Value::Dword(u32::from_le_bytes(
                data[..4].try_into().expect("4 bytes"),
            ))),
            REG_DWORD_BIG_ENDIAN if data.len() == 4 => Some(Value::DwordBigEndian(
                u32::from_be_bytes(data[..4].try_into().expect("4 bytes")),
            )),
            REG_LINK => utf16(&data)
                .and_then(|u| String::from_utf16(&u).ok())
                .map(Value::Link),
            REG_MULTI_SZ => multi_sz(&data).map(Value::MultiString),
            REG_RESOURCE_LIST => Some(Value::ResourceList(data.clone())),
            REG_FULL_RESOURCE_DESCRIPTOR => Some(Value::FullResourceDescriptor(data.clone())),
            REG_RESOURCE_REQUIREMENTS_LIST => Some(Value::ResourceRequirementsList(data.clone())),
            REG_QWORD if data.len() == 8 => Some(Value::Qword(u64::from_le_bytes(
                data[..8].try_into().expect("8 bytes"),
            ))),
            _ => None,
        };
        decoded.unwrap_or(Value::Raw { kind, data })
    }

    /// Registry type number.
    pub fn kind(&self) -> u32 {
        match self {
            Value::None(_) => REG_NONE,
            Value::String(_) => REG_SZ,
            Value::ExpandString(_) => REG_EXPAND_SZ,
            Value::Binary(_) => REG_BINARY,
            Value::Dword(_) => REG_DWORD,
            Value::DwordBigEndian(_) => REG_DWORD_BIG_ENDIAN,
            Value::Link(_) => REG_LINK,
            Value::MultiString(_) => REG_MULTI_SZ,
            Value::ResourceList(_) => REG_RESOURCE_LIST,
            Value::FullResourceDescriptor(_) => REG_FULL_RESOURCE_DESCRIPTOR,
            Value::ResourceRequirementsList(_) => REG_RESOURCE_REQUIREMENTS_LIST,
            Value::Qword(_) => REG_QWORD,
            Value::Raw { kind, .. } => *kind,
        }
    }

    /// On-disk bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Value::None(b)
            | Value::Binary(b)
            | Value::ResourceList(b)
            | Value::FullResourceDescriptor(b)
            | Value::ResourceRequirementsList(b) => b.clone(),
            Value::Raw { data, .. } => data.clone(),
            Value::String(s) | Value::ExpandString(s) => enc16(s, true),
            Value::Link(s) => enc16(s, false),
            Value::Dword(n) => n.to_le_bytes().to_vec(),
            Value::DwordBigEndian(n) => n.to_be_bytes().to_vec(),
            Value::Qword(n) => n.to_le_bytes().to_vec(),
            Value::MultiString(v) => {
                let mut out = Vec::new();
                for s in v {
                    out.extend(enc16(s, true));
                }
                out.extend_from_slice(&[0, 0]);
                out
            }
        }
    }

    /// Lossy text of string-like data (for display); `None` for non-text.
    pub fn as_str_lossy(&self) -> Option<String> {
        match self {
            Value::String(s) | Value::ExpandString(s) | Value::Link(s) => Some(s.clone()),
            Value::MultiString(v) => Some(v.join("\n")),
            _ => None,
        }
    }
}

/// Name of a type number ("REG_SZ", ... or "REG_0x1234").
pub fn kind_name(kind: u32) -> String {
    match kind {
        REG_NONE => "REG_NONE".into(),
        REG_SZ => "REG_SZ".into(),
        REG_EXPAND_SZ => "REG_EXPAND_SZ".into(),
        REG_BINARY => "REG_BINARY".into(),
        REG_DWORD => "REG_DWORD".into(),
        REG_DWORD_BIG_ENDIAN => "REG_DWORD_BIG_ENDIAN".into(),
        REG_LINK => "REG_LINK".into(),
        REG_MULTI_SZ => "REG_MULTI_SZ".into(),
        REG_RESOURCE_LIST => "REG_RESOURCE_LIST".into(),
        REG_FULL_RESOURCE_DESCRIPTOR => "REG_FULL_RESOURCE_DESCRIPTOR".into(),
        REG_RESOURCE_REQUIREMENTS_LIST => "REG_RESOURCE_REQUIREMENTS_LIST".into(),
        REG_QWORD => "REG_QWORD".into(),
        k => format!("REG_{k:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_types() {
        let vals = [
            Value::String("a\u{e9}b".into()),
            Value::ExpandString("%SystemRoot%".into()),
            Value::MultiString(vec!["x".into(), "yz".into()]),
            Value::MultiString(vec![]),
            Value::Dword(7),
            Value::DwordBigEndian(0x01020304),
            Value::Qword(1 << 40),
            Value::Binary(vec![1, 2, 3]),
            Value::Link("\\Registry\\Machine".into()),
            Value::Raw {
                kind: 0x1234,
                data: vec![9],
            },
        ];
        for v in vals {
            let b = v.to_bytes();
            let back = Value::from_raw(v.kind(), b.clone());
            assert_eq!(back.to_bytes(), b);
            if !matches!(v, Value::MultiString(ref m) if m.is_empty()) {
                assert_eq!(back, v);
            }
        }
        assert!(matches!(
            Value::from_raw(REG_SZ, vec![0x41]),
            Value::Raw { .. }
        ));
    }
}
