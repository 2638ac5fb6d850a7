//! Phony Windows guests (test fixtures).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ntfsfmt;

/// Errors of the builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Block layer.
    #[error(transparent)]
    Disk(#[from] vdisk::Error),
    /// NTFS engine.
    #[error(transparent)]
    Ntfs(#[from] ntfs::Error),
    /// Registry engine.
    #[error(transparent)]
    Regf(#[from] regf::Error),
    /// Host file I/O.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Impossible layout or option.
    #[error("{0}")]
    Layout(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
