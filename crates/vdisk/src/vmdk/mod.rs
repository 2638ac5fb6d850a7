//! VMware VMDK reader: text descriptors, hosted sparse (`KDMV`) extents
//! including streamOptimized, ESX `COWD` (vmfsSparse) extents, flat/VMFS
//! extents, ZERO extents, multi-extent sets and snapshot chains.
//!
//! Every extent and parent file name found in a descriptor is opened only
//! through the open gate ([`OpenCtx::resolve`] / [`OpenCtx::open_referenced`]).

mod cache;
pub mod descriptor;
mod disk;
pub mod header;
pub mod sparse;

pub use descriptor::{
    parse_descriptor, Access, Descriptor, DescriptorError, ExtentLine, ExtentType,
    MAX_DESCRIPTOR_BYTES, MAX_EXTENTS, NO_PARENT_CID,
};
pub use disk::VmdkDisk;

use crate::disk::Disk;
use crate::error::{Error, Result};
use crate::file::{le, ImageFile};
use crate::gate::OpenCtx;
use header::{SparseHeader, COWD_MAGIC, KDMV_MAGIC};
use std::path::Path;
use std::sync::Arc;

/// Open a VMDK image (`KDMV` sparse file, `COWD` file or text descriptor).
pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    Ok(Box::new(VmdkDisk::open(file, ctx)?))
}

/// Text of a descriptor: UTF-8, else Latin-1 (each byte one character)
/// with a flag telling the caller it was not UTF-8.
fn decode_text(bytes: &[u8]) -> (String, bool) {
    let bytes = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (bytes.iter().map(|&b| char::from(b)).collect(), true),
    }
}

fn to_error(path: &Path, offset: u64, e: DescriptorError) -> Error {
    Error::corrupt(path, offset, e.to_string())
}

/// Read the descriptor embedded in a `KDMV` file, if any.
fn embedded_descriptor(file: &ImageFile, h: &SparseHeader) -> Result<Option<(Descriptor, bool)>> {
    if h.descriptor_offset == 0 || h.descriptor_size == 0 {
        return Ok(None);
    }
    let path = file.path();
    let too_big = || {
        Error::corrupt(
            path,
            28,
            format!(
                "embedded descriptor of {} sectors at sector {}; at most {MAX_DESCRIPTOR_BYTES} bytes expected",
                h.descriptor_size, h.descriptor_offset
            ),
        )
    };
    let off = h.descriptor_offset.checked_mul(512).ok_or_else(too_big)?;
    let len = h.descriptor_size.checked_mul(512).ok_or_else(too_big)?;
    if len > MAX_DESCRIPTOR_BYTES as u64 {
        return Err(too_big());
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, off)?;
    let (text, latin1) = decode_text(&buf);
    let d = parse_descriptor(&text).map_err(|e| to_error(path, off, e))?;
    Ok(Some((d, latin1)))
}

/// Read a text descriptor file (whole file, at most 1 MiB).
fn text_descriptor(file: &ImageFile) -> Result<(Descriptor, bool)> {
    let path = file.path();
    let buf = file.read_vec(
        0,
        file.len(),
        MAX_DESCRIPTOR_BYTES as u64,
        "descriptor file",
    )?;
    let (text, latin1) = decode_text(&buf);
    let d = parse_descriptor(&text).map_err(|e| to_error(path, 0, e))?;
    Ok((d, latin1))
}

/// Read the descriptor of the VMDK at `path` without opening its extents:
/// the embedded one of a `KDMV` file or the text of a descriptor file.
/// `Ok(None)` for a `COWD` file or a `KDMV` file without a descriptor.
pub fn read_descriptor(path: &Path) -> Result<Option<Descriptor>> {
    let file = ImageFile::open(path)?;
    read_descriptor_of(&file)
}

/// [`read_descriptor`] on an already open file.
pub fn read_descriptor_of(file: &ImageFile) -> Result<Option<Descriptor>> {
    let mut head = [0u8; 512];
    file.read_at_padded(&mut head, 0)?;
    match le::u32(&head, 0) {
        KDMV_MAGIC => {
            let h = SparseHeader::parse(&head).expect("magic checked");
            Ok(embedded_descriptor(file, &h)?.map(|(d, _)| d))
        }
        COWD_MAGIC => Ok(None),
        _ => Ok(Some(text_descriptor(file)?.0)),
    }
}
