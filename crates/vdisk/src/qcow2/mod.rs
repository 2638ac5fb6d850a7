//! qcow2 (QEMU copy-on-write v2/v3) images.
//!
//! Reading: [`open`] (via [`crate::probe`]) gives a [`Qcow2Disk`]: L1/L2
//! lookup with a bounded LRU cache of L2 tables, zlib/zstd compressed
//! clusters, zero clusters, extended L2 (subclusters) and backing files
//! opened only through the open gate. Encryption and external data files
//! are refused with [`crate::ErrorKind::Unsupported`].
//!
//! Writing: [`open_rw`] gives a [`Qcow2Mut`] for in-place writes on an
//! image the user names as a target (allocating clusters, L2 tables and
//! refcount blocks at the end of the file; `qemu-img check` stays clean).

mod cache;
mod compress;
pub mod header;
mod reader;
mod write;

pub use header::{Compression, Header};
pub use reader::Qcow2Disk;
pub use write::{open_rw, open_rw_opts, Qcow2Mut};

use crate::disk::Disk;
use crate::error::Result;
use crate::file::ImageFile;
use crate::gate::OpenCtx;
use std::sync::Arc;

/// Open a qcow2 image (already probed) within the gate context `ctx`.
pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    Ok(Box::new(Qcow2Disk::open(file, ctx)?))
}
