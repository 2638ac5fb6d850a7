//! Safety checks before writing.

/// Options for writing.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Write even when a safety check fails.
    pub force: bool,
}

/// Result of the safety checks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Safety {
    /// Problems that block writing.
    pub problems: Vec<String>,
}
