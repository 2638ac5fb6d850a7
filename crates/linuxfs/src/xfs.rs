//! XFS v5 (the CRC format of RHEL 7.1+ to 9) and v4 (RHEL/CentOS 7.0,
//! older installs), read-only.
//!
//! Handled: the primary superblock; inodes found by number arithmetic
//! (AG number / AG block / slot, no inode B+tree walk); data forks in
//! local, extent-list and B+tree (`BMA3`) format, unwritten extents and
//! holes read as zeros; shortform, block (`XDB3`), leaf and node
//! directories (their data blocks, `XDD3`, read in order; the hash
//! index is not needed to list); local and remote (`XSLM`) symlinks;
//! big timestamps and 64-bit extent counters. CRCs are not verified and
//! the log is not replayed.
//!
//! The v4 forms (version 1/2 inodes, `BMAP` B+tree blocks, `XD2B`/`XD2D`
//! directory blocks, header-less symlink blocks, `FTYPE` in features2)
//! are read too.
//!
//! Refused with [`Error::Unsupported`]: superblock versions other than 4
//! and 5, v4 without version 2 directories, `NEEDSREPAIR`, `METADIR`, `ZONED` and unknown incompatible feature
//! bits, files on the realtime device.

use crate::dev::{be16, be32, be64, gather, gather_range, u8_at, Dev, Run};
use crate::error::{Error, Result};
use crate::{
    dirent_type, Backend, DirEntry, FileType, Metadata, MAX_DIR_BYTES, MAX_DIR_ENTRIES,
    MAX_LINK_BYTES,
};
use vdisk::Disk;

const FS: &str = "xfs";

const INCOMPAT_FTYPE: u32 = 0x1;
const INCOMPAT_NREXT64: u32 = 0x20;
/// Incompatible features we read.
const INCOMPAT_READ: u32 = 0x1 // FTYPE
    | 0x2 // SPINODES
    | 0x4 // META_UUID
    | 0x8 // BIGTIME
    | 0x20 // NREXT64
    | 0x40 // EXCHRANGE
    | 0x80; // PARENT

const INODE_MAGIC: u16 = 0x494E; // "IN"
const BMAP_MAGIC: u32 = 0x424D_4133; // "BMA3"
const DIR_BLOCK_MAGIC: u32 = 0x5844_4233; // "XDB3"
const DIR_DATA_MAGIC: u32 = 0x5844_4433; // "XDD3"
const SYMLINK_MAGIC: u32 = 0x5853_4C4D; // "XSLM"
const CORE_SIZE: usize = 176;
const BMBT_HDR: usize = 72;
const DIR_HDR: usize = 64;
const SYMLINK_HDR: usize = 56;
// The v4 (pre-CRC) forms.
const BMAP_MAGIC_V4: u32 = 0x424D_4150; // "BMAP"
const DIR_BLOCK_MAGIC_V4: u32 = 0x5844_3242; // "XD2B"
const DIR_DATA_MAGIC_V4: u32 = 0x5844_3244; // "XD2D"
const CORE_SIZE_V4: usize = 100;
const BMBT_HDR_V4: usize = 24;
const DIR_HDR_V4: usize = 16;
const VERSION_DIRV2: u16 = 0x2000;
const VERSION_MOREBITS: u16 = 0x8000;
const FEATURES2_FTYPE: u32 = 0x200;
/// Directory data lives below this byte offset of the directory; leaf
/// and free-index blocks above.
const DIR_LEAF_OFFSET: u64 = 32 << 30;
const MAX_BMBT_LEVELS: u16 = 9;

fn incompat_name(bit: u32) -> String {
    match bit {
        0x10 => "NEEDSREPAIR (run xfs_repair first)".into(),
        0x100 => "METADIR (metadata directory tree)".into(),
        0x200 => "ZONED (zoned realtime device)".into(),
        b => format!("unknown incompatible feature bit {b:#x}"),
    }
}

/// An opened XFS (v4 or v5) filesystem.
#[derive(Debug)]
pub struct Xfs<'a> {
    dev: Dev<'a>,
    bs: u64,
    agblocks: u64,
    agcount: u64,
    agblklog: u32,
    inopblog: u32,
    inode_size: u64,
    dirblksize: u64,
    rootino: u64,
    incompat: u32,
    v5: bool,
    ftype: bool,
}

/// An inode as read from disk.
struct Inode {
    ino: u64,
    off: u64,
    raw: Vec<u8>,
    mode: u32,
    format: u8,
    size: u64,
    nextents: u64,
    core: usize,
}

impl Inode {
    fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }
    /// The data fork (literal area up to the attribute fork).
    fn fork(&self) -> &[u8] {
        let forkoff = u8_at(&self.raw, 82) as usize * 8;
        let end = if forkoff == 0 {
            self.raw.len()
        } else {
            (self.core + forkoff).min(self.raw.len())
        };
        self.raw.get(self.core..end).unwrap_or(&[])
    }
}

/// One extent of a data fork, in filesystem blocks.
struct Ext {
    off: u64,
    fsb: u64,
    count: u64,
    unwritten: bool,
}

fn decode_extent(r: &[u8]) -> Ext {
    let (l0, l1) = (be64(r, 0), be64(r, 8));
    Ext {
        unwritten: l0 >> 63 != 0,
        off: (l0 & ((1 << 63) - 1)) >> 9,
        fsb: ((l0 & 0x1FF) << 43) | (l1 >> 21),
        count: l1 & ((1 << 21) - 1),
    }
}

impl<'a> Xfs<'a> {
    /// Open the XFS filesystem on `disk` (reads and checks the superblock).
    pub fn open(disk: Box<dyn Disk + 'a>) -> Result<Self> {
        let dev = Dev::new(disk, FS);
        let sb = dev.read(0, 512, "superblock")?;
        if &sb[0..4] != b"XFSB" {
            return Err(dev.corrupt(0, "expected the XFS magic XFSB"));
        }
        let versionnum = be16(&sb, 100);
        let version = versionnum & 0xF;
        if version != 4 && version != 5 {
            return Err(Error::unsupported(
                FS,
                format!("XFS v{version} (superblock version {version}; v4 and v5 are read)"),
            ));
        }
        let v5 = version == 5;
        if !v5 && versionnum & VERSION_DIRV2 == 0 {
            return Err(Error::unsupported(
                FS,
                "XFS version 1 directories (a v4 superblock without DIRV2BIT)",
            ));
        }
        let incompat = if v5 { be32(&sb, 216) } else { 0 };
        let unknown = incompat & !INCOMPAT_READ;
        if unknown != 0 {
            return Err(Error::unsupported(
                FS,
                incompat_name(1 << unknown.trailing_zeros()),
            ));
        }
        let ftype = if v5 {
            incompat & INCOMPAT_FTYPE != 0
        } else {
            versionnum & VERSION_MOREBITS != 0 && be32(&sb, 200) & FEATURES2_FTYPE != 0
        };
        let bs = be32(&sb, 4) as u64;
        let blocklog = u8_at(&sb, 120) as u32;
        let inode_size = be16(&sb, 104) as u64;
        let inodelog = u8_at(&sb, 122) as u32;
        let inopblog = u8_at(&sb, 123) as u32;
        let agblocks = be32(&sb, 84) as u64;
        let agblklog = u8_at(&sb, 124) as u32;
        let agcount = be32(&sb, 88) as u64;
        let dirblklog = u8_at(&sb, 192) as u32;
        let bad = |off: u64, what: String| Err(dev.corrupt(off, what));
        if !(9..=16).contains(&blocklog) || bs != 1 << blocklog {
            return bad(
                4,
                format!(
                    "block size {bs} (log {blocklog}): expected a power of two from 512 to 65536"
                ),
            );
        }
        if !(8..=11).contains(&inodelog)
            || inode_size != 1 << inodelog
            || blocklog < inodelog
            || inopblog != blocklog - inodelog
        {
            return bad(104, format!("inode size {inode_size} (log {inodelog}, {inopblog} per block log): expected 256..=2048 fitting the block"));
        }
        if agblocks == 0 || agblklog > 31 || agblocks > 1 << agblklog || agcount == 0 {
            return bad(
                84,
                format!("{agcount} AGs of {agblocks} blocks (log {agblklog})"),
            );
        }
        if blocklog + dirblklog > 16 {
            return bad(
                192,
                format!("directory block log {dirblklog}: expected blocks of at most 64 KiB"),
            );
        }
        Ok(Xfs {
            bs,
            agblocks,
            agcount,
            agblklog,
            inopblog,
            inode_size,
            dirblksize: bs << dirblklog,
            rootino: be64(&sb, 56),
            incompat,
            v5,
            ftype,
            dev,
        })
    }

    /// Byte offset of `count` blocks at filesystem block `fsb`
    /// (AG number in the high bits), checked to lie in one AG.
    fn fsb_offset(&self, fsb: u64, count: u64, at: u64, what: &str) -> Result<u64> {
        let agno = fsb >> self.agblklog;
        let agbno = fsb & ((1 << self.agblklog) - 1);
        if agno >= self.agcount || agbno.saturating_add(count) > self.agblocks {
            return Err(self.dev.corrupt(
                at,
                format!("{what} at AG {agno} block {agbno} (+{count}): expected inside {} AGs of {} blocks", self.agcount, self.agblocks),
            ));
        }
        agno.checked_mul(self.agblocks)
            .and_then(|b| b.checked_add(agbno))
            .and_then(|b| b.checked_mul(self.bs))
            .ok_or_else(|| {
                self.dev.corrupt(
                    at,
                    format!("{what} at AG {agno} block {agbno}: byte offset overflows"),
                )
            })
    }

    fn inode(&self, ino: u64) -> Result<Inode> {
        let slot = ino & ((1 << self.inopblog) - 1);
        let fsb = ino >> self.inopblog;
        let blk = self.fsb_offset(fsb, 1, 56, &format!("inode {ino}"))?;
        let off = blk.saturating_add(slot * self.inode_size);
        let raw = self.dev.read(off, self.inode_size as usize, "inode")?;
        if be16(&raw, 0) != INODE_MAGIC {
            return Err(self.dev.corrupt(
                off,
                format!(
                    "inode {ino}: magic {:#06x}, expected 0x494e (IN)",
                    be16(&raw, 0)
                ),
            ));
        }
        let version = u8_at(&raw, 4);
        let ok = if self.v5 {
            version == 3 && be64(&raw, 152) == ino
        } else {
            version == 1 || version == 2
        };
        if !ok {
            return Err(self.dev.corrupt(
                off,
                format!(
                    "inode {ino}: version {version} numbered {}: expected {}",
                    be64(&raw, 152),
                    if self.v5 {
                        format!("a version 3 inode numbered {ino}")
                    } else {
                        "a version 1 or 2 inode".into()
                    }
                ),
            ));
        }
        if be16(&raw, 90) & 0x1 != 0 {
            return Err(Error::unsupported(
                FS,
                format!("realtime file (inode {ino} has its data on the realtime device)"),
            ));
        }
        let big = self.incompat & INCOMPAT_NREXT64 != 0 && be64(&raw, 120) & 0x10 != 0;
        Ok(Inode {
            ino,
            off,
            mode: be16(&raw, 2) as u32,
            format: u8_at(&raw, 5),
            core: if self.v5 { CORE_SIZE } else { CORE_SIZE_V4 },
            size: be64(&raw, 56),
            nextents: if big {
                be64(&raw, 24)
            } else {
                be32(&raw, 76) as u64
            },
            raw,
        })
    }

    /// The data fork's extents, in file order as stored.
    fn extents(&self, ino: &Inode) -> Result<Vec<Ext>> {
        let fork = ino.fork();
        let at = ino.off + ino.core as u64;
        // Never more extents than blocks in the filesystem, nor than the
        // inode says.
        let max = ino.nextents.min(self.agcount * self.agblocks).min(1 << 20) as usize;
        match ino.format {
            2 => {
                if ino.nextents.saturating_mul(16) > fork.len() as u64 {
                    return Err(self.dev.corrupt(
                        at,
                        format!(
                            "inode {}: {} extents do not fit a {}-byte fork",
                            ino.ino,
                            ino.nextents,
                            fork.len()
                        ),
                    ));
                }
                Ok(fork.chunks_exact(16).take(max).map(decode_extent).collect())
            }
            3 => {
                let level = be16(fork, 0);
                let n = be16(fork, 2) as usize;
                let maxrecs = fork.len().saturating_sub(4) / 16;
                if level == 0 || level > MAX_BMBT_LEVELS || n > maxrecs {
                    return Err(self.dev.corrupt(at, format!("inode {}: B+tree root of level {level} with {n} pointers: expected level 1..=9, at most {maxrecs}", ino.ino)));
                }
                let mut out = Vec::new();
                let mut nodes = 0;
                for i in 0..n {
                    let ptr = be64(fork, 4 + maxrecs * 8 + i * 8);
                    self.bmbt(ptr, level - 1, at, max, &mut nodes, &mut out)?;
                }
                Ok(out)
            }
            f => Err(self.dev.corrupt(
                at,
                format!(
                    "inode {}: data fork format {f}: expected extents (2) or btree (3)",
                    ino.ino
                ),
            )),
        }
    }

    /// Walk a bmap B+tree block at filesystem block `fsb` of `level`.
    fn bmbt(
        &self,
        fsb: u64,
        level: u16,
        at: u64,
        max: usize,
        nodes: &mut usize,
        out: &mut Vec<Ext>,
    ) -> Result<()> {
        *nodes += 1;
        if *nodes > max.min(1 << 16) + 1 {
            return Err(self.dev.corrupt(
                at,
                format!("more than {max} bmap B+tree blocks for {max} extents"),
            ));
        }
        let off = self.fsb_offset(fsb, 1, at, "bmap B+tree block")?;
        let b = self.dev.read(off, self.bs as usize, "bmap B+tree block")?;
        let (magic, lvl, n) = (be32(&b, 0), be16(&b, 4), be16(&b, 6) as usize);
        let (want, hdr) = if self.v5 {
            (BMAP_MAGIC, BMBT_HDR)
        } else {
            (BMAP_MAGIC_V4, BMBT_HDR_V4)
        };
        let maxrecs = (b.len() - hdr) / 16;
        if magic != want || lvl != level || n > maxrecs {
            return Err(self.dev.corrupt(off, format!("bmap B+tree block: magic {magic:#x} level {lvl} with {n} records: expected BMA3 (v5) or BMAP (v4), level {level}, at most {maxrecs}")));
        }
        if level == 0 {
            if out.len() + n > max {
                return Err(self.dev.corrupt(
                    off,
                    format!("bmap B+tree holds more than the inode's {max} extents"),
                ));
            }
            out.extend(b[hdr..hdr + n * 16].chunks_exact(16).map(decode_extent));
            return Ok(());
        }
        for i in 0..n {
            let ptr = be64(&b, hdr + maxrecs * 8 + i * 8);
            self.bmbt(ptr, level - 1, off, max, nodes, out)?;
        }
        Ok(())
    }

    /// Extents as runs of bytes, checked to lie inside the filesystem.
    fn runs(&self, ino: &Inode, below: u64) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for e in self.extents(ino)? {
            if e.off.saturating_mul(self.bs) >= below {
                continue;
            }
            let phys = self.fsb_offset(e.fsb, e.count, ino.off, "extent")?;
            runs.push(Run {
                logical: e.off * self.bs,
                phys: (!e.unwritten).then_some(phys),
                len: e.count * self.bs,
            });
        }
        Ok(runs)
    }

    fn shortform(&self, ino: &Inode, out: &mut Vec<DirEntry>) -> Result<()> {
        let f = ino.fork();
        let at = ino.off + ino.core as u64;
        let count = u8_at(f, 0) as usize;
        let wide = u8_at(f, 1) != 0;
        let isz = if wide { 8 } else { 4 };
        let ftype = self.ftype;
        let mut p = 2 + isz;
        for _ in 0..count {
            let namelen = u8_at(f, p) as usize;
            let name_at = p + 3;
            let after = name_at + namelen + usize::from(ftype);
            if namelen == 0 || after + isz > f.len() {
                return Err(self.dev.corrupt(at + p as u64, format!("shortform directory entry with a {namelen}-byte name past the {}-byte fork", f.len())));
            }
            let e_ino = if wide {
                be64(f, after)
            } else {
                be32(f, after) as u64
            };
            let ft = if ftype {
                dirent_type(u8_at(f, after - 1))
            } else {
                FileType::Unknown
            };
            out.push(DirEntry {
                name: String::from_utf8_lossy(&f[name_at..name_at + namelen]).into_owned(),
                ino: e_ino,
                file_type: ft,
            });
            p = after + isz;
        }
        Ok(())
    }

    /// Entries of one directory data block (`XDB3` or `XDD3`) at device
    /// offset `at`.
    fn dir_block(&self, b: &[u8], at: u64, out: &mut Vec<DirEntry>) -> Result<()> {
        let magic = be32(b, 0);
        let (block, data, hdr) = if self.v5 {
            (DIR_BLOCK_MAGIC, DIR_DATA_MAGIC, DIR_HDR)
        } else {
            (DIR_BLOCK_MAGIC_V4, DIR_DATA_MAGIC_V4, DIR_HDR_V4)
        };
        let end = if magic == block {
            let count = be32(b, b.len() - 8) as usize;
            b.len()
                .checked_sub(8 + count.saturating_mul(8))
                .filter(|&e| e >= hdr)
        } else if magic == data {
            Some(b.len())
        } else {
            None
        };
        let Some(end) = end else {
            return Err(self.dev.corrupt(at, format!("directory block magic {magic:#x}: expected XDB3/XDD3 (v5) or XD2B/XD2D (v4) with a consistent leaf tail")));
        };
        let ftype = self.ftype;
        let mut p = hdr;
        while p < end {
            if be16(b, p) == 0xFFFF {
                let len = be16(b, p + 2) as usize;
                if len < 8 || len & 7 != 0 || p + len > end {
                    return Err(self.dev.corrupt(at + p as u64, format!("free directory space of {len} bytes: expected a multiple of 8 inside the block")));
                }
                p += len;
                continue;
            }
            let e_ino = be64(b, p);
            let namelen = u8_at(b, p + 8) as usize;
            let size = (8 + 1 + namelen + usize::from(ftype) + 2).div_ceil(8) * 8;
            if namelen == 0 || p + size > end {
                return Err(self.dev.corrupt(at + p as u64, format!("directory entry with a {namelen}-byte name: expected a name inside the block")));
            }
            let name = &b[p + 9..p + 9 + namelen];
            if name != b"." && name != b".." {
                if out.len() >= MAX_DIR_ENTRIES {
                    return Err(Error::TooLarge {
                        what: "directory".into(),
                        size: out.len() as u64 + 1,
                        max: MAX_DIR_ENTRIES as u64,
                    });
                }
                let ft = if ftype {
                    dirent_type(u8_at(b, p + 9 + namelen))
                } else {
                    FileType::Unknown
                };
                out.push(DirEntry {
                    name: String::from_utf8_lossy(name).into_owned(),
                    ino: e_ino,
                    file_type: ft,
                });
            }
            p += size;
        }
        Ok(())
    }

    /// Entries of a directory in block, leaf or node form: every data
    /// block of the data space, in order.
    fn dir_blocks(&self, ino: &Inode, out: &mut Vec<DirEntry>) -> Result<()> {
        let runs = self.runs(ino, DIR_LEAF_OFFSET)?;
        let mut blocks: Vec<u64> = Vec::new();
        for r in runs.iter().filter(|r| r.phys.is_some()) {
            let first = r.logical / self.dirblksize;
            let last = (r.logical + r.len).div_ceil(self.dirblksize);
            if (blocks.len() as u64 + last.saturating_sub(first)) * self.dirblksize > MAX_DIR_BYTES
            {
                return Err(Error::TooLarge {
                    what: format!("directory inode {}", ino.ino),
                    size: (blocks.len() as u64 + last - first) * self.dirblksize,
                    max: MAX_DIR_BYTES,
                });
            }
            blocks.extend(first..last);
        }
        blocks.sort_unstable();
        blocks.dedup();
        for d in blocks {
            let start = d * self.dirblksize;
            let b = gather_range(&self.dev, &runs, start, self.dirblksize, "directory block")?;
            let at = crate::dev::phys_of(&runs, start);
            self.dir_block(&b, at, out)?;
        }
        Ok(())
    }
}

impl Backend for Xfs<'_> {
    fn fs_type(&self) -> &'static str {
        FS
    }
    fn root(&self) -> u64 {
        self.rootino
    }
    fn meta(&self, ino: u64) -> Result<Metadata> {
        let i = self.inode(ino)?;
        let r = &i.raw;
        let mtime = if self.v5 && be64(r, 120) & 0x8 != 0 {
            (be64(r, 40) / 1_000_000_000) as i64 - (1 << 31)
        } else {
            be32(r, 40) as i32 as i64
        };
        Ok(Metadata {
            ino,
            file_type: i.file_type(),
            mode: i.mode & 0o7777,
            uid: be32(r, 8),
            gid: be32(r, 12),
            size: i.size,
            nlink: if u8_at(r, 4) == 1 {
                be16(r, 6) as u32
            } else {
                be32(r, 16)
            },
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
        let mut out = Vec::new();
        if i.format == 1 {
            self.shortform(&i, &mut out)?;
        } else {
            self.dir_blocks(&i, &mut out)?;
        }
        for e in out.iter_mut().filter(|e| e.file_type == FileType::Unknown) {
            e.file_type = self.inode(e.ino)?.file_type();
        }
        Ok(out)
    }
    fn read(&self, ino: u64, len: u64) -> Result<Vec<u8>> {
        let i = self.inode(ino)?;
        let len = len.min(i.size);
        if i.format == 1 {
            let f = i.fork();
            return f.get(..len as usize).map(<[u8]>::to_vec).ok_or_else(|| {
                self.dev.corrupt(
                    i.off,
                    format!(
                        "inode {ino}: {len} bytes of local data in a {}-byte fork",
                        f.len()
                    ),
                )
            });
        }
        let runs = self.runs(&i, len)?;
        gather(&self.dev, &runs, len, "file data")
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
        if i.format == 1 {
            return self.read(ino, i.size);
        }
        let mut out = Vec::new();
        for r in self.runs(&i, u64::MAX)? {
            let Some(phys) = r.phys else { continue };
            for k in 0..r.len / self.bs {
                if out.len() as u64 >= i.size {
                    break;
                }
                let off = phys + k * self.bs;
                let b = self.dev.read(off, self.bs as usize, "symlink block")?;
                let hdr = if self.v5 { SYMLINK_HDR } else { 0 };
                if self.v5 && be32(&b, 0) != SYMLINK_MAGIC {
                    return Err(self
                        .dev
                        .corrupt(off, "symlink block: expected the XSLM magic"));
                }
                let want = (i.size as usize - out.len()).min(b.len() - hdr);
                out.extend_from_slice(&b[hdr..hdr + want]);
            }
        }
        if (out.len() as u64) < i.size {
            return Err(self.dev.corrupt(
                i.off,
                format!(
                    "symlink inode {ino}: {} of {} bytes found",
                    out.len(),
                    i.size
                ),
            ));
        }
        Ok(out)
    }
}
