//! LZNT1 decompression (NTFS compressed files).

use crate::error::{corrupt, Result};

/// Decompress one compression unit's data into `out` (appended), at most
/// `max` bytes.
pub fn decompress(src: &[u8], out: &mut Vec<u8>, max: usize) -> Result<()> {
    let mut i = 0usize;
    let start = out.len();
    while i + 2 <= src.len() && out.len() - start < max {
        let h = u16::from_le_bytes([src[i], src[i + 1]]);
        if h == 0 {
            break;
        }
        let size = usize::from(h & 0x0fff) + 1;
        let data = src
            .get(i + 2..i + 2 + size)
            .ok_or_else(|| corrupt(i as u64, "LZNT1 chunk runs past the compressed data"))?;
        i += 2 + size;
        if h & 0x8000 == 0 {
            out.extend_from_slice(data);
            continue;
        }
        let cstart = out.len();
        let mut p = 0usize;
        while p < data.len() {
            let flags = data[p];
            p += 1;
            for bit in 0..8 {
                if p >= data.len() {
                    break;
                }
                if flags & (1 << bit) == 0 {
                    out.push(data[p]);
                    p += 1;
                } else {
                    if p + 2 > data.len() {
                        return Err(corrupt(p as u64, "LZNT1 back-reference truncated"));
                    }
                    let t = usize::from(u16::from_le_bytes([data[p], data[p + 1]]));
                    p += 2;
                    let pos = out.len() - cstart;
                    if pos == 0 {
                        return Err(corrupt(p as u64, "LZNT1 back-reference at chunk start"));
                    }
                    let mut shift = 12usize;
                    let mut x = pos - 1;
                    while x >= 0x10 {
                        shift -= 1;
                        x >>= 1;
                    }
                    let len = (t & ((1 << shift) - 1)) + 3;
                    let off = (t >> shift) + 1;
                    if off > pos {
                        return Err(corrupt(
                            p as u64,
                            format!("LZNT1 back-reference {off} bytes before the chunk start"),
                        ));
                    }
                    if pos + len > 4096 {
                        return Err(corrupt(
                            p as u64,
                            "LZNT1 chunk decompresses past 4096 bytes",
                        ));
                    }
                    for _ in 0..len {
                        let c = out[out.len() - off];
                        out.push(c);
                    }
                }
            }
        }
    }
    out.truncate(start + max.min(out.len() - start));
    Ok(())
}
