//! hyper2kvm block layer: read every source disk format, write qcow2/raw,
//! overlay writes without touching a source, and convert in parallel.
//!
//! Every format is probed by content ([`probe::detect`]); file names found
//! inside images are resolved through the open gate ([`gate::OpenCtx`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod convert;
pub mod disk;
pub mod error;
pub mod file;
pub mod gate;
pub mod mem;
pub mod overlay;
pub mod probe;
pub mod qcow2;
pub mod raw;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;
pub mod window;
pub mod writer;

pub use disk::{Chs, Disk, DiskWrite, Extent, ExtentKind, GeometryHints, LayerInfo};
pub use error::{Error, ErrorKind, Result};
pub use gate::{OpenCtx, OpenOptions};
pub use probe::{open, open_opts, Format};
