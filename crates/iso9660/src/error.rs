//! The crate's error type: what went wrong, where in the image, and which image.

use std::fmt;

/// What class of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading or writing the underlying file or stream failed.
    Io,
    /// The image contradicts ISO 9660 / Joliet / SUSP / Rock Ridge.
    Corrupt,
    /// A valid image uses a feature this crate does not implement.
    Unsupported,
    /// A size or count exceeds a limit (ours or the format's).
    TooLarge,
    /// A caller-supplied argument is invalid (bad name, duplicate path...).
    Invalid,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::Corrupt => "corrupt image",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Invalid => "invalid argument",
        })
    }
}

/// An error from reading or writing an ISO image.
///
/// Its `Display` names the image (when known), the byte offset inside it
/// (when the error is about on-disk data) and what was expected.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    /// Class of failure.
    pub kind: ErrorKind,
    /// The image file (or another label) the error is about, when known.
    pub image: Option<String>,
    /// Byte offset inside the image the error is about, when it is about on-disk data.
    pub offset: Option<u64>,
    /// What was found and what was expected.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(img) = &self.image {
            write!(f, "{img}: ")?;
        }
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(off) = self.offset {
            write!(f, " (at byte offset {off:#x})")?;
        }
        Ok(())
    }
}

impl Error {
    /// A new error without an image name.
    pub fn new(kind: ErrorKind, offset: Option<u64>, message: impl Into<String>) -> Self {
        Error {
            kind,
            image: None,
            offset,
            message: message.into(),
        }
    }

    /// The same error, naming `image` (kept if one is already set).
    pub fn with_image(mut self, image: &str) -> Self {
        if self.image.is_none() {
            self.image = Some(image.to_string());
        }
        self
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn corrupt(offset: u64, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, Some(offset), msg)
}

pub(crate) fn unsupported(offset: Option<u64>, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unsupported, offset, msg)
}

pub(crate) fn too_large(offset: Option<u64>, msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::TooLarge, offset, msg)
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, None, msg)
}

pub(crate) fn io(offset: Option<u64>, what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, offset, format!("{what}: {e}"))
}
