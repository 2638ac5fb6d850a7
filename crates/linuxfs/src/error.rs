//! The crate's error type: what went wrong, at which byte offset of the
//! filesystem (when the error is about on-disk data) and what was expected.

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from reading a Linux filesystem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The block layer failed to read.
    #[error("{fs}: cannot read {len} bytes at byte offset {offset:#x}")]
    Io {
        /// Filesystem type ("ext4", "xfs", "btrfs").
        fs: &'static str,
        /// Byte offset inside the filesystem (partition).
        offset: u64,
        /// Bytes requested.
        len: u64,
        /// The block layer's error.
        #[source]
        source: vdisk::Error,
    },
    /// The on-disk data contradicts the format.
    #[error("{fs}: corrupt filesystem at byte offset {offset:#x}: {what}")]
    Corrupt {
        /// Filesystem type.
        fs: &'static str,
        /// Byte offset inside the filesystem of the bad structure.
        offset: u64,
        /// What was found and what was expected.
        what: String,
    },
    /// A compressed extent does not decompress.
    #[error("{fs}: {codec} extent at byte offset {offset:#x} does not decompress")]
    Decompress {
        /// Filesystem type.
        fs: &'static str,
        /// Byte offset of the extent (or of its item).
        offset: u64,
        /// "zlib" or "zstd".
        codec: &'static str,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// A valid filesystem uses a feature this reader does not implement.
    #[error("{fs}: unsupported feature: {feature}")]
    Unsupported {
        /// Filesystem type.
        fs: &'static str,
        /// The feature, by name (e.g. `INCOMPAT_ENCRYPT`, `XFS v4 (no CRC)`).
        feature: String,
    },
    /// No known superblock was found.
    #[error("no ext2/3/4, XFS or btrfs superblock found ({detail})")]
    UnknownFilesystem {
        /// What was looked at.
        detail: String,
    },
    /// The path is not absolute or has an empty or over-long component.
    #[error("invalid path {path:?}: expected an absolute path like /boot/grub")]
    InvalidPath {
        /// The path given.
        path: String,
    },
    /// A path component does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path as far as it was resolved.
        path: String,
    },
    /// A path component that must be a directory is not.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// `read_file` on a directory (or another non-regular file).
    #[error("{path}: not a regular file (a {kind})")]
    NotAFile {
        /// The path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// `read_link` on something that is not a symlink.
    #[error("{path}: not a symbolic link")]
    NotASymlink {
        /// The path.
        path: String,
    },
    /// Symlink resolution took more hops than [`crate::MAX_SYMLINK_HOPS`].
    #[error("{path}: more than {hops} symbolic links followed (a loop?)")]
    TooManyLinks {
        /// The path being resolved.
        path: String,
        /// The limit.
        hops: usize,
    },
    /// The file (or structure) is larger than the caller's or our limit.
    #[error("{what} is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// What was too large (a path or a structure).
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// LVM2 metadata text does not parse or contradicts itself.
    #[error("LVM2 metadata (line {line}, 0 when not about one line): {what}")]
    LvmMetadata {
        /// 1-based line of the metadata text, 0 for a semantic problem.
        line: usize,
        /// What was found and what was expected.
        what: String,
    },
    /// An LVM2 logical volume uses a layout we do not read.
    #[error("LVM2 logical volume {lv}: {feature} is not supported (linear segments are read)")]
    LvmUnsupported {
        /// `VG/LV`.
        lv: String,
        /// The feature (`a "thin" segment`, `a striped segment over 2 PVs`).
        feature: String,
    },
    /// A physical volume the LV needs is not among the disks given.
    #[error("LVM2 logical volume {lv}: physical volume {pv} (UUID {id}, last seen as {device:?}) is missing")]
    LvmMissingPv {
        /// `VG/LV`.
        lv: String,
        /// PV name in the metadata (`pv1`).
        pv: String,
        /// PV UUID.
        id: String,
        /// The device path the metadata recorded for it.
        device: String,
    },
    /// No LV of that name in the VG.
    #[error("LVM2: no logical volume {lv}")]
    LvmNoVolume {
        /// `VG/LV`.
        lv: String,
    },
}

impl Error {
    /// A [`Error::Corrupt`].
    pub(crate) fn corrupt(fs: &'static str, offset: u64, what: impl Into<String>) -> Self {
        Error::Corrupt {
            fs,
            offset,
            what: what.into(),
        }
    }
    /// An [`Error::Unsupported`].
    pub(crate) fn unsupported(fs: &'static str, feature: impl Into<String>) -> Self {
        Error::Unsupported {
            fs,
            feature: feature.into(),
        }
    }
}
