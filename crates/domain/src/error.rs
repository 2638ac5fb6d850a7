//! The crate's error type: what went wrong, in which file, where inside it
//! and what was expected.

use std::path::{Path, PathBuf};

/// Errors from parsing VM metadata or building a domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input contradicts its format: `location` says where (a line
    /// number, an XML element path, a tar entry).
    #[error("{}: {location}: {message}", path.display())]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// Where in the file (e.g. `line 12`, `Envelope/VirtualSystem/Item[3]`).
        location: String,
        /// What was found and what was expected.
        message: String,
    },
    /// Refused by policy: a name that escapes its directory, an absolute
    /// path without the allow flag, an input over a size cap.
    #[error("{}: refused: {message}", path.display())]
    Refused {
        /// The file whose content was refused.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A file's digest does not match the OVF manifest.
    #[error("{}: manifest digest mismatch for {file:?}: manifest says {algorithm} {expected}, computed {actual}", manifest.display())]
    DigestMismatch {
        /// The manifest (`.mf`) file, or the OVA holding it.
        manifest: PathBuf,
        /// The file named in the manifest.
        file: String,
        /// `SHA1`, `SHA256` or `SHA512`.
        algorithm: String,
        /// Digest written in the manifest.
        expected: String,
        /// Digest of the bytes actually present.
        actual: String,
    },
    /// A valid input that uses something this crate does not handle.
    #[error("{}: unsupported: {message}", path.display())]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// What is not supported.
        message: String,
    },
    /// An I/O error.
    #[error("{}: {context}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What we were doing.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The model cannot be turned into a domain (e.g. out of PCI slots,
    /// output disk list not matching the model).
    #[error("cannot build domain: {0}")]
    Plan(String),
    /// An error from the block layer (open gate).
    #[error(transparent)]
    Disk(#[from] vdisk::Error),
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Invalid`].
    pub fn invalid(path: &Path, location: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.to_path_buf(),
            location: location.into(),
            message: message.into(),
        }
    }
    /// An [`Error::Refused`].
    pub fn refused(path: &Path, message: impl Into<String>) -> Self {
        Error::Refused {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    /// An [`Error::Unsupported`].
    pub fn unsupported(path: &Path, message: impl Into<String>) -> Self {
        Error::Unsupported {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    /// An [`Error::Io`].
    pub fn io(path: &Path, context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            context: context.into(),
            source,
        }
    }
}

/// Largest metadata file (VMX, OVF, .vbox, libvirt XML, manifest) we read.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

/// Read a metadata file with the size cap.
pub(crate) fn read_metadata(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let mut buf = Vec::new();
    f.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    check_metadata_size(path, buf.len() as u64)?;
    Ok(buf)
}

/// Refuse metadata larger than [`MAX_METADATA_BYTES`].
pub(crate) fn check_metadata_size(path: &Path, len: u64) -> Result<()> {
    if len > MAX_METADATA_BYTES {
        return Err(Error::refused(
            path,
            format!(
                "metadata file is larger than {} MiB; expected a small text/XML file",
                MAX_METADATA_BYTES >> 20
            ),
        ));
    }
    Ok(())
}
