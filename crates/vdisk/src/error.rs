//! One public error type for the block layer: a kind plus the context an
//! admin needs (which file, which offset, what was expected).

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, independent of where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operating system refused or failed an I/O request.
    Io,
    /// The image contents contradict the format specification.
    Corrupt,
    /// A valid image uses a feature we do not implement.
    Unsupported,
    /// Refused by policy (open gate, source protection, limits).
    Refused,
    /// A request outside the disk (offset/length beyond the virtual size).
    OutOfRange,
    /// A caller-supplied argument is invalid.
    InvalidInput,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Corrupt => "corrupt image",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Refused => "refused",
            ErrorKind::OutOfRange => "out of range",
            ErrorKind::InvalidInput => "invalid input",
        }
    }
}

/// Block-layer error: kind, file, offset and a message naming what was
/// expected.
#[derive(Debug)]
pub struct Error {
    /// Category of the failure.
    pub kind: ErrorKind,
    /// The file concerned, when known.
    pub path: Option<PathBuf>,
    /// Byte offset inside `path` (or inside the virtual disk for
    /// [`ErrorKind::OutOfRange`]), when known.
    pub offset: Option<u64>,
    /// Human readable detail: what was found and what was expected.
    pub message: String,
    /// Underlying I/O error, if any.
    pub source: Option<std::io::Error>,
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            path: None,
            offset: None,
            message: message.into(),
            source: None,
        }
    }
    /// Image contents are corrupt at `offset` of `path`.
    pub fn corrupt(path: &Path, offset: u64, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message).at(path, offset)
    }
    /// An unsupported feature in `path`.
    pub fn unsupported(path: &Path, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message).with_path(path)
    }
    /// Refused by policy.
    pub fn refused(path: &Path, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Refused, message).with_path(path)
    }
    /// An I/O error on `path` at `offset`.
    pub fn io(path: &Path, offset: Option<u64>, context: &str, source: std::io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            path: Some(path.to_path_buf()),
            offset,
            message: context.to_string(),
            source: Some(source),
        }
    }
    /// Attach a file and an offset.
    pub fn at(mut self, path: &Path, offset: u64) -> Self {
        self.path = Some(path.to_path_buf());
        self.offset = Some(offset);
        self
    }
    /// Attach a file.
    pub fn with_path(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }
}

/// `PATH: [at offset N: ]KIND: MESSAGE`, or `PATH: [at offset N: ]MESSAGE:
/// OS ERROR` for an I/O error. The OS error is also the error's
/// [`source`](std::error::Error::source), so a chain printer that shows
/// causes leaves repeated text out (hyper2kvm's does).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        if let Some(o) = self.offset {
            write!(f, "at offset {o:#x}: ")?;
        }
        match &self.source {
            // The OS error says what kind of failure it is: no label.
            Some(s) => write!(f, "{}: {s}", self.message),
            None => write!(f, "{}: {}", self.kind.label(), self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
