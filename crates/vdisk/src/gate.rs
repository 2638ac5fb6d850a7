//! The open gate: file names found *inside* an untrusted image (backing
//! files, VMDK extents, VHD parent locators) are opened only under the
//! caller's policy, and chains are checked for loops and depth.

use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use std::path::{Component, Path, PathBuf};

/// Refuse `name` (found inside `image`, taken relative to `dir`) when the
/// file it names lies outside `dir` once every symbolic link on the way is
/// followed. The refusal names the first link crossed and its target.
/// Names that do not exist (yet) pass: opening them fails on its own.
fn check_links(image: &Path, dir: &Path, rel: &Path, name: &str) -> Result<()> {
    // A directory that cannot be resolved (not there: a label such as an
    // OVA member, or metadata parsed from memory) holds no link to follow.
    let Ok(root) = dir.canonicalize() else {
        return Ok(());
    };
    // The first link on the way, for the message.
    let mut link: Option<(PathBuf, PathBuf)> = None;
    let mut cur = dir.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() && link.is_none() => {
                let target = std::fs::read_link(&cur).unwrap_or_default();
                link = Some((cur.clone(), target));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let Some((link, target)) = link else {
        // No link: the lexical checks already kept the name inside.
        return Ok(());
    };
    let real = match dir.join(rel).canonicalize() {
        Ok(real) => real,
        // A dangling link or a loop: nothing will be read through it, and
        // opening reports what is missing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::io(
                &link,
                None,
                &format!("cannot resolve {name:?} found in {}", image.display()),
                e,
            ))
        }
    };
    if real.starts_with(&root) {
        return Ok(());
    }
    Err(Error::refused(
        image,
        format!(
            "references {name:?}, which leads through the symbolic link {} -> {} to {}, \
             outside the image's directory {}; pass --allow-outside-paths to permit",
            link.display(),
            target.display(),
            real.display(),
            root.display()
        ),
    ))
}

/// Policy for opening images and the files they reference.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Allow references that are absolute or leave the image's directory.
    pub allow_outside: bool,
    /// Maximum backing chain depth (the top image is depth 0).
    pub max_chain_depth: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            allow_outside: false,
            max_chain_depth: 32,
        }
    }
}

/// Context passed to format openers: the policy plus the chain walked so
/// far (for loop and depth checks).
#[derive(Debug, Clone)]
pub struct OpenCtx {
    /// The policy in force.
    pub options: OpenOptions,
    chain: Vec<PathBuf>,
}

impl OpenCtx {
    /// A context for opening a top-level image.
    pub fn new(options: OpenOptions) -> Self {
        OpenCtx {
            options,
            chain: Vec::new(),
        }
    }

    /// Depth of the image being opened (0 for the top image).
    pub fn depth(&self) -> usize {
        self.chain.len().saturating_sub(1)
    }

    /// Register `path` as the image being opened now; fails on a loop or
    /// when the chain is too deep.
    pub fn enter(&self, path: &Path) -> Result<OpenCtx> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.chain.contains(&canon) {
            return Err(Error::refused(
                path,
                format!(
                    "backing chain loops back to this file (chain: {})",
                    self.chain
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            ));
        }
        if self.chain.len() > self.options.max_chain_depth {
            return Err(Error::refused(
                path,
                format!(
                    "backing chain deeper than {} layers",
                    self.options.max_chain_depth
                ),
            ));
        }
        let mut next = self.clone();
        next.chain.push(canon);
        Ok(next)
    }

    /// Resolve a file name found inside `image` (e.g. a VMDK extent or a
    /// qcow2 backing file) under the policy: relative names are taken
    /// relative to the image's directory; absolute names, names that
    /// climb out with `..`, and names that reach a file outside the
    /// directory through a symbolic link (the file itself or any directory
    /// on the way) are refused unless `allow_outside` is set.
    pub fn resolve(&self, image: &Path, name: &str) -> Result<PathBuf> {
        if name.is_empty() || name.contains('\0') {
            return Err(Error::corrupt(
                image,
                0,
                "empty or invalid referenced file name",
            ));
        }
        let dir = image.parent().unwrap_or(Path::new("."));
        let rel = Path::new(name);
        if rel.is_absolute() {
            if self.options.allow_outside {
                return Ok(rel.to_path_buf());
            }
            return Err(Error::refused(
                image,
                format!("references absolute path {name:?}; pass --allow-outside-paths to permit"),
            ));
        }
        let mut depth: i64 = 0;
        for c in rel.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                _ => depth = -1,
            }
            if depth < 0 && !self.options.allow_outside {
                return Err(Error::refused(
                    image,
                    format!("references {name:?}, which leaves the image's directory; pass --allow-outside-paths to permit"),
                ));
            }
        }
        let joined = dir.join(rel);
        if !self.options.allow_outside {
            check_links(image, dir, rel, name)?;
        }
        Ok(joined)
    }

    /// Resolve `name` relative to `image` and open it as a disk image of
    /// any format (probed by content).
    pub fn open_referenced(&self, image: &Path, name: &str) -> Result<Box<dyn Disk>> {
        let p = self.resolve(image, name)?;
        if !p.exists() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "referenced file {name:?} not found (looked for {})",
                    p.display()
                ),
            )
            .with_path(image));
        }
        crate::probe::open_with(&p, self)
    }
}
