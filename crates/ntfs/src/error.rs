//! The NTFS engine's error type.

/// Everything that can go wrong reading or writing a volume.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The block layer failed (I/O, range, ...).
    #[error(transparent)]
    Disk(#[from] vdisk::Error),
    /// On-disk structures contradict the format.
    #[error("corrupt filesystem at volume byte {offset:#x}: {msg}")]
    Corrupt {
        /// Byte offset inside the volume (or the MFT record's position).
        offset: u64,
        /// What was found and what was expected.
        msg: String,
    },
    /// No such file or directory.
    #[error("not found: {0}")]
    NotFound(String),
    /// The target name already exists.
    #[error("already exists: {0}")]
    Exists(String),
    /// A path component is not a directory.
    #[error("not a directory: {0}")]
    NotADirectory(String),
    /// A file operation was asked of a directory.
    #[error("is a directory: {0}")]
    IsADirectory(String),
    /// Directory removal refused because it has entries.
    #[error("directory not empty: {0}")]
    NotEmpty(String),
    /// A valid volume uses something this engine does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A write was refused for safety (dirty, hibernated, BitLocker...).
    #[error("refusing to write: {0}")]
    Refused(String),
    /// Not enough free clusters or MFT records.
    #[error("no space left: {0}")]
    NoSpace(String),
    /// A caller-supplied argument is invalid (bad name, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Build a [`Error::Corrupt`].
pub(crate) fn corrupt(offset: u64, msg: impl Into<String>) -> Error {
    Error::Corrupt {
        offset,
        msg: msg.into(),
    }
}
