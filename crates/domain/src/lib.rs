//! VM metadata in (VMX, OVF/OVA, .vbox, libvirt XML) and domains out
//! (libvirt XML, QEMU command line).
//!
//! # Reading
//! Every parser produces one [`VmModel`]:
//! - [`vmx::parse_file`] — VMware `.vmx`;
//! - [`ovf::parse_file`] — a plain `.ovf` (its `.mf` manifest, when
//!   present, is checked before the descriptor is used);
//! - [`ova::Ova::open`] — an `.ova` tar: entries are listed without
//!   extracting, names escaping the archive are refused, the manifest is
//!   checked, and each disk is exposed as [`DiskSource::OvaEntry`]
//!   (offset + length inside the OVA). [`ova::Ova::extract_disk`] copies
//!   (and gunzips) one entry out with bounded memory, verifying its
//!   manifest digest while streaming; reading in place is a later
//!   optimisation;
//! - [`vbox::parse_file`] — VirtualBox `.vbox`;
//! - [`libvirt::parse_file`] — libvirt domain XML;
//! - [`VmModel::from_disks`] — bare disks with user-given settings.
//!
//! File names found in metadata go through the block layer's open gate
//! ([`vdisk::OpenCtx::resolve`]): relative to the metadata file, and
//! absolute or `..`-escaping names are refused unless
//! [`ParseOptions::allow_outside`] is set.
//!
//! # Writing
//! [`writer::DomainOptions`] says what was converted (one
//! [`writer::OutputDisk`] per model disk with its real format), the
//! [`writer::Phase`] (bootstrap on inbox-driver devices, or final on
//! virtio) and the rest; [`writer::libvirt_xml`] and
//! [`writer::qemu_command`] render the same device plan (one PCI slot
//! allocator per domain), so both outputs agree; [`writer::check`] runs
//! every refusal of that plan without rendering (for planning before any
//! disk is converted). [`writer::prepare_nvram`]
//! copies a per-VM OVMF variable store.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod guestos;
pub mod libvirt;
pub mod manifest;
pub mod model;
pub mod ova;
pub mod ovf;
pub mod vbox;
pub mod vmx;
pub mod writer;
pub mod xml;

pub use error::{Error, Result};
pub use guestos::{Arch, GuestOs, OsFamily, WinVersion};
pub use model::*;

/// Options common to all parsers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept disk file names that are absolute or leave the metadata
    /// file's directory (the CLI's `--allow-outside-paths`).
    pub allow_outside: bool,
}
