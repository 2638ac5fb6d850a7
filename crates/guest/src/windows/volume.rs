//! Read-only access to one volume of a VM disk for inspection: NTFS
//! through the [`ntfs`] engine, FAT (the ESP) through `fatfs`, both over a
//! [`Window`] of a borrowed disk, so nothing is copied and only the
//! records and clusters asked for are read.

use std::io::{self, Read, Seek, SeekFrom, Write};
use vdisk::window::{Cursor, Window};
use vdisk::Disk;

/// Largest file inspection reads whole (hives are at most a few hundred
/// MiB; `ntfs` refuses above 1 GiB anyway).
pub const MAX_READ: u64 = 512 << 20;

/// Errors reading a volume.
#[derive(Debug, thiserror::Error)]
pub enum VolError {
    /// The NTFS engine failed.
    #[error(transparent)]
    Ntfs(#[from] ntfs::Error),
    /// The block layer failed.
    #[error(transparent)]
    Disk(#[from] vdisk::Error),
    /// The FAT driver failed.
    #[error("FAT {what}: {source}")]
    Fat {
        /// What was being done.
        what: String,
        /// Cause.
        source: io::Error,
    },
    /// A file too large to read whole.
    #[error("{path}: {size} bytes, more than the {max} inspection reads")]
    TooLarge {
        /// Path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
}

type Win<'a> = Window<&'a dyn Disk>;

/// `Read + Write + Seek` over a read-only window for `fatfs`; writes fail.
pub struct RoIo<'a>(Cursor<Win<'a>>);
impl Read for RoIo<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.0.read(b)
    }
}
impl Seek for RoIo<'_> {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        self.0.seek(p)
    }
}
impl Write for RoIo<'_> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "opened read-only for inspection",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An opened volume.
pub enum Vol<'a> {
    /// NTFS.
    Ntfs(ntfs::Volume<Win<'a>>),
    /// FAT12/16/32.
    Fat(fatfs::FileSystem<RoIo<'a>>),
}

impl std::fmt::Debug for Vol<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Vol::Ntfs(_) => f.write_str("Vol::Ntfs"),
            Vol::Fat(_) => f.write_str("Vol::Fat"),
        }
    }
}

fn rel(p: &str) -> String {
    p.split(['/', '\\'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn fat_err(what: &str, path: &str, source: io::Error) -> VolError {
    VolError::Fat {
        what: format!("{what} {path}"),
        source,
    }
}

impl<'a> Vol<'a> {
    /// Open the filesystem `fs` (`ntfs` or `fat`, as [`crate::inspect::VolumeInfo::fs`]
    /// names it) at `start..start+len` of `disk`; `None` for other kinds.
    pub fn open(
        disk: &'a dyn Disk,
        start: u64,
        len: u64,
        fs: &str,
    ) -> Result<Option<Self>, VolError> {
        let w = Window::new(disk, start, len)?;
        Ok(match fs {
            "ntfs" => Some(Vol::Ntfs(ntfs::Volume::open(w)?)),
            "fat" => Some(Vol::Fat(
                fatfs::FileSystem::new(RoIo(Cursor::new(w)), fatfs::FsOptions::new())
                    .map_err(|e| fat_err("mount", "", e))?,
            )),
            _ => None,
        })
    }

    /// Size of the file at `path` (case-insensitive), `None` when it does
    /// not exist or is a directory.
    pub fn file_size(&self, path: &str) -> Option<u64> {
        match self {
            Vol::Ntfs(v) => v.stat(path).ok().filter(|s| !s.is_dir).map(|s| s.size),
            Vol::Fat(fs) => fs
                .root_dir()
                .open_file(&rel(path))
                .ok()
                .and_then(|mut f| f.seek(SeekFrom::End(0)).ok()),
        }
    }

    /// Whether a directory exists at `path`.
    pub fn is_dir(&self, path: &str) -> bool {
        match self {
            Vol::Ntfs(v) => v.stat(path).map(|s| s.is_dir).unwrap_or(false),
            Vol::Fat(fs) => {
                let r = rel(path);
                r.is_empty() || fs.root_dir().open_dir(&r).is_ok()
            }
        }
    }

    /// Names in the directory at `path` (empty when it does not exist).
    pub fn list(&self, path: &str) -> Vec<String> {
        match self {
            Vol::Ntfs(v) => v
                .list(path)
                .map(|l| l.into_iter().map(|e| e.name).collect())
                .unwrap_or_default(),
            Vol::Fat(fs) => {
                let r = rel(path);
                let d = if r.is_empty() {
                    Ok(fs.root_dir())
                } else {
                    fs.root_dir().open_dir(&r)
                };
                d.map(|d| {
                    d.iter()
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name())
                        .collect()
                })
                .unwrap_or_default()
            }
        }
    }

    /// Read the whole file at `path` (at most [`MAX_READ`] bytes).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, VolError> {
        if let Some(size) = self.file_size(path) {
            if size > MAX_READ {
                return Err(VolError::TooLarge {
                    path: path.into(),
                    size,
                    max: MAX_READ,
                });
            }
        }
        match self {
            Vol::Ntfs(v) => Ok(v.read(path)?),
            Vol::Fat(fs) => {
                let mut f = fs
                    .root_dir()
                    .open_file(&rel(path))
                    .map_err(|e| fat_err("open", path, e))?;
                let mut out = Vec::new();
                f.read_to_end(&mut out)
                    .map_err(|e| fat_err("read", path, e))?;
                Ok(out)
            }
        }
    }

    /// The first `n` bytes of the file at `path` (fewer when it is
    /// shorter).
    pub fn read_head(&self, path: &str, n: usize) -> Result<Vec<u8>, VolError> {
        let mut buf = vec![0u8; n];
        let got = match self {
            Vol::Ntfs(v) => v.read_at(path, "", 0, &mut buf)?,
            Vol::Fat(fs) => {
                let mut f = fs
                    .root_dir()
                    .open_file(&rel(path))
                    .map_err(|e| fat_err("open", path, e))?;
                let mut got = 0;
                while got < n {
                    let k = f
                        .read(&mut buf[got..])
                        .map_err(|e| fat_err("read", path, e))?;
                    if k == 0 {
                        break;
                    }
                    got += k;
                }
                got
            }
        };
        buf.truncate(got);
        Ok(buf)
    }

    /// Why the NTFS volume was not cleanly unmounted (its dirty flag, or a
    /// `$LogFile` Windows would replay); `None` when clean and on FAT.
    pub fn unclean(&self) -> Option<String> {
        let Vol::Ntfs(v) = self else {
            return None;
        };
        if v.info().dirty() {
            return Some("the volume's dirty flag is set".into());
        }
        match v.logfile_state() {
            Ok(ntfs::safety::LogState::Unclean(why)) => {
                Some(format!("$LogFile holds work Windows would replay ({why})"))
            }
            Ok(_) => None,
            Err(e) => Some(format!("$LogFile cannot be read ({e})")),
        }
    }

    /// The real spelling of `name` in directory `dir` (case-insensitive
    /// match), when present.
    pub fn real_name(&self, dir: &str, name: &str) -> Option<String> {
        self.list(dir)
            .into_iter()
            .find(|n| n.eq_ignore_ascii_case(name))
    }
}
