//! qcow2 reader (to be implemented).

use crate::disk::Disk;
use crate::error::{Error, Result};
use crate::file::ImageFile;
use crate::gate::OpenCtx;
use std::sync::Arc;

/// Open a qcow2 image.
pub fn open(file: Arc<ImageFile>, _ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    Err(Error::unsupported(file.path(), "qcow2 reader not implemented yet"))
}
