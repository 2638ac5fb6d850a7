//! FAT12/16/32 through the `fatfs` crate over a [`vdisk::window::Cursor`],
//! and creation of 1.44 MB driver floppies.

use super::{CheckResult, Entry, FsError, FsKind, Ops, Result};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use vdisk::window::Cursor;
use vdisk::{Disk, DiskWrite};

/// Size of a 1.44 MB floppy image.
pub const FLOPPY_144_SIZE: u64 = 1_474_560;

fn fe(e: io::Error) -> FsError {
    FsError::Fat(e.to_string())
}

/// `Read + Seek` over a read-only disk; writes fail.
pub(crate) struct RoIo<D: Disk>(Cursor<D>);
impl<D: Disk> Read for RoIo<D> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.0.read(b)
    }
}
impl<D: Disk> Seek for RoIo<D> {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        self.0.seek(p)
    }
}
impl<D: Disk> Write for RoIo<D> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "filesystem opened read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `Read + Write + Seek` over a writable disk.
pub(crate) struct RwIo<D: DiskWrite>(Cursor<D>);
impl<D: DiskWrite> Read for RwIo<D> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.0.read(b)
    }
}
impl<D: DiskWrite> Seek for RwIo<D> {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        self.0.seek(p)
    }
}
impl<D: DiskWrite> Write for RwIo<D> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A disk shared between fatfs and the post-unmount repair.
#[derive(Debug)]
pub(crate) struct Shared<D>(std::sync::Arc<D>);
impl<D: Disk> Disk for Shared<D> {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> vdisk::Result<()> {
        self.0.read_at(buf, off)
    }
    fn layer(&self) -> vdisk::LayerInfo {
        self.0.layer()
    }
}
impl<D: DiskWrite> DiskWrite for Shared<D> {
    fn write_at(&self, buf: &[u8], off: u64) -> vdisk::Result<()> {
        self.0.write_at(buf, off)
    }
    fn flush(&self) -> vdisk::Result<()> {
        self.0.flush()
    }
}

pub(crate) struct FatFs<T: fatfs::ReadWriteSeek> {
    fs: Option<fatfs::FileSystem<T>>,
    writable: bool,
    repair: Option<Box<dyn DiskWrite>>,
    /// The disk after [`Ops::flush`] unmounted the filesystem, so
    /// [`Ops::check`] can still read it.
    unmounted: Option<Box<dyn DiskWrite>>,
}

impl<D: Disk + 'static> FatFs<RoIo<D>> {
    pub fn open_ro(disk: D) -> Result<Box<dyn Ops>> {
        let fs =
            fatfs::FileSystem::new(RoIo(Cursor::new(disk)), fatfs::FsOptions::new()).map_err(fe)?;
        Ok(Box::new(FatFs {
            fs: Some(fs),
            writable: false,
            repair: None,
            unmounted: None,
        }))
    }
}

impl<D: DiskWrite + 'static> FatFs<RwIo<Shared<D>>> {
    pub fn open_rw(disk: D) -> Result<Box<dyn Ops>> {
        let a = std::sync::Arc::new(disk);
        let io = RwIo(Cursor::new(Shared(a.clone())));
        let fs = fatfs::FileSystem::new(io, fatfs::FsOptions::new()).map_err(fe)?;
        Ok(Box::new(FatFs {
            fs: Some(fs),
            writable: true,
            repair: Some(Box::new(Shared(a))),
            unmounted: None,
        }))
    }
}

fn rel(p: &str) -> String {
    p.split(['/', '\\'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn entry<T: fatfs::ReadWriteSeek>(e: &fatfs::DirEntry<T>) -> Entry {
    let m = e.modified();
    let (d, t) = (m.date, m.time);
    let days = days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day));
    let secs = days * 86400 + i64::from(t.hour) * 3600 + i64::from(t.min) * 60 + i64::from(t.sec);
    Entry {
        name: e.file_name(),
        is_dir: e.is_dir(),
        size: if e.is_dir() { 0 } else { e.len() },
        mtime: Some(secs),
        inode: None,
    }
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

impl<T: fatfs::ReadWriteSeek> FatFs<T> {
    fn fs(&self) -> &fatfs::FileSystem<T> {
        self.fs.as_ref().expect("mounted")
    }
    fn need_rw(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(FsError::Unsupported("filesystem opened read-only".into()))
        }
    }
}

impl<T: fatfs::ReadWriteSeek> Ops for FatFs<T> {
    fn kind(&self) -> FsKind {
        FsKind::Fat
    }
    fn list(&self, path: &str) -> Result<Vec<Entry>> {
        let root = self.fs().root_dir();
        let d = if rel(path).is_empty() {
            root
        } else {
            root.open_dir(&rel(path)).map_err(fe)?
        };
        let mut out = Vec::new();
        for e in d.iter() {
            let e = e.map_err(fe)?;
            let n = e.file_name();
            if n == "." || n == ".." {
                continue;
            }
            out.push(entry(&e));
        }
        Ok(out)
    }
    fn stat(&self, path: &str) -> Result<Entry> {
        let r = rel(path);
        if r.is_empty() {
            return Ok(Entry {
                name: "/".into(),
                is_dir: true,
                size: 0,
                mtime: None,
                inode: None,
            });
        }
        let (dir, name) = match r.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (String::new(), r.clone()),
        };
        let root = self.fs().root_dir();
        let d = if dir.is_empty() {
            root
        } else {
            root.open_dir(&dir).map_err(fe)?
        };
        for e in d.iter() {
            let e = e.map_err(fe)?;
            if e.file_name().eq_ignore_ascii_case(&name)
                || e.short_file_name().eq_ignore_ascii_case(&name)
            {
                return Ok(entry(&e));
            }
        }
        Err(FsError::Fat(format!("{path}: not found")))
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let mut f = self.fs().root_dir().open_file(&rel(path)).map_err(fe)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(fe)?;
        Ok(v)
    }
    fn write(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.need_rw()?;
        let mut f = self.fs().root_dir().create_file(&rel(path)).map_err(fe)?;
        f.truncate().map_err(fe)?;
        f.write_all(data).map_err(fe)?;
        f.flush().map_err(fe)?;
        Ok(())
    }
    fn read_to(&self, path: &str, w: &mut dyn std::io::Write) -> Result<u64> {
        let mut f = self.fs().root_dir().open_file(&rel(path)).map_err(fe)?;
        std::io::copy(&mut f, w).map_err(fe)
    }
    fn write_from(&mut self, path: &str, len: u64, r: &mut dyn std::io::Read) -> Result<()> {
        self.need_rw()?;
        let mut f = self.fs().root_dir().create_file(&rel(path)).map_err(fe)?;
        f.truncate().map_err(fe)?;
        let n = std::io::copy(&mut r.take(len), &mut f).map_err(fe)?;
        if n != len {
            return Err(FsError::Fat(format!(
                "{path}: the source ended at byte {n} of {len}"
            )));
        }
        f.flush().map_err(fe)?;
        Ok(())
    }
    fn mkdir(&mut self, path: &str) -> Result<()> {
        self.need_rw()?;
        self.fs().root_dir().create_dir(&rel(path)).map_err(fe)?;
        Ok(())
    }
    fn remove(&mut self, path: &str) -> Result<()> {
        self.need_rw()?;
        self.fs().root_dir().remove(&rel(path)).map_err(fe)
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.need_rw()?;
        let root = self.fs().root_dir();
        root.rename(&rel(from), &root, &rel(to)).map_err(fe)
    }
    fn check(&self) -> Result<CheckResult> {
        match (&self.fs, &self.unmounted) {
            (Some(fs), _) => check_fs(fs),
            // Flushed (unmounted): check what is on the disk now.
            (None, Some(d)) => check_fs(
                &fatfs::FileSystem::new(RoIo(Cursor::new(&**d)), fatfs::FsOptions::new())
                    .map_err(fe)?,
            ),
            (None, None) => Err(FsError::Unsupported(
                "the FAT filesystem is no longer mounted".into(),
            )),
        }
    }
    fn flush(&mut self) -> Result<()> {
        if self.writable {
            if let Some(fs) = self.fs.take() {
                fs.unmount().map_err(fe)?;
            }
            if let Some(d) = self.repair.take() {
                super::fatfix::fix_dot_entries(&*d)?;
                d.flush()?;
                self.unmounted = Some(d);
            }
        }
        Ok(())
    }
}

/// The status flags and free space of a mounted FAT filesystem.
fn check_fs<T: fatfs::ReadWriteSeek>(fs: &fatfs::FileSystem<T>) -> Result<CheckResult> {
    let flags = fs.read_status_flags().map_err(fe)?;
    let st = fs.stats().map_err(fe)?;
    let mut errors = Vec::new();
    if flags.dirty() {
        errors.push("volume dirty flag set".into());
    }
    if flags.io_error() {
        errors.push("volume I/O error flag set".into());
    }
    Ok(CheckResult {
        summary: format!(
            "{:?}: {} of {} clusters free",
            fs.fat_type(),
            st.free_clusters(),
            st.total_clusters()
        ),
        errors,
        warnings: vec![],
    })
}

impl<T: fatfs::ReadWriteSeek> Drop for FatFs<T> {
    fn drop(&mut self) {
        if let Some(fs) = self.fs.take() {
            let _ = fs.unmount();
        }
        if let Some(d) = self.repair.take() {
            let _ = super::fatfix::fix_dot_entries(&*d);
        }
    }
}

/// Create a FAT12 1.44 MB floppy image at `path` holding `files`
/// (`(path inside the floppy, contents)`; parent directories are made).
pub fn make_floppy(path: &Path, label: &str, files: &[(&str, &[u8])]) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(fe)?;
    f.set_len(FLOPPY_144_SIZE).map_err(fe)?;
    let mut lab = [b' '; 11];
    for (i, c) in label.bytes().take(11).enumerate() {
        lab[i] = c.to_ascii_uppercase();
    }
    let opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat12)
        .bytes_per_sector(512)
        .total_sectors(2880)
        .bytes_per_cluster(512)
        .max_root_dir_entries(224)
        .media(0xf0)
        .sectors_per_track(18)
        .heads(2)
        .fats(2)
        .drive_num(0)
        .volume_label(lab);
    fatfs::format_volume(&f, opts).map_err(fe)?;
    let fs = fatfs::FileSystem::new(&f, fatfs::FsOptions::new()).map_err(fe)?;
    {
        let root = fs.root_dir();
        for (p, data) in files {
            let r = rel(p);
            let mut cur = String::new();
            let parts: Vec<&str> = r.split('/').collect();
            for d in &parts[..parts.len().saturating_sub(1)] {
                if !cur.is_empty() {
                    cur.push('/');
                }
                cur.push_str(d);
                if root.open_dir(&cur).is_err() {
                    root.create_dir(&cur).map_err(fe)?;
                }
            }
            let mut file = root.create_file(&r).map_err(fe)?;
            file.truncate().map_err(fe)?;
            file.write_all(data).map_err(fe)?;
        }
    }
    fs.unmount().map_err(fe)?;
    drop(f);
    let d = vdisk::raw::RawDiskMut::open(path)?;
    super::fatfix::fix_dot_entries(&d)?;
    d.flush()?;
    Ok(())
}
