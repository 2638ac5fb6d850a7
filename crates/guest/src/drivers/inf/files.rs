//! File lists of an INF: CopyFiles sections, `[SourceDisksNames]`,
//! `[SourceDisksFiles]` (plain and architecture-decorated) and
//! `[DestinationDirs]`.

use super::{parse_number, Inf, InfError};
use crate::drivers::Arch;
use serde::Serialize;

/// A `CopyFiles` reference: a section, or a single file (`@name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CopyFilesRef {
    /// A file-list section name.
    Section(String),
    /// A single file named directly.
    File(String),
}

/// An entry of a file-list section: `dest[,source[,unused[,flags]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyFileEntry {
    /// Destination file name.
    pub dest: String,
    /// Source file name (the destination name when not given).
    pub source: String,
    /// Copy flags (0 when empty).
    pub flags: u32,
    /// Line number.
    pub line: usize,
}

/// A `[SourceDisksNames]` entry: `id = description[,tag[,unused[,path]]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceDisk {
    /// Disk id.
    pub id: String,
    /// Description.
    pub description: String,
    /// Path on the disk relative to the INF (`\` converted to `/`).
    pub path: String,
}

/// A `[SourceDisksFiles]` entry: `name = diskid[,subdir[,size]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceFile {
    /// File name.
    pub name: String,
    /// Disk id.
    pub disk: String,
    /// Subdirectory (`/`-separated, may be empty).
    pub subdir: String,
    /// Section it came from (decorated or not).
    pub section: String,
    /// Line number.
    pub line: usize,
}

/// A `[DestinationDirs]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationDir {
    /// File-list section name, or `DefaultDestDir`.
    pub section: String,
    /// Directory id (12 = `%SystemRoot%\System32\drivers`).
    pub dirid: Option<u32>,
    /// Subdirectory.
    pub subdir: String,
}

impl Inf {
    /// The entries of file-list section `name` (error when missing).
    pub fn copy_files(&self, name: &str) -> Result<Vec<CopyFileEntry>, InfError> {
        let sec = self
            .section(name)
            .ok_or_else(|| self.error(None, format!("CopyFiles section [{name}] is missing")))?;
        let mut out = Vec::new();
        for l in &sec.lines {
            // `dest = ...` is not a valid file-list line but tolerate it.
            let dest = match &l.key {
                Some(k) => k.clone(),
                None => l.value(0).to_string(),
            };
            if dest.is_empty() {
                continue;
            }
            let off = usize::from(l.key.is_some());
            let source = l
                .values
                .get(1 - off)
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| dest.clone());
            let fl = l.values.get(3 - off).map(String::as_str).unwrap_or("");
            let flags = if fl.trim().is_empty() {
                0
            } else {
                parse_number(fl).ok_or_else(|| {
                    self.error(Some(l.line), format!("copy flags '{fl}' is not a number"))
                })?
            };
            out.push(CopyFileEntry {
                dest,
                source,
                flags,
                line: l.line,
            });
        }
        Ok(out)
    }

    /// `[SourceDisksNames.<arch>]` entries, then undecorated ones for ids
    /// not already given.
    pub fn source_disks_names(&self, arch: Arch) -> Vec<SourceDisk> {
        let mut out: Vec<SourceDisk> = Vec::new();
        for name in [
            format!("SourceDisksNames.{}", arch.inf_name()),
            "SourceDisksNames".into(),
        ] {
            let Some(sec) = self.section(&name) else {
                continue;
            };
            for l in &sec.lines {
                let id = l.key.clone().unwrap_or_default();
                if id.is_empty() || out.iter().any(|d| d.id.eq_ignore_ascii_case(&id)) {
                    continue;
                }
                out.push(SourceDisk {
                    id,
                    description: l.value(0).to_string(),
                    path: l.value(3).replace('\\', "/").trim_matches('/').to_string(),
                });
            }
        }
        out
    }

    /// `[SourceDisksFiles.<arch>]` entries, then undecorated ones for files
    /// not already given.
    pub fn source_disks_files(&self, arch: Arch) -> Vec<SourceFile> {
        let mut out: Vec<SourceFile> = Vec::new();
        for name in [
            format!("SourceDisksFiles.{}", arch.inf_name()),
            "SourceDisksFiles".into(),
        ] {
            let Some(sec) = self.section(&name) else {
                continue;
            };
            for l in &sec.lines {
                let (fname, off) = match &l.key {
                    Some(k) => (k.clone(), 0),
                    None => (l.value(0).to_string(), 1),
                };
                if fname.is_empty() || out.iter().any(|f| f.name.eq_ignore_ascii_case(&fname)) {
                    continue;
                }
                out.push(SourceFile {
                    name: fname,
                    disk: l.value(off).to_string(),
                    subdir: l
                        .value(off + 1)
                        .replace('\\', "/")
                        .trim_matches('/')
                        .to_string(),
                    section: sec.name.clone(),
                    line: l.line,
                });
            }
        }
        out
    }

    /// `[DestinationDirs]` entries.
    pub fn destination_dirs(&self) -> Vec<DestinationDir> {
        let Some(sec) = self.section("DestinationDirs") else {
            return Vec::new();
        };
        sec.lines
            .iter()
            .filter_map(|l| {
                Some(DestinationDir {
                    section: l.key.clone()?,
                    dirid: parse_number(l.value(0)),
                    subdir: l.value(1).to_string(),
                })
            })
            .collect()
    }

    /// Where a source file lives relative to the INF directory.
    pub fn source_path(&self, file: &str, arch: Arch) -> String {
        let files = self.source_disks_files(arch);
        let Some(f) = files.iter().find(|f| f.name.eq_ignore_ascii_case(file)) else {
            return file.to_string();
        };
        let disks = self.source_disks_names(arch);
        let disk = disks
            .iter()
            .find(|d| d.id.eq_ignore_ascii_case(&f.disk))
            .map(|d| d.path.as_str())
            .unwrap_or("");
        [disk, f.subdir.as_str(), f.name.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    }
}
