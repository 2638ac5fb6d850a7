//! Little-endian field access and small helpers.

/// u16 at `o` (caller guarantees bounds).
pub(crate) fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
/// u32 at `o`.
pub(crate) fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
/// u64 at `o`.
pub(crate) fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
/// Store a u16.
pub(crate) fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
/// Store a u32.
pub(crate) fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
/// Store a u64.
pub(crate) fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
/// Checked slice: `len` bytes at `o`, or None.
pub(crate) fn get(b: &[u8], o: usize, len: usize) -> Option<&[u8]> {
    b.get(o..o.checked_add(len)?)
}
/// Round up to a multiple of `a` (a power of two).
pub(crate) fn align(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}
/// UTF-16LE bytes to units.
pub(crate) fn utf16_units(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}
/// UTF-16 units to a String (lossy).
pub(crate) fn units_to_string(u: &[u16]) -> String {
    String::from_utf16_lossy(u)
}
/// Units to little-endian bytes.
pub(crate) fn units_to_bytes(u: &[u16]) -> Vec<u8> {
    u.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Windows FILETIME (100 ns since 1601) for now.
pub fn filetime_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    unix_to_filetime(d.as_secs() as i64, d.subsec_nanos())
}

/// Convert Unix seconds + nanoseconds to a FILETIME.
pub fn unix_to_filetime(secs: i64, nanos: u32) -> u64 {
    let t = (secs + 11_644_473_600).max(0) as u64;
    t * 10_000_000 + u64::from(nanos) / 100
}

/// Convert a FILETIME to Unix seconds.
pub fn filetime_to_unix(ft: u64) -> i64 {
    (ft / 10_000_000) as i64 - 11_644_473_600
}
