//! Case folding with the volume's $UpCase table, and the filename
//! collation used by directory indexes.

use std::cmp::Ordering;

/// The volume's upcase table (65536 entries).
#[derive(Debug, Clone)]
pub struct UpCase {
    t: Vec<u16>,
}

impl UpCase {
    /// From the raw $UpCase bytes (128 KiB); shorter tables upcase the
    /// rest as identity.
    pub fn from_bytes(b: &[u8]) -> Self {
        let mut t: Vec<u16> = (0..=0xffffu32).map(|c| c as u16).collect();
        for (i, c) in b.chunks_exact(2).take(65536).enumerate() {
            t[i] = u16::from_le_bytes([c[0], c[1]]);
        }
        UpCase { t }
    }
    /// A table that upcases ASCII only (used before $UpCase is read).
    pub fn ascii() -> Self {
        let t = (0..=0xffffu32)
            .map(|c| {
                let c = c as u16;
                if (b'a' as u16..=b'z' as u16).contains(&c) {
                    c - 32
                } else {
                    c
                }
            })
            .collect();
        UpCase { t }
    }
    /// Upcase one unit.
    pub fn up(&self, c: u16) -> u16 {
        self.t[usize::from(c)]
    }
    /// Case-insensitive comparison (what a lookup uses).
    pub fn cmp_ic(&self, a: &[u16], b: &[u16]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            let o = self.up(*x).cmp(&self.up(*y));
            if o != Ordering::Equal {
                return o;
            }
        }
        a.len().cmp(&b.len())
    }
    /// Full collation for insertion: case-insensitive, then exact.
    pub fn collate(&self, a: &[u16], b: &[u16]) -> Ordering {
        self.cmp_ic(a, b).then_with(|| a.cmp(b))
    }
}
