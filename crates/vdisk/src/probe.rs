//! Format detection by content (magic numbers), never by file extension.

use crate::disk::Disk;
use crate::error::Result;
use crate::file::{be, le, ImageFile};
use crate::gate::{OpenCtx, OpenOptions};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// Formats the probe recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// No recognised header: a raw disk.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// VMware hosted sparse extent (`KDMV`), possibly with an embedded
    /// descriptor.
    VmdkSparse,
    /// VMware ESX sparse (`COWD`).
    VmdkCowd,
    /// VMware text descriptor file.
    VmdkDescriptor,
    /// Microsoft VHD (fixed: footer only; dynamic/differencing: header copy).
    Vhd,
    /// Microsoft VHDX.
    Vhdx,
    /// VirtualBox VDI.
    Vdi,
}

/// Detect the format of an open file.
pub fn detect(file: &ImageFile) -> Result<Format> {
    let mut head = [0u8; 512];
    file.read_at_padded(&mut head, 0)?;
    if &head[0..4] == b"QFI\xfb" {
        return Ok(Format::Qcow2);
    }
    if &head[0..4] == b"KDMV" {
        return Ok(Format::VmdkSparse);
    }
    if &head[0..4] == b"COWD" {
        return Ok(Format::VmdkCowd);
    }
    if &head[0..8] == b"vhdxfile" {
        return Ok(Format::Vhdx);
    }
    if &head[0..8] == b"conectix" {
        return Ok(Format::Vhd);
    }
    if le::u32(&head, 0x40) == 0xbeda_107f {
        return Ok(Format::Vdi);
    }
    if looks_like_descriptor(&head) {
        return Ok(Format::VmdkDescriptor);
    }
    if file.len() >= 512 && file.len().is_multiple_of(512) {
        let mut tail = [0u8; 512];
        file.read_exact_at(&mut tail, file.len() - 512)?;
        if &tail[0..8] == b"conectix" && be::u32(&tail, 0x3c) == 2 {
            return Ok(Format::Vhd);
        }
    }
    Ok(Format::Raw)
}

fn looks_like_descriptor(head: &[u8]) -> bool {
    // A descriptor is small ASCII text; require the marker near the top.
    let text = String::from_utf8_lossy(head);
    text.contains("# Disk DescriptorFile") || (text.contains("createType") && text.contains("CID"))
}

/// Open an image of any supported format with the default policy.
pub fn open(path: &Path) -> Result<Box<dyn Disk>> {
    open_opts(path, OpenOptions::default())
}

/// Open an image with an explicit policy.
pub fn open_opts(path: &Path, options: OpenOptions) -> Result<Box<dyn Disk>> {
    open_with(path, &OpenCtx::new(options))
}

/// Open an image within an existing chain context (used for backing files).
pub fn open_with(path: &Path, ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    let ctx = ctx.enter(path)?;
    let file = Arc::new(ImageFile::open(path)?);
    let fmt = detect(&file)?;
    open_format(file, fmt, &ctx)
}

/// Open an already opened file (e.g. [`ImageFile::open_slice`]) of any
/// format, probed by content.
pub fn open_file(file: ImageFile, options: OpenOptions) -> Result<Box<dyn Disk>> {
    let ctx = OpenCtx::new(options).enter(file.path())?;
    let file = Arc::new(file);
    let fmt = detect(&file)?;
    open_format(file, fmt, &ctx)
}

/// Open `file` as the given format (skipping the probe).
pub fn open_format(file: Arc<ImageFile>, fmt: Format, ctx: &OpenCtx) -> Result<Box<dyn Disk>> {
    match fmt {
        Format::Raw => Ok(Box::new(crate::raw::RawDisk::new(file))),
        Format::Qcow2 => crate::qcow2::open(file, ctx),
        Format::VmdkSparse | Format::VmdkCowd | Format::VmdkDescriptor => {
            crate::vmdk::open(file, ctx)
        }
        Format::Vhd => crate::vhd::open(file, ctx),
        Format::Vhdx => crate::vhdx::open(file, ctx),
        Format::Vdi => crate::vdi::open(file, ctx),
    }
}
