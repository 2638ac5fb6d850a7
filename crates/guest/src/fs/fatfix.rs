//! Repair for a `fatfs` 0.3 quirk: it writes a long-name entry before the
//! "." and ".." entries of every directory it creates, which fsck.fat and
//! Windows' chkdsk flag ("Expected a valid '.' entry in this slot").
//! After unmounting, walk the tree and rewrite such directories' first four
//! slots from `[LFN, ".", LFN, ".."]` to `[".", "..", deleted, deleted]`,
//! and make ".." of FAT32 directories in the root point to cluster 0.

use std::collections::HashSet;
use vdisk::{DiskWrite, Result};

struct Bpb {
    bps: u64,
    spc: u64,
    fat_start: u64,
    root_start: u64,
    root_len: u64,
    data_start: u64,
    fat_bits: u32,
    root_clus: u32,
}

fn u16le(b: &[u8], o: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[o], b[o + 1]]))
}
fn u32le(b: &[u8], o: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]))
}

fn bpb(s: &[u8]) -> Option<Bpb> {
    let bps = u16le(s, 11);
    let spc = u64::from(s[13]);
    let rsv = u16le(s, 14);
    let nf = u64::from(s[16]);
    let re = u16le(s, 17);
    let tot = if u16le(s, 19) != 0 {
        u16le(s, 19)
    } else {
        u32le(s, 32)
    };
    let fsz = if u16le(s, 22) != 0 {
        u16le(s, 22)
    } else {
        u32le(s, 36)
    };
    if bps == 0 || spc == 0 {
        return None;
    }
    let root_secs = (re * 32).div_ceil(bps);
    let first_data = rsv + nf * fsz + root_secs;
    let clusters = tot.checked_sub(first_data)? / spc;
    let fat_bits = if clusters < 4085 {
        12
    } else if clusters < 65525 {
        16
    } else {
        32
    };
    Some(Bpb {
        bps,
        spc,
        fat_start: rsv * bps,
        root_start: (rsv + nf * fsz) * bps,
        root_len: root_secs * bps,
        data_start: first_data * bps,
        fat_bits,
        root_clus: if fat_bits == 32 {
            u32le(s, 44) as u32
        } else {
            0
        },
    })
}

fn next(d: &dyn DiskWrite, b: &Bpb, c: u32) -> Result<Option<u32>> {
    let (off, v) = match b.fat_bits {
        12 => {
            let o = b.fat_start + u64::from(c) + u64::from(c / 2);
            let mut x = [0u8; 2];
            d.read_at(&mut x, o)?;
            let v = u16::from_le_bytes(x);
            (o, u32::from(if c % 2 == 1 { v >> 4 } else { v & 0xfff }))
        }
        16 => {
            let mut x = [0u8; 2];
            let o = b.fat_start + 2 * u64::from(c);
            d.read_at(&mut x, o)?;
            (o, u32::from(u16::from_le_bytes(x)))
        }
        _ => {
            let mut x = [0u8; 4];
            let o = b.fat_start + 4 * u64::from(c);
            d.read_at(&mut x, o)?;
            (o, u32::from_le_bytes(x) & 0x0fff_ffff)
        }
    };
    let _ = off;
    let eoc = match b.fat_bits {
        12 => 0xff8,
        16 => 0xfff8,
        _ => 0x0fff_fff8,
    };
    Ok((v >= 2 && v < eoc).then_some(v))
}

fn cluster_pos(b: &Bpb, c: u32) -> u64 {
    b.data_start + (u64::from(c) - 2) * b.spc * b.bps
}

fn is_lfn(e: &[u8]) -> bool {
    e[11] == 0x0f && e[0] != 0xe5 && e[0] != 0
}

/// Walk the FAT tree on `d` and repair directories fatfs created.
pub(crate) fn fix_dot_entries(d: &dyn DiskWrite) -> Result<()> {
    let mut s = vec![0u8; 512];
    d.read_at(&mut s, 0)?;
    let Some(b) = bpb(&s) else { return Ok(()) };
    let csize = (b.spc * b.bps) as usize;
    let root_first = if b.fat_bits == 32 {
        Some(b.root_clus)
    } else {
        None
    };
    // (first cluster or None for a FAT12/16 root, parent is the root)
    let mut todo: Vec<(Option<u32>, bool)> = vec![(root_first, false)];
    let mut seen = HashSet::new();
    while let Some((dir, parent_root)) = todo.pop() {
        // read the directory's clusters (root of FAT12/16 is a fixed area)
        let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
        match dir {
            None => {
                let mut v = vec![0u8; b.root_len as usize];
                d.read_at(&mut v, b.root_start)?;
                chunks.push((b.root_start, v));
            }
            Some(c0) => {
                let mut c = Some(c0);
                while let Some(cl) = c {
                    if !seen.insert(cl) || chunks.len() > 65536 {
                        break;
                    }
                    let mut v = vec![0u8; csize];
                    d.read_at(&mut v, cluster_pos(&b, cl))?;
                    chunks.push((cluster_pos(&b, cl), v));
                    c = next(d, &b, cl)?;
                }
            }
        }
        if let (Some(_), Some((pos, first))) = (dir, chunks.first_mut()) {
            if first.len() >= 128
                && is_lfn(&first[0..32])
                && &first[32..43] == b".          "
                && is_lfn(&first[64..96])
                && &first[96..107] == b"..         "
            {
                let dot = first[32..64].to_vec();
                let dotdot = first[96..128].to_vec();
                first[0..32].copy_from_slice(&dot);
                first[32..64].copy_from_slice(&dotdot);
                first[64..128].fill(0);
                first[64] = 0xe5;
                first[96] = 0xe5;
                d.write_at(&first[..128], *pos)?;
            }
            // ".." of a directory in the root must say cluster 0, also on
            // FAT32 where the root has a real cluster (fatfs writes it)
            if parent_root && first.len() >= 64 && &first[32..43] == b"..         " {
                let c = (u16le(first, 32 + 20) << 16 | u16le(first, 32 + 26)) as u32;
                if c != 0 && Some(c) == root_first {
                    first[32 + 20..32 + 22].fill(0);
                    first[32 + 26..32 + 28].fill(0);
                    d.write_at(&first[32..64], *pos + 32)?;
                }
            }
        }
        'outer: for (_, v) in &chunks {
            for e in v.chunks_exact(32) {
                if e[0] == 0 {
                    break 'outer;
                }
                if e[0] == 0xe5 || e[11] == 0x0f || e[11] & 0x08 != 0 || e[0] == b'.' {
                    continue;
                }
                if e[11] & 0x10 != 0 {
                    let hi = if b.fat_bits == 32 {
                        u16le(e, 20) << 16
                    } else {
                        0
                    };
                    let c = (hi | u16le(e, 26)) as u32;
                    if c >= 2 && todo.len() < 100_000 {
                        todo.push((Some(c), dir == root_first));
                    }
                }
            }
        }
    }
    Ok(())
}
