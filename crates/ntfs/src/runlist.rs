//! Mapping pairs (runlists): decode, encode, and VCN→LCN lookup.

use crate::error::{corrupt, Result};

/// One run of clusters: `len` clusters starting at `vcn`, stored at `lcn`
/// (None = sparse, reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First virtual cluster.
    pub vcn: u64,
    /// First logical cluster, None for a hole.
    pub lcn: Option<u64>,
    /// Length in clusters.
    pub len: u64,
}

/// Cap on runs per attribute extent (a 64 KiB record cannot hold more).
const MAX_RUNS: usize = 1 << 16;

/// Decode mapping pairs starting at `start_vcn`. `total_clusters` bounds
/// every LCN; `pos` is used in error messages.
pub fn decode(b: &[u8], start_vcn: u64, total_clusters: u64, pos: u64) -> Result<Vec<Run>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut vcn = start_vcn;
    let mut lcn: i64 = 0;
    while i < b.len() && b[i] != 0 {
        let h = b[i];
        let ls = usize::from(h & 0x0f);
        let os = usize::from(h >> 4);
        if ls == 0 || ls > 8 || os > 8 || i + 1 + ls + os > b.len() {
            return Err(corrupt(pos + i as u64, format!("mapping pair header {h:#04x}: length/offset field sizes invalid or past the attribute end")));
        }
        let mut len: u64 = 0;
        for k in 0..ls {
            len |= u64::from(b[i + 1 + k]) << (8 * k);
        }
        if ls == 8 && len >> 63 != 0 || len == 0 || len > total_clusters.max(1) * 16 {
            return Err(corrupt(
                pos + i as u64,
                format!("run length {len} clusters is zero or beyond the volume"),
            ));
        }
        let run_lcn = if os == 0 {
            None
        } else {
            let mut d: i64 = 0;
            for k in 0..os {
                d |= i64::from(b[i + 1 + ls + k]) << (8 * k);
            }
            if os < 8 && b[i + ls + os] & 0x80 != 0 {
                d |= -1i64 << (8 * os);
            }
            lcn = lcn
                .checked_add(d)
                .ok_or_else(|| corrupt(pos + i as u64, "run offset overflow"))?;
            if lcn < 0
                || (lcn as u64)
                    .checked_add(len)
                    .is_none_or(|e| e > total_clusters)
            {
                return Err(corrupt(
                    pos + i as u64,
                    format!("run at LCN {lcn} + {len} clusters lies outside the volume ({total_clusters} clusters)"),
                ));
            }
            Some(lcn as u64)
        };
        out.push(Run {
            vcn,
            lcn: run_lcn,
            len,
        });
        vcn = vcn
            .checked_add(len)
            .ok_or_else(|| corrupt(pos, "VCN overflow"))?;
        i += 1 + ls + os;
        if out.len() > MAX_RUNS {
            return Err(corrupt(pos, "too many runs"));
        }
    }
    Ok(out)
}

fn sbytes(v: i64) -> usize {
    for n in 1..8 {
        let lim = 1i64 << (8 * n - 1);
        if v >= -lim && v < lim {
            return n;
        }
    }
    8
}
fn ubytes(v: u64) -> usize {
    for n in 1..8 {
        if v < 1u64 << (8 * n - 1) {
            // keep the top bit clear like Windows (lengths are read signed)
            return n;
        }
    }
    8
}

/// Encode runs (in VCN order, contiguous) as mapping pairs, with the
/// terminating zero byte.
pub fn encode(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: i64 = 0;
    for r in runs {
        let ls = ubytes(r.len);
        let (os, delta) = match r.lcn {
            Some(l) => {
                let d = l as i64 - prev;
                prev = l as i64;
                (sbytes(d), d)
            }
            None => (0, 0),
        };
        out.push((os as u8) << 4 | ls as u8);
        out.extend_from_slice(&r.len.to_le_bytes()[..ls]);
        out.extend_from_slice(&delta.to_le_bytes()[..os]);
    }
    out.push(0);
    out
}

/// Append `r`, merging with the last run when contiguous.
pub fn push(runs: &mut Vec<Run>, r: Run) {
    if let Some(last) = runs.last_mut() {
        let contiguous = match (last.lcn, r.lcn) {
            (Some(a), Some(b)) => a + last.len == b,
            (None, None) => true,
            _ => false,
        };
        if contiguous && last.vcn + last.len == r.vcn {
            last.len += r.len;
            return;
        }
    }
    runs.push(r);
}

/// Total clusters covered.
pub fn clusters(runs: &[Run]) -> u64 {
    runs.last().map(|r| r.vcn + r.len).unwrap_or(0) - runs.first().map(|r| r.vcn).unwrap_or(0)
}

/// The run containing `vcn`.
pub fn find(runs: &[Run], vcn: u64) -> Option<&Run> {
    let i = runs.partition_point(|r| r.vcn + r.len <= vcn);
    runs.get(i).filter(|r| r.vcn <= vcn)
}

/// Split runs at `vcn`: keep [..vcn), return the removed runs [vcn..).
pub fn truncate(runs: &mut Vec<Run>, vcn: u64) -> Vec<Run> {
    let mut removed = Vec::new();
    let mut keep = Vec::new();
    for r in runs.drain(..) {
        if r.vcn + r.len <= vcn {
            keep.push(r);
        } else if r.vcn >= vcn {
            removed.push(r);
        } else {
            let k = vcn - r.vcn;
            keep.push(Run {
                vcn: r.vcn,
                lcn: r.lcn,
                len: k,
            });
            removed.push(Run {
                vcn,
                lcn: r.lcn.map(|l| l + k),
                len: r.len - k,
            });
        }
    }
    *runs = keep;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let runs = vec![
            Run {
                vcn: 0,
                lcn: Some(100),
                len: 5,
            },
            Run {
                vcn: 5,
                lcn: None,
                len: 16,
            },
            Run {
                vcn: 21,
                lcn: Some(40),
                len: 300,
            },
            Run {
                vcn: 321,
                lcn: Some(70_000),
                len: 1,
            },
        ];
        let b = encode(&runs);
        assert_eq!(decode(&b, 0, 1 << 20, 0).unwrap(), runs);
    }
    #[test]
    fn rejects_past_volume() {
        let b = encode(&[Run {
            vcn: 0,
            lcn: Some(100),
            len: 5,
        }]);
        assert!(decode(&b, 0, 50, 0).is_err());
    }
}
