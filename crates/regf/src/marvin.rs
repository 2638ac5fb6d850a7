//! Marvin32, the keyed hash used to protect HvLE transaction-log entries.

/// Seed used by the registry for log entries. The specification lists the
/// bytes 82 EF 4D 88 7A 4E 55 C5; the kernel uses them as the 64-bit value
/// 0x82EF4D887A4E55C5 (low half is the first state word), which is what
/// reproduces the hashes stored in real Windows 10 logs.
pub const LOG_SEED: u64 = 0x82EF_4D88_7A4E_55C5;

fn block(p0: &mut u32, p1: &mut u32) {
    *p1 ^= *p0;
    *p0 = p0.rotate_left(20).wrapping_add(*p1);
    *p1 = p1.rotate_left(9) ^ *p0;
    *p0 = p0.rotate_left(27).wrapping_add(*p1);
    *p1 = p1.rotate_left(19);
}

/// Marvin32 state words (p0, p1) after hashing `data` with `seed`. The
/// registry stores them as two little-endian u32 (p0 first), i.e. the u64
/// `p0 | p1 << 32`; the classic 32-bit Marvin result is `p0 ^ p1`.
pub fn marvin32(data: &[u8], seed: u64) -> u64 {
    let mut p0 = seed as u32;
    let mut p1 = (seed >> 32) as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        p0 = p0.wrapping_add(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        block(&mut p0, &mut p1);
    }
    let r = chunks.remainder();
    let fin = match r.len() {
        0 => 0x80,
        1 => 0x8000 | r[0] as u32,
        2 => 0x80_0000 | u16::from_le_bytes([r[0], r[1]]) as u32,
        _ => 0x8000_0000 | (r[2] as u32) << 16 | u16::from_le_bytes([r[0], r[1]]) as u32,
    };
    p0 = p0.wrapping_add(fin);
    block(&mut p0, &mut p1);
    block(&mut p0, &mut p1);
    p0 as u64 | (p1 as u64) << 32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry hashes of the real logs in the test corpus are checked by
    /// the integration tests; here: tails of every length differ.
    #[test]
    fn tails_differ() {
        let h: Vec<u64> = (0..9).map(|n| marvin32(&[7u8; 8][..n], LOG_SEED)).collect();
        for i in 0..h.len() {
            for j in 0..i {
                assert_ne!(h[i], h[j]);
            }
        }
    }
}
