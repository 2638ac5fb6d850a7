//! VirtIO driver catalog for Windows guests: an INF parser, the OS/driver
//! catalog (data, embedded with a user override), driver media access,
//! selection of the right driver directories on a virtio-win ISO or tree,
//! and `txtsetup.oem` generation for XP/2003 text-mode setup.
//!
//! Everything a later step needs to know about a driver (hardware IDs,
//! service name, start type, load-order group, class GUID, registry lines)
//! comes from the driver's own INF file, parsed by [`inf`]; nothing about a
//! driver is hard-coded. Which directories hold which Windows version's
//! drivers is data too ([`catalog`]).
//!
//! Typical use:
//! ```no_run
//! use guest::drivers::{catalog::Catalog, media::DirMedia, select, Arch, Role};
//! let media = DirMedia::new("/mnt/virtio-win").unwrap();
//! let cat = Catalog::builtin();
//! let set = select::select(&media, &cat, "win10", Arch::Amd64, &[Role::StorageBlk]).unwrap();
//! for d in &set.drivers {
//!     println!("{} from {}: {:?}", d.name, d.dir, d.summary.hardware_ids);
//! }
//! ```

pub mod catalog;
pub mod fixture;
pub mod inf;
pub mod media;
pub mod select;
pub mod txtsetup;

pub use inf::{Inf, InfError};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Processor architecture of a Windows guest, as far as drivers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64 (`amd64` in INF decorations and on driver media).
    Amd64,
    /// 32-bit x86 (`x86` in INF decorations, `x86` or `i386` on media).
    X86,
}

impl Arch {
    /// The platform name used in INF decorations (`NTamd64`, `NTx86`) and
    /// `SourceDisksFiles.<arch>` sections.
    pub fn inf_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::X86 => "x86",
        }
    }

    /// Parse an architecture name: `amd64`, `x86_64`, `x64` or `x86`,
    /// `i386`, `i686` (case-insensitive).
    pub fn parse(s: &str) -> Option<Arch> {
        match s.to_ascii_lowercase().as_str() {
            "amd64" | "x86_64" | "x64" | "x86-64" => Some(Arch::Amd64),
            "x86" | "i386" | "i486" | "i586" | "i686" | "ia32" => Some(Arch::X86),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inf_name())
    }
}

/// What a driver is for. The drivers that fill each role are catalog data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// virtio-blk storage controller (viostor).
    StorageBlk,
    /// virtio-scsi storage controller (vioscsi).
    StorageScsi,
    /// virtio-net NIC (NetKVM).
    Net,
    /// Memory balloon.
    Balloon,
    /// virtio-serial (guest agent channel).
    Serial,
    /// virtio-rng entropy source.
    Rng,
    /// pvpanic crash notification device.
    Panic,
    /// virtio-input keyboard/mouse/tablet.
    Input,
    /// Display (virtio-gpu DOD, QXL DOD).
    Display,
    /// QEMU fw_cfg device.
    #[serde(rename = "fwcfg")]
    FwCfg,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 10] = [
        Role::StorageBlk,
        Role::StorageScsi,
        Role::Net,
        Role::Balloon,
        Role::Serial,
        Role::Rng,
        Role::Panic,
        Role::Input,
        Role::Display,
        Role::FwCfg,
    ];

    /// The kebab-case name used in the catalog and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::StorageBlk => "storage-blk",
            Role::StorageScsi => "storage-scsi",
            Role::Net => "net",
            Role::Balloon => "balloon",
            Role::Serial => "serial",
            Role::Rng => "rng",
            Role::Panic => "panic",
            Role::Input => "input",
            Role::Display => "display",
            Role::FwCfg => "fwcfg",
        }
    }

    /// Parse a role name (as [`Role::name`] prints it, case-insensitive).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
    }

    /// Storage roles (the ones a boot disk needs).
    pub fn is_storage(self) -> bool {
        matches!(self, Role::StorageBlk | Role::StorageScsi)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of driver catalog, media access and selection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An INF file could not be parsed or lacks something required.
    #[error(transparent)]
    Inf(#[from] InfError),
    /// Reading the driver media failed.
    #[error("driver media: {path}: {msg}")]
    Media {
        /// Path on the media (or host path) concerned.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// The catalog data is invalid.
    #[error("driver catalog {source_name}: {msg}")]
    Catalog {
        /// Where the catalog came from (file name or `built-in`).
        source_name: String,
        /// What is wrong.
        msg: String,
    },
    /// The OS id or alias is not in the catalog.
    #[error("unknown Windows version '{given}'; known ids: {known}")]
    UnknownOs {
        /// What was asked for.
        given: String,
        /// The catalog's OS ids, comma-separated.
        known: String,
    },
    /// The OS has no edition for that architecture.
    #[error("{os} has no {arch} edition (supported: {supported})")]
    ArchUnsupported {
        /// OS display name and id.
        os: String,
        /// Requested architecture.
        arch: Arch,
        /// Supported architectures, comma-separated.
        supported: String,
    },
    /// No catalog driver fills the role.
    #[error("the driver catalog has no driver for role {0}")]
    UnknownRole(Role),
    /// No directory on the media holds the driver for the OS/arch.
    #[error("no {driver} driver for {os}/{arch} on the media (looked in: {tried}); {driver} is on the media in: {available}")]
    NoDirectory {
        /// Driver name(s) for the role.
        driver: String,
        /// OS id.
        os: String,
        /// Architecture.
        arch: Arch,
        /// Directories tried, comma-separated (possibly shortened).
        tried: String,
        /// Directories where the driver's INF exists, or `nowhere`.
        available: String,
    },
    /// The INF has no models section for the architecture.
    #[error("{inf}: no [Manufacturer] models for {arch} (decorations present: {found})")]
    InfArchMismatch {
        /// INF path on the media.
        inf: String,
        /// Requested architecture.
        arch: Arch,
        /// Decorations the INF offers.
        found: String,
    },
    /// A file named by the INF is not on the media.
    #[error("{inf}: names {what} '{file}' but {path} is not on the media")]
    MissingFile {
        /// INF path on the media.
        inf: String,
        /// Which INF entry names it (e.g. `CatalogFile`, `SourceDisksFiles`).
        what: String,
        /// The file name as the INF gives it.
        file: String,
        /// Where it was expected on the media.
        path: String,
    },
    /// Building txtsetup.oem failed.
    #[error("txtsetup.oem: {0}")]
    Txtsetup(String),
    /// Building a fake virtio-win tree failed.
    #[error("fake virtio-win tree: {0}")]
    Fixture(String),
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
