//! Read side of the filesystem: directory indexes, path lookup, listing,
//! stat and file reads.

use crate::error::{corrupt, Error, Result};
use crate::index::{ns, parse_indx, parse_root, FileName, IEntry, RootHeader, FN_DIRECTORY};
use crate::record::{apply_fixups, ty, ATTR_COMPRESSED, ATTR_ENCRYPTED, ATTR_SPARSE};
use crate::util::{u32le, u64le, units_to_string, utf16_units};
use crate::volume::{sys, Inode, Stream, Volume};
use serde::Serialize;
use std::collections::HashSet;
use vdisk::Disk;

/// The $I30 name as UTF-16.
pub(crate) const I30: [u16; 4] = [b'$' as u16, b'I' as u16, b'3' as u16, b'0' as u16];

/// A name in a directory.
#[derive(Debug, Clone, Serialize)]
pub struct DirEntry {
    /// The name.
    pub name: String,
    /// MFT record number of the file.
    pub record: u64,
    /// Namespace of this name (0 POSIX, 1 Win32, 2 DOS, 3 Win32+DOS).
    pub namespace: u8,
    /// Directory?
    pub is_dir: bool,
    /// Size recorded in the index (may lag behind the file's own).
    pub size: u64,
    /// Modification time (FILETIME) recorded in the index.
    pub mtime: u64,
    /// File attribute flags recorded in the index.
    pub attributes: u32,
}

/// A named data stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// Stream name ("" for the unnamed default stream).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Allocated bytes.
    pub allocated: u64,
    /// Resident in the MFT record.
    pub resident: bool,
    /// Compressed.
    pub compressed: bool,
    /// Sparse.
    pub sparse: bool,
    /// Encrypted.
    pub encrypted: bool,
}

/// Everything `stat` reports.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// MFT record number.
    pub record: u64,
    /// Sequence number.
    pub seq: u16,
    /// Directory?
    pub is_dir: bool,
    /// Size of the unnamed $DATA stream (0 for directories).
    pub size: u64,
    /// $STANDARD_INFORMATION file attributes.
    pub attributes: u32,
    /// Creation time (FILETIME).
    pub ctime: u64,
    /// Modification time.
    pub mtime: u64,
    /// MFT change time.
    pub mft_time: u64,
    /// Access time.
    pub atime: u64,
    /// Security id.
    pub security_id: u32,
    /// Hard links (names outside the DOS namespace).
    pub names: Vec<String>,
    /// DOS 8.3 name, if any.
    pub dos_name: Option<String>,
    /// Reparse tag, if a reparse point.
    pub reparse_tag: Option<u32>,
    /// Data streams.
    pub streams: Vec<StreamInfo>,
}

pub(crate) struct DirIndex {
    pub hdr: RootHeader,
    pub root: Vec<IEntry>,
    pub alloc: Option<Stream>,
    /// $I30 $BITMAP (used by the checker).
    #[allow(dead_code)]
    pub bitmap: Vec<u8>,
}

/// Split a path on '/' or '\\', dropping empty parts.
pub fn split_path(p: &str) -> Vec<&str> {
    p.split(['/', '\\'])
        .filter(|s| !s.is_empty() && *s != ".")
        .collect()
}

impl<D: Disk> Volume<D> {
    pub(crate) fn vcn_bits(&self, block_size: u32) -> u32 {
        if block_size >= self.boot.cluster_size {
            self.boot.cluster_size.trailing_zeros()
        } else {
            9
        }
    }

    pub(crate) fn dir_index(&self, ino: &Inode) -> Result<DirIndex> {
        let v = ino
            .value(ty::INDEX_ROOT, &I30)
            .ok_or_else(|| Error::NotADirectory(format!("record {}", ino.no)))?;
        let (hdr, root, _) = parse_root(v, ino.base().pos)?;
        if hdr.indexed_type != ty::FILE_NAME {
            return Err(corrupt(
                ino.base().pos,
                "$I30 index does not index $FILE_NAME",
            ));
        }
        let alloc = self.stream(ino, ty::INDEX_ALLOCATION, &I30)?;
        let bitmap = match self.stream(ino, ty::BITMAP, &I30)? {
            Some(s) if s.size <= 1 << 24 => self.read_all(&s)?,
            Some(_) => return Err(corrupt(ino.base().pos, "$I30 bitmap larger than 16 MiB")),
            None => Vec::new(),
        };
        Ok(DirIndex {
            hdr,
            root,
            alloc,
            bitmap,
        })
    }

    /// Read index block `vcn`.
    pub(crate) fn index_node(&self, di: &DirIndex, vcn: u64) -> Result<Vec<IEntry>> {
        let s = di.alloc.as_ref().ok_or_else(|| {
            corrupt(
                0,
                format!("index entry points to block VCN {vcn} but there is no $INDEX_ALLOCATION"),
            )
        })?;
        let bs = di.hdr.block_size as usize;
        let off = vcn
            .checked_shl(self.vcn_bits(di.hdr.block_size))
            .filter(|o| o + bs as u64 <= s.size)
            .ok_or_else(|| corrupt(0, format!("index block VCN {vcn} beyond $INDEX_ALLOCATION")))?;
        let mut b = vec![0u8; bs];
        self.read_stream(s, off, &mut b)?;
        apply_fixups(&mut b, off, &format!("index block VCN {vcn}"))?;
        parse_indx(&b, vcn, off)
    }

    /// Visit every entry of a directory index in order.
    pub(crate) fn walk_index(
        &self,
        di: &DirIndex,
        f: &mut dyn FnMut(&IEntry) -> Result<()>,
    ) -> Result<()> {
        let mut seen = HashSet::new();
        self.walk_node(di, &di.root, f, &mut seen, 0)
    }

    fn walk_node(
        &self,
        di: &DirIndex,
        entries: &[IEntry],
        f: &mut dyn FnMut(&IEntry) -> Result<()>,
        seen: &mut HashSet<u64>,
        depth: u32,
    ) -> Result<()> {
        if depth > 32 {
            return Err(corrupt(0, "directory index deeper than 32 levels (cycle?)"));
        }
        for e in entries {
            if let Some(c) = e.child {
                if !seen.insert(c) {
                    return Err(corrupt(
                        0,
                        format!("index block VCN {c} referenced twice (cycle)"),
                    ));
                }
                let n = self.index_node(di, c)?;
                self.walk_node(di, &n, f, seen, depth + 1)?;
            }
            if !e.end {
                f(e)?;
            }
        }
        Ok(())
    }

    /// Case-insensitive lookup of `name` in a directory index.
    pub(crate) fn find_entry(&self, di: &DirIndex, name: &[u16]) -> Result<Option<IEntry>> {
        let mut node = di.root.clone();
        for _ in 0..33 {
            let mut next = None;
            for e in &node {
                if e.end {
                    next = e.child;
                    break;
                }
                let en = utf16_units(e.name());
                match self.upcase.cmp_ic(name, &en) {
                    std::cmp::Ordering::Equal => return Ok(Some(e.clone())),
                    std::cmp::Ordering::Less => {
                        next = e.child;
                        break;
                    }
                    std::cmp::Ordering::Greater => {}
                }
            }
            match next {
                None => return Ok(None),
                Some(v) => node = self.index_node(di, v)?,
            }
        }
        Err(corrupt(0, "directory index deeper than 32 levels (cycle?)"))
    }

    /// Record number of the file at `path` (case-insensitive, '/' or '\\').
    pub fn lookup(&self, path: &str) -> Result<u64> {
        let mut cur = sys::ROOT;
        for (i, part) in split_path(path).iter().enumerate() {
            let ino = self.inode(cur)?;
            if !ino.base().is_dir() {
                return Err(Error::NotADirectory(split_path(path)[..i].join("/")));
            }
            let di = self.dir_index(&ino)?;
            let name: Vec<u16> = part.encode_utf16().collect();
            match self.find_entry(&di, &name)? {
                Some(e) => cur = e.fileref & 0xffff_ffff_ffff,
                None => return Err(Error::NotFound(path.to_string())),
            }
        }
        Ok(cur)
    }

    /// List a directory: every name except DOS-only 8.3 aliases and the
    /// root's "." entry, in index order.
    pub fn list(&self, path: &str) -> Result<Vec<DirEntry>> {
        Ok(self
            .list_all(path)?
            .into_iter()
            .filter(|e| e.namespace != ns::DOS && !(e.record == sys::ROOT && e.name == "."))
            .collect())
    }

    /// List a directory including DOS-only names.
    pub fn list_all(&self, path: &str) -> Result<Vec<DirEntry>> {
        let no = self.lookup(path)?;
        let ino = self.inode(no)?;
        if !ino.base().is_dir() {
            return Err(Error::NotADirectory(path.to_string()));
        }
        let di = self.dir_index(&ino)?;
        let mut out = Vec::new();
        self.walk_index(&di, &mut |e| {
            let f = e.file_name()?;
            out.push(DirEntry {
                name: units_to_string(&f.name),
                record: e.fileref & 0xffff_ffff_ffff,
                namespace: f.namespace,
                is_dir: f.flags & FN_DIRECTORY != 0,
                size: f.size,
                mtime: f.mtime,
                attributes: f.flags,
            });
            if out.len() > 10_000_000 {
                return Err(corrupt(0, "more than 10 million directory entries"));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Stat the file at `path`.
    pub fn stat(&self, path: &str) -> Result<FileInfo> {
        let no = self.lookup(path)?;
        self.stat_record(no)
    }

    /// Stat by MFT record number.
    pub fn stat_record(&self, no: u64) -> Result<FileInfo> {
        let ino = self.inode(no)?;
        let si = ino.value(ty::STANDARD_INFORMATION, &[]).unwrap_or(&[]);
        let g = |o: usize| if si.len() >= o + 8 { u64le(si, o) } else { 0 };
        let mut names = Vec::new();
        let mut dos_name = None;
        for v in ino.values(ty::FILE_NAME) {
            let f = FileName::parse(v, ino.base().pos)?;
            if f.namespace == ns::DOS {
                dos_name = Some(units_to_string(&f.name));
            } else {
                if f.namespace == ns::WIN32_DOS {
                    dos_name = Some(units_to_string(&f.name));
                }
                names.push(units_to_string(&f.name));
            }
        }
        let mut streams = Vec::new();
        let mut seen: Vec<Vec<u16>> = Vec::new();
        for (_, a) in &ino.attrs {
            if a.ty != ty::DATA || seen.contains(&a.name) {
                continue;
            }
            seen.push(a.name.clone());
            if let Some(s) = self.stream(&ino, ty::DATA, &a.name)? {
                streams.push(StreamInfo {
                    name: units_to_string(&a.name),
                    size: s.size,
                    allocated: s.alloc,
                    resident: s.resident.is_some(),
                    compressed: s.flags & ATTR_COMPRESSED != 0,
                    sparse: s.flags & ATTR_SPARSE != 0,
                    encrypted: s.flags & ATTR_ENCRYPTED != 0,
                });
            }
        }
        let reparse_tag = ino
            .value(ty::REPARSE_POINT, &[])
            .filter(|v| v.len() >= 4)
            .map(|v| u32le(v, 0));
        Ok(FileInfo {
            record: no,
            seq: ino.seq(),
            is_dir: ino.base().is_dir(),
            size: streams
                .iter()
                .find(|s| s.name.is_empty())
                .map(|s| s.size)
                .unwrap_or(0),
            attributes: if si.len() >= 0x24 { u32le(si, 0x20) } else { 0 },
            ctime: g(0),
            mtime: g(8),
            mft_time: g(0x10),
            atime: g(0x18),
            security_id: if si.len() >= 0x38 { u32le(si, 0x34) } else { 0 },
            names,
            dos_name,
            reparse_tag,
            streams,
        })
    }

    /// Read the whole unnamed data stream of the file at `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.read_named(path, "")
    }

    /// Read a whole named data stream ("" for the default one).
    pub fn read_named(&self, path: &str, stream: &str) -> Result<Vec<u8>> {
        let no = self.lookup(path)?;
        let s = self.data_stream(no, stream, path)?;
        self.read_all(&s)
    }

    pub(crate) fn data_stream(&self, no: u64, stream: &str, path: &str) -> Result<Stream> {
        let ino = self.inode(no)?;
        let sn: Vec<u16> = stream.encode_utf16().collect();
        match self.stream(&ino, ty::DATA, &sn)? {
            Some(s) => Ok(s),
            None if ino.base().is_dir() => Err(Error::IsADirectory(path.to_string())),
            None => Err(Error::NotFound(format!("{path}: stream {stream:?}"))),
        }
    }

    /// Read part of a file's stream into `buf`; returns bytes read (0 at
    /// end of file).
    pub fn read_at(&self, path: &str, stream: &str, off: u64, buf: &mut [u8]) -> Result<usize> {
        let no = self.lookup(path)?;
        let s = self.data_stream(no, stream, path)?;
        self.read_stream(&s, off, buf)
    }

    /// Copy a whole stream to a writer in 1 MiB pieces.
    pub fn copy_to(&self, path: &str, stream: &str, w: &mut dyn std::io::Write) -> Result<u64> {
        let no = self.lookup(path)?;
        let s = self.data_stream(no, stream, path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        loop {
            let n = self.read_stream(&s, off, &mut buf)?;
            if n == 0 {
                return Ok(off);
            }
            w.write_all(&buf[..n])
                .map_err(|e| Error::Invalid(format!("write failed: {e}")))?;
            off += n as u64;
        }
    }
}
