//! Read-only access to image files with errors that name file and offset.
//!
//! Regular files and block devices are accepted: a block device's size is
//! found by seeking to its end (its `stat` size is 0), and a device whose
//! size cannot be found is refused rather than read as an empty disk.
//! [`ImageFile::next_data`] finds allocated data with
//! `SEEK_DATA`/`SEEK_HOLE`, so a sparse raw source costs what it holds.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

/// An image file opened read-only. Reads are positional (`pread`), so one
/// `ImageFile` serves many threads.
#[derive(Debug)]
pub struct ImageFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// Where this image starts inside `file` (non-zero for an image stored
    /// inside another file, e.g. a disk inside an OVA tar).
    base: u64,
}

impl ImageFile {
    /// Open `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, None, "cannot open", e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(path, None, "cannot stat", e))?;
        if meta.is_dir() {
            return Err(Error::new(ErrorKind::InvalidInput, "is a directory").with_path(path));
        }
        let ft = meta.file_type();
        let len = if ft.is_file() {
            meta.len()
        } else if ft.is_block_device() {
            device_size(&file, path)?
        } else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "not a regular file or a block device (pipes and character devices cannot be read at random offsets)",
            )
            .with_path(path));
        };
        Ok(ImageFile {
            path: path.to_path_buf(),
            file,
            len,
            base: 0,
        })
    }

    /// Open `len` bytes at `offset` of `container` as an image file of its
    /// own (read in place, e.g. an uncompressed disk inside an OVA tar).
    /// `label` names it in errors, e.g. `vm.ova/disk1.vmdk`.
    pub fn open_slice(container: &Path, offset: u64, len: u64, label: &Path) -> Result<Self> {
        let mut f = ImageFile::open(container)?;
        match offset.checked_add(len) {
            Some(end) if end <= f.len => {}
            _ => {
                return Err(Error::corrupt(
                    container,
                    offset,
                    format!("embedded image of {len} bytes runs past the end of the file"),
                ))
            }
        }
        f.base = offset;
        f.len = len;
        f.path = label.to_path_buf();
        Ok(f)
    }

    /// The file's path as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File length in bytes at open time.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Read exactly `buf.len()` bytes at `offset`; a short file is reported
    /// as corruption ("expected N bytes at offset X, file ends at Y").
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= self.len => {}
            _ => {
                return Err(Error::corrupt(
                    &self.path,
                    offset,
                    format!(
                        "expected {} bytes but the file ends at {:#x}",
                        buf.len(),
                        self.len
                    ),
                ))
            }
        }
        self.file
            .read_exact_at(buf, self.base + offset)
            .map_err(|e| Error::io(&self.path, Some(offset), "read failed", e))
    }

    /// Read what is available at `offset` (up to `buf.len()`), zero-filling
    /// past end of file. Returns the number of bytes actually read.
    pub fn read_at_padded(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.len {
            buf.fill(0);
            return Ok(0);
        }
        let n = ((self.len - offset) as usize).min(buf.len());
        self.read_exact_at(&mut buf[..n], offset)?;
        buf[n..].fill(0);
        Ok(n)
    }

    /// The first run of allocated data at or after `offset`, as
    /// `(start, end)` (end exclusive, at most [`ImageFile::len`]); `None`
    /// when only holes follow. Uses `SEEK_DATA`/`SEEK_HOLE`; where the file
    /// system or device does not support them, everything from `offset` to
    /// the end is reported as data (the caller then reads it and detects
    /// zeros).
    pub fn next_data(&self, offset: u64) -> Result<Option<(u64, u64)>> {
        use rustix::fs::{seek, SeekFrom as Whence};
        use rustix::io::Errno;
        if offset >= self.len {
            return Ok(None);
        }
        let end = self.base + self.len;
        let all = Ok(Some((offset, self.len)));
        // The fd's position is shared by the threads using this file, but
        // only the returned offsets are used: reads are positional.
        let data = match seek(&self.file, Whence::Data(self.base + offset)) {
            Ok(d) => d,
            // No data after `offset`.
            Err(Errno::NXIO) => return Ok(None),
            Err(Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS | Errno::SPIPE) => return all,
            Err(e) => {
                return Err(Error::io(
                    &self.path,
                    Some(offset),
                    "cannot find data (SEEK_DATA)",
                    e.into(),
                ))
            }
        };
        if data >= end {
            return Ok(None);
        }
        let hole = match seek(&self.file, Whence::Hole(data)) {
            Ok(h) => h.min(end),
            Err(Errno::NXIO | Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS) => end,
            Err(e) => {
                return Err(Error::io(
                    &self.path,
                    Some(data - self.base),
                    "cannot find the end of data (SEEK_HOLE)",
                    e.into(),
                ))
            }
        };
        let start = data.max(self.base + offset) - self.base;
        if hole <= self.base + start {
            return all;
        }
        Ok(Some((start, hole - self.base)))
    }

    /// Read `len` bytes at `offset` into a new vector, refusing lengths
    /// above `limit` (bounded memory on hostile input).
    pub fn read_vec(&self, offset: u64, len: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
        if len > limit {
            return Err(Error::corrupt(
                &self.path,
                offset,
                format!("{what} claims {len} bytes, more than the limit of {limit}"),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact_at(&mut v, offset)?;
        Ok(v)
    }
}

/// Size of a block device: its `stat` size is 0, so seek to its end. A
/// device that reports 0 bytes (no medium, or a size that cannot be read)
/// is refused: reading it as an empty disk would convert nothing and call
/// it success.
fn device_size(mut file: &File, path: &Path) -> Result<u64> {
    let len = file.seek(SeekFrom::End(0)).map_err(|e| {
        Error::io(
            path,
            None,
            "cannot determine the size of the block device",
            e,
        )
    })?;
    if len == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "block device reports a size of 0 bytes (no medium, or its size cannot be read); refusing to read it as an empty disk",
        )
        .with_path(path));
    }
    Ok(len)
}

/// Little-endian field readers over byte slices (explicit endianness, no
/// transmutes). Callers guarantee bounds.
pub mod le {
    /// u16 at `o`.
    pub fn u16(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    /// u32 at `o`.
    pub fn u32(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    /// u64 at `o`.
    pub fn u64(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }
}

/// Big-endian field readers over byte slices.
pub mod be {
    /// u16 at `o`.
    pub fn u16(b: &[u8], o: usize) -> u16 {
        u16::from_be_bytes([b[o], b[o + 1]])
    }
    /// u32 at `o`.
    pub fn u32(b: &[u8], o: usize) -> u32 {
        u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
    }
    /// u64 at `o`.
    pub fn u64(b: &[u8], o: usize) -> u64 {
        u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
    }
}
