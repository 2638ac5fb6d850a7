//! Linux guest inspection over bytes: boot loader configuration (grub2
//! `grub.cfg` + `grubenv`, BLS `loader/entries`), initramfs contents (newc
//! cpio, gzip/xz/zstd-compressed, concatenated archives with an
//! uncompressed early-microcode prefix), kernel configuration, bus-specific
//! device names in fstab/crypttab, and a deterministic newc cpio writer
//! (the extra archive of the bootstrap boot).
//!
//! [`inspect`] finds Linux installs on a VM's disks (over `linuxfs`,
//! partitions and LVM2 linear volumes) and [`read_file`] reads their files
//! back through the install's mount layout.
//!
//! The parsers (`bootcfg`, `cpio`, `fstab`, `initrd`, `kconfig`, `netcfg`)
//! are pure: the caller reads the files (from `/boot`
//! and the root filesystem) and passes their bytes. Every size is bounded
//! and errors name the offset and what was expected.

pub mod bootcfg;
pub mod cpio;
pub mod fstab;
pub mod initrd;
pub mod inspect;
pub mod kconfig;
mod layout;
pub mod netcfg;

/// Errors of the Linux parsers.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// The bytes do not have the expected structure.
    #[error("{what} at offset {offset}: {detail}")]
    Format {
        /// What was being parsed (`cpio header`, `grub.cfg`...).
        what: &'static str,
        /// Byte offset (or line number for text formats, see `what`).
        offset: u64,
        /// What was expected and what was found.
        detail: String,
    },
    /// Reading the (decompressed) stream failed.
    #[error("{what} at offset {offset}: read failed")]
    Io {
        /// What was being read.
        what: &'static str,
        /// Byte offset in the stream.
        offset: u64,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A size limit was hit.
    #[error("{what} at offset {offset}: over the limit of {limit}")]
    Limit {
        /// What hit the limit.
        what: &'static str,
        /// Byte offset where it happened.
        offset: u64,
        /// The limit.
        limit: u64,
    },
    /// A compressed stream could not be decoded.
    #[error("{compression} stream at offset {offset}")]
    Decompress {
        /// `gzip`, `xz`, `zstd`.
        compression: &'static str,
        /// Offset of the stream in the initrd.
        offset: u64,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A compression format we do not decode.
    #[error("initrd segment at offset {offset} is {compression}-compressed, which is not supported (gzip, xz, zstd are)")]
    Unsupported {
        /// Name of the format.
        compression: &'static str,
        /// Offset of the segment.
        offset: u64,
    },
    /// Nothing usable was found (no boot entry, ...).
    #[error("{0}")]
    NotFound(String),
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, LinuxError>;

/// Errors reading a file of an inspected Linux install.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The install's root volume is not among the readable filesystems.
    #[error("{path}: the install's root filesystem ({root}) is not found on the disks")]
    NoVolume {
        /// The path.
        path: String,
        /// The root as the install names it.
        root: String,
    },
    /// The path cannot be read from the volume that holds it.
    #[error("{path}: cannot read it from {volume}")]
    Unavailable {
        /// The path.
        path: String,
        /// The volume (`disk 0 partition 1`, `vg/root`).
        volume: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Read the file at `path` (absolute in the guest's root namespace, so
/// `/boot/...` resolves to a separate `/boot` volume when there is one,
/// `/boot/efi/...` to the ESP) of the Linux install `install` found by
/// inspecting `disks`, at most `max_len` bytes. The mount layout is the
/// one inspection used (the root's `/etc/fstab`).
pub fn read_file(
    disks: &[&dyn vdisk::Disk],
    inspection: &crate::inspect::VmInspection,
    install: &crate::inspect::LinuxInstall,
    path: &str,
    max_len: u64,
) -> std::result::Result<Vec<u8>, ReadError> {
    let mut warnings = Vec::new();
    let scan = layout::scan(disks, &inspection.disks, &mut warnings);
    let root_desc = install
        .root_lv
        .clone()
        .or_else(|| install.root.as_ref().map(layout::describe))
        .unwrap_or_else(|| "none".into());
    let root = install
        .root
        .as_ref()
        .and_then(|r| {
            scan.find(
                r,
                install.root_lv.as_deref(),
                install.root_subvol.as_deref(),
            )
        })
        .ok_or_else(|| ReadError::NoVolume {
            path: path.into(),
            root: root_desc.clone(),
        })?;
    let r = inspect::Root::new(&scan, root);
    scan.read(&r.layout, path, max_len)
        .map_err(|e| ReadError::Unavailable {
            path: path.into(),
            volume: root_desc,
            source: Box::new(e),
        })
}
