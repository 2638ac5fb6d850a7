//! OVA packages: an OVF descriptor, an optional `.mf` manifest and the
//! disk files in one tar.
//!
//! [`Ova::open`] lists the tar without extracting anything, refuses
//! entries whose names are absolute or contain `..`, checks the
//! descriptor against the manifest, and parses it: each disk comes out as
//! [`DiskSource::OvaEntry`] (data offset and length inside the OVA).
//! [`Ova::extract_disk`] copies one entry out (gunzipping
//! `ovf:compression="gzip"` files) with bounded memory, checking the
//! manifest digest while streaming. Reading an uncompressed entry in place
//! (a `vdisk::window` over the OVA) is a later optimisation.

use crate::error::{check_metadata_size, Error, Result};
use crate::manifest::Manifest;
use crate::model::{DiskDevice, DiskSource, SourceKind, VmModel};
use crate::ovf::{self, FileRef};
use crate::ParseOptions;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Most entries accepted in one OVA.
pub const MAX_ENTRIES: usize = 10_000;

/// A regular file inside the OVA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvaEntry {
    /// Name inside the tar (never absolute, never containing `..`).
    pub name: String,
    /// Byte offset of the data inside the OVA.
    pub offset: u64,
    /// Data length in bytes.
    pub length: u64,
}

/// An opened OVA.
#[derive(Debug, Clone)]
pub struct Ova {
    /// The OVA file.
    pub path: PathBuf,
    /// Its regular-file entries in tar order.
    pub entries: Vec<OvaEntry>,
    /// Name of the OVF descriptor entry.
    pub ovf_entry: String,
    /// The manifest, if the OVA has one.
    pub manifest: Option<Manifest>,
    /// The parsed VM; disks are [`DiskSource::OvaEntry`].
    pub model: VmModel,
}

fn check_name(ova: &Path, name: &str) -> Result<()> {
    let bad = name.starts_with('/')
        || name.starts_with('\\')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split(['/', '\\']).any(|c| c == "..")
        || name.contains('\0');
    if bad {
        return Err(Error::refused(
            ova,
            format!("tar entry {name:?} is absolute or climbs out of the archive with `..`"),
        ));
    }
    Ok(())
}

/// Join a href to the directory of the OVF entry and normalise `./`.
fn join_entry(ova: &Path, ovf_entry: &str, href: &str) -> Result<String> {
    check_name(ova, href)?;
    let dir = ovf_entry.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let joined = if dir.is_empty() {
        href.to_string()
    } else {
        format!("{dir}/{href}")
    };
    Ok(joined
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/"))
}

fn norm(name: &str) -> String {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Ova {
    /// List, verify the descriptor and parse. See the module docs.
    pub fn open(path: &Path, _opts: &ParseOptions) -> Result<Ova> {
        let f = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let file_len = f
            .metadata()
            .map_err(|e| Error::io(path, "cannot stat", e))?
            .len();
        let mut ar = tar::Archive::new(f);
        let mut entries = Vec::new();
        let not_tar = |e: std::io::Error| {
            Error::invalid(path, "tar header", format!("not a valid tar archive: {e}"))
        };
        for e in ar.entries_with_seek().map_err(not_tar)? {
            let e = e.map_err(not_tar)?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            check_name(path, &name)?;
            let ty = e.header().entry_type();
            if ty.is_dir() || ty.is_pax_global_extensions() {
                continue;
            }
            if !(ty.is_file() || ty.is_contiguous()) {
                // links, devices, sparse: never used as OVF files.
                continue;
            }
            let offset = e.raw_file_position();
            let length = e.size();
            if offset.checked_add(length).is_none_or(|end| end > file_len) {
                return Err(Error::invalid(
                    path,
                    format!("tar entry {name:?}"),
                    format!("data ({length} bytes at offset {offset}) runs past the end of the file ({file_len} bytes)"),
                ));
            }
            entries.push(OvaEntry {
                name: norm(&name),
                offset,
                length,
            });
            if entries.len() > MAX_ENTRIES {
                return Err(Error::refused(
                    path,
                    format!("more than {MAX_ENTRIES} tar entries"),
                ));
            }
        }
        let ovf_entry = entries
            .iter()
            .find(|e| e.name.to_ascii_lowercase().ends_with(".ovf"))
            .cloned()
            .ok_or_else(|| Error::invalid(path, "tar", "no .ovf descriptor entry (not an OVA?)"))?;
        check_metadata_size(path, ovf_entry.length)?;
        let mut ova = Ova {
            path: path.to_path_buf(),
            entries,
            ovf_entry: ovf_entry.name.clone(),
            manifest: None,
            model: VmModel::new("", SourceKind::Ova),
        };
        let stem = ovf_entry.name[..ovf_entry.name.len() - 4].to_string();
        let mf = ova
            .entries
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(&format!("{stem}.mf")))
            .or_else(|| {
                ova.entries
                    .iter()
                    .find(|e| e.name.to_ascii_lowercase().ends_with(".mf"))
            })
            .cloned();
        let ovf_data = ova.read_small(&ovf_entry)?;
        let mut warnings = Vec::new();
        if let Some(mf) = mf {
            check_metadata_size(path, mf.length)?;
            let m = Manifest::parse(path, &ova.read_small(&mf)?)?;
            if m.entry(&ovf_entry.name).is_none() {
                warnings.push(format!(
                    "the manifest {} has no digest for the descriptor",
                    mf.name
                ));
            }
            m.check_bytes(&ovf_entry.name, &ovf_data)?;
            ova.manifest = Some(m);
        } else {
            warnings.push("the OVA has no manifest (.mf); file integrity is not checked".into());
        }
        let label = path.join(&ovf_entry.name);
        let entries = ova.entries.clone();
        let mut model = ovf::parse_descriptor(&label, &ovf_data, &mut |f: &FileRef| {
            let want = join_entry(path, &ovf_entry.name, &f.href)?;
            let e = entries.iter().find(|e| e.name == want).ok_or_else(|| {
                Error::invalid(
                    path,
                    "tar",
                    format!(
                        "the descriptor names file {:?}, which is not in the OVA",
                        f.href
                    ),
                )
            })?;
            Ok(DiskSource::OvaEntry {
                ova: path.to_path_buf(),
                entry: e.name.clone(),
                offset: e.offset,
                length: e.length,
                gzip: f.gzip,
            })
        })?;
        model.source = SourceKind::Ova;
        model.warnings.extend(warnings);
        ova.model = model;
        Ok(ova)
    }

    fn read_small(&self, e: &OvaEntry) -> Result<Vec<u8>> {
        let mut f =
            File::open(&self.path).map_err(|err| Error::io(&self.path, "cannot open", err))?;
        f.seek(SeekFrom::Start(e.offset))
            .map_err(|err| Error::io(&self.path, "cannot seek", err))?;
        let mut buf = Vec::new();
        f.take(e.length)
            .read_to_end(&mut buf)
            .map_err(|err| Error::io(&self.path, format!("cannot read entry {:?}", e.name), err))?;
        Ok(buf)
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&OvaEntry> {
        let n = norm(name);
        self.entries.iter().find(|e| e.name == n)
    }

    /// Stream entry `name` through its manifest digest without extracting.
    pub fn verify_entry(&self, name: &str) -> Result<()> {
        self.copy_entry(name, false, &mut std::io::sink(), u64::MAX)
            .map(|_| ())
    }

    /// Copy a disk of [`Ova::model`] into `dest_dir` (gunzipping it if the
    /// descriptor says `ovf:compression="gzip"`), checking the manifest
    /// digest while streaming; returns the written file. On a digest
    /// mismatch the partial file is removed.
    pub fn extract_disk(&self, disk: &DiskDevice, dest_dir: &Path) -> Result<PathBuf> {
        let DiskSource::OvaEntry { entry, gzip, .. } = &disk.source else {
            return Err(Error::Plan(format!(
                "disk {:?} is not inside an OVA",
                disk.source_name
            )));
        };
        let base = entry.rsplit('/').next().unwrap_or(entry);
        let base = if *gzip {
            base.strip_suffix(".gz").unwrap_or(base)
        } else {
            base
        };
        let dest = dest_dir.join(base);
        let part = dest_dir.join(format!("{base}.part"));
        let mut out = File::create(&part).map_err(|e| Error::io(&part, "cannot create", e))?;
        // A gzip bomb is cut off at capacity + 1/8 + 64 MiB (stream
        // optimized VMDKs are never larger than that).
        let cap = disk
            .capacity_bytes
            .map(|c| c.saturating_add(c / 8).saturating_add(64 << 20))
            .unwrap_or(4 << 40);
        let r = self.copy_entry(entry, *gzip, &mut out, cap).and_then(|_| {
            out.sync_all()
                .map_err(|e| Error::io(&part, "cannot sync", e))
        });
        drop(out);
        if let Err(e) = r {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::rename(&part, &dest)
            .map_err(|e| Error::io(&dest, "cannot rename the extracted file into place", e))?;
        Ok(dest)
    }

    fn copy_entry(
        &self,
        name: &str,
        gunzip: bool,
        out: &mut dyn Write,
        max_out: u64,
    ) -> Result<u64> {
        let e = self
            .entry(name)
            .ok_or_else(|| Error::invalid(&self.path, "tar", format!("no entry {name:?}")))?
            .clone();
        let mut f =
            File::open(&self.path).map_err(|err| Error::io(&self.path, "cannot open", err))?;
        f.seek(SeekFrom::Start(e.offset))
            .map_err(|err| Error::io(&self.path, "cannot seek", err))?;
        let digest = self
            .manifest
            .as_ref()
            .and_then(|m| m.entry(&e.name))
            .cloned();
        let mut tee = HashingReader {
            inner: f.take(e.length),
            hasher: digest.as_ref().map(|d| d.algorithm.hasher()),
        };
        let written = {
            let mut src: Box<dyn Read + '_> = if gunzip {
                Box::new(flate2::read::MultiGzDecoder::new(&mut tee))
            } else {
                Box::new(&mut tee)
            };
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = src.read(&mut buf).map_err(|err| {
                    Error::invalid(
                        &self.path,
                        format!("entry {:?}", e.name),
                        format!("cannot read/decompress: {err}"),
                    )
                })?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > max_out {
                    return Err(Error::refused(
                        &self.path,
                        format!(
                            "entry {:?} decompresses to more than {max_out} bytes",
                            e.name
                        ),
                    ));
                }
                out.write_all(&buf[..n]).map_err(|err| {
                    Error::io(
                        &self.path,
                        format!("cannot write extracted {:?}", e.name),
                        err,
                    )
                })?;
            }
            total
        };
        // Hash whatever the decoder left unread (trailing padding).
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(|err| Error::io(&self.path, "cannot read", err))?;
        if let (Some(d), Some(h), Some(m)) = (digest, tee.hasher, &self.manifest) {
            m.check(&e.name, d.algorithm, &h.finish_hex())?;
        }
        Ok(written)
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Option<crate::manifest::Hasher>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
