//! ext2, ext3 and ext4, read-only.
//!
//! Handled: the primary superblock, group descriptors (32- and 64-bit,
//! `meta_bg`), inodes of any size, extent trees of any depth (unwritten
//! extents read as zeros), legacy direct/indirect block maps (ext2/3),
//! holes, inline data (files and directories), linear and htree
//! directories (htree read linearly), fast, slow and inline symlinks.
//! Checksums (`metadata_csum`, `gdt_csum`) are not verified. A
//! filesystem with `needs_recovery` has its internal journal replayed in
//! memory (see the `jbd2` module): committed blocks are read from the
//! journal, nothing is written.
//!
//! Refused with [`Error::Unsupported`]: `INCOMPAT_COMPRESSION`,
//! `INCOMPAT_JOURNAL_DEV` (an external journal device, not a
//! filesystem), recovery from an external journal or with jbd2 fast
//! commits, `INCOMPAT_DIRDATA`, unknown INCOMPAT bits, encrypted files
//! and directories (`INCOMPAT_ENCRYPT` inodes), block sizes above 64 KiB.

use crate::dev::{gather, le16, le32, phys_of, u8_at, Dev, Run};
use crate::error::{Error, Result};
use crate::{
    dirent_type, Backend, DirEntry, FileType, Metadata, MAX_DIR_BYTES, MAX_DIR_ENTRIES,
    MAX_LINK_BYTES,
};
use vdisk::Disk;

const FS: &str = "ext4";
const SB_OFF: u64 = 1024;
const ROOT_INO: u64 = 2;

const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_META_BG: u32 = 0x10;
/// Largest internal journal we replay (mke2fs makes at most 1 GiB).
const MAX_JOURNAL_BYTES: u64 = 2 << 30;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_FLEX_BG: u32 = 0x200;
/// INCOMPAT bits we read (the others are refused by name).
const INCOMPAT_READ: u32 = 0x2 // FILETYPE
    | 0x4 // RECOVER
    | 0x10 // META_BG
    | 0x40 // EXTENTS
    | 0x80 // 64BIT
    | 0x100 // MMP
    | 0x200 // FLEX_BG
    | 0x400 // EA_INODE
    | 0x2000 // CSUM_SEED
    | 0x4000 // LARGEDIR
    | 0x8000 // INLINE_DATA
    | 0x10000 // ENCRYPT (refused per inode)
    | 0x20000; // CASEFOLD (names are matched exactly)
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const COMPAT_HAS_JOURNAL: u32 = 0x4;

const FL_ENCRYPT: u32 = 0x800;
const FL_HUGE_FILE: u32 = 0x40000;
const FL_EXTENTS: u32 = 0x80000;
const FL_EA_INODE: u32 = 0x200000;
const FL_INLINE_DATA: u32 = 0x1000_0000;

const EXT_MAGIC: u16 = 0xF30A;
const MAX_EXTENT_DEPTH: u16 = 5;

/// Name of an INCOMPAT bit we refuse.
fn incompat_name(bit: u32) -> String {
    match bit {
        0x1 => "INCOMPAT_COMPRESSION".into(),
        0x8 => "INCOMPAT_JOURNAL_DEV (an external journal device, not a filesystem)".into(),
        0x1000 => "INCOMPAT_DIRDATA".into(),
        b => format!("unknown INCOMPAT bit {b:#x}"),
    }
}

/// An opened ext2/3/4 filesystem.
#[derive(Debug)]
pub struct Ext4<'a> {
    dev: Dev<'a>,
    bs: u64,
    blocks: u64,
    first_data_block: u64,
    blocks_per_group: u64,
    inodes_per_group: u64,
    inodes: u64,
    inode_size: u64,
    desc_size: u64,
    groups: u64,
    first_meta_bg: u64,
    compat: u32,
    incompat: u32,
    ro_compat: u32,
    /// log2(blocks per cluster) with `bigalloc`, else 0.
    cluster_bits: u32,
}

/// One inode as read from disk.
struct Inode {
    ino: u64,
    off: u64,
    raw: Vec<u8>,
    mode: u32,
    flags: u32,
    size: u64,
}

impl Inode {
    fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }
    fn i_block(&self) -> &[u8] {
        self.raw.get(0x28..0x28 + 60).unwrap_or(&[])
    }
}

impl<'a> Ext4<'a> {
    /// Open the ext2/3/4 filesystem on `disk` (reads and checks the
    /// superblock and its features).
    pub fn open(disk: Box<dyn Disk + 'a>) -> Result<Self> {
        let dev = Dev::new(disk, FS);
        let sb = dev.read(SB_OFF, 1024, "superblock")?;
        if le16(&sb, 0x38) != 0xEF53 {
            return Err(dev.corrupt(SB_OFF + 0x38, "expected the ext2/3/4 magic 0xEF53"));
        }
        let log = le32(&sb, 0x18);
        if log > 6 {
            return Err(Error::unsupported(
                FS,
                format!("block size 2^{} (more than 64 KiB)", 10 + log as u64),
            ));
        }
        let bs = 1024u64 << log;
        let incompat = le32(&sb, 0x60);
        let unknown = incompat & !INCOMPAT_READ;
        if unknown != 0 {
            let bit = 1 << unknown.trailing_zeros();
            return Err(Error::unsupported(FS, incompat_name(bit)));
        }
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let journal_inum = le32(&sb, 0xE0) as u64;
        let blocks = le32(&sb, 0x4) as u64
            | if is64 {
                (le32(&sb, 0x150) as u64) << 32
            } else {
                0
            };
        let rev = le32(&sb, 0x4C);
        let inode_size = if rev == 0 {
            128
        } else {
            le16(&sb, 0x58) as u64
        };
        let desc_size = if is64 { le16(&sb, 0xFE) as u64 } else { 32 };
        let fs = Ext4 {
            bs,
            blocks,
            first_data_block: le32(&sb, 0x14) as u64,
            blocks_per_group: le32(&sb, 0x20) as u64,
            inodes_per_group: le32(&sb, 0x28) as u64,
            inodes: le32(&sb, 0x0) as u64,
            inode_size,
            desc_size,
            groups: 0,
            first_meta_bg: le32(&sb, 0x104) as u64,
            compat: le32(&sb, 0x5C),
            incompat,
            ro_compat: le32(&sb, 0x64),
            cluster_bits: if le32(&sb, 0x64) & RO_COMPAT_BIGALLOC != 0 {
                le32(&sb, 0x1C).saturating_sub(log).min(16)
            } else {
                0
            },
            dev,
        };
        let mut fs = fs.check_geometry()?;
        if incompat & INCOMPAT_RECOVER != 0 {
            fs.replay_journal(journal_inum)?;
        }
        Ok(fs)
    }

    /// Lay the committed but not yet checkpointed blocks of the internal
    /// journal over our reads (read-only recovery).
    fn replay_journal(&mut self, ino: u64) -> Result<()> {
        if ino == 0 {
            return Err(Error::unsupported(
                FS,
                "recovery from an external journal device (needs_recovery without a journal inode)",
            ));
        }
        let j = self.inode(ino)?;
        if j.size > MAX_JOURNAL_BYTES {
            return Err(Error::TooLarge {
                what: format!("journal inode {ino}"),
                size: j.size,
                max: MAX_JOURNAL_BYTES,
            });
        }
        let runs = self.runs(&j, j.size)?;
        self.dev.overlay = crate::jbd2::replay(&self.dev, &runs, j.size, self.bs, self.blocks)?;
        Ok(())
    }

    fn check_geometry(mut self) -> Result<Self> {
        let bad = |off: u64, what: String| Err(self.dev.corrupt(SB_OFF + off, what));
        if self.inode_size < 128 || !self.inode_size.is_power_of_two() || self.inode_size > self.bs
        {
            return bad(
                0x58,
                format!(
                    "inode size {}: expected a power of two from 128 to the block size",
                    self.inode_size
                ),
            );
        }
        if self.desc_size < 32 || self.desc_size > 1024 || !self.desc_size.is_power_of_two() {
            return bad(
                0xFE,
                format!(
                    "group descriptor size {}: expected 32..=1024, a power of two",
                    self.desc_size
                ),
            );
        }
        // A group's bitmap block covers 8 * block size clusters.
        let max_bpg = (8 * self.bs) << self.cluster_bits;
        if self.blocks_per_group == 0 || self.blocks_per_group > max_bpg {
            return bad(
                0x20,
                format!(
                    "{} blocks per group: expected 1..={max_bpg}",
                    self.blocks_per_group
                ),
            );
        }
        if self.inodes_per_group == 0 || self.inodes_per_group > 8 * self.bs {
            return bad(
                0x28,
                format!(
                    "{} inodes per group: expected 1..={}",
                    self.inodes_per_group,
                    8 * self.bs
                ),
            );
        }
        if !matches!(self.blocks.checked_mul(self.bs), Some(b) if b <= 1 << 60) {
            return bad(
                0x4,
                format!(
                    "{} blocks of {} bytes: expected at most 1 EiB",
                    self.blocks, self.bs
                ),
            );
        }
        if self.first_data_block >= self.blocks {
            return bad(
                0x14,
                format!(
                    "first data block {} not below the block count {}",
                    self.first_data_block, self.blocks
                ),
            );
        }
        self.groups = (self.blocks - self.first_data_block).div_ceil(self.blocks_per_group);
        if self.inodes > self.groups.saturating_mul(self.inodes_per_group) || self.inodes < ROOT_INO
        {
            return bad(
                0x0,
                format!(
                    "{} inodes for {} groups of {}",
                    self.inodes, self.groups, self.inodes_per_group
                ),
            );
        }
        Ok(self)
    }

    /// "ext4" when an ext4-only feature is on, else "ext3" with a journal,
    /// else "ext2".
    pub fn kind(&self) -> &'static str {
        if self.incompat
            & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG | 0x8000 | 0x400 | 0x4000)
            != 0
        {
            "ext4"
        } else if self.compat & COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        }
    }

    fn has_super(&self, group: u64) -> bool {
        if self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 || group <= 1 {
            return true;
        }
        [3u64, 5, 7].iter().any(|&b| {
            let mut p = b;
            while p < group {
                p *= b;
            }
            p == group
        })
    }

    /// Byte offset of group `g`'s descriptor.
    fn desc_offset(&self, g: u64) -> u64 {
        let per_block = self.bs / self.desc_size;
        if self.incompat & INCOMPAT_META_BG != 0 && g / per_block >= self.first_meta_bg {
            let first = g / per_block * per_block;
            // 1 KiB blocks with bigalloc: block 0 holds no superblock but
            // group 0 still keeps it in block 1.
            let quirk = self.bs == 1024 && first == 0 && self.first_data_block == 0;
            let block = self.first_data_block
                + first * self.blocks_per_group
                + u64::from(self.has_super(first))
                + u64::from(quirk);
            block * self.bs + (g % per_block) * self.desc_size
        } else {
            // The block after the superblock's (block 1 of 1 KiB blocks,
            // even with bigalloc's first data block 0).
            (SB_OFF / self.bs + 1) * self.bs + g * self.desc_size
        }
    }

    fn inode(&self, ino: u64) -> Result<Inode> {
        if ino == 0 || ino > self.inodes {
            return Err(self.dev.corrupt(
                SB_OFF,
                format!("inode number {ino}: expected 1..={}", self.inodes),
            ));
        }
        let g = (ino - 1) / self.inodes_per_group;
        let idx = (ino - 1) % self.inodes_per_group;
        let doff = self.desc_offset(g);
        let d = self
            .dev
            .read(doff, self.desc_size as usize, "group descriptor")?;
        let mut table = le32(&d, 0x8) as u64;
        if self.desc_size >= 64 {
            table |= (le32(&d, 0x28) as u64) << 32;
        }
        let table_blocks = (self.inodes_per_group * self.inode_size).div_ceil(self.bs);
        if table == 0 || table.saturating_add(table_blocks) > self.blocks {
            return Err(self.dev.corrupt(
                doff + 0x8,
                format!(
                    "group {g}'s inode table at block {table}: expected inside the {} blocks",
                    self.blocks
                ),
            ));
        }
        let off = table * self.bs + idx * self.inode_size;
        let raw = self.dev.read(off, self.inode_size as usize, "inode")?;
        let mode = le16(&raw, 0) as u32;
        let size = le32(&raw, 0x4) as u64 | (le32(&raw, 0x6C) as u64) << 32;
        let flags = le32(&raw, 0x20);
        if flags & FL_ENCRYPT != 0 {
            return Err(Error::unsupported(
                FS,
                format!("INCOMPAT_ENCRYPT (inode {ino} is encrypted)"),
            ));
        }
        Ok(Inode {
            ino,
            off,
            raw,
            mode,
            flags,
            size,
        })
    }

    /// The runs holding the first `len` bytes of a block-mapped or
    /// extent-mapped inode.
    fn runs(&self, ino: &Inode, len: u64) -> Result<Vec<Run>> {
        let max_runs = len.div_ceil(self.bs) as usize + 16;
        let mut out = Vec::new();
        if ino.flags & FL_EXTENTS != 0 {
            let mut nodes = 0usize;
            self.extent_node(
                ino.i_block(),
                ino.off + 0x28,
                None,
                len,
                max_runs,
                &mut nodes,
                &mut out,
            )?;
        } else {
            let p = self.bs / 4;
            let n = len.div_ceil(self.bs);
            let ib = ino.i_block();
            for i in 0..12u64.min(n) {
                self.map_block(le32(ib, i as usize * 4) as u64, 0, i, n, &mut out)?;
            }
            let mut base = 12;
            let mut span = p;
            for level in 1..=3u32 {
                if base >= n {
                    break;
                }
                self.map_block(
                    le32(ib, (11 + level) as usize * 4) as u64,
                    level,
                    base,
                    n,
                    &mut out,
                )?;
                base = base.saturating_add(span);
                span = span.saturating_mul(p);
            }
        }
        Ok(out)
    }

    fn check_block(&self, blk: u64, count: u64, at: u64, what: &str) -> Result<()> {
        if !matches!(blk.checked_add(count), Some(e) if e <= self.blocks) {
            return Err(self.dev.corrupt(
                at,
                format!(
                    "{what} at block {blk} (+{count}): expected inside the {} blocks",
                    self.blocks
                ),
            ));
        }
        Ok(())
    }

    /// Walk one pointer of a block map: `blk` covers logical blocks from
    /// `base` through an indirection `level` (0 = a data block).
    fn map_block(&self, blk: u64, level: u32, base: u64, n: u64, out: &mut Vec<Run>) -> Result<()> {
        if blk == 0 || base >= n {
            return Ok(()); // a hole
        }
        self.check_block(blk, 1, SB_OFF, "block map entry")?;
        if level == 0 {
            let logical = base * self.bs;
            match out.last_mut() {
                Some(r)
                    if r.logical + r.len == logical
                        && r.phys.map(|p| p + r.len) == Some(blk * self.bs) =>
                {
                    r.len += self.bs
                }
                _ => out.push(Run {
                    logical,
                    phys: Some(blk * self.bs),
                    len: self.bs,
                }),
            }
            return Ok(());
        }
        let p = self.bs / 4;
        let span = p.pow(level - 1);
        let ptrs = self
            .dev
            .read(blk * self.bs, self.bs as usize, "indirect block")?;
        for i in 0..p {
            let child_base = base + i * span;
            if child_base >= n {
                break;
            }
            self.map_block(
                le32(&ptrs, i as usize * 4) as u64,
                level - 1,
                child_base,
                n,
                out,
            )?;
        }
        Ok(())
    }

    /// Walk an extent tree node (the 60-byte root in the inode or a tree
    /// block) at byte `at`, collecting runs below `len`.
    #[allow(clippy::too_many_arguments)]
    fn extent_node(
        &self,
        node: &[u8],
        at: u64,
        want_depth: Option<u16>,
        len: u64,
        max_runs: usize,
        nodes: &mut usize,
        out: &mut Vec<Run>,
    ) -> Result<()> {
        *nodes += 1;
        if *nodes > max_runs {
            return Err(self.dev.corrupt(
                at,
                format!("more than {max_runs} extent tree nodes for a {len}-byte file"),
            ));
        }
        let (magic, entries, max, depth) = (
            le16(node, 0),
            le16(node, 2) as usize,
            le16(node, 4) as usize,
            le16(node, 6),
        );
        if magic != EXT_MAGIC {
            return Err(self.dev.corrupt(
                at,
                format!("extent header magic {magic:#06x}: expected 0xf30a"),
            ));
        }
        if entries > max || 12 + max * 12 > node.len() {
            return Err(self.dev.corrupt(
                at,
                format!(
                    "extent header: {entries} entries of at most {max} in a {}-byte node",
                    node.len()
                ),
            ));
        }
        if depth > MAX_EXTENT_DEPTH || want_depth.is_some_and(|d| d != depth) {
            return Err(self.dev.corrupt(
                at,
                format!(
                    "extent node depth {depth}: expected {}",
                    want_depth.map_or("at most 5".into(), |d| d.to_string())
                ),
            ));
        }
        for i in 0..entries {
            let e = &node[12 + i * 12..24 + i * 12];
            let e_at = at + 12 + i as u64 * 12;
            let first = le32(e, 0) as u64;
            if first.saturating_mul(self.bs) >= len {
                break;
            }
            if depth == 0 {
                let raw_len = le16(e, 4) as u64;
                let (count, unwritten) = if raw_len > 32768 {
                    (raw_len - 32768, true)
                } else {
                    (raw_len, false)
                };
                let start = (le16(e, 6) as u64) << 32 | le32(e, 8) as u64;
                self.check_block(start, count, e_at, "extent")?;
                if out.len() >= max_runs {
                    return Err(self.dev.corrupt(
                        e_at,
                        format!("more than {max_runs} extents for a {len}-byte file"),
                    ));
                }
                out.push(Run {
                    logical: first * self.bs,
                    phys: (!unwritten).then_some(start * self.bs),
                    len: count * self.bs,
                });
            } else {
                let child = le32(e, 4) as u64 | (le16(e, 8) as u64) << 32;
                self.check_block(child, 1, e_at, "extent index")?;
                let blk = self
                    .dev
                    .read(child * self.bs, self.bs as usize, "extent tree block")?;
                self.extent_node(
                    &blk,
                    child * self.bs,
                    Some(depth - 1),
                    len,
                    max_runs,
                    nodes,
                    out,
                )?;
            }
        }
        Ok(())
    }

    /// The value of the in-inode extended attribute `system.data` (the
    /// rest of an inline file or directory).
    fn inline_xattr(&self, ino: &Inode) -> Vec<u8> {
        let extra = le16(&ino.raw, 0x80) as usize;
        let body = 128 + extra;
        if le32(&ino.raw, body) != 0xEA02_0000 {
            return Vec::new();
        }
        let first = body + 4;
        let mut p = first;
        while p + 16 <= ino.raw.len() && le32(&ino.raw, p) != 0 {
            let name_len = u8_at(&ino.raw, p) as usize;
            let index = u8_at(&ino.raw, p + 1);
            let value_off = le16(&ino.raw, p + 2) as usize;
            let value_size = le32(&ino.raw, p + 8) as usize;
            let name = ino.raw.get(p + 16..p + 16 + name_len).unwrap_or(&[]);
            if index == 7 && name == b"data" {
                let s = first + value_off;
                return ino
                    .raw
                    .get(s..s.saturating_add(value_size))
                    .unwrap_or(&[])
                    .to_vec();
            }
            p += (16 + name_len).div_ceil(4) * 4;
        }
        Vec::new()
    }

    /// The first `len` bytes of `ino`'s data, whatever its mapping.
    fn data(&self, ino: &Inode, len: u64) -> Result<Vec<u8>> {
        if ino.flags & FL_INLINE_DATA != 0 {
            let mut v = ino.i_block().to_vec();
            v.extend(self.inline_xattr(ino));
            if (v.len() as u64) < len {
                return Err(self.dev.corrupt(
                    ino.off,
                    format!(
                        "inode {}: {} bytes of inline data for a {len}-byte file",
                        ino.ino,
                        v.len()
                    ),
                ));
            }
            v.truncate(len as usize);
            return Ok(v);
        }
        let runs = self.runs(ino, len)?;
        gather(&self.dev, &runs, len, "file data")
    }

    /// Parse the directory entries of `buf` (split in `chunk`-byte blocks);
    /// `at(i)` maps a byte of `buf` to its device offset for errors.
    fn dirents(
        &self,
        buf: &[u8],
        chunk: usize,
        at: &dyn Fn(usize) -> u64,
        out: &mut Vec<DirEntry>,
    ) -> Result<()> {
        let filetype = self.incompat & INCOMPAT_FILETYPE != 0;
        for (bi, blk) in buf.chunks(chunk.max(1)).enumerate() {
            let mut p = 0usize;
            while p + 8 <= blk.len() {
                let ino = le32(blk, p) as u64;
                let raw_rec = le16(blk, p + 4) as usize;
                let rec = if self.bs >= 65536 && (raw_rec == 65535 || raw_rec == 0) {
                    65536
                } else {
                    (raw_rec & 65532) | ((raw_rec & 3) << 16)
                };
                let name_len = if filetype {
                    u8_at(blk, p + 6) as usize
                } else {
                    le16(blk, p + 6) as usize
                };
                if rec < 8 || p + rec > blk.len() || 8 + name_len > rec {
                    return Err(self.dev.corrupt(
                        at(bi * chunk + p),
                        format!("directory entry: record length {rec} with a {name_len}-byte name at byte {p} of a {}-byte block", blk.len()),
                    ));
                }
                let name = &blk[p + 8..p + 8 + name_len];
                if ino != 0 && name != b"." && name != b".." {
                    if out.len() >= MAX_DIR_ENTRIES {
                        return Err(Error::TooLarge {
                            what: "directory".into(),
                            size: out.len() as u64 + 1,
                            max: MAX_DIR_ENTRIES as u64,
                        });
                    }
                    let ft = if filetype {
                        dirent_type(u8_at(blk, p + 7))
                    } else {
                        FileType::Unknown
                    };
                    out.push(DirEntry {
                        name: String::from_utf8_lossy(name).into_owned(),
                        ino,
                        file_type: ft,
                    });
                }
                p += rec;
            }
        }
        Ok(())
    }
}

impl Backend for Ext4<'_> {
    fn fs_type(&self) -> &'static str {
        self.kind()
    }
    fn root(&self) -> u64 {
        ROOT_INO
    }
    fn meta(&self, ino: u64) -> Result<Metadata> {
        let i = self.inode(ino)?;
        let r = &i.raw;
        let mut mtime = le32(r, 0x10) as i32 as i64;
        if le16(r, 0x80) >= 24 {
            mtime += ((le32(r, 0x88) & 3) as i64) << 32;
        }
        Ok(Metadata {
            ino,
            file_type: i.file_type(),
            mode: i.mode & 0o7777,
            uid: le16(r, 0x2) as u32 | (le16(r, 0x78) as u32) << 16,
            gid: le16(r, 0x18) as u32 | (le16(r, 0x7A) as u32) << 16,
            size: i.size,
            nlink: le16(r, 0x1A) as u32,
            mtime,
        })
    }
    fn list(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let i = self.inode(ino)?;
        if i.file_type() != FileType::Directory {
            return Err(self
                .dev
                .corrupt(i.off, format!("inode {ino}: expected a directory")));
        }
        if i.size > MAX_DIR_BYTES {
            return Err(Error::TooLarge {
                what: format!("directory inode {ino}"),
                size: i.size,
                max: MAX_DIR_BYTES,
            });
        }
        let mut out = Vec::new();
        if i.flags & FL_INLINE_DATA != 0 {
            // 4 bytes of parent inode, then entries; more in system.data.
            let ib = i.i_block().get(4..).unwrap_or(&[]).to_vec();
            self.dirents(&ib, ib.len(), &|p| i.off + 0x2C + p as u64, &mut out)?;
            let more = self.inline_xattr(&i);
            self.dirents(&more, more.len(), &|_| i.off, &mut out)?;
        } else {
            let runs = self.runs(&i, i.size)?;
            let buf = gather(&self.dev, &runs, i.size, "directory data")?;
            self.dirents(
                &buf,
                self.bs as usize,
                &|p| phys_of(&runs, p as u64),
                &mut out,
            )?;
        }
        for e in out.iter_mut().filter(|e| e.file_type == FileType::Unknown) {
            e.file_type = self.inode(e.ino)?.file_type();
        }
        Ok(out)
    }
    fn read(&self, ino: u64, len: u64) -> Result<Vec<u8>> {
        let i = self.inode(ino)?;
        self.data(&i, len.min(i.size))
    }
    fn link(&self, ino: u64) -> Result<Vec<u8>> {
        let i = self.inode(ino)?;
        if i.size > MAX_LINK_BYTES {
            return Err(Error::TooLarge {
                what: format!("symlink inode {ino}"),
                size: i.size,
                max: MAX_LINK_BYTES,
            });
        }
        let huge = self.ro_compat & RO_COMPAT_HUGE_FILE != 0;
        let mut blocks = le32(&i.raw, 0x1C) as u64
            | if huge {
                (le16(&i.raw, 0x74) as u64) << 32
            } else {
                0
            };
        if huge && i.flags & FL_HUGE_FILE != 0 {
            blocks *= self.bs / 512;
        }
        let acl = le32(&i.raw, 0x68) as u64 | (le16(&i.raw, 0x76) as u64) << 32;
        let ea_blocks = if acl != 0 { self.bs / 512 } else { 0 };
        let fast = if i.flags & FL_EA_INODE != 0 {
            i.size < 60
        } else {
            i.flags & FL_INLINE_DATA == 0 && blocks.saturating_sub(ea_blocks) == 0
        };
        if fast {
            if i.size > 60 {
                return Err(self.dev.corrupt(
                    i.off,
                    format!(
                        "fast symlink inode {ino} of {} bytes: expected at most 60",
                        i.size
                    ),
                ));
            }
            return Ok(i.i_block()[..i.size as usize].to_vec());
        }
        self.data(&i, i.size)
    }
}
