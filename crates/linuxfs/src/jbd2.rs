//! Read-only replay of an ext3/ext4 internal journal (jbd2): the blocks of
//! committed transactions that were not yet written home, found without
//! writing anything, are laid over the filesystem's reads. A source VM
//! captured while running (a crash-consistent snapshot) has its latest
//! `/boot` changes only there.
//!
//! Handled: journal superblocks v1 and v2, descriptor blocks with every
//! tag format (32/64-bit block numbers, `CSUM_V2`, `CSUM_V3`), escaped
//! blocks, revoke records, wrap-around. Checksums are not verified; the
//! scan stops at the first block that is not the next expected one (an
//! uncommitted transaction is dropped, as the kernel does).

use crate::dev::{be16, be32, phys_of, Dev, Overlay, Run};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

const FS: &str = "ext4";
const MAGIC: u32 = 0xC03B_3998;
const DESCRIPTOR: u32 = 1;
const COMMIT: u32 = 2;
const SB_V1: u32 = 3;
const SB_V2: u32 = 4;
const REVOKE: u32 = 5;

const INCOMPAT_REVOKE: u32 = 0x1;
const INCOMPAT_64BIT: u32 = 0x2;
const INCOMPAT_ASYNC_COMMIT: u32 = 0x4;
const INCOMPAT_CSUM_V2: u32 = 0x8;
const INCOMPAT_CSUM_V3: u32 = 0x10;
const INCOMPAT_FAST_COMMIT: u32 = 0x20;

const FLAG_ESCAPE: u32 = 1;
const FLAG_SAME_UUID: u32 = 2;
const FLAG_LAST_TAG: u32 = 8;

/// The blocks to lay over the filesystem (block byte offset → journal
/// block), from the journal whose bytes `runs` locate (`len` bytes).
pub(crate) fn replay(
    dev: &Dev<'_>,
    runs: &[Run],
    len: u64,
    bs: u64,
    fs_blocks: u64,
) -> Result<Overlay> {
    let jblock = |j: u64| -> Result<(Vec<u8>, u64)> {
        let phys = phys_of(runs, j * bs);
        if j * bs >= len || phys == 0 {
            return Err(Error::corrupt(
                FS,
                0,
                format!(
                    "journal block {j}: expected inside the {len}-byte journal's mapped blocks"
                ),
            ));
        }
        Ok((dev.read(phys, bs as usize, "journal block")?, phys))
    };
    let (sb, sb_at) = jblock(0)?;
    let ty = be32(&sb, 4);
    if be32(&sb, 0) != MAGIC || (ty != SB_V1 && ty != SB_V2) {
        return Err(dev.corrupt(
            sb_at,
            format!(
                "journal superblock magic {:#x} type {ty}: expected 0xc03b3998, type 3 or 4",
                be32(&sb, 0)
            ),
        ));
    }
    let (jbs, maxlen, first, mut seq, start) = (
        be32(&sb, 0xC) as u64,
        be32(&sb, 0x10) as u64,
        be32(&sb, 0x14) as u64,
        be32(&sb, 0x18),
        be32(&sb, 0x1C) as u64,
    );
    if start == 0 {
        return Ok(Overlay::default());
    }
    if jbs != bs
        || maxlen > len / bs
        || first == 0
        || first >= maxlen
        || start < first
        || start >= maxlen
    {
        return Err(dev.corrupt(sb_at, format!("journal of {maxlen} blocks of {jbs} bytes, first {first}, start {start}: expected {bs}-byte blocks inside the {len}-byte journal")));
    }
    let incompat = if ty == SB_V2 { be32(&sb, 0x28) } else { 0 };
    let known = INCOMPAT_REVOKE
        | INCOMPAT_64BIT
        | INCOMPAT_ASYNC_COMMIT
        | INCOMPAT_CSUM_V2
        | INCOMPAT_CSUM_V3;
    if incompat & INCOMPAT_FAST_COMMIT != 0 {
        return Err(Error::unsupported(
            FS,
            "replaying a journal with FAST_COMMIT (jbd2 fast commits)",
        ));
    }
    if incompat & !known != 0 {
        return Err(Error::unsupported(
            FS,
            format!(
                "unknown jbd2 incompatible feature bit {:#x} in a journal that needs recovery",
                incompat & !known
            ),
        ));
    }
    let wide = incompat & INCOMPAT_64BIT != 0;
    let csum3 = incompat & INCOMPAT_CSUM_V3 != 0;
    let csum = csum3 || incompat & INCOMPAT_CSUM_V2 != 0;
    let tag_size = if csum3 {
        16
    } else {
        12 + if incompat & INCOMPAT_CSUM_V2 != 0 {
            2
        } else {
            0
        } - if wide { 0 } else { 4 }
    };
    let next = |j: u64| if j + 1 >= maxlen { first } else { j + 1 };

    // Scan: committed transactions' tags (fs block, journal block, escaped)
    // and revoke records, both with their sequence.
    let mut tags: Vec<(u32, u64, u64, bool)> = Vec::new();
    let mut revokes: BTreeMap<u64, u32> = BTreeMap::new();
    let mut pending: Vec<(u32, u64, u64, bool)> = Vec::new();
    let mut pending_revokes: Vec<u64> = Vec::new();
    let mut j = start;
    let mut steps = 0;
    while steps < maxlen {
        let Ok((b, _)) = jblock(j) else { break };
        if be32(&b, 0) != MAGIC || be32(&b, 8) != seq {
            break;
        }
        steps += 1;
        match be32(&b, 4) {
            DESCRIPTOR => {
                let usable = b.len() - if csum { 4 } else { 0 };
                let mut p = 12;
                while p + tag_size <= usable {
                    let (lo, flags) = if csum3 {
                        (be32(&b, p), be32(&b, p + 4))
                    } else {
                        (be32(&b, p), be16(&b, p + 6) as u32)
                    };
                    let hi = if wide { be32(&b, p + 8) as u64 } else { 0 };
                    let block = hi << 32 | lo as u64;
                    p += tag_size + if flags & FLAG_SAME_UUID == 0 { 16 } else { 0 };
                    j = next(j);
                    steps += 1;
                    if block >= fs_blocks {
                        return Err(Error::corrupt(
                            FS,
                            0,
                            format!("journal tag for block {block}: expected below {fs_blocks}"),
                        ));
                    }
                    pending.push((seq, block, j, flags & FLAG_ESCAPE != 0));
                    if flags & FLAG_LAST_TAG != 0 {
                        break;
                    }
                }
            }
            COMMIT => {
                tags.append(&mut pending);
                for r in pending_revokes.drain(..) {
                    let e = revokes.entry(r).or_insert(seq);
                    *e = (*e).max(seq);
                }
                seq = seq.wrapping_add(1);
            }
            REVOKE => {
                let count = (be32(&b, 12) as usize).min(b.len());
                let rsize = if wide { 8 } else { 4 };
                let mut p = 16;
                while p + rsize <= count {
                    pending_revokes.push(if wide {
                        (be32(&b, p) as u64) << 32 | be32(&b, p + 4) as u64
                    } else {
                        be32(&b, p) as u64
                    });
                    p += rsize;
                }
            }
            _ => break,
        }
        j = next(j);
    }

    // Replay: the latest committed copy of each block not revoked at or
    // after its transaction.
    let mut out = Overlay::default();
    for (tseq, block, jb, escape) in tags {
        if revokes.get(&block).is_some_and(|&r| r >= tseq) {
            continue;
        }
        let phys = phys_of(runs, jb * bs);
        if phys != 0 {
            out.blocks.insert(block * bs, (phys, escape));
        }
    }
    out.block_size = bs;
    Ok(out)
}
