//! The crate's error type: a kind plus where (file, offset) and what was
//! expected.

use std::fmt;
use std::path::PathBuf;

/// What went wrong, independent of where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading or writing a file failed.
    Io,
    /// The hive contents contradict the format.
    Corrupt,
    /// A transaction log is inconsistent, corrupt or does not match the hive.
    Log,
    /// The hive is dirty and the caller's policy forbids the needed action.
    Dirty,
    /// A key or value named by the caller does not exist.
    NotFound,
    /// The caller asked for something invalid (bad name, root deletion, ...).
    InvalidInput,
    /// A `.reg` text could not be parsed.
    Syntax,
    /// A size limit was reached (hive would exceed 4 GiB, too many cells, ...).
    Limit,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Corrupt => "corrupt hive",
            ErrorKind::Log => "transaction log",
            ErrorKind::Dirty => "dirty hive",
            ErrorKind::NotFound => "not found",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Limit => "limit exceeded",
        }
    }
}

/// Error of the registry engine.
#[derive(Debug)]
pub struct Error {
    /// Category.
    pub kind: ErrorKind,
    /// File concerned, when known.
    pub path: Option<PathBuf>,
    /// Byte offset inside the file (for hive data: file offset, i.e. 4096 +
    /// cell offset), or line number for [`ErrorKind::Syntax`].
    pub offset: Option<u64>,
    /// What was found and what was expected.
    pub message: String,
    /// Underlying I/O error.
    pub source: Option<std::io::Error>,
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// New error without location.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            path: None,
            offset: None,
            message: message.into(),
            source: None,
        }
    }
    /// Corruption found at a file offset.
    pub fn corrupt(offset: u64, message: impl Into<String>) -> Self {
        Error {
            offset: Some(offset),
            ..Error::new(ErrorKind::Corrupt, message)
        }
    }
    /// Corruption found at a cell offset (relative to the hive bins data).
    pub fn corrupt_cell(cell: u32, message: impl Into<String>) -> Self {
        Error::corrupt(4096 + cell as u64, message)
    }
    /// Log problem at an offset of the log file.
    pub fn log(offset: u64, message: impl Into<String>) -> Self {
        Error {
            offset: Some(offset),
            ..Error::new(ErrorKind::Log, message)
        }
    }
    /// Key or value not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }
    /// Invalid caller input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }
    /// I/O failure on a file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error {
            path: Some(path.into()),
            message: source.to_string(),
            source: Some(source),
            ..Error::new(ErrorKind::Io, "")
        }
    }
    /// Attach a file path (kept if one is already set).
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.label())?;
        if let Some(p) = &self.path {
            write!(f, ": {}", p.display())?;
        }
        if let Some(o) = self.offset {
            if self.kind == ErrorKind::Syntax {
                write!(f, ": line {o}")?;
            } else {
                write!(f, ": offset {o:#x}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
