//! Key and value names: decoding (ASCII-compressed or UTF-16LE), Windows
//! case folding, the `lh` hash and the sort order of subkey lists.

use std::cmp::Ordering;

/// Upcase one UTF-16 code unit the way the registry does: a 1:1 mapping
/// (ASCII fast path; other BMP characters use their simple uppercase
/// mapping when it is a single BMP character, otherwise unchanged).
pub fn upcase_unit(c: u16) -> u16 {
    if c < 0x80 {
        return (c as u8).to_ascii_uppercase() as u16;
    }
    if (0xD800..0xE000).contains(&c) {
        return c;
    }
    match char::from_u32(c as u32) {
        Some(ch) => {
            let mut up = ch.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) if (u as u32) < 0x10000 => u as u32 as u16,
                _ => c,
            }
        }
        None => c,
    }
}

/// Decode an on-disk name: `compressed` means one byte per character
/// (Latin-1), otherwise UTF-16LE.
pub fn decode_units(raw: &[u8], compressed: bool) -> Vec<u16> {
    if compressed {
        raw.iter().map(|&b| b as u16).collect()
    } else {
        raw.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }
}

/// UTF-16 code units of a Rust string.
pub fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// Lossy string of UTF-16 code units.
pub fn to_string(u: &[u16]) -> String {
    String::from_utf16_lossy(u)
}

/// Encode a name for storage: `(bytes, compressed)`. Names whose characters
/// all fit in one byte are stored compressed, as Windows does.
pub fn encode(u: &[u16]) -> (Vec<u8>, bool) {
    if u.iter().all(|&c| c <= 0xFF) {
        (u.iter().map(|&c| c as u8).collect(), true)
    } else {
        (u.iter().flat_map(|c| c.to_le_bytes()).collect(), false)
    }
}

/// The `lh` hash of a name: H = 37 * H + upcase(c) over UTF-16 units.
pub fn lh_hash(u: &[u16]) -> u32 {
    u.iter().fold(0u32, |h, &c| {
        h.wrapping_mul(37).wrapping_add(upcase_unit(c) as u32)
    })
}

/// The `lf` hint: the first four characters (one byte each).
pub fn lf_hint(u: &[u16]) -> [u8; 4] {
    let mut h = [0u8; 4];
    for (i, &c) in u.iter().take(4).enumerate() {
        h[i] = if c <= 0xFF { c as u8 } else { 0 };
    }
    h
}

/// Case-insensitive order used for subkey lists.
pub fn cmp(a: &[u16], b: &[u16]) -> Ordering {
    let mut ai = a.iter();
    let mut bi = b.iter();
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(&x), Some(&y)) => {
                let o = upcase_unit(x).cmp(&upcase_unit(y));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Case-insensitive equality.
pub fn eq(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len() && cmp(a, b) == Ordering::Equal
}

/// Split a registry path (`A\B\C`, leading/trailing/double backslashes
/// ignored) into components.
pub fn split_path(path: &str) -> Vec<&str> {
    path.split('\\').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_order() {
        assert_eq!(lh_hash(&units("a")), 'A' as u32);
        assert_eq!(lh_hash(&units("ab")), 37 * 65 + 66);
        assert_eq!(cmp(&units("abc"), &units("ABD")), Ordering::Less);
        assert!(eq(&units("ÄÖü"), &units("äöÜ")));
        assert_eq!(cmp(&units("_x"), &units("a")), Ordering::Less.reverse());
        assert_eq!(upcase_unit('ß' as u16), 'ß' as u16);
    }
}
