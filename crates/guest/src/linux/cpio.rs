//! newc (`070701`) / crc (`070702`) cpio: a bounded streaming reader and a
//! deterministic writer.
//!
//! The reader walks one uncompressed byte stream that may hold several
//! archives back to back (each ending with `TRAILER!!!`, zero-padded), as
//! the kernel unpacks them. It keeps only the names and metadata, plus the
//! contents of the small files the caller asks for; data of other files is
//! skipped. It stops before bytes that do not start a cpio header (the
//! next, compressed, segment of an initrd), so the caller can continue.

use super::{LinuxError, Result};
use std::io::{BufRead, Read, Write};

/// Header length of a newc entry.
const HDR: usize = 110;
/// The end-of-archive entry name.
pub const TRAILER: &str = "TRAILER!!!";

/// Bounds of one read.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most entries (over all archives of a read).
    pub max_entries: usize,
    /// Longest name, bytes (including the NUL).
    pub max_name: usize,
    /// Most bytes the stream may hold (a decompression bomb stops here).
    pub max_total: u64,
    /// Largest file whose contents are kept (bigger ones are skipped even
    /// when asked for).
    pub max_kept_file: u64,
    /// Most bytes kept over all files.
    pub max_kept_total: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 1_000_000,
            max_name: 4096,
            max_total: 4 << 30,
            max_kept_file: 4 << 20,
            max_kept_total: 32 << 20,
        }
    }
}

/// One archive member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path as stored (no leading `/` normally; `./` prefixes are stripped).
    pub name: String,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Data size.
    pub size: u64,
    /// Symlink target, for symlinks.
    pub link: Option<String>,
    /// Contents, when the caller asked for this file and it was small enough.
    pub data: Option<Vec<u8>>,
    /// Offset of the header in the stream.
    pub offset: u64,
}

impl Entry {
    /// Regular file?
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
    /// Directory?
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
    /// Symbolic link?
    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == 0o120000
    }
}

/// A byte source that counts what it consumed.
struct Src<'a, R: BufRead> {
    r: &'a mut R,
    pos: u64,
    limit: u64,
}

impl<R: BufRead> Src<'_, R> {
    fn io(&self, what: &'static str, e: std::io::Error) -> LinuxError {
        io_err(self.pos, what, e)
    }

    fn advance(&mut self, n: u64) -> Result<()> {
        self.pos += n;
        if self.pos > self.limit {
            return Err(LinuxError::Limit {
                what: "cpio stream",
                offset: self.pos,
                limit: self.limit,
            });
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        self.r.read_exact(buf).map_err(|e| self.io(what, e))?;
        self.advance(buf.len() as u64)
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        let got = std::io::copy(&mut (&mut *self.r).take(n), &mut std::io::sink())
            .map_err(|e| self.io(what, e))?;
        if got != n {
            return Err(LinuxError::Format {
                what,
                offset: self.pos + got,
                detail: format!("stream ends {} bytes early", n - got),
            });
        }
        self.advance(n)
    }

    /// Skip NUL bytes; returns the first non-NUL byte without consuming
    /// it, or None at the end.
    fn skip_zeros(&mut self) -> Result<Option<u8>> {
        loop {
            let pos = self.pos;
            let buf = self
                .r
                .fill_buf()
                .map_err(|e| io_err(pos, "cpio padding", e))?;
            if buf.is_empty() {
                return Ok(None);
            }
            let n = buf.iter().take_while(|b| **b == 0).count();
            let first = buf.get(n).copied();
            self.r.consume(n);
            self.advance(n as u64)?;
            if let Some(b) = first {
                return Ok(Some(b));
            }
        }
    }

    fn peek_is_cpio(&mut self) -> Result<bool> {
        let pos = self.pos;
        let buf = self
            .r
            .fill_buf()
            .map_err(|e| io_err(pos, "cpio header", e))?;
        Ok(buf.len() >= 4 && &buf[..4] == b"0707")
    }
}

fn io_err(offset: u64, what: &'static str, source: std::io::Error) -> LinuxError {
    LinuxError::Io {
        what,
        offset,
        source,
    }
}

fn hex_field(h: &[u8], i: usize, offset: u64) -> Result<u32> {
    let f = &h[6 + i * 8..6 + i * 8 + 8];
    let s = std::str::from_utf8(f).ok();
    s.and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or_else(|| LinuxError::Format {
            what: "cpio header",
            offset: offset + 6 + i as u64 * 8,
            detail: format!(
                "expected 8 hex digits, found {:?}",
                String::from_utf8_lossy(f)
            ),
        })
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// What [`read_stream`] found.
#[derive(Debug, Default)]
pub struct Stream {
    /// Members in stream order (trailers not included).
    pub entries: Vec<Entry>,
    /// Number of archives (trailers) seen.
    pub archives: usize,
    /// Bytes consumed.
    pub consumed: u64,
}

/// Read consecutive cpio archives from `r` (an uncompressed stream whose
/// first byte is at `base` in the caller's numbering, for error offsets).
/// Stops at the end of the stream or, after at least one archive, before
/// bytes that do not start with `0707` (the rest stays unread in `r`).
/// `keep(name, size)` says which files' contents to return.
/// `kept_so_far` counts kept bytes across calls (for
/// [`Limits::max_kept_total`]).
pub fn read_stream<R: BufRead>(
    r: &mut R,
    base: u64,
    limits: &Limits,
    keep: &dyn Fn(&str, u64) -> bool,
    kept_so_far: &mut u64,
    entries_so_far: usize,
) -> Result<Stream> {
    let mut src = Src {
        r,
        pos: base,
        limit: base.saturating_add(limits.max_total),
    };
    let mut out = Stream::default();
    loop {
        if src.skip_zeros()?.is_none() {
            break;
        }
        if !src.peek_is_cpio()? {
            if out.archives == 0 && out.entries.is_empty() {
                return Err(LinuxError::Format {
                    what: "cpio header",
                    offset: src.pos,
                    detail: "expected magic 070701 or 070702".into(),
                });
            }
            break;
        }
        let (entry, trailer) = read_entry(&mut src, limits, keep, kept_so_far)?;
        if trailer {
            out.archives += 1;
            continue;
        }
        if entries_so_far + out.entries.len() >= limits.max_entries {
            return Err(LinuxError::Limit {
                what: "cpio entries",
                offset: entry.offset,
                limit: limits.max_entries as u64,
            });
        }
        out.entries.push(entry);
    }
    out.consumed = src.pos - base;
    Ok(out)
}

/// One header, name and data. Returns the entry and whether it was the
/// trailer.
fn read_entry<R: BufRead>(
    src: &mut Src<'_, R>,
    limits: &Limits,
    keep: &dyn Fn(&str, u64) -> bool,
    kept_so_far: &mut u64,
) -> Result<(Entry, bool)> {
    let offset = src.pos;
    let mut h = [0u8; HDR];
    src.read_exact(&mut h, "cpio header")?;
    if &h[..6] != b"070701" && &h[..6] != b"070702" {
        return Err(LinuxError::Format {
            what: "cpio header",
            offset,
            detail: format!(
                "expected magic 070701 or 070702, found {:?}",
                String::from_utf8_lossy(&h[..6])
            ),
        });
    }
    let mode = hex_field(&h, 1, offset)?;
    let size = u64::from(hex_field(&h, 6, offset)?);
    let namesize = hex_field(&h, 11, offset)? as usize;
    if namesize == 0 || namesize > limits.max_name {
        return Err(LinuxError::Format {
            what: "cpio name size",
            offset: offset + 94,
            detail: format!("expected 1..={}, found {namesize}", limits.max_name),
        });
    }
    let mut name = vec![0u8; namesize];
    src.read_exact(&mut name, "cpio name")?;
    if name.pop() != Some(0) {
        return Err(LinuxError::Format {
            what: "cpio name",
            offset: offset + HDR as u64,
            detail: "name is not NUL-terminated".into(),
        });
    }
    src.skip(pad4(HDR as u64 + namesize as u64), "cpio name padding")?;
    let raw = String::from_utf8_lossy(&name);
    let name = raw
        .trim_start_matches("./")
        .trim_start_matches('/')
        .to_string();
    if raw == TRAILER {
        src.skip(size + pad4(size), "cpio trailer data")?;
        let e = Entry {
            name,
            mode,
            size,
            link: None,
            data: None,
            offset,
        };
        return Ok((e, true));
    }
    let mut entry = Entry {
        name,
        mode,
        size,
        link: None,
        data: None,
        offset,
    };
    let want_data = (entry.is_file() && keep(&entry.name, size))
        || (entry.is_symlink() && size <= limits.max_name as u64);
    if want_data && size <= limits.max_kept_file && *kept_so_far + size <= limits.max_kept_total {
        let mut d = vec![0u8; size as usize];
        src.read_exact(&mut d, "cpio file data")?;
        *kept_so_far += size;
        if entry.is_symlink() {
            entry.link = Some(String::from_utf8_lossy(&d).into_owned());
        } else {
            entry.data = Some(d);
        }
    } else {
        src.skip(size, "cpio file data")?;
    }
    src.skip(pad4(size), "cpio data padding")?;
    Ok((entry, false))
}

/// Read every archive of an uncompressed byte slice, keeping no file
/// contents (the listing only).
pub fn list(bytes: &[u8]) -> Result<Vec<Entry>> {
    let mut r = bytes;
    let mut kept = 0;
    let s = read_stream(&mut r, 0, &Limits::default(), &|_, _| false, &mut kept, 0)?;
    if !r.is_empty() && r.iter().any(|b| *b != 0) {
        return Err(LinuxError::Format {
            what: "cpio archive",
            offset: s.consumed,
            detail: "trailing bytes that are not a cpio header".into(),
        });
    }
    Ok(s.entries)
}

/// A deterministic newc writer: inode numbers count from 1, mtime, uid,
/// gid and device numbers are 0, entries are written in the order given.
/// Parent directories are not added implicitly (so an archive appended to
/// an initrd never replaces its `bin`/`lib` symlinks).
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    ino: u32,
}

/// Writer input errors.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The name is empty, absolute, has `.`/`..` components, or a NUL.
    #[error("cpio entry name {0:?}: expected a relative path without '.', '..', empty components or NUL")]
    BadName(String),
    /// The data does not fit the 32-bit size field.
    #[error("cpio entry {name:?}: {len} bytes is over the newc limit of 4 GiB - 1")]
    TooBig {
        /// Entry name.
        name: String,
        /// Its size.
        len: usize,
    },
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Writer {
        Writer::default()
    }

    fn check_name(name: &str) -> std::result::Result<(), WriteError> {
        let bad = name.is_empty()
            || name.contains('\0')
            || name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..");
        if bad {
            return Err(WriteError::BadName(name.to_string()));
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> std::result::Result<(), WriteError> {
        if name != TRAILER {
            Writer::check_name(name)?;
        }
        let size = u32::try_from(data.len()).map_err(|_| WriteError::TooBig {
            name: name.to_string(),
            len: data.len(),
        })?;
        self.ino += 1;
        let ino = if name == TRAILER { 0 } else { self.ino };
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let namesize = name.len() + 1;
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            write!(self.out, "{f:08X}").expect("write to Vec");
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.out
            .resize(self.out.len() + pad4((HDR + namesize) as u64) as usize, 0);
        self.out.extend_from_slice(data);
        self.out
            .resize(self.out.len() + pad4(data.len() as u64) as usize, 0);
        Ok(())
    }

    /// A directory with permission bits `perm`.
    pub fn dir(&mut self, name: &str, perm: u32) -> std::result::Result<(), WriteError> {
        self.entry(name, 0o040000 | (perm & 0o7777), &[])
    }

    /// A regular file with permission bits `perm`.
    pub fn file(
        &mut self,
        name: &str,
        perm: u32,
        data: &[u8],
    ) -> std::result::Result<(), WriteError> {
        self.entry(name, 0o100000 | (perm & 0o7777), data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> std::result::Result<(), WriteError> {
        self.entry(name, 0o120777, target.as_bytes())
    }

    /// Write the trailer and return the archive, padded to 512 bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, &[]).expect("trailer is valid");
        let len = self.out.len().div_ceil(512) * 512;
        self.out.resize(len, 0);
        self.out
    }
}
