//! OVF manifests (`.mf`): lines `SHA256(file)= hex` (also SHA1, SHA512).

use crate::error::{Error, Result};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::path::{Path, PathBuf};

/// Digest algorithm named in a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-1 (OVF 1.x, ovftool default before 4.x).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Name as written in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
    /// A streaming hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Box::new(Sha512::new())),
        }
    }
}

/// A streaming digest of one of the manifest algorithms.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-1.
    Sha1(Sha1),
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Box<Sha512>),
}

impl Hasher {
    /// Feed bytes.
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    /// Lowercase hex digest.
    pub fn finish_hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// File name as written.
    pub file: String,
    /// Expected digest, lowercase hex.
    pub digest: String,
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it came from (the `.mf`, or the OVA holding it).
    pub path: PathBuf,
    /// Its lines.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Parse manifest text.
    pub fn parse(path: &Path, data: &[u8]) -> Result<Manifest> {
        let text = std::str::from_utf8(data)
            .map_err(|_| Error::invalid(path, "manifest", "manifest is not UTF-8 text"))?;
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = || {
                Error::invalid(
                    path,
                    format!("line {}", n + 1),
                    format!(
                        "expected `SHA256(file)= hexdigest`, found {:?}",
                        line.chars().take(80).collect::<String>()
                    ),
                )
            };
            let (algo, rest) = line.split_once('(').ok_or_else(bad)?;
            let (file, digest) = rest.rsplit_once(")=").ok_or_else(bad)?;
            let algorithm = match algo.trim().to_ascii_uppercase().as_str() {
                "SHA1" => Algorithm::Sha1,
                "SHA256" => Algorithm::Sha256,
                "SHA512" => Algorithm::Sha512,
                _ => {
                    return Err(Error::invalid(
                        path,
                        format!("line {}", n + 1),
                        format!(
                            "unknown digest algorithm {:?} (expected SHA1, SHA256 or SHA512)",
                            algo.trim()
                        ),
                    ))
                }
            };
            let digest = digest.trim().to_ascii_lowercase();
            let want_len = match algorithm {
                Algorithm::Sha1 => 40,
                Algorithm::Sha256 => 64,
                Algorithm::Sha512 => 128,
            };
            if digest.len() != want_len || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            entries.push(ManifestEntry {
                algorithm,
                file: file.trim().to_string(),
                digest,
            });
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The line for `file` (matched by exact name, then by base name).
    pub fn entry(&self, file: &str) -> Option<&ManifestEntry> {
        let base = |s: &str| s.rsplit(['/', '\\']).next().unwrap_or(s).to_string();
        self.entries
            .iter()
            .find(|e| e.file == file)
            .or_else(|| self.entries.iter().find(|e| base(&e.file) == base(file)))
    }

    /// Compare a computed digest with the manifest's; `Ok` if the
    /// manifest has no line for `file`.
    pub fn check(&self, file: &str, algorithm: Algorithm, actual: &str) -> Result<()> {
        if let Some(e) = self.entry(file) {
            if e.algorithm == algorithm && e.digest != actual {
                return Err(Error::DigestMismatch {
                    manifest: self.path.clone(),
                    file: file.to_string(),
                    algorithm: algorithm.name().into(),
                    expected: e.digest.clone(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Check bytes held in memory against the manifest.
    pub fn check_bytes(&self, file: &str, data: &[u8]) -> Result<()> {
        if let Some(e) = self.entry(file) {
            let mut h = e.algorithm.hasher();
            h.update(data);
            self.check(file, e.algorithm, &h.finish_hex())?;
        }
        Ok(())
    }
}
