//! Driver media for Windows installs and repairs: open a virtio-win ISO or
//! tree, pick one Windows version's drivers (selection and INF parsing in
//! [`guest::drivers`]) and write them to a 1.44 MB FAT12 floppy or a small
//! ISO — the "F6 floppy" of XP/2003 text-mode setup (with a generated
//! `txtsetup.oem`) or the "Load driver" media of later setups.
//!
//! Layout written: for text-mode setups every storage driver file sits in
//! the root next to `txtsetup.oem` and its tag file (that is where
//! `txtsetup.oem` says they are); otherwise each driver gets a directory
//! named after it (`viostor/viostor.inf`, ...), which "Load driver" finds
//! by browsing. `DRIVERS.TXT` says what is on the disk and where it came
//! from. Outputs are written under a temporary name and renamed when
//! complete.

use anyhow::{bail, Context, Result};
use guest::drivers::catalog::Catalog;
use guest::drivers::media::{DirMedia, DriverMedia, MediaFile, MediaIndex};
use guest::drivers::select::{self, DriverSet};
use guest::drivers::txtsetup::{self, DiskData};
use guest::drivers::{Arch, Role};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Largest single driver file read from the media.
pub const MAX_DRIVER_FILE: u64 = 64 << 20;
/// Usable data bytes of a 1.44 MB FAT12 floppy (2847 clusters of 512
/// bytes: 2880 sectors less boot sector, two 9-sector FATs and a 14-sector
/// root directory).
pub const FLOPPY_DATA_BYTES: u64 = 2847 * 512;

/// Driver media backed by an ISO 9660 image (the virtio-win ISO), read
/// with our own reader: no mount.
pub struct IsoMedia {
    iso: iso9660::Iso<std::fs::File>,
}

impl IsoMedia {
    /// Open the ISO image at `path`.
    pub fn open(path: &Path) -> Result<IsoMedia> {
        let iso = iso9660::Iso::open(path)
            .with_context(|| format!("cannot read {} as an ISO 9660 image", path.display()))?;
        Ok(IsoMedia { iso })
    }
}

fn media_err(path: &str, e: impl std::fmt::Display) -> guest::drivers::Error {
    guest::drivers::Error::Media {
        path: path.to_string(),
        msg: e.to_string(),
    }
}

impl DriverMedia for IsoMedia {
    fn list(&self) -> guest::drivers::Result<Vec<MediaFile>> {
        let entries = self
            .iso
            .entries()
            .map_err(|e| media_err(self.iso.image_name(), e))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| MediaFile {
                path: e.path,
                size: e.size,
            })
            .collect())
    }

    fn read(&self, path: &str, max: u64) -> guest::drivers::Result<Vec<u8>> {
        let e = self
            .iso
            .find(path)
            .map_err(|e| media_err(path, e))?
            .ok_or_else(|| media_err(path, "not on the ISO"))?;
        if e.is_dir {
            return Err(media_err(path, "is a directory"));
        }
        self.iso.read(&e, max).map_err(|e| media_err(path, e))
    }
}

/// Open driver media: a directory tree or an ISO image.
pub fn open_media(path: &Path) -> Result<Box<dyn DriverMedia>> {
    let md = std::fs::metadata(path)
        .with_context(|| format!("cannot open virtio-win media {}", path.display()))?;
    if md.is_dir() {
        Ok(Box::new(DirMedia::new(path)?))
    } else {
        Ok(Box::new(IsoMedia::open(path)?))
    }
}

/// Load the catalog: the user's file or the built-in one.
pub fn load_catalog(path: Option<&Path>) -> Result<Catalog> {
    Ok(match path {
        Some(p) => Catalog::load(p)?,
        None => Catalog::builtin(),
    })
}

/// Output medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    /// 1.44 MB FAT12 floppy image.
    Floppy,
    /// ISO 9660 + Joliet image.
    Iso,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// virtio-win ISO or directory.
    pub virtio_win: PathBuf,
    /// OS id or alias (catalog).
    pub os: String,
    /// Architecture.
    pub arch: Arch,
    /// Roles that must be on the disk, in order.
    pub roles: Vec<Role>,
    /// Roles included when the media has them for this OS (a warning
    /// otherwise): e.g. vioscsi, which old virtio-win releases lack for XP.
    pub optional_roles: Vec<Role>,
    /// User catalog replacing the built-in one.
    pub catalog: Option<PathBuf>,
    /// Output kind.
    pub medium: Medium,
    /// Output path.
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
}

/// One file written to the driver disk.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenFile {
    /// Path on the driver disk.
    pub path: String,
    /// Where it came from: a path on the virtio-win media, or `generated`.
    pub from: String,
    /// Size in bytes.
    pub size: u64,
}

/// One driver on the disk.
#[derive(Debug, Clone, Serialize)]
pub struct DiskDriver {
    /// Catalog driver name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Directory on the virtio-win media it came from.
    pub source_dir: String,
    /// OS whose directory was used (differs from the request on fallback).
    pub from_os: String,
    /// Hardware IDs from its INF.
    pub hardware_ids: Vec<String>,
    /// Service name from its INF, when it installs one.
    pub service: Option<String>,
}

/// Result of [`build`].
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Output path.
    pub output: PathBuf,
    /// Output kind.
    pub medium: Medium,
    /// OS id.
    pub os_id: String,
    /// OS display name.
    pub os_name: String,
    /// Architecture.
    pub arch: Arch,
    /// Whether a `txtsetup.oem` was written (text-mode setup, F6).
    pub txtsetup_oem: bool,
    /// Drivers on the disk.
    pub drivers: Vec<DiskDriver>,
    /// Files on the disk.
    pub files: Vec<WrittenFile>,
    /// Selection warnings (fallback OS used...).
    pub warnings: Vec<String>,
}

/// One file of a driver disk.
#[derive(Debug, Clone)]
pub struct DiskEntry {
    /// Path on the driver disk (`/`-separated).
    pub path: String,
    /// Path on the virtio-win media, or `generated`.
    pub from: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// Select `roles` (all must be found) and `optional` roles (left out with
/// a warning when the media lacks them for this OS).
pub fn select_drivers(
    media: &dyn DriverMedia,
    catalog: &Catalog,
    os: &str,
    arch: Arch,
    roles: &[Role],
    optional: &[Role],
) -> Result<DriverSet> {
    let index = MediaIndex::new(media)?;
    let mut set = select::select_indexed(media, &index, catalog, os, arch, roles)?;
    for &role in optional {
        if set.drivers.iter().any(|d| d.role == role) {
            continue;
        }
        match select::select_indexed(media, &index, catalog, os, arch, &[role]) {
            Ok(more) => {
                set.drivers.extend(more.drivers);
                set.warnings.extend(more.warnings);
            }
            Err(e) => set.warnings.push(format!("{role} driver left out: {e}")),
        }
    }
    Ok(set)
}

/// The files of a driver disk for `set`: for text-mode setups the storage
/// drivers with `txtsetup.oem` and its tag file in the root, every other
/// driver in a directory named after it, and `DRIVERS.TXT`.
pub fn disk_files(media: &dyn DriverMedia, set: &DriverSet) -> Result<Vec<DiskEntry>> {
    let mut out: Vec<DiskEntry> = vec![];
    let push = |out: &mut Vec<DiskEntry>, path: String, from, data| -> Result<()> {
        if out.iter().any(|e| e.path.eq_ignore_ascii_case(&path)) {
            bail!("two drivers put a file named {path} on the disk; select fewer drivers");
        }
        out.push(DiskEntry { path, from, data });
        Ok(())
    };
    let mut rest: Vec<&guest::drivers::select::SelectedDriver> = set.drivers.iter().collect();
    if set.text_mode_setup && set.drivers.iter().any(|d| d.role.is_storage()) {
        let disk = txtsetup::txtsetup_oem(set)?;
        for f in disk.files {
            let (from, data) = match f.data {
                DiskData::Media(p) => {
                    let d = media.read(&p, MAX_DRIVER_FILE)?;
                    (p, d)
                }
                DiskData::Bytes(b) => ("generated".to_string(), b),
            };
            push(&mut out, f.name, from, data)?;
        }
        rest.retain(|d| !d.role.is_storage());
    }
    for d in rest {
        for f in &d.files {
            let base = guest::drivers::select::SelectedDriver::base_name(&f.path);
            let data = media.read(&f.path, MAX_DRIVER_FILE)?;
            push(&mut out, format!("{}/{base}", d.name), f.path.clone(), data)?;
        }
    }
    let mut txt = format!(
        "hyper2kvm driver disk\r\nWindows: {} ({}), {}\r\n\r\n",
        set.os_name, set.os_id, set.arch
    );
    for d in &set.drivers {
        txt.push_str(&format!("{} ({}): from {}\r\n", d.name, d.role, d.dir));
    }
    for w in &set.warnings {
        txt.push_str(&format!("warning: {w}\r\n"));
    }
    push(
        &mut out,
        "DRIVERS.TXT".into(),
        "generated".into(),
        txt.into_bytes(),
    )?;
    Ok(out)
}

/// ISO volume id for a driver set (`VIRTIO_W10_AMD64`).
pub fn volume_id(set: &DriverSet) -> String {
    format!("VIRTIO_{}_{}", set.os_id, set.arch)
        .to_ascii_uppercase()
        .replace(['.', '-'], "_")
}

/// Write `files` as an ISO 9660 + Joliet image to `out` (temporary name,
/// renamed when complete).
pub fn write_iso(files: &[DiskEntry], volume_id: &str, out: &Path, force: bool) -> Result<()> {
    let tmp = vdisk::writer::TempOutput::create(out, force)?;
    let mut b = iso9660::IsoBuilder::new(volume_id)?;
    for e in files {
        b.add_file(&e.path, e.data.clone())?;
    }
    b.write_to(std::io::BufWriter::new(tmp.file()))
        .with_context(|| format!("writing ISO {}", tmp.tmp_path().display()))?;
    tmp.commit()?;
    Ok(())
}

/// Write `files` to a 1.44 MB FAT12 floppy image at `out` (temporary name,
/// renamed when complete); refused before writing when they do not fit.
pub fn write_floppy(files: &[DiskEntry], label: &str, out: &Path, force: bool) -> Result<()> {
    let used = floppy_usage(files);
    if used > FLOPPY_DATA_BYTES {
        bail!(
            "the drivers need {used} bytes but a 1.44 MB floppy holds {FLOPPY_DATA_BYTES}: \
             select fewer drivers or write an ISO (--iso)"
        );
    }
    let tmp = vdisk::writer::TempOutput::create(out, force)?;
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|e| (e.path.as_str(), e.data.as_slice()))
        .collect();
    guest::fs::make_floppy(tmp.tmp_path(), label, &refs)
        .with_context(|| format!("writing floppy {}", tmp.tmp_path().display()))?;
    tmp.commit()?;
    Ok(())
}

/// What [`Report::drivers`] says of a driver set.
pub fn describe(set: &DriverSet) -> Vec<DiskDriver> {
    set.drivers
        .iter()
        .map(|d| DiskDriver {
            name: d.name.clone(),
            role: d.role,
            source_dir: d.dir.clone(),
            from_os: d.from_os.clone(),
            hardware_ids: d.summary.hardware_ids.clone(),
            service: d.summary.main_service().map(|s| s.add_service.name.clone()),
        })
        .collect()
}

/// Bytes a set of files occupies on the floppy (512-byte clusters, plus
/// one cluster per subdirectory).
fn floppy_usage(files: &[DiskEntry]) -> u64 {
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|e| e.path.rsplit_once('/').map(|(d, _)| d))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    let data: u64 = files
        .iter()
        .map(|e| (e.data.len() as u64).div_ceil(512) * 512)
        .sum();
    data + dirs.len() as u64 * 512
}

/// Build the driver disk described by `o`.
pub fn build(o: &Options) -> Result<Report> {
    if o.roles.is_empty() {
        bail!("no driver roles selected");
    }
    let media = open_media(&o.virtio_win)?;
    let catalog = load_catalog(o.catalog.as_deref())?;
    let set = select_drivers(
        media.as_ref(),
        &catalog,
        &o.os,
        o.arch,
        &o.roles,
        &o.optional_roles,
    )
    .with_context(|| format!("selecting drivers on {}", o.virtio_win.display()))?;
    let files = disk_files(media.as_ref(), &set)?;
    if o.out.exists() && !o.force {
        bail!(
            "{} already exists (use --force to replace it)",
            o.out.display()
        );
    }
    match o.medium {
        Medium::Floppy => write_floppy(
            &files,
            &format!("VIRTIO {}", set.os_id.to_ascii_uppercase()),
            &o.out,
            o.force,
        )?,
        Medium::Iso => write_iso(&files, &volume_id(&set), &o.out, o.force)?,
    }
    Ok(Report {
        output: o.out.clone(),
        medium: o.medium,
        os_id: set.os_id.clone(),
        os_name: set.os_name.clone(),
        arch: set.arch,
        txtsetup_oem: files.iter().any(|e| e.path == "txtsetup.oem"),
        drivers: describe(&set),
        files: files
            .iter()
            .map(|e| WrittenFile {
                path: e.path.clone(),
                from: e.from.clone(),
                size: e.data.len() as u64,
            })
            .collect(),
        warnings: set.warnings.clone(),
    })
}
