//! Raw disks: the file (or block device) is the disk. Holes of a sparse
//! file are reported as [`ExtentKind::Zero`] extents (as `qemu-img map`
//! does: present, reads as zeros) found with `SEEK_DATA`/`SEEK_HOLE`, so a
//! conversion reads only the allocated bytes; where the file system cannot
//! tell, everything is data and the converter's zero detection skips zeros.

use crate::disk::{check_range, Disk, Extent, ExtentKind, LayerInfo};
use crate::error::Result;
use crate::file::ImageFile;
use std::sync::Arc;

/// A raw image file.
#[derive(Debug)]
pub struct RawDisk {
    file: Arc<ImageFile>,
}

impl RawDisk {
    /// Wrap an open file.
    pub fn new(file: Arc<ImageFile>) -> Self {
        RawDisk { file }
    }
}

impl Disk for RawDisk {
    fn size(&self) -> u64 {
        self.file.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size(), offset, buf.len() as u64)?;
        self.file.read_exact_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size(), offset, 1)?;
        let max = max_len.min(self.size() - offset);
        let (kind, len) = match self.file.next_data(offset)? {
            None => (ExtentKind::Zero, max),
            Some((start, _)) if start > offset => (ExtentKind::Zero, start - offset),
            Some((_, end)) => (ExtentKind::Data, end - offset),
        };
        Ok(Extent {
            kind,
            offset,
            len: len.min(max),
        })
    }
    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: self.file.path().to_path_buf(),
            format: "raw".into(),
            subformat: None,
            virtual_size: self.file.len(),
            file_size: self.file.len(),
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }
}

/// A raw image opened read-write: only for outputs the user names as a
/// target, never for a source.
#[derive(Debug)]
pub struct RawDiskMut {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
}

impl RawDiskMut {
    /// Open an existing raw file read-write.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| crate::Error::io(path, None, "cannot open for writing", e))?;
        let size = file
            .metadata()
            .map_err(|e| crate::Error::io(path, None, "cannot stat", e))?
            .len();
        Ok(RawDiskMut {
            path: path.to_path_buf(),
            file,
            size,
        })
    }
}

impl Disk for RawDiskMut {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        check_range(self.size, offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| crate::Error::io(&self.path, Some(offset), "read failed", e))
    }
    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: self.path.clone(),
            format: "raw".into(),
            subformat: None,
            virtual_size: self.size,
            file_size: self.size,
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }
}

impl crate::disk::DiskWrite for RawDiskMut {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        check_range(self.size, offset, buf.len() as u64)?;
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| crate::Error::io(&self.path, Some(offset), "write failed", e))
    }
    fn flush(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| crate::Error::io(&self.path, None, "fsync failed", e))
    }
}
