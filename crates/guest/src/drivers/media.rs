//! Driver media: anything that can list and read files by path — a
//! directory tree ([`DirMedia`]), an ISO image (implemented elsewhere).
//!
//! Paths are relative, `/`-separated, without a leading `/`; lookups are
//! case-insensitive (ISO 9660 and Joliet names, and Windows, do not care
//! about case).

use super::{Error, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A file on driver media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaFile {
    /// Relative `/`-separated path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Read access to driver media.
pub trait DriverMedia {
    /// Every regular file on the media (directories are implied by paths).
    fn list(&self) -> Result<Vec<MediaFile>>;
    /// The contents of file `path` (case-insensitive lookup); an error
    /// when it is missing, not a file, or larger than `max` bytes.
    fn read(&self, path: &str, max: u64) -> Result<Vec<u8>>;
}

/// Most entries [`DirMedia::list`] walks by default.
pub const DEFAULT_MAX_ENTRIES: usize = 200_000;
/// Deepest directory nesting [`DirMedia::list`] walks by default.
pub const DEFAULT_MAX_DEPTH: usize = 24;

/// A directory tree as driver media. Symbolic links are followed only
/// when they resolve inside the root.
#[derive(Debug, Clone)]
pub struct DirMedia {
    root: PathBuf,
    max_entries: usize,
    max_depth: usize,
}

fn merr(path: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::Media {
        path: path.into(),
        msg: msg.into(),
    }
}

impl DirMedia {
    /// Media rooted at directory `root`.
    pub fn new(root: impl AsRef<Path>) -> Result<DirMedia> {
        let r = root.as_ref();
        let canon = r
            .canonicalize()
            .map_err(|e| merr(r.display().to_string(), e.to_string()))?;
        if !canon.is_dir() {
            return Err(merr(r.display().to_string(), "not a directory"));
        }
        Ok(DirMedia {
            root: canon,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_depth: DEFAULT_MAX_DEPTH,
        })
    }

    /// Change the walk limits.
    pub fn with_limits(mut self, max_entries: usize, max_depth: usize) -> DirMedia {
        self.max_entries = max_entries;
        self.max_depth = max_depth;
        self
    }

    /// The (canonical) root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Host path of media path `path`, resolved case-insensitively and
    /// checked to stay inside the root.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        let mut cur = self.root.clone();
        let mut any = false;
        for comp in path.split('/') {
            if comp.is_empty() || comp == "." {
                continue;
            }
            if comp == ".." || comp.contains('\\') || Path::new(comp).components().count() != 1 {
                return Err(merr(path, "path component is not a plain name"));
            }
            if !matches!(
                Path::new(comp).components().next(),
                Some(Component::Normal(_))
            ) {
                return Err(merr(path, "path component is not a plain name"));
            }
            any = true;
            let exact = cur.join(comp);
            if std::fs::symlink_metadata(&exact).is_ok() {
                cur = exact;
                continue;
            }
            let rd = std::fs::read_dir(&cur).map_err(|_| merr(path, "not found on the media"))?;
            let lc = comp.to_lowercase();
            let hit = rd.flatten().find(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.to_lowercase() == lc)
            });
            match hit {
                Some(e) => cur = e.path(),
                None => return Err(merr(path, "not found on the media")),
            }
        }
        if !any {
            return Err(merr(path, "empty path"));
        }
        let canon = cur.canonicalize().map_err(|e| merr(path, e.to_string()))?;
        if !canon.starts_with(&self.root) {
            return Err(merr(path, "resolves outside the media root"));
        }
        Ok(canon)
    }
}

impl DriverMedia for DirMedia {
    fn list(&self) -> Result<Vec<MediaFile>> {
        let mut out = Vec::new();
        // (canonical dir, media path prefix, depth)
        let mut stack: Vec<(PathBuf, String, usize)> = vec![(self.root.clone(), String::new(), 0)];
        let mut entries = 0usize;
        while let Some((dir, prefix, depth)) = stack.pop() {
            let rd = std::fs::read_dir(&dir)
                .map_err(|e| merr(dir.display().to_string(), e.to_string()))?;
            for e in rd {
                let e = e.map_err(|e| merr(dir.display().to_string(), e.to_string()))?;
                entries += 1;
                if entries > self.max_entries {
                    return Err(merr(
                        self.root.display().to_string(),
                        format!("more than {} entries", self.max_entries),
                    ));
                }
                let Some(name) = e.file_name().to_str().map(String::from) else {
                    continue;
                };
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let ft = e
                    .file_type()
                    .map_err(|err| merr(rel.clone(), err.to_string()))?;
                let mut p = e.path();
                if ft.is_symlink() {
                    match p.canonicalize() {
                        // A link to a directory containing it would loop.
                        Ok(t) if t.starts_with(&self.root) && !dir.starts_with(&t) => p = t,
                        _ => continue,
                    }
                }
                let md = std::fs::metadata(&p).map_err(|err| merr(rel.clone(), err.to_string()))?;
                if md.is_dir() {
                    if depth + 1 >= self.max_depth {
                        return Err(merr(
                            rel,
                            format!("directories nested deeper than {}", self.max_depth),
                        ));
                    }
                    stack.push((p, rel, depth + 1));
                } else if md.is_file() {
                    out.push(MediaFile {
                        path: rel,
                        size: md.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        let p = self.resolve(path)?;
        let md = std::fs::metadata(&p).map_err(|e| merr(path, e.to_string()))?;
        if !md.is_file() {
            return Err(merr(path, "not a regular file"));
        }
        if md.len() > max {
            return Err(merr(
                path,
                format!("{} bytes is larger than the {max} byte limit", md.len()),
            ));
        }
        let f = std::fs::File::open(&p).map_err(|e| merr(path, e.to_string()))?;
        let mut buf = Vec::with_capacity(md.len() as usize);
        f.take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| merr(path, e.to_string()))?;
        if buf.len() as u64 > max {
            return Err(merr(path, format!("larger than the {max} byte limit")));
        }
        Ok(buf)
    }
}

/// Normalise a media path for case-insensitive comparison.
pub fn norm(path: &str) -> String {
    path.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
        .to_lowercase()
}

/// A case-insensitive index of a media listing.
#[derive(Debug, Clone)]
pub struct MediaIndex {
    files: Vec<MediaFile>,
    by_path: HashMap<String, usize>,
}

impl MediaIndex {
    /// Index `media`'s listing.
    pub fn new(media: &dyn DriverMedia) -> Result<MediaIndex> {
        Ok(MediaIndex::from_files(media.list()?))
    }

    /// Index a listing.
    pub fn from_files(files: Vec<MediaFile>) -> MediaIndex {
        let mut by_path = HashMap::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            by_path.entry(norm(&f.path)).or_insert(i);
        }
        MediaIndex { files, by_path }
    }

    /// Every file.
    pub fn files(&self) -> &[MediaFile] {
        &self.files
    }

    /// A file by path (case-insensitive).
    pub fn find(&self, path: &str) -> Option<&MediaFile> {
        self.by_path.get(&norm(path)).map(|&i| &self.files[i])
    }

    /// Files directly in directory `dir` (case-insensitive), sorted.
    pub fn files_in(&self, dir: &str) -> Vec<&MediaFile> {
        let d = norm(dir);
        let mut v: Vec<&MediaFile> = self
            .files
            .iter()
            .filter(|f| {
                let n = norm(&f.path);
                match n.rsplit_once('/') {
                    Some((parent, _)) => parent == d,
                    None => d.is_empty(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}
