//! The in-memory hive: base block, hive bins data, cell access and the
//! cell allocator (free-cell reuse with split and coalesce, new bins).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::base::{self, le32, put32, put64, BaseBlock, BASE_SIZE};
use crate::error::{Error, ErrorKind, Result};

/// Size of a hive bin header.
pub(crate) const HBIN_HEADER: u32 = 32;
/// Largest hive bins data we handle (cell offsets are 31-bit).
pub(crate) const MAX_BINS_SIZE: u64 = 0x7FFF_F000;

/// A registry hive held in memory. Reads walk the cells directly; edits
/// change cells in place; [`Hive::commit`] produces the file bytes.
#[derive(Clone)]
pub struct Hive {
    /// Base block bytes (4096).
    pub(crate) base: Vec<u8>,
    /// Hive bins data.
    pub(crate) data: Vec<u8>,
    /// Bins as (offset, size), sorted by offset.
    pub(crate) bins: Vec<(u32, u32)>,
    /// One bit per 8 bytes of `data`: a cell starts here.
    pub(crate) starts: Vec<u64>,
    /// Free cells: offset -> size.
    pub(crate) free_by_off: BTreeMap<u32, u32>,
    /// Free cells: (size, offset).
    pub(crate) free_by_size: BTreeSet<(u32, u32)>,
    /// Modified since open/commit.
    pub(crate) modified: bool,
    /// Highest sequence number seen in any transaction log (0 if none).
    pub(crate) log_seq: u32,
    /// Set when a dirty primary was read as it is for reading only
    /// ([`crate::ReplayPolicy::ReadOnlyBestEffort`]): why writing is refused.
    pub(crate) read_only: Option<String>,
}

impl std::fmt::Debug for Hive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hive")
            .field("bins_size", &self.data.len())
            .field("bins", &self.bins.len())
            .field("free_cells", &self.free_by_off.len())
            .finish()
    }
}

fn round8(n: u64) -> u64 {
    (n + 7) & !7
}

impl Hive {
    /// Open a clean primary hive from its bytes. A dirty hive (sequence
    /// numbers differ or bad checksum) is refused: use
    /// [`Hive::open_with_logs`] to replay its logs, or pass
    /// [`crate::ReplayPolicy::IgnoreLogs`] there to take it as it is.
    pub fn open(bytes: Vec<u8>) -> Result<Hive> {
        let b = BaseBlock::parse(&bytes, 0)?;
        if !b.checksum_ok {
            return Err(Error::new(
                ErrorKind::Dirty,
                "base block checksum mismatch: the hive is dirty; replay its transaction logs",
            ));
        }
        if b.seq1 != b.seq2 {
            return Err(Error::new(
                ErrorKind::Dirty,
                format!(
                    "sequence numbers differ ({} != {}): the hive is dirty; replay its transaction logs",
                    b.seq1, b.seq2
                ),
            ));
        }
        Hive::open_unchecked(bytes)
    }

    /// Open without the dirty check (base block fields still validated).
    pub(crate) fn open_unchecked(mut bytes: Vec<u8>) -> Result<Hive> {
        let b = BaseBlock::parse(&bytes, 0)?;
        if b.major != 1 || !(2..=6).contains(&b.minor) {
            return Err(Error::corrupt(
                20,
                format!("version {}.{}, expected 1.2 to 1.6", b.major, b.minor),
            ));
        }
        if b.file_type != 0 {
            return Err(Error::corrupt(
                28,
                format!(
                    "file type {}, expected 0 (primary); is this a transaction log?",
                    b.file_type
                ),
            ));
        }
        let size = b.bins_size as u64;
        if size == 0 || !size.is_multiple_of(4096) || size > MAX_BINS_SIZE {
            return Err(Error::corrupt(
                40,
                format!("hive bins data size {size:#x}, expected a non-zero multiple of 4096"),
            ));
        }
        if (bytes.len() as u64) < BASE_SIZE as u64 + size {
            return Err(Error::corrupt(
                bytes.len() as u64,
                format!(
                    "file is {} bytes, base block says {} (4096 + hive bins data size)",
                    bytes.len(),
                    BASE_SIZE as u64 + size
                ),
            ));
        }
        let data = bytes.split_off(BASE_SIZE);
        bytes.truncate(BASE_SIZE);
        // Give the hive bins' share of the file buffer back: otherwise the
        // 4 KiB base block keeps the whole file's allocation alive.
        bytes.shrink_to_fit();
        let mut data = data;
        data.truncate(size as usize);
        let mut h = Hive {
            base: bytes,
            data,
            bins: Vec::new(),
            starts: Vec::new(),
            free_by_off: BTreeMap::new(),
            free_by_size: BTreeSet::new(),
            modified: false,
            log_seq: 0,
            read_only: None,
        };
        h.scan_bins()?;
        let root = h.root_offset();
        h.cell(root).map_err(|e| {
            Error::corrupt(36, format!("root cell offset {root:#x}: {}", e.message))
        })?;
        if h.cell(root)?.get(0..2) != Some(b"nk") {
            return Err(Error::corrupt(36, "root cell is not a key node (nk)"));
        }
        Ok(h)
    }

    /// Read and open a clean primary hive file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Hive> {
        let p = path.as_ref();
        let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
        Hive::open(bytes).map_err(|e| e.with_path(p))
    }

    fn scan_bins(&mut self) -> Result<()> {
        let total = self.data.len() as u32;
        self.starts = vec![0; (self.data.len() / 8).div_ceil(64)];
        let mut pos = 0u32;
        while pos < total {
            let d = &self.data;
            let fo = BASE_SIZE as u64 + pos as u64;
            if &d[pos as usize..pos as usize + 4] != b"hbin" {
                return Err(Error::corrupt(fo, "expected hive bin signature \"hbin\""));
            }
            let boff = le32(d, pos as usize + 4);
            let bsize = le32(d, pos as usize + 8);
            if boff != pos {
                return Err(Error::corrupt(
                    fo + 4,
                    format!("hive bin offset field {boff:#x}, expected {pos:#x}"),
                ));
            }
            if bsize < 4096
                || !bsize.is_multiple_of(4096)
                || bsize as u64 + pos as u64 > total as u64
            {
                return Err(Error::corrupt(
                    fo + 8,
                    format!(
                        "hive bin size {bsize:#x}, expected a multiple of 4096 within the {total:#x}-byte hive bins data"
                    ),
                ));
            }
            let end = pos + bsize;
            let mut c = pos + HBIN_HEADER;
            while c < end {
                let raw = le32(&self.data, c as usize) as i32;
                let sz = raw.unsigned_abs();
                if sz < 8 || !sz.is_multiple_of(8) || c as u64 + sz as u64 > end as u64 {
                    return Err(Error::corrupt_cell(
                        c,
                        format!(
                            "cell size {raw}, expected a multiple of 8 (>= 8) ending inside its hive bin ({pos:#x}..{end:#x})"
                        ),
                    ));
                }
                self.set_start(c, true);
                if raw > 0 {
                    self.free_insert(c, sz);
                }
                c += sz;
            }
            self.bins.push((pos, bsize));
            pos = end;
        }
        Ok(())
    }

    // ----- base block accessors -----

    /// Decoded base block.
    pub fn base_block(&self) -> BaseBlock {
        BaseBlock::parse(&self.base, 0).expect("base block validated at open")
    }
    /// Root cell offset.
    pub(crate) fn root_offset(&self) -> u32 {
        le32(&self.base, 36)
    }
    /// Minor format version.
    pub fn minor_version(&self) -> u32 {
        le32(&self.base, 24)
    }
    /// Number of free cells (after coalescing).
    pub fn free_cell_count(&self) -> usize {
        self.free_by_off.len()
    }
    /// Why the hive is for reading only (a dirty primary read as it is with
    /// [`crate::ReplayPolicy::ReadOnlyBestEffort`]); `None` otherwise.
    pub fn read_only_reason(&self) -> Option<&str> {
        self.read_only.as_deref()
    }
    /// Whether the hive was changed since it was opened or last committed.
    pub fn is_modified(&self) -> bool {
        self.modified
    }

    // ----- cell access -----

    pub(crate) fn is_start(&self, off: u32) -> bool {
        let i = (off / 8) as usize;
        off.is_multiple_of(8)
            && self
                .starts
                .get(i / 64)
                .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
    fn set_start(&mut self, off: u32, on: bool) {
        let i = (off / 8) as usize;
        if on {
            self.starts[i / 64] |= 1 << (i % 64);
        } else {
            self.starts[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Payload of the allocated cell at `off` (without the size field).
    pub(crate) fn cell(&self, off: u32) -> Result<&[u8]> {
        if !self.is_start(off) {
            return Err(Error::corrupt_cell(
                off,
                "offset does not point at the start of a cell",
            ));
        }
        let raw = le32(&self.data, off as usize) as i32;
        if raw >= 0 {
            return Err(Error::corrupt_cell(
                off,
                "cell is free, expected an allocated cell",
            ));
        }
        let sz = raw.unsigned_abs() as usize;
        Ok(&self.data[off as usize + 4..off as usize + sz])
    }

    /// Mutable payload of an allocated cell.
    pub(crate) fn cell_mut(&mut self, off: u32) -> Result<&mut [u8]> {
        let len = self.cell(off)?.len();
        Ok(&mut self.data[off as usize + 4..off as usize + 4 + len])
    }

    /// Size (including header) of the cell at `off` (allocated or free).
    pub(crate) fn cell_size(&self, off: u32) -> u32 {
        (le32(&self.data, off as usize) as i32).unsigned_abs()
    }

    fn bin_of(&self, off: u32) -> (u32, u32) {
        let i = self.bins.partition_point(|&(o, _)| o <= off);
        let (o, s) = self.bins[i - 1];
        (o, o + s)
    }

    fn free_insert(&mut self, off: u32, size: u32) {
        self.free_by_off.insert(off, size);
        self.free_by_size.insert((size, off));
    }
    fn free_remove(&mut self, off: u32) -> u32 {
        let size = self.free_by_off.remove(&off).expect("free cell");
        self.free_by_size.remove(&(size, off));
        size
    }

    /// Allocate a cell with room for `len` payload bytes (zeroed); returns
    /// its offset. Reuses the best-fitting free cell (splitting it), or
    /// appends a new hive bin.
    pub(crate) fn alloc(&mut self, len: usize) -> Result<u32> {
        let need = round8(len as u64 + 4).max(8);
        if need > MAX_BINS_SIZE {
            return Err(Error::new(ErrorKind::Limit, "cell too large"));
        }
        let need = need as u32;
        let found = self.free_by_size.range((need, 0)..).next().copied();
        let (off, size) = match found {
            Some((size, off)) => {
                self.free_remove(off);
                (off, size)
            }
            None => {
                let off = self.append_bin(need)?;
                let size = self.free_remove(off);
                (off, size)
            }
        };
        let used = if size - need >= 8 {
            let rest = off + need;
            put32(&mut self.data, rest as usize, size - need);
            self.set_start(rest, true);
            self.free_insert(rest, size - need);
            need
        } else {
            size
        };
        put32(
            &mut self.data,
            off as usize,
            (used as i32).wrapping_neg() as u32,
        );
        self.data[off as usize + 4..(off + used) as usize].fill(0);
        self.modified = true;
        Ok(off)
    }

    /// Append a bin big enough for a `need`-byte cell; returns the offset of
    /// its (single, free) cell.
    fn append_bin(&mut self, need: u32) -> Result<u32> {
        let bsize = (need as u64 + HBIN_HEADER as u64).div_ceil(4096) * 4096;
        let off = self.data.len() as u64;
        if off + bsize > MAX_BINS_SIZE {
            return Err(Error::new(
                ErrorKind::Limit,
                "hive would exceed the maximum hive bins data size",
            ));
        }
        let off = off as u32;
        let bsize = bsize as u32;
        self.data.resize((off + bsize) as usize, 0);
        self.starts.resize((self.data.len() / 8).div_ceil(64), 0);
        let d = &mut self.data[off as usize..];
        d[0..4].copy_from_slice(b"hbin");
        put32(d, 4, off);
        put32(d, 8, bsize);
        let cell = off + HBIN_HEADER;
        put32(&mut self.data, cell as usize, bsize - HBIN_HEADER);
        self.set_start(cell, true);
        self.free_insert(cell, bsize - HBIN_HEADER);
        self.bins.push((off, bsize));
        Ok(cell)
    }

    /// Free an allocated cell, coalescing with free neighbours in its bin.
    pub(crate) fn free(&mut self, off: u32) {
        if self.cell(off).is_err() {
            return; // never double-free or free garbage
        }
        let (bstart, bend) = self.bin_of(off);
        let mut start = off;
        let mut size = self.cell_size(off);
        let next = off + size;
        if next < bend && self.free_by_off.contains_key(&next) {
            size += self.free_remove(next);
            self.set_start(next, false);
        }
        if let Some((&p, &ps)) = self.free_by_off.range(..off).next_back() {
            if p >= bstart && p + ps == off {
                self.free_remove(p);
                self.set_start(off, false);
                start = p;
                size += ps;
            }
        }
        put32(&mut self.data, start as usize, size);
        self.free_insert(start, size);
        self.modified = true;
    }

    /// Produce the file bytes: base block updated (both sequence numbers
    /// equal and above any sequence number seen in the primary or its logs,
    /// timestamp, hive bins data size, checksum) followed by the hive bins.
    pub fn commit(&mut self) -> Vec<u8> {
        let b = self.base_block();
        let seq = b.seq1.max(b.seq2).max(self.log_seq).wrapping_add(1);
        let now = base::filetime_now();
        let size = self.data.len() as u32;
        let bb = &mut self.base;
        put32(bb, 4, seq);
        put32(bb, 8, seq);
        put64(bb, 12, now);
        put32(bb, 28, 0);
        put32(bb, 32, 1);
        put32(bb, 40, size);
        if le32(bb, 44) == 0 {
            put32(bb, 44, 1);
        }
        // Boot type / boot recover have no meaning on disk.
        put32(bb, 4088, 0);
        put32(bb, 4092, 0);
        let c = base::checksum(bb);
        put32(bb, 508, c);
        if self.data.len() >= 28 {
            put64(&mut self.data, 20, now);
        }
        self.modified = false;
        self.log_seq = 0;
        let mut out = Vec::with_capacity(BASE_SIZE + self.data.len());
        out.extend_from_slice(&self.base);
        out.extend_from_slice(&self.data);
        out
    }

    /// Commit and write the hive to `path` atomically (temporary file in the
    /// same directory, fsync, rename). Refused for a dirty hive read as it
    /// is with [`crate::ReplayPolicy::ReadOnlyBestEffort`].
    pub fn write_to(&mut self, path: impl AsRef<Path>) -> Result<()> {
        if let Some(why) = &self.read_only {
            return Err(Error::new(
                ErrorKind::Dirty,
                format!("not writing a hive read for reading only: {why}; open it with IgnoreLogs (--ignore-logs) to write the primary as it is"),
            )
            .with_path(path.as_ref()));
        }
        let bytes = self.commit();
        write_atomic(path.as_ref(), &bytes)
    }
}

/// Write `bytes` to `path` via a temporary sibling file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
