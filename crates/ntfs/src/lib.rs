//! Pure-Rust NTFS engine over the block layer: read and write offline
//! guest volumes (any [`vdisk::Disk`], e.g. a partition
//! [`vdisk::window::Window`]).
//!
//! Reading: boot sector, MFT records with fixups, attribute lists,
//! resident/non-resident/sparse/compressed (LZNT1) streams, named streams,
//! directory B+trees with the volume's $UpCase collation, reparse points
//! and hard links.
//!
//! Writing (only through [`Volume::open`] on a [`vdisk::DiskWrite`], after
//! the safety checks of [`safety`]): overwrite, grow and shrink files,
//! create files and directories (Win32 + DOS names), delete, rename; the
//! $MFTMirr is kept in sync and the $LogFile is emptied the way ntfs-3g
//! does, so Windows sees a cleanly unmounted volume.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub(crate) mod alloc;
pub mod boot;
pub mod check;
mod create;
pub mod dir;
pub mod error;
pub mod index;
mod index_write;
pub mod lznt1;
pub mod record;
pub mod runlist;
pub mod safety;
pub mod upcase;
pub(crate) mod util;
pub mod volume;
mod write;

pub use boot::{is_bitlocker, BootSector};
pub use check::CheckReport;
pub use dir::{DirEntry, FileInfo, StreamInfo};
pub use error::{Error, Result};
pub use safety::{Safety, WriteOptions};
pub use util::{filetime_now, filetime_to_unix, unix_to_filetime};
pub use volume::{Volume, VolumeInfo};
