//! Driver selection: find, on driver media, the directory holding each
//! requested driver for one Windows version and architecture, parse its
//! INF and list the files a driver disk needs.
//!
//! Order of search (all data from the [`Catalog`]): the requested OS, then
//! each fallback OS (reported as a warning); within one OS every layout in
//! catalog order; within a layout every driver of the role, every OS
//! directory name and every architecture directory name in order. The
//! first directory holding one of the driver's INF files wins.

use super::catalog::{Catalog, DriverEntry, OsEntry};
use super::inf::{DriverSummary, Inf, OsVersion, MAX_INF_SIZE};
use super::media::{DriverMedia, MediaFile, MediaIndex};
use super::{Arch, Error, Result, Role};
use serde::Serialize;

/// The drivers chosen for one OS and architecture.
#[derive(Debug, Clone, Serialize)]
pub struct DriverSet {
    /// Catalog OS id.
    pub os_id: String,
    /// OS display name.
    pub os_name: String,
    /// NT version used to match INF decorations.
    pub os_version: OsVersion,
    /// Whether the OS installs with text-mode setup (needs txtsetup.oem).
    pub text_mode_setup: bool,
    /// Architecture.
    pub arch: Arch,
    /// One entry per requested role, in request order.
    pub drivers: Vec<SelectedDriver>,
    /// Every driver's warnings.
    pub warnings: Vec<String>,
}

/// One selected driver.
#[derive(Debug, Clone, Serialize)]
pub struct SelectedDriver {
    /// Catalog driver name (e.g. `viostor`).
    pub name: String,
    /// Role it fills.
    pub role: Role,
    /// Directory on the media (as the media spells it).
    pub dir: String,
    /// Catalog layout that matched.
    pub layout: String,
    /// OS id whose directory was used (differs from the request when a
    /// fallback was needed).
    pub from_os: String,
    /// Path of the INF on the media.
    pub inf_path: String,
    /// What the INF says for this OS and architecture.
    pub summary: DriverSummary,
    /// Files to copy: the INF, its catalog, then the package's files
    /// (never `.pdb`), as media paths.
    pub files: Vec<MediaFile>,
    /// Warnings (fallback OS used).
    pub warnings: Vec<String>,
}

impl SelectedDriver {
    /// File name (last path component) of a media path.
    pub fn base_name(path: &str) -> &str {
        path.rsplit('/').next().unwrap_or(path)
    }
}

/// Select drivers for `roles` for OS `os` (id or alias) on `arch`.
pub fn select(
    media: &dyn DriverMedia,
    catalog: &Catalog,
    os: &str,
    arch: Arch,
    roles: &[Role],
) -> Result<DriverSet> {
    let index = MediaIndex::new(media)?;
    select_indexed(media, &index, catalog, os, arch, roles)
}

/// [`select`] with a media index already built.
pub fn select_indexed(
    media: &dyn DriverMedia,
    index: &MediaIndex,
    catalog: &Catalog,
    os: &str,
    arch: Arch,
    roles: &[Role],
) -> Result<DriverSet> {
    let osent = catalog.find_os(os)?;
    if !osent.archs.contains(&arch) {
        return Err(Error::ArchUnsupported {
            os: format!("{} ({})", osent.name, osent.id),
            arch,
            supported: osent
                .archs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut set = DriverSet {
        os_id: osent.id.clone(),
        os_name: osent.name.clone(),
        os_version: osent.version(),
        text_mode_setup: osent.text_mode_setup,
        arch,
        drivers: Vec::new(),
        warnings: Vec::new(),
    };
    let mut done: Vec<Role> = Vec::new();
    for &role in roles {
        if done.contains(&role) {
            continue;
        }
        done.push(role);
        let d = select_role(media, index, catalog, osent, arch, role)?;
        set.warnings.extend(d.warnings.iter().cloned());
        set.drivers.push(d);
    }
    Ok(set)
}

struct Found<'a> {
    driver: &'a DriverEntry,
    layout: String,
    from: &'a OsEntry,
    reason: Option<&'a str>,
    inf: MediaFile,
}

fn find_dir<'a>(
    index: &MediaIndex,
    catalog: &'a Catalog,
    os: &'a OsEntry,
    arch: Arch,
    drivers: &[&'a DriverEntry],
    tried: &mut Vec<String>,
) -> Option<Found<'a>> {
    for (cand, reason) in catalog.candidates(os, arch) {
        for layout in &catalog.layouts {
            for &drv in drivers {
                for dir in layout.dirs(Some(drv), cand, arch) {
                    for inf in &drv.infs {
                        if let Some(f) = index.find(&format!("{dir}/{inf}")) {
                            return Some(Found {
                                driver: drv,
                                layout: layout.name.clone(),
                                from: cand,
                                reason,
                                inf: f.clone(),
                            });
                        }
                    }
                    if !tried.contains(&dir) {
                        tried.push(dir);
                    }
                }
            }
        }
    }
    None
}

fn shorten(v: &[String], max: usize) -> String {
    if v.is_empty() {
        return "nowhere".to_string();
    }
    let mut s = v.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > max {
        s.push_str(&format!(", ... ({} more)", v.len() - max));
    }
    s
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn select_role(
    media: &dyn DriverMedia,
    index: &MediaIndex,
    catalog: &Catalog,
    os: &OsEntry,
    arch: Arch,
    role: Role,
) -> Result<SelectedDriver> {
    let drivers = catalog.drivers_for(role);
    if drivers.is_empty() {
        return Err(Error::UnknownRole(role));
    }
    let mut tried = Vec::new();
    let Some(found) = find_dir(index, catalog, os, arch, &drivers, &mut tried) else {
        let mut available: Vec<String> = index
            .files()
            .iter()
            .filter(|f| {
                let b = SelectedDriver::base_name(&f.path);
                drivers
                    .iter()
                    .any(|d| d.infs.iter().any(|i| i.eq_ignore_ascii_case(b)))
            })
            .map(|f| parent(&f.path).to_string())
            .collect();
        available.sort();
        available.dedup();
        return Err(Error::NoDirectory {
            driver: drivers
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join("/"),
            os: os.id.clone(),
            arch,
            tried: shorten(&tried, 12),
            available: shorten(&available, 40),
        });
    };
    let inf_path = found.inf.path.clone();
    let dir = parent(&inf_path).to_string();
    let bytes = media.read(&inf_path, MAX_INF_SIZE as u64)?;
    let inf = Inf::parse(&bytes, &inf_path)?;
    let ver = os.version();
    let models = inf.models(arch, Some(&ver))?;
    if models.iter().all(|m| m.models.is_empty()) {
        let found: Vec<String> = inf
            .manufacturers()
            .iter()
            .flat_map(|m| m.decorations.clone())
            .collect();
        return Err(Error::InfArchMismatch {
            inf: inf_path,
            arch,
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        });
    }
    let summary = inf.summary(arch, Some(&ver))?;

    let mut files = vec![found.inf.clone()];
    let add = |what: &str, rel: &str, files: &mut Vec<MediaFile>| -> Result<()> {
        let want = if dir.is_empty() {
            rel.to_string()
        } else {
            format!("{dir}/{rel}")
        };
        let f = index.find(&want).ok_or_else(|| Error::MissingFile {
            inf: inf_path.clone(),
            what: what.to_string(),
            file: rel.to_string(),
            path: want.clone(),
        })?;
        if !f.path.to_ascii_lowercase().ends_with(".pdb") && !files.iter().any(|x| x.path == f.path)
        {
            files.push(f.clone());
        }
        Ok(())
    };
    if let Some(cat) = &summary.catalog_file {
        add("CatalogFile", cat, &mut files)?;
    }
    for rel in &summary.files {
        add("source file (SourceDisksFiles/CopyFiles)", rel, &mut files)?;
    }

    let mut warnings = Vec::new();
    if let Some(reason) = found.reason {
        warnings.push(format!(
            "no {} driver for {} ({}) on the media; using the {} one from {}: {}",
            found.driver.name, os.name, os.id, found.from.id, dir, reason
        ));
    }
    Ok(SelectedDriver {
        name: found.driver.name.clone(),
        role,
        dir,
        layout: found.layout,
        from_os: found.from.id.clone(),
        inf_path,
        summary,
        files,
        warnings,
    })
}
