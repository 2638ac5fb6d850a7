//! Read-only readers for the filesystems a Linux guest keeps `/boot` on,
//! in pure Rust over the block layer ([`vdisk::Disk`], positional reads):
//!
//! * **ext2/3/4** ([`ext4`]): group descriptors (32/64-bit, `meta_bg`),
//!   extent trees of any depth, legacy block maps, inline data, htree
//!   directories (read linearly), fast symlinks, in-memory replay of a
//!   journal that needs recovery; checksums are not verified.
//! * **XFS v5 and v4** ([`xfs`]): inodes located by number arithmetic, local /
//!   extent / B+tree forks, shortform, block, leaf and node directories,
//!   local and remote symlinks.
//! * **btrfs** ([`btrfs`]): one device, SINGLE/DUP chunks, the default
//!   subvolume's tree, inline/regular/preallocated uncompressed extents.
//!
//! * **LVM2** ([`lvm`]): PV labels, VG metadata, linear logical volumes as
//!   [`vdisk::Disk`]s.
//!
//! [`open`] detects the filesystem by its superblock. Paths are absolute;
//! symbolic links are followed inside the filesystem for at most
//! [`MAX_SYMLINK_HOPS`] hops. Every size that drives an allocation is
//! bounded (the caller's `max_len`, [`MAX_DIR_BYTES`], [`MAX_LINK_BYTES`]),
//! so hostile images give errors, never panics or unbounded memory.
//! Features we do not read give [`Error::Unsupported`] naming the feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod btrfs;
mod dev;
mod error;
pub mod ext4;
mod jbd2;
pub mod lvm;
pub mod xfs;

pub use error::{Error, Result};

use std::collections::VecDeque;
use std::sync::Mutex;
use vdisk::Disk;

/// Symbolic links followed while resolving one path (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Largest directory (bytes of directory data) we read.
pub const MAX_DIR_BYTES: u64 = 64 << 20;
/// Largest number of entries one directory listing may return.
pub const MAX_DIR_ENTRIES: usize = 1 << 20;
/// Longest symbolic link target (Linux's `PATH_MAX`).
pub const MAX_LINK_BYTES: u64 = 4096;

/// What kind of file an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// The mode says none of the above.
    Unknown,
}

impl FileType {
    /// From the `S_IFMT` bits of a mode.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::Regular,
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Unknown,
        }
    }
    /// A short name ("file", "directory", ...).
    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::CharDevice => "character device",
            FileType::BlockDevice => "block device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::Unknown => "file of unknown type",
        }
    }
}

/// One entry of a directory (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (bytes that are not UTF-8 are replaced by U+FFFD).
    pub name: String,
    /// Inode number.
    pub ino: u64,
    /// Type recorded in the directory entry, else read from the inode.
    pub file_type: FileType,
}

/// What `stat` says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Inode number.
    pub ino: u64,
    /// Kind of file.
    pub file_type: FileType,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Hard link count.
    pub nlink: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

/// A read-only Linux filesystem.
pub trait LinuxFs: Send + Sync + std::fmt::Debug {
    /// "ext2", "ext3", "ext4", "xfs" or "btrfs".
    fn fs_type(&self) -> &'static str;
    /// The entries of the directory at `path` (symlinks followed), without
    /// `.` and `..`, in on-disk order.
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>>;
    /// Metadata of `path`; a final symlink is not followed (like `lstat`).
    fn stat(&self, path: &str) -> Result<Metadata>;
    /// The contents of the regular file at `path` (symlinks followed);
    /// [`Error::TooLarge`] when it holds more than `max_len` bytes.
    fn read_file(&self, path: &str, max_len: u64) -> Result<Vec<u8>>;
    /// The target of the symbolic link at `path` (not followed).
    fn read_link(&self, path: &str) -> Result<String>;
}

/// Detect ext2/3/4, XFS or btrfs by superblock on `disk` (a partition or a whole
/// unpartitioned disk) and open it.
pub fn open<'a>(disk: Box<dyn Disk + 'a>) -> Result<Box<dyn LinuxFs + 'a>> {
    let mut head = [0u8; 2048];
    let n = disk.size().min(head.len() as u64) as usize;
    disk.read_at(&mut head[..n], 0)
        .map_err(|source| Error::Io {
            fs: "probe",
            offset: 0,
            len: n as u64,
            source,
        })?;
    if &head[0..4] == b"XFSB" {
        return Ok(Box::new(Fs::new(xfs::Xfs::open(disk)?)));
    }
    if dev::le16(&head, 1024 + 0x38) == 0xEF53 {
        return Ok(Box::new(Fs::new(ext4::Ext4::open(disk)?)));
    }
    let mut btrfs = [0u8; 8];
    if disk.size() >= 0x10000 + 0x48
        && disk.read_at(&mut btrfs, 0x10040).is_ok()
        && &btrfs == b"_BHRfS_M"
    {
        return Ok(Box::new(Fs::new(btrfs::Btrfs::open(disk)?)));
    }
    Err(Error::UnknownFilesystem {
        detail: format!(
            "no XFSB magic at byte 0, no 0xEF53 at byte 0x438, no _BHRfS_M at byte 0x10040 of a {}-byte device",
            disk.size()
        ),
    })
}

/// Open the btrfs filesystem on `disk` with its subvolume `id` as the
/// root (see [`btrfs::Btrfs::open_subvolume`]).
pub fn open_btrfs_subvolume<'a>(
    disk: Box<dyn Disk + 'a>,
    id: u64,
) -> Result<Box<dyn LinuxFs + 'a>> {
    Ok(Box::new(Fs::new(btrfs::Btrfs::open_subvolume(disk, id)?)))
}

/// The file type recorded in an ext4 or XFS directory entry.
pub(crate) fn dirent_type(t: u8) -> FileType {
    match t {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => FileType::Unknown,
    }
}

/// What a filesystem implementation provides: inode-level operations.
/// [`Fs`] turns it into a path-level [`LinuxFs`].
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    fn fs_type(&self) -> &'static str;
    fn root(&self) -> u64;
    fn meta(&self, ino: u64) -> Result<Metadata>;
    /// Entries of directory `ino` without `.` and `..`.
    fn list(&self, ino: u64) -> Result<Vec<DirEntry>>;
    /// The first `len` bytes of regular file `ino` (`len` <= its size).
    fn read(&self, ino: u64, len: u64) -> Result<Vec<u8>>;
    /// The raw target of symlink `ino`.
    fn link(&self, ino: u64) -> Result<Vec<u8>>;
}

/// How many directory listings [`Fs`] keeps.
const DIR_CACHE: usize = 8;

/// Path resolution over a [`Backend`], with the last directories listed
/// kept so that looking up every name of a big directory is linear.
#[derive(Debug)]
pub(crate) struct Fs<B> {
    b: B,
    last_dir: Mutex<Vec<(u64, Vec<DirEntry>)>>,
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

impl<B: Backend> Fs<B> {
    pub(crate) fn new(b: B) -> Self {
        Fs {
            b,
            last_dir: Mutex::new(Vec::new()),
        }
    }

    /// The entries of directory `ino`, from the cache when it is one of
    /// the last [`DIR_CACHE`] listed.
    fn list(&self, ino: u64) -> Result<Vec<DirEntry>> {
        if let Some(v) = self.cached(ino, |v| v.to_vec()) {
            return Ok(v);
        }
        let v = self.b.list(ino)?;
        if let Ok(mut g) = self.last_dir.lock() {
            if g.len() >= DIR_CACHE {
                g.remove(0);
            }
            g.push((ino, v.clone()));
        }
        Ok(v)
    }

    fn cached<T>(&self, ino: u64, f: impl FnOnce(&[DirEntry]) -> T) -> Option<T> {
        let g = self.last_dir.lock().ok()?;
        g.iter().find(|(i, _)| *i == ino).map(|(_, v)| f(v))
    }

    fn lookup(&self, ino: u64, name: &str) -> Result<Option<DirEntry>> {
        if let Some(e) = self.cached(ino, |v| v.iter().find(|e| e.name == name).cloned()) {
            return Ok(e);
        }
        Ok(self.list(ino)?.into_iter().find(|e| e.name == name))
    }

    /// Resolve `path` to an inode; a final symlink is followed when
    /// `follow_last`.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<Metadata> {
        if !path.starts_with('/') || path.len() > MAX_LINK_BYTES as usize {
            return Err(Error::InvalidPath { path: path.into() });
        }
        let b = &self.b;
        let mut rest: VecDeque<String> = components(path).map(String::from).collect();
        let mut stack = vec![b.root()];
        let mut hops = 0;
        while let Some(c) = rest.pop_front() {
            if c == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let dir = *stack.last().unwrap_or(&b.root());
            if b.meta(dir)?.file_type != FileType::Directory {
                return Err(Error::NotADirectory { path: path.into() });
            }
            let e = self
                .lookup(dir, &c)?
                .ok_or_else(|| Error::NotFound { path: path.into() })?;
            let m = b.meta(e.ino)?;
            if m.file_type == FileType::Symlink && (follow_last || !rest.is_empty()) {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(Error::TooManyLinks {
                        path: path.into(),
                        hops: MAX_SYMLINK_HOPS,
                    });
                }
                let target = String::from_utf8_lossy(&b.link(e.ino)?).into_owned();
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                for t in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    rest.push_front(t.to_string());
                }
                continue;
            }
            stack.push(e.ino);
        }
        b.meta(*stack.last().unwrap_or(&b.root()))
    }
}

impl<B: Backend> LinuxFs for Fs<B> {
    fn fs_type(&self) -> &'static str {
        self.b.fs_type()
    }
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let m = self.resolve(path, true)?;
        if m.file_type != FileType::Directory {
            return Err(Error::NotADirectory { path: path.into() });
        }
        self.list(m.ino)
    }
    fn stat(&self, path: &str) -> Result<Metadata> {
        self.resolve(path, false)
    }
    fn read_file(&self, path: &str, max_len: u64) -> Result<Vec<u8>> {
        let m = self.resolve(path, true)?;
        if m.file_type != FileType::Regular {
            return Err(Error::NotAFile {
                path: path.into(),
                kind: m.file_type.name(),
            });
        }
        if m.size > max_len {
            return Err(Error::TooLarge {
                what: path.into(),
                size: m.size,
                max: max_len,
            });
        }
        self.b.read(m.ino, m.size)
    }
    fn read_link(&self, path: &str) -> Result<String> {
        let m = self.resolve(path, false)?;
        if m.file_type != FileType::Symlink {
            return Err(Error::NotASymlink { path: path.into() });
        }
        Ok(String::from_utf8_lossy(&self.b.link(m.ino)?).into_owned())
    }
}

/// What `blkid` reports about a filesystem: its UUID and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsId {
    /// `ext`, `xfs` or `btrfs`.
    pub fs: &'static str,
    /// Filesystem UUID, lowercase with dashes (`blkid -s UUID`); `None`
    /// when all zero.
    pub uuid: Option<String>,
    /// Label (`blkid -s LABEL`), when set.
    pub label: Option<String>,
}

/// Format 16 bytes as a UUID the way blkid prints it.
pub fn format_uuid(b: &[u8]) -> Option<String> {
    if b.len() != 16 || b.iter().all(|&x| x == 0) {
        return None;
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The UUID and label of the ext2/3/4, XFS or btrfs filesystem on `disk`,
/// read from its superblock; `Ok(None)` when none of them is there.
pub fn identify(disk: &dyn Disk) -> Result<Option<FsId>> {
    let read = |off: u64, len: usize| -> Result<Option<Vec<u8>>> {
        if off + len as u64 > disk.size() {
            return Ok(None);
        }
        let mut b = vec![0u8; len];
        disk.read_at(&mut b, off).map_err(|source| Error::Io {
            fs: "probe",
            offset: off,
            len: len as u64,
            source,
        })?;
        Ok(Some(b))
    };
    let label = |b: &[u8]| {
        let s = String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or(&[])).into_owned();
        (!s.is_empty()).then_some(s)
    };
    if let Some(sb) = read(0, 512)?.filter(|sb| &sb[0..4] == b"XFSB") {
        return Ok(Some(FsId {
            fs: "xfs",
            uuid: format_uuid(&sb[32..48]),
            label: label(&sb[108..120]),
        }));
    }
    if let Some(sb) = read(1024, 1024)?.filter(|sb| dev::le16(sb, 0x38) == 0xEF53) {
        return Ok(Some(FsId {
            fs: "ext",
            uuid: format_uuid(&sb[0x68..0x78]),
            label: label(&sb[0x78..0x88]),
        }));
    }
    if let Some(sb) = read(0x10000, 4096)?.filter(|sb| &sb[0x40..0x48] == b"_BHRfS_M") {
        return Ok(Some(FsId {
            fs: "btrfs",
            uuid: format_uuid(&sb[0x20..0x30]),
            label: label(&sb[0x12b..0x22b]),
        }));
    }
    Ok(None)
}
