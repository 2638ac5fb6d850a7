//! Output writers. A writer receives the disk in cluster order (the
//! conversion pipeline reorders parallel work) and writes it to a temporary
//! file in the target directory, which [`Output::commit`] fsyncs and renames
//! into place; dropping an uncommitted output removes the temporary file.

mod overlay_create;
mod qcow2;
mod raw;

pub use overlay_create::create_qcow2_overlay;
pub use qcow2::{Qcow2Options, Qcow2Writer};
pub use raw::RawWriter;

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Compression for qcow2 outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// qcow2 compression type 0: raw deflate.
    Zlib,
    /// qcow2 compression type 1: zstd.
    Zstd,
}

/// What one output cluster of a [`Chunk`] holds.
#[derive(Debug)]
pub enum Cluster {
    /// Reads as zero: nothing is written (raw: a hole; qcow2: unallocated).
    Zero,
    /// Uncompressed: its bytes are in [`Chunk::data`].
    Data,
    /// A compressed cluster (qcow2 only).
    Compressed(Vec<u8>),
}

/// Consecutive output clusters, handed to a writer in disk order.
#[derive(Debug)]
pub struct Chunk {
    /// Index of the first cluster (virtual offset `first * cluster_size`).
    pub first: u64,
    /// The chunk's bytes; shorter than `kinds.len()` clusters only at the
    /// end of the disk.
    pub data: Vec<u8>,
    /// What each cluster is.
    pub kinds: Vec<Cluster>,
}

impl Chunk {
    /// Maximal runs `[a, b)` of [`Cluster::Data`] (indices into `kinds`).
    pub fn data_runs(&self) -> Vec<(usize, usize)> {
        let mut runs = vec![];
        let mut k = 0;
        while k < self.kinds.len() {
            if matches!(self.kinds[k], Cluster::Data) {
                let a = k;
                while k < self.kinds.len() && matches!(self.kinds[k], Cluster::Data) {
                    k += 1;
                }
                runs.push((a, k));
            } else {
                k += 1;
            }
        }
        runs
    }
    /// Bytes of clusters `[a, b)` (the last may be short).
    pub fn bytes(&self, a: usize, b: usize, cluster: u64) -> &[u8] {
        let cs = cluster as usize;
        &self.data[(a * cs).min(self.data.len())..(b * cs).min(self.data.len())]
    }
}

/// Bytes written between two writeback kicks (see [`TempOutput::wrote`]).
const KICK_BYTES: u64 = 32 << 20;

/// A file being written under a temporary name next to its final path.
#[derive(Debug)]
pub struct TempOutput {
    final_path: PathBuf,
    tmp_path: PathBuf,
    file: Option<File>,
    /// Everything below this offset has been handed to writeback.
    kicked: u64,
}

impl TempOutput {
    /// Create `.<name>.tmp-<pid>` beside `final_path`. Refuses to
    /// overwrite an existing `final_path` unless `overwrite`.
    pub fn create(final_path: &Path, overwrite: bool) -> Result<Self> {
        if final_path.exists() && !overwrite {
            return Err(Error::refused(final_path, "output already exists"));
        }
        let dir = final_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = final_path
            .file_name()
            .ok_or_else(|| Error::refused(final_path, "output path has no file name"))?;
        let tmp_path = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| Error::io(&tmp_path, None, "cannot create output", e))?;
        Ok(TempOutput {
            final_path: final_path.to_path_buf(),
            tmp_path,
            file: Some(file),
            kicked: 0,
        })
    }

    /// Note that the output has been written up to `end` (writers write in
    /// increasing order, apart from the final metadata). Every
    /// [`KICK_BYTES`] the range written since the last kick is handed to the
    /// kernel's writeback (`posix_fadvise(DONTNEED)` starts writing dirty
    /// pages without waiting for them), so the disk writes while we are
    /// still reading and the `fsync` in [`TempOutput::commit`] waits only
    /// for the tail: the conversion costs max(CPU, disk), not their sum.
    pub fn wrote(&mut self, end: u64) {
        if end < self.kicked + KICK_BYTES {
            return;
        }
        if let (Some(f), Some(len)) = (&self.file, std::num::NonZeroU64::new(end - self.kicked)) {
            // Advisory: a failure only means the fsync does all the work.
            let _ = rustix::fs::fadvise(f, self.kicked, Some(len), rustix::fs::Advice::DontNeed);
        }
        self.kicked = end;
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("output already committed")
    }

    /// Path of the temporary file (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// fsync, rename to the final name, fsync the directory.
    pub fn commit(mut self) -> Result<PathBuf> {
        let f = self.file.take().expect("output already committed");
        f.sync_all()
            .map_err(|e| Error::io(&self.tmp_path, None, "fsync failed", e))?;
        drop(f);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, None, "rename failed", e))?;
        if let Some(dir) = self.final_path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// A sequential output: clusters arrive in increasing order.
pub trait SeqWriter: Send {
    /// Cluster size the writer wants payloads in.
    fn cluster_size(&self) -> u64;
    /// Whether [`Cluster::Compressed`] is accepted.
    fn accepts_compressed(&self) -> bool;
    /// Write the next chunk (chunks arrive in increasing order).
    fn put(&mut self, chunk: &Chunk) -> Result<()>;
    /// Finish metadata, fsync and rename into place.
    fn finish(self: Box<Self>) -> Result<PathBuf>;
}
