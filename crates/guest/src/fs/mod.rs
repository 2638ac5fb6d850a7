//! Guest filesystem facade: one API to list, read and write files by path
//! on a partition of a disk (or a whole-volume image), whatever the
//! filesystem: NTFS (our [`ntfs`] engine, read-write), FAT12/16/32 (the
//! `fatfs` crate, read-write). BitLocker volumes are detected and refused.
//!
//! Open an image with [`open_image`] (`IMAGE[:PARTNO]` semantics), or a
//! [`vdisk::Disk`] you already have with [`GuestFs::open`] /
//! [`GuestFs::open_rw`].

mod fat;
mod fatfix;
mod ntfs_fs;

pub use fat::{make_floppy, FLOPPY_144_SIZE};

use serde::Serialize;
use std::path::Path;
use vdisk::{Disk, DiskWrite};

/// Errors of the facade.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The NTFS engine failed or refused.
    #[error(transparent)]
    Ntfs(#[from] ntfs::Error),
    /// The block layer failed.
    #[error(transparent)]
    Disk(#[from] vdisk::Error),
    /// The FAT driver failed.
    #[error("FAT: {0}")]
    Fat(String),
    /// Partition table problem.
    #[error("partition table: {0}")]
    Partition(String),
    /// No filesystem we know.
    #[error("no NTFS or FAT filesystem found {0}")]
    Unknown(String),
    /// Refused (BitLocker, read-only image format...).
    #[error("refused: {0}")]
    Refused(String),
    /// Operation not available on this filesystem or in this mode.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Result alias.
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// Filesystem kinds recognised by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    /// NTFS.
    Ntfs,
    /// FAT12/16/32.
    Fat,
    /// BitLocker-encrypted volume (`-FVE-FS-`).
    BitLocker,
    /// ext2/3/4 (detected only).
    Ext,
    /// Nothing recognised.
    Unknown,
}

/// Recognise the filesystem at the start of `disk`.
pub fn detect(disk: &dyn Disk) -> Result<FsKind> {
    if disk.size() < 512 {
        return Ok(FsKind::Unknown);
    }
    let mut s = vec![0u8; 512];
    disk.read_at(&mut s, 0)?;
    if ntfs::is_bitlocker(&s) {
        return Ok(FsKind::BitLocker);
    }
    if &s[3..11] == b"NTFS    " {
        return Ok(FsKind::Ntfs);
    }
    let fat_sig =
        &s[0x36..0x3b] == b"FAT12" || &s[0x36..0x3b] == b"FAT16" || &s[0x52..0x57] == b"FAT32";
    let bps = u16::from_le_bytes([s[11], s[12]]);
    if s[510] == 0x55
        && s[511] == 0xaa
        && (fat_sig
            || (matches!(bps, 512 | 1024 | 2048 | 4096)
                && s[13] != 0
                && s[16] != 0
                && s[0x15] >= 0xf0))
    {
        return Ok(FsKind::Fat);
    }
    if disk.size() >= 2048 {
        let mut sb = [0u8; 2];
        disk.read_at(&mut sb, 1024 + 0x38)?;
        if sb == [0x53, 0xef] {
            return Ok(FsKind::Ext);
        }
    }
    Ok(FsKind::Unknown)
}

/// A directory entry as the facade reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Name.
    pub name: String,
    /// Directory?
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time (Unix seconds), when known.
    pub mtime: Option<i64>,
    /// NTFS MFT record number (None on FAT).
    pub inode: Option<u64>,
}

/// Result of a consistency check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckResult {
    /// Errors found.
    pub errors: Vec<String>,
    /// Harmless findings.
    pub warnings: Vec<String>,
    /// Short summary.
    pub summary: String,
}

/// Operations every filesystem implements.
pub(crate) trait Ops {
    fn kind(&self) -> FsKind;
    fn list(&self, path: &str) -> Result<Vec<Entry>>;
    fn stat(&self, path: &str) -> Result<Entry>;
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    fn write(&mut self, path: &str, data: &[u8]) -> Result<()>;
    fn mkdir(&mut self, path: &str) -> Result<()>;
    fn remove(&mut self, path: &str) -> Result<()>;
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    fn check(&self) -> Result<CheckResult>;
    fn flush(&mut self) -> Result<()>;
    /// Stream a whole file to `w` (default: through memory).
    fn read_to(&self, path: &str, w: &mut dyn std::io::Write) -> Result<u64> {
        let v = self.read(path)?;
        w.write_all(&v)
            .map_err(|e| FsError::Unsupported(format!("{path}: write to the sink failed: {e}")))?;
        Ok(v.len() as u64)
    }
    /// Create or replace a file with `len` bytes from `r` (default:
    /// through memory).
    fn write_from(&mut self, path: &str, len: u64, r: &mut dyn std::io::Read) -> Result<()> {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(r, len), &mut v)
            .map_err(|e| FsError::Unsupported(format!("{path}: reading the source failed: {e}")))?;
        self.write(path, &v)
    }
}

/// An opened guest filesystem.
pub struct GuestFs {
    ops: Box<dyn Ops>,
}

impl std::fmt::Debug for GuestFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuestFs({:?})", self.ops.kind())
    }
}

impl GuestFs {
    /// Open the filesystem filling `disk`, read-only.
    pub fn open<D: Disk + 'static>(disk: D) -> Result<Self> {
        let ops: Box<dyn Ops> = match detect(&disk)? {
            FsKind::Ntfs => Box::new(ntfs_fs::NtfsRo(ntfs::Volume::open(disk)?)),
            FsKind::Fat => fat::FatFs::open_ro(disk)?,
            k => return Err(refuse_kind(k)),
        };
        Ok(GuestFs { ops })
    }

    /// Open the filesystem filling `disk` for writing. NTFS safety checks
    /// (dirty, unclean journal, hibernation) refuse the first write unless
    /// `force`.
    pub fn open_rw<D: DiskWrite + 'static>(disk: D, force: bool) -> Result<Self> {
        let ops: Box<dyn Ops> = match detect(&disk)? {
            FsKind::Ntfs => Box::new(ntfs_fs::NtfsRw(ntfs::Volume::open_rw(
                disk,
                ntfs::WriteOptions { force },
            )?)),
            FsKind::Fat => fat::FatFs::open_rw(disk)?,
            k => return Err(refuse_kind(k)),
        };
        Ok(GuestFs { ops })
    }

    /// The filesystem kind.
    pub fn kind(&self) -> FsKind {
        self.ops.kind()
    }
    /// List a directory.
    pub fn list(&self, path: &str) -> Result<Vec<Entry>> {
        self.ops.list(path)
    }
    /// Stat a path.
    pub fn stat(&self, path: &str) -> Result<Entry> {
        self.ops.stat(path)
    }
    /// Read a whole file.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.ops.read(path)
    }
    /// Create or replace a file.
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.ops.write(path, data)
    }
    /// Create a directory.
    pub fn mkdir(&mut self, path: &str) -> Result<()> {
        self.ops.mkdir(path)
    }
    /// Stream a whole file to `w` in bounded pieces; returns its length.
    pub fn read_to(&self, path: &str, w: &mut dyn std::io::Write) -> Result<u64> {
        self.ops.read_to(path, w)
    }
    /// Create or replace `path` with exactly `len` bytes read from `r`, in
    /// bounded pieces (memory does not grow with the file size). Fails
    /// when `r` ends early.
    pub fn write_from(&mut self, path: &str, len: u64, r: &mut dyn std::io::Read) -> Result<()> {
        self.ops.write_from(path, len, r)
    }
    /// Create a directory and its missing parents.
    pub fn mkdir_p(&mut self, path: &str) -> Result<()> {
        let mut cur = String::new();
        for part in path.split(['/', '\\']).filter(|s| !s.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            match self.ops.stat(&cur) {
                Ok(e) if e.is_dir => continue,
                Ok(_) => {
                    return Err(FsError::Unsupported(format!(
                        "{cur} exists and is not a directory"
                    )))
                }
                Err(_) => self.ops.mkdir(&cur)?,
            }
        }
        Ok(())
    }
    /// Remove a file or an empty directory.
    pub fn remove(&mut self, path: &str) -> Result<()> {
        self.ops.remove(path)
    }
    /// Rename or move.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.ops.rename(from, to)
    }
    /// Consistency check (never writes).
    pub fn check(&self) -> Result<CheckResult> {
        self.ops.check()
    }
    /// Flush everything to the disk.
    pub fn flush(&mut self) -> Result<()> {
        self.ops.flush()
    }
}

fn refuse_kind(k: FsKind) -> FsError {
    match k {
        FsKind::BitLocker => FsError::Refused(
            "the volume is encrypted with BitLocker (-FVE-FS-): decrypt it in Windows (manage-bde -off C:) before migrating".into(),
        ),
        FsKind::Ext => FsError::Unsupported("ext2/3/4 volumes are not handled by this facade".into()),
        _ => FsError::Unknown("at the start of this volume".into()),
    }
}

/// Split `IMAGE[:PARTNO]`: a trailing `:N` is a partition number unless the
/// whole string names an existing file.
pub fn parse_target(s: &str) -> (std::path::PathBuf, Option<u32>) {
    if !Path::new(s).exists() {
        if let Some((img, n)) = s.rsplit_once(':') {
            if let Ok(n) = n.parse::<u32>() {
                return (img.into(), Some(n));
            }
        }
    }
    (s.into(), None)
}

/// Byte range of partition `part` of `disk` (None = the whole disk, which
/// must then hold a filesystem, not a partition table).
pub fn volume_range(disk: &dyn Disk, part: Option<u32>) -> Result<(u64, u64)> {
    let Some(n) = part else {
        return Ok((0, disk.size()));
    };
    let t = crate::partition::read_table(disk).map_err(|e| FsError::Partition(e.to_string()))?;
    let p = t.get(n).ok_or_else(|| {
        let have: Vec<String> = t.data_partitions().map(|p| p.index.to_string()).collect();
        FsError::Partition(format!(
            "no partition {n} (partitions: {})",
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        ))
    })?;
    if p.is_container() {
        return Err(FsError::Partition(format!(
            "partition {n} is an extended container, not a filesystem"
        )));
    }
    if p.beyond_end {
        return Err(FsError::Partition(format!(
            "partition {n} extends beyond the end of the disk"
        )));
    }
    Ok((p.start, p.len))
}

fn whole_disk_hint(disk: &dyn Disk) -> Result<()> {
    if detect(disk)? == FsKind::Unknown {
        if let Ok(t) = crate::partition::read_table(disk) {
            let parts: Vec<String> = t
                .data_partitions()
                .map(|p| format!("{}:{}", p.index, p.type_name()))
                .collect();
            if !parts.is_empty() {
                return Err(FsError::Unknown(format!(
                    "at the start of the disk: it has a partition table; name a partition as IMAGE:N ({})",
                    parts.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Open `IMAGE` (any format vdisk reads) or one of its partitions,
/// read-only.
pub fn open_image(path: &Path, part: Option<u32>) -> Result<GuestFs> {
    let disk = vdisk::probe::open(path)?;
    if part.is_none() {
        whole_disk_hint(&*disk)?;
    }
    let (start, len) = volume_range(&*disk, part)?;
    GuestFs::open(vdisk::window::Window::new(disk, start, len)?)
}

/// Open `IMAGE` or one of its partitions for in-place writes. Only raw and
/// qcow2 images can be written; other formats are refused.
pub fn open_image_rw(path: &Path, part: Option<u32>, force: bool) -> Result<GuestFs> {
    let f = vdisk::file::ImageFile::open(path)?;
    let fmt = vdisk::probe::detect(&f)?;
    drop(f);
    let disk: Box<dyn DiskWrite> = match fmt {
        vdisk::Format::Raw => Box::new(vdisk::raw::RawDiskMut::open(path)?),
        vdisk::Format::Qcow2 => Box::new(vdisk::qcow2::open_rw(path)?),
        other => {
            return Err(FsError::Refused(format!(
                "{}: writing into {other:?} images is not supported; convert to raw or qcow2 first",
                path.display()
            )))
        }
    };
    if part.is_none() {
        whole_disk_hint(&*disk)?;
    }
    let (start, len) = volume_range(&*disk, part)?;
    GuestFs::open_rw(vdisk::window::Window::new(disk, start, len)?, force)
}
