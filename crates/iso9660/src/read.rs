//! The reader: volume descriptors, the directory walk and file data.

use crate::error::{corrupt, io, too_large, unsupported, Error, ErrorKind, Result};
use crate::names;
use crate::record::{self, le16, FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_MULTI_EXTENT};
use crate::susp;
use crate::{ReadAt, SECTOR};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Deepest directory nesting the walk follows.
pub const MAX_DEPTH: usize = 64;
/// Most entries (files and directories) one walk returns.
pub const MAX_ENTRIES: usize = 100_000;
/// Largest single directory extent read.
pub const MAX_DIR_BYTES: u64 = 16 << 20;
/// Most directory bytes read by one walk.
pub const MAX_TOTAL_DIR_BYTES: u64 = 256 << 20;
/// Most SUSP continuation-area bytes read by one walk.
pub const MAX_CE_BYTES: u64 = 64 << 20;
/// Most volume descriptors examined before a terminator must appear.
const MAX_DESCRIPTORS: u64 = 64;
/// Chunk size for streaming file data.
const CHUNK: usize = 256 << 10;

/// Which hierarchy and naming the reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// The primary hierarchy with Rock Ridge `NM` names.
    RockRidge,
    /// The Joliet supplementary hierarchy (UCS-2 names).
    Joliet,
    /// The primary hierarchy with plain ISO 9660 names.
    Iso9660,
}

/// A file or directory found in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path from the root with `/` separators and no leading `/` (empty for the root).
    pub path: String,
    /// Last path component (empty for the root).
    pub name: String,
    /// Data length in bytes (for directories: the directory extent).
    pub size: u64,
    /// Whether this is a directory.
    pub is_dir: bool,
    /// First logical block of the data (after any extended attribute record).
    pub lba: u32,
}

/// Counters that bound one walk over a possibly hostile image.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    entries: usize,
    dir_bytes: u64,
    ce_bytes: u64,
}

impl Budget {
    pub(crate) fn charge_ce(&mut self, n: u64, at: u64) -> Result<()> {
        self.ce_bytes += n;
        if self.ce_bytes > MAX_CE_BYTES {
            return Err(too_large(
                Some(at),
                format!("more than {MAX_CE_BYTES} bytes of SUSP continuation areas"),
            ));
        }
        Ok(())
    }
}

/// An open ISO 9660 image.
pub struct Iso<R> {
    r: R,
    size: u64,
    name: String,
    block: u64,
    volume_id: String,
    joliet_volume_id: Option<String>,
    primary_root: Entry,
    joliet_root: Option<Entry>,
    /// `Some(LEN_SKP)` when the primary hierarchy carries Rock Ridge.
    rr_skip: Option<u8>,
    source: NameSource,
}

impl<R> std::fmt::Debug for Iso<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iso")
            .field("image", &self.name)
            .field("size", &self.size)
            .field("volume_id", &self.volume_id)
            .field("names", &self.source)
            .finish_non_exhaustive()
    }
}

impl Iso<File> {
    /// Open the image file at `path`; errors name the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let f = File::open(path).map_err(|e| io(None, "cannot open", e).with_image(&name))?;
        let size = f
            .metadata()
            .map_err(|e| io(None, "cannot stat", e).with_image(&name))?
            .len();
        Self::from_reader_named(f, size, &name)
    }
}

impl<R: ReadAt> Iso<R> {
    /// Open an image of `size` bytes read through `r` (a file, a byte
    /// slice, ...); errors call it `<image>`.
    pub fn from_reader(r: R, size: u64) -> Result<Self> {
        Self::from_reader_named(r, size, "<image>")
    }

    /// Like [`Iso::from_reader`], naming the image `name` in errors.
    pub fn from_reader_named(r: R, size: u64, name: &str) -> Result<Self> {
        Self::parse(r, size, name).map_err(|e| e.with_image(name))
    }

    fn parse(r: R, size: u64, name: &str) -> Result<Self> {
        let mut pvd = None;
        let mut svd = None;
        let mut terminated = false;
        for i in 0..MAX_DESCRIPTORS {
            let off = (16 + i) * SECTOR;
            if off + SECTOR > size {
                return Err(corrupt(
                    off,
                    format!(
                        "image ends ({size} bytes) inside the volume descriptor set; expected a descriptor at sector {}",
                        16 + i
                    ),
                ));
            }
            let mut b = vec![0u8; SECTOR as usize];
            r.read_at(&mut b, off)
                .map_err(|e| io(Some(off), "reading a volume descriptor", e))?;
            if &b[1..6] != b"CD001" {
                return Err(corrupt(
                    off + 1,
                    format!(
                        "not an ISO 9660 volume descriptor at sector {}: expected identifier \"CD001\"",
                        16 + i
                    ),
                ));
            }
            match b[0] {
                1 if pvd.is_none() => pvd = Some((off, b)),
                2 if svd.is_none() && matches!(&b[88..91], b"%/@" | b"%/C" | b"%/E") => {
                    svd = Some((off, b))
                }
                255 => {
                    terminated = true;
                    break;
                }
                _ => {}
            }
        }
        if !terminated {
            return Err(corrupt(
                16 * SECTOR,
                format!("no volume descriptor set terminator within {MAX_DESCRIPTORS} descriptors"),
            ));
        }
        let Some((pvd_off, pvd)) = pvd else {
            return Err(corrupt(
                16 * SECTOR,
                "no primary volume descriptor (type 1) before the set terminator",
            ));
        };
        let block = u64::from(le16(&pvd, 128));
        if !matches!(block, 512 | 1024 | 2048) {
            return Err(unsupported(
                Some(pvd_off + 128),
                format!("logical block size {block}; expected 512, 1024 or 2048"),
            ));
        }
        let volume_id = latin1(&pvd[40..72])
            .trim_end_matches([' ', '\0'])
            .to_string();
        let mut iso = Iso {
            r,
            size,
            name: name.to_string(),
            block,
            volume_id,
            joliet_volume_id: None,
            primary_root: Entry {
                path: String::new(),
                name: String::new(),
                size: 0,
                is_dir: true,
                lba: 0,
            },
            joliet_root: None,
            rr_skip: None,
            source: NameSource::Iso9660,
        };
        iso.primary_root = iso.root_entry(&pvd, pvd_off)?;
        if let Some((svd_off, svd)) = svd {
            let jid = names::joliet(&svd[40..72], true);
            iso.joliet_volume_id = Some(jid.trim_end_matches([' ', '\0']).to_string());
            iso.joliet_root = Some(iso.root_entry(&svd, svd_off)?);
            iso.source = NameSource::Joliet;
        }
        iso.rr_skip = iso.detect_rock_ridge()?;
        if iso.rr_skip.is_some() {
            iso.source = NameSource::RockRidge;
        }
        Ok(iso)
    }

    /// The root directory record of a volume descriptor, checked.
    fn root_entry(&self, vd: &[u8], vd_off: u64) -> Result<Entry> {
        let rec = record::parse(&vd[156..190], vd_off + 156)?;
        if rec.flags & FLAG_DIRECTORY == 0 {
            return Err(corrupt(
                vd_off + 156,
                "root directory record is not flagged as a directory",
            ));
        }
        let root = Entry {
            path: String::new(),
            name: String::new(),
            size: u64::from(rec.size),
            is_dir: true,
            lba: rec
                .lba
                .checked_add(u32::from(rec.ear))
                .ok_or_else(|| corrupt(vd_off + 156, "root directory extent address overflows"))?,
        };
        self.check_extent(&root, vd_off + 156)?;
        Ok(root)
    }

    /// Rock Ridge is in use when the root's "." record starts with a SUSP
    /// `SP` entry and some Rock Ridge entry follows it.
    fn detect_rock_ridge(&self) -> Result<Option<u8>> {
        let root = &self.primary_root;
        if root.size < 34 {
            return Ok(None);
        }
        let off = u64::from(root.lba) * self.block;
        let n = root.size.min(self.block) as usize;
        let mut buf = vec![0u8; n];
        self.r
            .read_at(&mut buf, off)
            .map_err(|e| io(Some(off), "reading the root directory", e))?;
        if usize::from(buf[0]) < 34 {
            return Ok(None);
        }
        let rec = record::parse(&buf, off)?;
        if !rec.su.starts_with(b"SP") {
            return Ok(None);
        }
        let su_off = off + (rec.len - rec.su.len()) as u64;
        let mut budget = Budget::default();
        let s = susp::parse(&self.r, self.size, self.block, rec.su, su_off, &mut budget)?;
        Ok(match s.sp_skip {
            Some(skip) if s.rock_ridge => Some(skip),
            _ => None,
        })
    }

    /// The image's name as used in errors.
    pub fn image_name(&self) -> &str {
        &self.name
    }

    /// Image size in bytes.
    pub fn image_size(&self) -> u64 {
        self.size
    }

    /// Logical block size (almost always 2048).
    pub fn block_size(&self) -> u64 {
        self.block
    }

    /// Volume identifier of the primary descriptor (trailing spaces removed).
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    /// Volume identifier of the Joliet descriptor, if there is one.
    pub fn joliet_volume_id(&self) -> Option<&str> {
        self.joliet_volume_id.as_deref()
    }

    /// Where names currently come from.
    pub fn name_source(&self) -> NameSource {
        self.source
    }

    /// Name sources this image offers, best first.
    pub fn available_name_sources(&self) -> Vec<NameSource> {
        let mut v = Vec::new();
        if self.rr_skip.is_some() {
            v.push(NameSource::RockRidge);
        }
        if self.joliet_root.is_some() {
            v.push(NameSource::Joliet);
        }
        v.push(NameSource::Iso9660);
        v
    }

    /// Read names from `source` instead of the default (the best available).
    pub fn set_name_source(&mut self, source: NameSource) -> Result<()> {
        if !self.available_name_sources().contains(&source) {
            return Err(
                unsupported(None, format!("the image has no {source:?} hierarchy"))
                    .with_image(&self.name),
            );
        }
        self.source = source;
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> Entry {
        match (self.source, &self.joliet_root) {
            (NameSource::Joliet, Some(j)) => j.clone(),
            _ => self.primary_root.clone(),
        }
    }

    /// Every file and directory below the root, parents before children,
    /// each directory's entries in on-disk order.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.walk().map_err(|e| e.with_image(&self.name))
    }

    fn walk(&self) -> Result<Vec<Entry>> {
        let mut budget = Budget::default();
        let root = self.root();
        let mut visited = HashSet::from([root.lba]);
        let mut out = Vec::new();
        let mut stack = vec![(root, 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let children = self.list(&dir, &mut budget)?;
            let mut subdirs = Vec::new();
            for child in children {
                if child.is_dir {
                    if depth + 1 >= MAX_DEPTH {
                        return Err(too_large(
                            None,
                            format!(
                                "directory {:?} is nested deeper than {MAX_DEPTH} levels",
                                child.path
                            ),
                        ));
                    }
                    if !visited.insert(child.lba) {
                        return Err(corrupt(
                            u64::from(child.lba) * self.block,
                            format!(
                                "directory {:?} points at block {}, a directory already listed (directory loop)",
                                child.path, child.lba
                            ),
                        ));
                    }
                    subdirs.push(child.clone());
                }
                out.push(child);
            }
            stack.extend(subdirs.into_iter().rev().map(|d| (d, depth + 1)));
        }
        Ok(out)
    }

    /// The entries of directory `dir` (without "." and "..").
    pub fn read_dir(&self, dir: &Entry) -> Result<Vec<Entry>> {
        self.list(dir, &mut Budget::default())
            .map_err(|e| e.with_image(&self.name))
    }

    /// Look `path` up (`/`-separated, leading `/` optional), comparing
    /// names without regard to case (an exact match wins). `Ok(None)` when
    /// it does not exist.
    pub fn find(&self, path: &str) -> Result<Option<Entry>> {
        self.lookup(path).map_err(|e| e.with_image(&self.name))
    }

    fn lookup(&self, path: &str) -> Result<Option<Entry>> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.len() > MAX_DEPTH {
            return Ok(None);
        }
        let mut budget = Budget::default();
        let mut cur = self.root();
        for part in parts {
            if !cur.is_dir {
                return Ok(None);
            }
            let mut children = self.list(&cur, &mut budget)?;
            let lower = part.to_lowercase();
            let hit = children
                .iter()
                .position(|c| c.name == part)
                .or_else(|| children.iter().position(|c| c.name.to_lowercase() == lower));
            match hit {
                Some(i) => cur = children.swap_remove(i),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The whole content of file `e`, refused when larger than `max` bytes.
    pub fn read(&self, e: &Entry, max: u64) -> Result<Vec<u8>> {
        if e.size > max {
            return Err(too_large(
                Some(u64::from(e.lba) * self.block),
                format!("file {:?} has {} bytes; the limit is {max}", e.path, e.size),
            )
            .with_image(&self.name));
        }
        let mut v = Vec::with_capacity(e.size as usize);
        self.copy_to(e, &mut v)?;
        Ok(v)
    }

    /// Stream the content of file `e` into `w` in bounded chunks; returns
    /// the number of bytes written.
    pub fn copy_to(&self, e: &Entry, w: &mut dyn Write) -> Result<u64> {
        self.copy(e, w).map_err(|err| err.with_image(&self.name))
    }

    fn copy(&self, e: &Entry, w: &mut dyn Write) -> Result<u64> {
        if e.is_dir {
            return Err(Error::new(
                ErrorKind::Invalid,
                None,
                format!("{:?} is a directory", e.path),
            ));
        }
        let start = u64::from(e.lba) * self.block;
        self.check_extent(e, start)?;
        let mut buf = vec![0u8; CHUNK.min(e.size as usize)];
        let mut done = 0u64;
        while done < e.size {
            let n = (e.size - done).min(CHUNK as u64) as usize;
            let off = start + done;
            self.r
                .read_at(&mut buf[..n], off)
                .map_err(|err| io(Some(off), &format!("reading file {:?}", e.path), err))?;
            w.write_all(&buf[..n])
                .map_err(|err| io(None, &format!("writing out file {:?}", e.path), err))?;
            done += n as u64;
        }
        Ok(done)
    }

    /// Refuse an extent that does not lie inside the image.
    fn check_extent(&self, e: &Entry, at: u64) -> Result<()> {
        let start = u64::from(e.lba) * self.block;
        if start.saturating_add(e.size) > self.size {
            let what = if e.is_dir { "directory" } else { "file" };
            let name = if e.path.is_empty() { "/" } else { &e.path };
            return Err(corrupt(
                at,
                format!(
                    "{what} {name:?} has its extent at byte {start:#x} ({} bytes), past the end of the image ({} bytes)",
                    e.size, self.size
                ),
            ));
        }
        Ok(())
    }

    /// Parse one directory extent into entries.
    fn list(&self, dir: &Entry, budget: &mut Budget) -> Result<Vec<Entry>> {
        let base = u64::from(dir.lba) * self.block;
        if dir.size > MAX_DIR_BYTES {
            return Err(too_large(
                Some(base),
                format!(
                    "directory {:?} claims {} bytes; the limit is {MAX_DIR_BYTES}",
                    dir.path, dir.size
                ),
            ));
        }
        self.check_extent(dir, base)?;
        budget.dir_bytes += dir.size;
        if budget.dir_bytes > MAX_TOTAL_DIR_BYTES {
            return Err(too_large(
                Some(base),
                format!("more than {MAX_TOTAL_DIR_BYTES} bytes of directories"),
            ));
        }
        let mut buf = vec![0u8; dir.size as usize];
        self.r
            .read_at(&mut buf, base)
            .map_err(|e| io(Some(base), &format!("reading directory {:?}", dir.path), e))?;
        let mut out = Vec::new();
        let mut pos = 0usize;
        let block = self.block as usize;
        while pos < buf.len() {
            if buf[pos] == 0 {
                // Records never cross a block; the rest of this one is padding.
                pos = (pos / block + 1) * block;
                continue;
            }
            let at = base + pos as u64;
            let rec = record::parse(&buf[pos..], at)?;
            pos += rec.len;
            if rec.is_dot() || rec.flags & FLAG_ASSOCIATED != 0 {
                continue;
            }
            if let Some(e) = self.entry(dir, &rec, at, budget)? {
                budget.entries += 1;
                if budget.entries > MAX_ENTRIES {
                    return Err(too_large(
                        Some(at),
                        format!("more than {MAX_ENTRIES} files and directories"),
                    ));
                }
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Turn one directory record into an entry (`None`: hidden by Rock Ridge).
    fn entry(
        &self,
        dir: &Entry,
        rec: &record::Record<'_>,
        at: u64,
        budget: &mut Budget,
    ) -> Result<Option<Entry>> {
        let mut is_dir = rec.flags & FLAG_DIRECTORY != 0;
        let mut lba = rec.lba.checked_add(u32::from(rec.ear));
        let mut size = u64::from(rec.size);
        let mut name = None;
        let joliet = self.source == NameSource::Joliet;
        if let (NameSource::RockRidge, Some(skip)) = (self.source, self.rr_skip) {
            let su = &rec.su[usize::from(skip).min(rec.su.len())..];
            let su_off = at + (rec.len - su.len()) as u64;
            let s = susp::parse(&self.r, self.size, self.block, su, su_off, budget)?;
            if s.relocated {
                return Ok(None);
            }
            if let Some(cl) = s.child_link {
                is_dir = true;
                lba = Some(cl);
                size = self.dot_size(cl)?;
            }
            name = s.name.map(|n| names::rock_ridge(&n));
        }
        let name = name.unwrap_or_else(|| {
            if joliet {
                names::joliet(rec.id, is_dir)
            } else {
                names::plain(rec.id, is_dir)
            }
        });
        if !names::usable(&name) {
            return Err(corrupt(
                at,
                format!(
                    "directory {:?} holds an entry named {name:?}, which is not a usable file name",
                    dir.path
                ),
            ));
        }
        let path = if dir.path.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", dir.path)
        };
        if rec.flags & FLAG_MULTI_EXTENT != 0 {
            return Err(unsupported(
                Some(at),
                format!("file {path:?} is recorded in several extents (files of 4 GiB or more are not supported)"),
            ));
        }
        if rec.unit != 0 || rec.gap != 0 {
            return Err(unsupported(
                Some(at),
                format!("file {path:?} is recorded in interleaved mode"),
            ));
        }
        let lba =
            lba.ok_or_else(|| corrupt(at, format!("extent address of {path:?} overflows")))?;
        if is_dir && size > MAX_DIR_BYTES {
            return Err(too_large(
                Some(at),
                format!("directory {path:?} claims {size} bytes; the limit is {MAX_DIR_BYTES}"),
            ));
        }
        let e = Entry {
            path,
            name,
            size,
            is_dir,
            lba,
        };
        self.check_extent(&e, at)?;
        Ok(Some(e))
    }

    /// Data length of the directory at block `lba`, from its "." record
    /// (used for Rock Ridge child links).
    fn dot_size(&self, lba: u32) -> Result<u64> {
        let off = u64::from(lba) * self.block;
        if off + 34 > self.size {
            return Err(corrupt(
                off,
                format!("Rock Ridge child link (CL) to block {lba}, past the end of the image"),
            ));
        }
        let n = (self.size - off).min(self.block) as usize;
        let mut buf = vec![0u8; n];
        self.r
            .read_at(&mut buf, off)
            .map_err(|e| io(Some(off), "reading a relocated directory", e))?;
        let rec = record::parse(&buf, off)?;
        if rec.id != [0] || rec.flags & FLAG_DIRECTORY == 0 {
            return Err(corrupt(
                off,
                "Rock Ridge child link (CL) target does not start with a \".\" directory record",
            ));
        }
        Ok(u64::from(rec.size))
    }
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}
