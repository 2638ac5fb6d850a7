//! A byte window of a disk (a partition), and a `std::io` cursor over a
//! disk for libraries that want `Read + Write + Seek`.

use crate::disk::{check_range, Disk, DiskWrite, Extent, LayerInfo};
use crate::error::Result;
use std::io;

/// `len` bytes of `inner` starting at `start`, seen as a disk of its own.
#[derive(Debug)]
pub struct Window<D> {
    inner: D,
    start: u64,
    len: u64,
}

impl<D: Disk> Window<D> {
    /// A window over `inner`; fails when it does not fit inside.
    pub fn new(inner: D, start: u64, len: u64) -> Result<Self> {
        check_range(inner.size(), start, len)?;
        Ok(Window { inner, start, len })
    }
    /// Offset of the window inside the inner disk.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// The disk the window looks into.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Disk> Disk for Window<D> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.inner.read_at(buf, self.start + offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.len, offset, 1)?;
        let mut e = self
            .inner
            .extent(self.start + offset, max_len.min(self.len - offset))?;
        e.offset -= self.start;
        Ok(e)
    }
    fn layer(&self) -> LayerInfo {
        self.inner.layer()
    }
    fn backing(&self) -> Option<&dyn Disk> {
        None
    }
}

impl<D: DiskWrite> DiskWrite for Window<D> {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64)?;
        self.inner.write_at(buf, self.start + offset)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

/// `Read + Seek` (and `Write` for writable disks) over a disk.
#[derive(Debug)]
pub struct Cursor<D> {
    disk: D,
    pos: u64,
}

impl<D: Disk> Cursor<D> {
    /// A cursor at position 0.
    pub fn new(disk: D) -> Self {
        Cursor { disk, pos: 0 }
    }
    /// Give the disk back.
    pub fn into_inner(self) -> D {
        self.disk
    }
}

fn to_io(e: crate::error::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl<D: Disk> io::Read for Cursor<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.disk.size();
        if self.pos >= size {
            return Ok(0);
        }
        let n = ((size - self.pos) as usize).min(buf.len());
        self.disk.read_at(&mut buf[..n], self.pos).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: DiskWrite> io::Write for Cursor<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let size = self.disk.size();
        if self.pos >= size {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "end of disk"));
        }
        let n = ((size - self.pos) as usize).min(buf.len());
        self.disk.write_at(&buf[..n], self.pos).map_err(to_io)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.disk.flush().map_err(to_io)
    }
}

impl<D: Disk> io::Seek for Cursor<D> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let size = self.disk.size() as i128;
        let new = match pos {
            io::SeekFrom::Start(o) => o as i128,
            io::SeekFrom::End(d) => size + d as i128,
            io::SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

impl<T: Disk + ?Sized> Disk for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        (**self).extent(offset, max_len)
    }
    fn layer(&self) -> LayerInfo {
        (**self).layer()
    }
    fn backing(&self) -> Option<&dyn Disk> {
        (**self).backing()
    }
}

impl<T: Disk + ?Sized> Disk for std::sync::Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        (**self).extent(offset, max_len)
    }
    fn layer(&self) -> LayerInfo {
        (**self).layer()
    }
    fn backing(&self) -> Option<&dyn Disk> {
        (**self).backing()
    }
}

impl<T: DiskWrite + ?Sized> DiskWrite for &T {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
}

impl<T: DiskWrite + ?Sized> DiskWrite for Box<T> {
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
}
