//! The facade over the NTFS engine.

use super::{CheckResult, Entry, FsError, FsKind, Ops, Result};
use vdisk::{Disk, DiskWrite};

pub(crate) struct NtfsRo<D>(pub ntfs::Volume<D>);
pub(crate) struct NtfsRw<D>(pub ntfs::Volume<D>);

fn list<D: Disk>(v: &ntfs::Volume<D>, path: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in v.list(path)? {
        // sizes in index entries may lag: report the file's own
        let size = if e.is_dir {
            0
        } else {
            v.stat_record(e.record).map(|s| s.size).unwrap_or(e.size)
        };
        out.push(Entry {
            name: e.name,
            is_dir: e.is_dir,
            size,
            mtime: Some(ntfs::filetime_to_unix(e.mtime)),
            inode: Some(e.record),
        });
    }
    Ok(out)
}

fn stat<D: Disk>(v: &ntfs::Volume<D>, path: &str) -> Result<Entry> {
    let s = v.stat(path)?;
    let name = path
        .rsplit(['/', '\\'])
        .find(|x| !x.is_empty())
        .unwrap_or("/")
        .to_string();
    Ok(Entry {
        name,
        is_dir: s.is_dir,
        size: s.size,
        mtime: Some(ntfs::filetime_to_unix(s.mtime)),
        inode: Some(s.record),
    })
}

fn check<D: Disk>(v: &ntfs::Volume<D>) -> Result<CheckResult> {
    let r = v.check()?;
    let s = v.safety()?;
    let mut warnings = r.warnings;
    warnings.extend(s.problems.iter().map(|p| format!("write safety: {p}")));
    Ok(CheckResult {
        summary: format!(
            "NTFS {}.{}: {} records, {} directories checked, {} errors",
            v.info().major,
            v.info().minor,
            r.records,
            r.directories,
            r.errors.len()
        ),
        errors: r.errors,
        warnings,
    })
}

fn ro() -> FsError {
    FsError::Unsupported("filesystem opened read-only".into())
}

impl<D: Disk> Ops for NtfsRo<D> {
    fn kind(&self) -> FsKind {
        FsKind::Ntfs
    }
    fn list(&self, path: &str) -> Result<Vec<Entry>> {
        list(&self.0, path)
    }
    fn stat(&self, path: &str) -> Result<Entry> {
        stat(&self.0, path)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self.0.read(path)?)
    }
    fn write(&mut self, _: &str, _: &[u8]) -> Result<()> {
        Err(ro())
    }
    fn mkdir(&mut self, _: &str) -> Result<()> {
        Err(ro())
    }
    fn remove(&mut self, _: &str) -> Result<()> {
        Err(ro())
    }
    fn rename(&mut self, _: &str, _: &str) -> Result<()> {
        Err(ro())
    }
    fn check(&self) -> Result<CheckResult> {
        check(&self.0)
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<D: DiskWrite> Ops for NtfsRw<D> {
    fn kind(&self) -> FsKind {
        FsKind::Ntfs
    }
    fn list(&self, path: &str) -> Result<Vec<Entry>> {
        list(&self.0, path)
    }
    fn stat(&self, path: &str) -> Result<Entry> {
        stat(&self.0, path)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self.0.read(path)?)
    }
    fn write(&mut self, path: &str, data: &[u8]) -> Result<()> {
        Ok(self.0.write_file(path, data)?)
    }
    fn mkdir(&mut self, path: &str) -> Result<()> {
        self.0.mkdir(path)?;
        Ok(())
    }
    fn remove(&mut self, path: &str) -> Result<()> {
        Ok(self.0.remove(path)?)
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        Ok(self.0.rename(from, to)?)
    }
    fn check(&self) -> Result<CheckResult> {
        check(&self.0)
    }
    fn flush(&mut self) -> Result<()> {
        Ok(self.0.flush()?)
    }
    fn read_to(&self, path: &str, w: &mut dyn std::io::Write) -> Result<u64> {
        Ok(self.0.copy_to(path, "", w)?)
    }
    fn write_from(&mut self, path: &str, len: u64, r: &mut dyn std::io::Read) -> Result<()> {
        // Create/truncate, size, then fill in 1 MiB pieces. The engine
        // builds the whole new value in memory when a resident (empty)
        // stream grows, so grow it to 1 MiB first (non-resident from
        // then on) and only then to its full length.
        self.0.write_file(path, &[])?;
        if len > 1 << 20 {
            self.0.set_len(path, 1 << 20)?;
        }
        self.0.set_len(path, len)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        while off < len {
            let n = ((len - off) as usize).min(buf.len());
            r.read_exact(&mut buf[..n]).map_err(|e| {
                FsError::Unsupported(format!(
                    "{path}: the source ended or failed at byte {off} of {len}: {e}"
                ))
            })?;
            self.0.write_at(path, off, &buf[..n])?;
            off += n as u64;
        }
        Ok(())
    }
}
