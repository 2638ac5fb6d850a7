//! Sparse raw output: zero clusters become holes.

use super::{Chunk, Cluster, SeqWriter, TempOutput};
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
    fn put(&mut self, chunk: &Chunk) -> Result<()> {
        if chunk
            .kinds
            .iter()
            .any(|k| matches!(k, Cluster::Compressed(_)))
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "raw output cannot store compressed clusters",
            ));
        }
        for (a, b) in chunk.data_runs() {
            let off = (chunk.first + a as u64) * self.cluster;
            let bytes = chunk.bytes(a, b, self.cluster);
            if off + bytes.len() as u64 > self.size {
                return Err(Error::new(ErrorKind::OutOfRange, "cluster beyond disk end"));
            }
            self.out
                .file()
                .write_all_at(bytes, off)
                .map_err(|e| Error::io(self.out.tmp_path(), Some(off), "write failed", e))?;
            self.out.wrote(off + bytes.len() as u64);
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<PathBuf> {
        self.out.commit()
    }
}
