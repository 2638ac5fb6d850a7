//! btrfs, read-only, one device.
//!
//! Handled: the primary superblock, the system chunk array and the chunk
//! tree (SINGLE and DUP profiles: the first stripe is read), the root tree,
//! the default subvolume's filesystem tree (`default` in the root tree's
//! directory, else the top-level subvolume 5), inode items, directory
//! index items, and file extents: inline, regular and preallocated,
//! uncompressed or compressed with zlib or zstd, with holes (including
//! `NO_HOLES`). Checksums are not
//! verified and the log tree is not replayed.
//!
//! [`Btrfs::open_subvolume`] reads another subvolume's tree instead (an
//! install in the top level's `@`).
//!
//! Refused with [`Error::Unsupported`]: multi-device filesystems, RAID
//! chunk profiles (RAID0/1/10/5/6/1C3/1C4), lzo-compressed extents,
//! encrypted extents, `ZONED`, `EXTENT_TREE_V2`,
//! `RAID_STRIPE_TREE` and unknown incompatible bits, entering another
//! subvolume (its directory entry is listed as a directory whose `ino` is
//! [`SUBVOL_BIT`] | subvolume id; stat or lookup below it is refused).

use crate::dev::{le16, le32, le64, u8_at, Dev};
use crate::error::{Error, Result};
use crate::{
    dirent_type, Backend, DirEntry, FileType, Metadata, MAX_DIR_BYTES, MAX_DIR_ENTRIES,
    MAX_LINK_BYTES,
};
use vdisk::Disk;

const FS: &str = "btrfs";
const SB_OFF: u64 = 0x10000;
const MAGIC: &[u8; 8] = b"_BHRfS_M";
const HDR: usize = 0x65;

const INODE_ITEM: u8 = 1;
const DIR_ITEM: u8 = 84;
const DIR_INDEX: u8 = 96;
const EXTENT_DATA: u8 = 108;
const ROOT_ITEM: u8 = 132;
const CHUNK_ITEM: u8 = 228;
const FS_TREE: u64 = 5;
const ROOT_TREE_DIR: u64 = 6;

const RAID_BITS: u64 = 0x8 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400;
/// Incompatible features we read.
const INCOMPAT_READ: u64 =
    0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x10000;
/// Nodes one tree search may visit, items it may return (their bytes
/// are bounded by [`MAX_DIR_BYTES`]).
const MAX_NODES: usize = 1 << 12;
const MAX_ITEMS: usize = 1 << 18;
const MAX_CHUNKS: usize = 1 << 16;
/// Largest compressed extent we decode, on disk and uncompressed (btrfs
/// writes at most 128 KiB).
const MAX_COMPRESSED: u64 = 8 << 20;
/// Marks the "inode number" of a directory entry that is another
/// subvolume (its id in the low bits): listed, never entered.
pub const SUBVOL_BIT: u64 = 1 << 63;

fn incompat_name(bit: u64) -> String {
    match bit {
        0x1000 => "ZONED".into(),
        0x2000 => "EXTENT_TREE_V2".into(),
        0x4000 => "RAID_STRIPE_TREE".into(),
        b => format!("unknown incompatible feature bit {b:#x}"),
    }
}

fn profile_name(t: u64) -> &'static str {
    match t & RAID_BITS {
        0x8 => "RAID0",
        0x10 => "RAID1",
        0x40 => "RAID10",
        0x80 => "RAID5",
        0x100 => "RAID6",
        0x200 => "RAID1C3",
        0x400 => "RAID1C4",
        _ => "mixed RAID",
    }
}

/// A tree key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    objectid: u64,
    ty: u8,
    offset: u64,
}

fn key_at(b: &[u8], o: usize) -> Key {
    Key {
        objectid: le64(b, o),
        ty: u8_at(b, o + 8),
        offset: le64(b, o + 9),
    }
}

/// A chunk: `len` logical bytes from `logical` stored at device byte `phys`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    logical: u64,
    len: u64,
    phys: u64,
}

/// An opened btrfs filesystem.
#[derive(Debug)]
pub struct Btrfs<'a> {
    dev: Dev<'a>,
    nodesize: u64,
    chunks: Vec<Chunk>,
    /// Root node and level of the filesystem tree we read.
    fs_root: (u64, u8),
    root_dir: u64,
}

impl<'a> Btrfs<'a> {
    /// Open the btrfs filesystem on `disk`: superblock, chunks, the default
    /// subvolume.
    pub fn open(disk: Box<dyn Disk + 'a>) -> Result<Self> {
        Self::open_with(disk, None)
    }

    /// Open the btrfs filesystem on `disk` with subvolume `id` as its root
    /// (the id a listing gives as `ino & !SUBVOL_BIT`; Debian and Ubuntu
    /// install into a subvolume `@` of the top level and name it in
    /// fstab's `subvol=`, not as the default).
    pub fn open_subvolume(disk: Box<dyn Disk + 'a>, id: u64) -> Result<Self> {
        Self::open_with(disk, Some(id))
    }

    fn open_with(disk: Box<dyn Disk + 'a>, subvol: Option<u64>) -> Result<Self> {
        let dev = Dev::new(disk, FS);
        let sb = dev.read(SB_OFF, 4096, "superblock")?;
        if &sb[0x40..0x48] != MAGIC {
            return Err(dev.corrupt(SB_OFF + 0x40, "expected the btrfs magic _BHRfS_M"));
        }
        let incompat = le64(&sb, 0xBC);
        let unknown = incompat & !INCOMPAT_READ;
        if unknown != 0 {
            return Err(Error::unsupported(
                FS,
                incompat_name(1 << unknown.trailing_zeros()),
            ));
        }
        let devices = le64(&sb, 0x88);
        if devices != 1 {
            return Err(Error::unsupported(
                FS,
                format!("multi-device filesystem ({devices} devices)"),
            ));
        }
        let nodesize = le32(&sb, 0x94) as u64;
        let sectorsize = le32(&sb, 0x90) as u64;
        if !(4096..=65536).contains(&nodesize)
            || !nodesize.is_power_of_two()
            || !(512..=65536).contains(&sectorsize)
            || !sectorsize.is_power_of_two()
        {
            return Err(dev.corrupt(SB_OFF + 0x90, format!("sector size {sectorsize}, node size {nodesize}: expected powers of two, nodes of 4..64 KiB")));
        }
        let mut fs = Btrfs {
            dev,
            nodesize,
            chunks: Vec::new(),
            fs_root: (0, 0),
            root_dir: 256,
        };
        fs.sys_chunks(&sb)?;
        let mut items = Vec::new();
        let lo = Key {
            objectid: 256,
            ty: CHUNK_ITEM,
            offset: 0,
        };
        let hi = Key {
            objectid: 256,
            ty: CHUNK_ITEM,
            offset: u64::MAX,
        };
        fs.search((le64(&sb, 0x58), u8_at(&sb, 0xC7)), lo, hi, &mut items)?;
        for (k, data, at) in &items {
            fs.add_chunk(k.offset, data, *at)?;
        }
        fs.chunks.sort_by_key(|c| c.logical);
        fs.find_fs_tree((le64(&sb, 0x50), u8_at(&sb, 0xC6)), subvol)?;
        Ok(fs)
    }

    fn sys_chunks(&mut self, sb: &[u8]) -> Result<()> {
        let size = le32(sb, 0xA0) as usize;
        if size > 2048 {
            return Err(self.dev.corrupt(
                SB_OFF + 0xA0,
                format!("system chunk array of {size} bytes: expected at most 2048"),
            ));
        }
        let arr = &sb[0x32B..0x32B + size];
        let mut p = 0;
        while p + 17 + 48 <= arr.len() {
            let k = key_at(arr, p);
            let item = &arr[p + 17..];
            let n = le16(item, 44) as usize;
            let len = 48 + n * 32;
            if k.ty != CHUNK_ITEM || n == 0 || p + 17 + len > arr.len() {
                return Err(self.dev.corrupt(SB_OFF + 0x32B + p as u64, format!("system chunk array entry (type {}, {n} stripes): expected a chunk item with stripes inside the array", k.ty)));
            }
            self.add_chunk(k.offset, &item[..len], SB_OFF + 0x32B + p as u64)?;
            p += 17 + len;
        }
        self.chunks.sort_by_key(|c| c.logical);
        Ok(())
    }

    fn add_chunk(&mut self, logical: u64, item: &[u8], at: u64) -> Result<()> {
        let len = le64(item, 0);
        let ty = le64(item, 24);
        let n = le16(item, 44) as usize;
        if ty & RAID_BITS != 0 {
            return Err(Error::unsupported(
                FS,
                format!(
                    "{} chunk profile (chunk at logical {logical:#x})",
                    profile_name(ty)
                ),
            ));
        }
        if n == 0 || item.len() < 48 + 32 || len == 0 {
            return Err(self.dev.corrupt(at, format!("chunk at logical {logical:#x}: {n} stripes, {len} bytes: expected at least one stripe")));
        }
        let phys = le64(item, 48 + 8);
        if phys.checked_add(len).is_none() || logical.checked_add(len).is_none() {
            return Err(self.dev.corrupt(
                at,
                format!("chunk of {len} bytes at {logical:#x}/{phys:#x} overflows"),
            ));
        }
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(self
                .dev
                .corrupt(at, format!("more than {MAX_CHUNKS} chunks")));
        }
        if !self.chunks.iter().any(|c| c.logical == logical) {
            self.chunks.push(Chunk { logical, len, phys });
        }
        Ok(())
    }

    /// Device offset of `len` bytes at logical address `logical`.
    fn map(&self, logical: u64, len: u64, at: u64) -> Result<u64> {
        let c = self
            .chunks
            .iter()
            .find(|c| logical >= c.logical && logical - c.logical < c.len);
        match c {
            Some(c) if (logical - c.logical).saturating_add(len) <= c.len => {
                Ok(c.phys + (logical - c.logical))
            }
            _ => Err(self.dev.corrupt(
                at,
                format!("logical range {logical:#x}+{len:#x}: expected inside one chunk"),
            )),
        }
    }

    /// Read the tree node at `logical`, checking its header.
    fn node(&self, logical: u64, level: u8, at: u64) -> Result<Vec<u8>> {
        let phys = self.map(logical, self.nodesize, at)?;
        let b = self.dev.read(phys, self.nodesize as usize, "tree node")?;
        if le64(&b, 0x30) != logical || u8_at(&b, 0x64) != level {
            return Err(self.dev.corrupt(
                phys,
                format!(
                    "tree node says bytenr {:#x} level {}: expected {logical:#x} level {level}",
                    le64(&b, 0x30),
                    u8_at(&b, 0x64)
                ),
            ));
        }
        Ok(b)
    }

    /// Items with `lo <= key <= hi` of the tree rooted at `root`
    /// (logical address, level): (key, data, device offset of the node).
    fn search(
        &self,
        root: (u64, u8),
        lo: Key,
        hi: Key,
        out: &mut Vec<(Key, Vec<u8>, u64)>,
    ) -> Result<()> {
        let mut budget = (MAX_NODES, MAX_DIR_BYTES as usize);
        self.search_node(root.0, root.1, lo, hi, SB_OFF, out, &mut budget)
    }

    #[allow(clippy::too_many_arguments)]
    fn search_node(
        &self,
        logical: u64,
        level: u8,
        lo: Key,
        hi: Key,
        at: u64,
        out: &mut Vec<(Key, Vec<u8>, u64)>,
        budget: &mut (usize, usize),
    ) -> Result<()> {
        if level > 7 {
            return Err(self
                .dev
                .corrupt(at, format!("tree level {level}: expected at most 7")));
        }
        budget.0 = budget.0.checked_sub(1).ok_or_else(|| {
            self.dev.corrupt(
                at,
                format!("tree search visits more than {MAX_NODES} nodes"),
            )
        })?;
        let b = self.node(logical, level, at)?;
        let phys = self.map(logical, self.nodesize, at)?;
        let n = le32(&b, 0x60) as usize;
        let body = b.len() - HDR;
        if level == 0 {
            if n * 25 > body {
                return Err(self.dev.corrupt(
                    phys,
                    format!("leaf with {n} items: expected at most {}", body / 25),
                ));
            }
            for i in 0..n {
                let k = key_at(&b, HDR + i * 25);
                if k < lo {
                    continue;
                }
                if k > hi {
                    break;
                }
                let off = le32(&b, HDR + i * 25 + 17) as usize;
                let size = le32(&b, HDR + i * 25 + 21) as usize;
                if off.saturating_add(size) > body {
                    return Err(self.dev.corrupt(
                        phys + (HDR + i * 25) as u64,
                        format!("item data at {off}+{size}: expected inside the {body}-byte leaf"),
                    ));
                }
                budget.1 = budget
                    .1
                    .checked_sub(size + 64)
                    .ok_or_else(|| Error::TooLarge {
                        what: "tree search result".into(),
                        size: MAX_DIR_BYTES + 1,
                        max: MAX_DIR_BYTES,
                    })?;
                if out.len() >= MAX_ITEMS {
                    return Err(Error::TooLarge {
                        what: "tree search result".into(),
                        size: out.len() as u64,
                        max: MAX_ITEMS as u64,
                    });
                }
                out.push((k, b[HDR + off..HDR + off + size].to_vec(), phys));
            }
            return Ok(());
        }
        if n * 33 > body {
            return Err(self.dev.corrupt(
                phys,
                format!("node with {n} pointers: expected at most {}", body / 33),
            ));
        }
        for i in 0..n {
            let k = key_at(&b, HDR + i * 33);
            if k > hi {
                break;
            }
            if i + 1 < n && key_at(&b, HDR + (i + 1) * 33) <= lo {
                continue;
            }
            let child = le64(&b, HDR + i * 33 + 17);
            self.search_node(child, level - 1, lo, hi, phys, out, budget)?;
        }
        Ok(())
    }

    /// The filesystem tree of subvolume `want`, else of the default one.
    fn find_fs_tree(&mut self, root_tree: (u64, u8), want: Option<u64>) -> Result<()> {
        let mut items = Vec::new();
        let k = |o, t, off| Key {
            objectid: o,
            ty: t,
            offset: off,
        };
        self.search(
            root_tree,
            k(ROOT_TREE_DIR, DIR_ITEM, 0),
            k(ROOT_TREE_DIR, DIR_ITEM, u64::MAX),
            &mut items,
        )?;
        let mut subvol = FS_TREE;
        for (_, data, _) in &items {
            for (name, loc, _) in dir_items(data) {
                if name == b"default" {
                    subvol = loc.objectid;
                }
            }
        }
        let what = if let Some(id) = want {
            subvol = id;
            "subvolume"
        } else {
            "default subvolume"
        };
        items.clear();
        self.search(
            root_tree,
            k(subvol, ROOT_ITEM, 0),
            k(subvol, ROOT_ITEM, u64::MAX),
            &mut items,
        )?;
        let Some((_, item, at)) = items.last() else {
            return Err(self.dev.corrupt(
                SB_OFF + 0x50,
                format!("root tree: no root item for the {what} {subvol}"),
            ));
        };
        if item.len() < 239 {
            return Err(self.dev.corrupt(
                *at,
                format!("root item of {} bytes: expected at least 239", item.len()),
            ));
        }
        self.fs_root = (le64(item, 176), u8_at(item, 238));
        self.root_dir = le64(item, 168);
        Ok(())
    }

    fn items(&self, objectid: u64, ty: u8) -> Result<Vec<(Key, Vec<u8>, u64)>> {
        self.items_below(objectid, ty, u64::MAX)
    }

    /// Items `(objectid, ty, offset)` with `offset <= max_offset`.
    fn items_below(
        &self,
        objectid: u64,
        ty: u8,
        max_offset: u64,
    ) -> Result<Vec<(Key, Vec<u8>, u64)>> {
        let mut out = Vec::new();
        let lo = Key {
            objectid,
            ty,
            offset: 0,
        };
        let hi = Key {
            objectid,
            ty,
            offset: max_offset,
        };
        self.search(self.fs_root, lo, hi, &mut out)?;
        Ok(out)
    }

    fn inode(&self, ino: u64) -> Result<Vec<u8>> {
        match self.items(ino, INODE_ITEM)?.into_iter().next() {
            Some((_, d, _)) if d.len() >= 160 => Ok(d),
            Some((_, _, at)) => Err(self
                .dev
                .corrupt(at, format!("inode item of inode {ino}: expected 160 bytes"))),
            None => Err(self
                .dev
                .corrupt(SB_OFF, format!("no inode item for inode {ino}"))),
        }
    }

    /// The first `len` bytes of inode `ino`'s data.
    fn data(&self, ino: u64, len: u64) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len as usize];
        for (k, e, at) in self.items_below(ino, EXTENT_DATA, len.saturating_sub(1))? {
            if k.offset >= len {
                break;
            }
            let (ram, compression, encryption, ty) =
                (le64(&e, 8), u8_at(&e, 16), u8_at(&e, 17), u8_at(&e, 20));
            if compression == 2 || compression > 3 {
                let name = if compression == 2 { "lzo" } else { "unknown" };
                return Err(Error::unsupported(
                    FS,
                    format!(
                        "compressed extent ({name}) in inode {ino} at file offset {}",
                        k.offset
                    ),
                ));
            }
            if encryption != 0 || le16(&e, 18) != 0 {
                return Err(Error::unsupported(
                    FS,
                    format!("encrypted or encoded extent in inode {ino}"),
                ));
            }
            let start = k.offset as usize;
            match ty {
                0 => {
                    let raw = e.get(21..).unwrap_or(&[]);
                    let data = if compression != 0 {
                        self.decompress(compression, raw, ram, at)?
                    } else {
                        raw.to_vec()
                    };
                    let n = data.len().min(ram as usize).min(out.len() - start);
                    out[start..start + n].copy_from_slice(&data[..n]);
                }
                1 | 2 => {
                    if e.len() < 53 {
                        return Err(self.dev.corrupt(
                            at,
                            format!("file extent item of {} bytes: expected 53", e.len()),
                        ));
                    }
                    let (bytenr, offset, num) = (le64(&e, 21), le64(&e, 37), le64(&e, 45));
                    if bytenr == 0 || ty == 2 {
                        continue; // a hole, or preallocated: zeros
                    }
                    let n = num.min(len - k.offset);
                    if compression != 0 {
                        // The whole extent is one compressed stream; the
                        // file sees [offset, offset + num) of it.
                        let disk_len = le64(&e, 29);
                        if disk_len > MAX_COMPRESSED {
                            return Err(self.dev.corrupt(at, format!("compressed extent of {disk_len} bytes on disk: expected at most {MAX_COMPRESSED}")));
                        }
                        let phys = self.map(bytenr, disk_len, at)?;
                        let raw = self
                            .dev
                            .read(phys, disk_len as usize, "compressed extent")?;
                        let data = self.decompress(compression, &raw, ram, phys)?;
                        let from = (offset as usize).min(data.len());
                        let m = (data.len() - from).min(n as usize);
                        out[start..start + m].copy_from_slice(&data[from..from + m]);
                        continue;
                    }
                    let phys = self.map(bytenr.saturating_add(offset), n, at)?;
                    self.dev
                        .read_into(&mut out[start..start + n as usize], phys, "file data")?;
                }
                t => {
                    return Err(self.dev.corrupt(
                        at,
                        format!("file extent type {t}: expected inline, regular or prealloc"),
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl<'a> Btrfs<'a> {
    /// Decompress one zlib (1) or zstd (3) extent of `ram` bytes.
    fn decompress(&self, codec: u8, src: &[u8], ram: u64, at: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        if ram > MAX_COMPRESSED {
            return Err(self.dev.corrupt(at, format!("compressed extent of {ram} bytes uncompressed: expected at most {MAX_COMPRESSED}")));
        }
        let mut out = Vec::with_capacity(ram as usize);
        let (name, r) = if codec == 1 {
            (
                "zlib",
                flate2::read::ZlibDecoder::new(src)
                    .take(ram)
                    .read_to_end(&mut out),
            )
        } else {
            let r = zstd::stream::read::Decoder::with_buffer(src)
                .and_then(|d| d.take(ram).read_to_end(&mut out));
            ("zstd", r)
        };
        r.map_err(|source| Error::Decompress {
            fs: FS,
            offset: at,
            codec: name,
            source,
        })?;
        Ok(out)
    }
}

/// The entries packed in a DIR_ITEM / DIR_INDEX item: (name, location, type).
fn dir_items(d: &[u8]) -> Vec<(&[u8], Key, u8)> {
    let mut v = Vec::new();
    let mut p = 0;
    while p + 30 <= d.len() {
        let loc = key_at(d, p);
        let data_len = le16(d, p + 25) as usize;
        let name_len = le16(d, p + 27) as usize;
        let ty = u8_at(d, p + 29);
        let Some(name) = d.get(p + 30..p + 30 + name_len) else {
            break;
        };
        v.push((name, loc, ty));
        p += 30 + name_len + data_len;
    }
    v
}

impl Backend for Btrfs<'_> {
    fn fs_type(&self) -> &'static str {
        FS
    }
    fn root(&self) -> u64 {
        self.root_dir
    }
    fn meta(&self, ino: u64) -> Result<Metadata> {
        if ino & SUBVOL_BIT != 0 {
            return Err(Error::unsupported(
                FS,
                format!(
                    "subvolume boundary (entering subvolume {} from the one being read)",
                    ino & !SUBVOL_BIT
                ),
            ));
        }
        let i = self.inode(ino)?;
        let mode = le32(&i, 52);
        Ok(Metadata {
            ino,
            file_type: FileType::from_mode(mode),
            mode: mode & 0o7777,
            uid: le32(&i, 44),
            gid: le32(&i, 48),
            size: le64(&i, 16),
            nlink: le32(&i, 40),
            mtime: le64(&i, 136) as i64,
        })
    }
    fn list(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let items = self.items(ino, DIR_INDEX)?;
        let total: u64 = items.iter().map(|(_, d, _)| d.len() as u64).sum();
        if total > MAX_DIR_BYTES || items.len() > MAX_DIR_ENTRIES {
            return Err(Error::TooLarge {
                what: format!("directory inode {ino}"),
                size: total,
                max: MAX_DIR_BYTES,
            });
        }
        let mut out = Vec::new();
        for (_, d, at) in &items {
            for (name, loc, ty) in dir_items(d) {
                if loc.ty == ROOT_ITEM {
                    // Another subvolume: listed, but not entered.
                    out.push(DirEntry {
                        name: String::from_utf8_lossy(name).into_owned(),
                        ino: SUBVOL_BIT | loc.objectid,
                        file_type: FileType::Directory,
                    });
                    continue;
                }
                if loc.ty != INODE_ITEM {
                    return Err(self.dev.corrupt(
                        *at,
                        format!(
                            "directory entry location type {}: expected an inode",
                            loc.ty
                        ),
                    ));
                }
                let mut ft = dirent_type(ty);
                if ft == FileType::Unknown {
                    ft = self.meta(loc.objectid)?.file_type;
                }
                out.push(DirEntry {
                    name: String::from_utf8_lossy(name).into_owned(),
                    ino: loc.objectid,
                    file_type: ft,
                });
            }
        }
        Ok(out)
    }
    fn read(&self, ino: u64, len: u64) -> Result<Vec<u8>> {
        self.data(ino, len)
    }
    fn link(&self, ino: u64) -> Result<Vec<u8>> {
        let size = self.meta(ino)?.size;
        if size > MAX_LINK_BYTES {
            return Err(Error::TooLarge {
                what: format!("symlink inode {ino}"),
                size,
                max: MAX_LINK_BYTES,
            });
        }
        self.data(ino, size)
    }
}
