//! Sparse raw output: zero clusters become holes.

use super::{Payload, SeqWriter, TempOutput};
use crate::error::{Error, ErrorKind, Result};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Writes a raw image; zeros are left as holes.
#[derive(Debug)]
pub struct RawWriter {
    out: TempOutput,
    size: u64,
    cluster: u64,
}

impl RawWriter {
    /// Create a raw output of `size` bytes at `path` (via a temporary name).
    pub fn create(path: &Path, size: u64, overwrite: bool) -> Result<Self> {
        let out = TempOutput::create(path, overwrite)?;
        out.file()
            .set_len(size)
            .map_err(|e| Error::io(out.tmp_path(), None, "cannot size output", e))?;
        Ok(RawWriter {
            out,
            size,
            cluster: 64 * 1024,
        })
    }
}

impl SeqWriter for RawWriter {
    fn cluster_size(&self) -> u64 {
        self.cluster
    }
    fn accepts_compressed(&self) -> bool {
        false
    }
    fn put(&mut self, index: u64, payload: Payload) -> Result<()> {
        let off = index * self.cluster;
        match payload {
            Payload::Zero => Ok(()),
            Payload::Data(d) => {
                if off + d.len() as u64 > self.size {
                    return Err(Error::new(ErrorKind::OutOfRange, "cluster beyond disk end"));
                }
                self.out
                    .file()
                    .write_all_at(&d, off)
                    .map_err(|e| Error::io(self.out.tmp_path(), Some(off), "write failed", e))
            }
            Payload::Compressed(_) => Err(Error::new(
                ErrorKind::InvalidInput,
                "raw output cannot store compressed clusters",
            )),
        }
    }
    fn finish(self: Box<Self>) -> Result<PathBuf> {
        self.out.commit()
    }
}
