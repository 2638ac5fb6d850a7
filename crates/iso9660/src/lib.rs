//! ISO 9660 images, read and written in pure Rust.
//!
//! * [`Iso`] reads an image through positional reads ([`ReadAt`]): volume
//!   descriptors, the Joliet supplementary hierarchy and Rock Ridge
//!   (SUSP `NM` names, `CE` continuation areas, `CL`/`RE` relocated
//!   directories). Names come from Rock Ridge when present, else Joliet,
//!   else the primary ISO 9660 names (with `;N` and a trailing `.`
//!   stripped). The walk is bounded ([`MAX_DEPTH`], [`MAX_ENTRIES`],
//!   [`MAX_DIR_BYTES`]...), detects directory loops and refuses extents
//!   outside the image, so hostile images give errors, not panics or
//!   unbounded memory.
//! * [`IsoBuilder`] writes a small image: a primary hierarchy with strict
//!   level-1 names (8.3, upper case) and a Joliet hierarchy with the real
//!   names, both pointing at the same file data. The output is a pure
//!   function of the input and the timestamp.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod names;
mod read;
mod record;
mod susp;
mod time;
mod write;

pub use error::{Error, ErrorKind, Result};
pub use read::{
    Entry, Iso, NameSource, MAX_CE_BYTES, MAX_DEPTH, MAX_DIR_BYTES, MAX_ENTRIES,
    MAX_TOTAL_DIR_BYTES,
};
pub use write::IsoBuilder;

use std::io;

/// Size of a CD sector; volume descriptors are always this far apart.
pub const SECTOR: u64 = 2048;

/// Exact positional reads: the only thing the reader needs from its source.
pub trait ReadAt {
    /// Fill `buf` completely from byte offset `off`, or fail (a short read
    /// is an error of kind [`io::ErrorKind::UnexpectedEof`]).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, off)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let start = usize::try_from(off).ok().filter(|&s| s <= self.len());
        let end = start.and_then(|s| s.checked_add(buf.len()));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.len() => {
                buf.copy_from_slice(&self[s..e]);
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {off} past the end ({} bytes)",
                    buf.len(),
                    self.len()
                ),
            )),
        }
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.as_slice().read_at(buf, off)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        (**self).read_at(buf, off)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        (**self).read_at(buf, off)
    }
}
