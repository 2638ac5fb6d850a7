//! Cluster and MFT record allocation state used while writing.

/// In-memory allocation bitmaps, loaded on the first write.
#[derive(Debug, Default)]
pub(crate) struct WriteState {
    /// $Bitmap contents.
    pub bitmap: Vec<u8>,
}
