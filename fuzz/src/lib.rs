//! Support shared by the fuzz targets in `src/bin/` (each file there is one
//! target; this library is not a target): an in-memory disk, "write the
//! input to a private temp dir and open it through the probe", one bounded
//! exercise of an opened disk, and the scratch directory the domain parsers
//! resolve names under.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::OnceLock;
use vdisk::Disk;

/// A disk held in memory (the fuzz input, padded as the target needs).
pub use vdisk::mem::MemDisk as Mem;

/// Write `bytes` as `name` (plus any `companions`, name → bytes) into a
/// fresh private temp dir, open it with `vdisk::probe::open` and run
/// [`exercise`] on it. Nothing outside that temp dir is touched; I/O
/// failures of the harness itself and open errors end the run quietly.
pub fn open_and_exercise(name: &str, bytes: &[u8], companions: &[(&str, &[u8])]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join(name);
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    for (n, b) in companions {
        if std::fs::write(dir.path().join(n), b).is_err() {
            return;
        }
    }
    if let Ok(disk) = vdisk::probe::open(&path) {
        exercise(&*disk);
    }
}

/// Query an opened disk's metadata, read bounded chunks (and single bytes)
/// at eight spread offsets and near the end, and walk its extents for at
/// most 64 steps: results are ignored, only panics and unbounded
/// allocation are failures.
pub fn exercise(disk: &dyn Disk) {
    let _ = disk.layer();
    let _ = disk.geometry_hints();
    let size = disk.size();
    if size == 0 {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let spread = (0..8u64).map(|i| (size / 8).saturating_mul(i).min(size - 1));
    for off in spread.chain([size.saturating_sub(4096)]) {
        let n = (size - off).min(buf.len() as u64) as usize;
        let _ = disk.read_at(&mut buf[..n], off);
        let _ = disk.read_at(&mut buf[..1], off);
    }
    let mut off = 0;
    for _ in 0..64 {
        if off >= size {
            break;
        }
        match disk.extent(off, size - off) {
            Ok(e) if e.len > 0 => off = e.offset + e.len,
            _ => break,
        }
    }
}

/// A temp dir kept for the whole fuzzing process: the domain parsers
/// resolve the names they read under it (nothing is written there).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}
