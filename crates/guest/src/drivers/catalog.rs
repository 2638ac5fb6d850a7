//! The OS/driver catalog: which Windows versions exist (ids, aliases, NT
//! version, architectures), which directories hold their drivers in each
//! media layout, which fallback OS may be used and why, and which drivers
//! fill which [`Role`]. It is data: a built-in JSON file
//! ([`Catalog::builtin_json`]) that a user file can replace
//! ([`Catalog::load`]).

use super::inf::OsVersion;
use super::{Arch, Error, Result, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

const BUILTIN: &str = include_str!("catalog.json");
/// Largest catalog file accepted, in bytes.
pub const MAX_CATALOG_SIZE: u64 = 4 << 20;

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Media layouts, in the order they are tried.
    pub layouts: Vec<Layout>,
    /// Drivers, in preference order within a role.
    pub drivers: Vec<DriverEntry>,
    /// Windows versions.
    pub os: Vec<OsEntry>,
}

/// A directory layout of driver media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Name reported in selections (e.g. `iso-by-driver`).
    pub name: String,
    /// What the layout is.
    #[serde(default)]
    pub description: String,
    /// Directory pattern with `{driver}`, `{os}` and `{arch}` placeholders.
    pub pattern: String,
    /// Which [`OsEntry::dirs`] naming scheme `{os}` uses.
    pub naming: String,
    /// Directory names for each architecture, in the order tried.
    pub arch_dirs: BTreeMap<Arch, Vec<String>>,
}

/// A driver of the virtio-win set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverEntry {
    /// Driver name (e.g. `viostor`).
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// Its directory names in per-driver layouts (`{driver}`).
    pub dirs: Vec<String>,
    /// Its INF file names; the first one present in a directory is used.
    pub infs: Vec<String>,
    /// What it is.
    #[serde(default)]
    pub description: String,
}

/// A Windows version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsEntry {
    /// Catalog id (e.g. `w10`, `2k8R2`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// NT version `major.minor`.
    pub nt: String,
    /// Build number, when one build defines the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<u32>,
    /// Server product.
    pub server: bool,
    /// Architectures the OS exists for.
    pub archs: Vec<Arch>,
    /// Installed with text-mode setup (F6 floppy with `txtsetup.oem`).
    #[serde(default)]
    pub text_mode_setup: bool,
    /// Other names accepted (case-insensitive): short ids, VMware guestOS,
    /// VirtualBox OS types, libosinfo ids.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Directory names per naming scheme, in the order tried.
    pub dirs: BTreeMap<String, Vec<String>>,
    /// OSes whose drivers may be used when this one has none, in order.
    #[serde(default)]
    pub fallback: Vec<Fallback>,
}

/// A fallback OS and why it is acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// OS id to use.
    pub os: String,
    /// Architectures the fallback applies to (empty: all).
    #[serde(default)]
    pub archs: Vec<Arch>,
    /// Why it is acceptable (reported as a warning when used).
    pub reason: String,
}

impl OsEntry {
    /// The NT version as an [`OsVersion`] for INF decoration matching.
    pub fn version(&self) -> OsVersion {
        let (ma, mi) = parse_nt(&self.nt).unwrap_or((0, 0));
        OsVersion {
            major: ma,
            minor: mi,
            build: self.build,
            server: Some(self.server),
        }
    }

    /// Whether `name` is this OS's id or one of its aliases.
    pub fn is_named(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

fn parse_nt(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

impl Catalog {
    /// The built-in catalog data (JSON), e.g. as a starting point for a
    /// user file.
    pub fn builtin_json() -> &'static str {
        BUILTIN
    }

    /// The built-in catalog.
    pub fn builtin() -> Catalog {
        // The embedded data is checked by this module's tests.
        Catalog::from_json(BUILTIN.as_bytes(), "built-in")
            .expect("built-in driver catalog is valid")
    }

    /// Load a user catalog file (replaces the built-in one).
    pub fn load(path: &Path) -> Result<Catalog> {
        let name = path.display().to_string();
        let err = |msg: String| Error::Catalog {
            source_name: name.clone(),
            msg,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_CATALOG_SIZE {
            return Err(err(format!(
                "{} bytes is larger than the {MAX_CATALOG_SIZE} byte limit",
                meta.len()
            )));
        }
        let b = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        Catalog::from_json(&b, &name)
    }

    /// Parse and check catalog JSON. `source_name` names it in errors.
    pub fn from_json(bytes: &[u8], source_name: &str) -> Result<Catalog> {
        let err = |msg: String| Error::Catalog {
            source_name: source_name.to_string(),
            msg,
        };
        let c: Catalog = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        c.check().map_err(err)?;
        Ok(c)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.os.is_empty() || self.layouts.is_empty() || self.drivers.is_empty() {
            return Err("os, layouts and drivers must not be empty".into());
        }
        let mut names: HashSet<String> = HashSet::new();
        for o in &self.os {
            if parse_nt(&o.nt).is_none() {
                return Err(format!("os {}: nt '{}' is not major.minor", o.id, o.nt));
            }
            if o.archs.is_empty() {
                return Err(format!("os {}: no archs", o.id));
            }
            let mut own: HashSet<String> = HashSet::new();
            for n in std::iter::once(&o.id).chain(&o.aliases) {
                let l = n.to_ascii_lowercase();
                if own.insert(l.clone()) && !names.insert(l) {
                    return Err(format!("os {}: name '{n}' is used by another OS", o.id));
                }
            }
        }
        for o in &self.os {
            for f in &o.fallback {
                if f.os.eq_ignore_ascii_case(&o.id) {
                    return Err(format!("os {}: falls back to itself", o.id));
                }
                if !self.os.iter().any(|x| x.id == f.os) {
                    return Err(format!("os {}: fallback '{}' is not an OS id", o.id, f.os));
                }
            }
        }
        for l in &self.layouts {
            if !l.pattern.contains("{os}") {
                return Err(format!("layout {}: pattern has no {{os}}", l.name));
            }
            let rest = l
                .pattern
                .replace("{os}", "")
                .replace("{arch}", "")
                .replace("{driver}", "");
            if rest.contains('{')
                || rest.contains('}')
                || l.pattern.starts_with('/')
                || rest.contains("..")
            {
                return Err(format!("layout {}: bad pattern '{}'", l.name, l.pattern));
            }
        }
        for d in &self.drivers {
            if d.infs.is_empty() {
                return Err(format!("driver {}: no infs", d.name));
            }
        }
        Ok(())
    }

    /// Find an OS by id or alias (case-insensitive).
    pub fn find_os(&self, name: &str) -> Result<&OsEntry> {
        let n = name.trim();
        self.os
            .iter()
            .find(|o| o.is_named(n))
            .ok_or_else(|| Error::UnknownOs {
                given: name.to_string(),
                known: self
                    .os
                    .iter()
                    .map(|o| o.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The drivers that fill `role`, in preference order.
    pub fn drivers_for(&self, role: Role) -> Vec<&DriverEntry> {
        self.drivers.iter().filter(|d| d.role == role).collect()
    }

    /// The OSes to try for `os` on `arch`: itself, then its fallbacks that
    /// apply to `arch` and exist for it, each with the reason.
    pub fn candidates<'a>(
        &'a self,
        os: &'a OsEntry,
        arch: Arch,
    ) -> Vec<(&'a OsEntry, Option<&'a str>)> {
        let mut out = vec![(os, None)];
        for f in &os.fallback {
            if !f.archs.is_empty() && !f.archs.contains(&arch) {
                continue;
            }
            if let Some(o) = self.os.iter().find(|o| o.id == f.os) {
                if o.archs.contains(&arch) && !out.iter().any(|(x, _)| x.id == o.id) {
                    out.push((o, Some(f.reason.as_str())));
                }
            }
        }
        out
    }
}

impl Layout {
    /// Candidate directories for a driver (`None` for layouts without
    /// `{driver}`), an OS and an architecture, in the order to try.
    pub fn dirs(&self, driver: Option<&DriverEntry>, os: &OsEntry, arch: Arch) -> Vec<String> {
        let Some(os_names) = os.dirs.get(&self.naming) else {
            return Vec::new();
        };
        let Some(arch_names) = self.arch_dirs.get(&arch) else {
            return Vec::new();
        };
        let drv_names: Vec<&str> = match driver {
            Some(d) if self.pattern.contains("{driver}") => {
                d.dirs.iter().map(String::as_str).collect()
            }
            _ => vec![""],
        };
        let mut out = Vec::new();
        for dn in &drv_names {
            for on in os_names {
                for an in arch_names {
                    let p = self
                        .pattern
                        .replace("{driver}", dn)
                        .replace("{os}", on)
                        .replace("{arch}", an);
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_valid_and_complete() {
        let c = Catalog::builtin();
        for id in [
            "xp", "2k3", "vista", "2k8", "w7", "2k8R2", "w8", "2k12", "w8.1", "2k12R2", "w10",
            "2k16", "2k19", "2k22", "w11", "2k25",
        ] {
            assert_eq!(c.find_os(id).unwrap().id, id);
        }
        for (alias, id) in [
            ("winxp", "xp"),
            ("winXPPro", "xp"),
            ("winNetEnterprise", "2k3"),
            ("win7", "w7"),
            ("windows7-64", "w7"),
            ("win10", "w10"),
            ("windows9-64", "w10"),
            ("windows2019srv-64", "2k19"),
            ("windows2022srvNext-64", "2k25"),
            ("windows11-64", "w11"),
        ] {
            assert_eq!(c.find_os(alias).unwrap().id, id, "{alias}");
        }
        for r in [Role::StorageBlk, Role::StorageScsi, Role::Net] {
            assert!(!c.drivers_for(r).is_empty());
        }
        let e = c.find_os("os/2").unwrap_err().to_string();
        assert!(
            e.contains("os/2") && e.contains("2k8R2") && e.contains("w11"),
            "{e}"
        );
        let w7 = c.find_os("2k8R2").unwrap();
        let cands: Vec<_> = c
            .candidates(w7, Arch::Amd64)
            .iter()
            .map(|(o, _)| o.id.clone())
            .collect();
        assert_eq!(cands, ["2k8R2", "w7"]);
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(BUILTIN).unwrap();
        v["os"][1]["aliases"] = serde_json::json!(["winxp"]);
        let e = Catalog::from_json(v.to_string().as_bytes(), "user.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("user.json") && e.contains("winxp"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(BUILTIN).unwrap();
        v["os"][0]["fallback"][0]["os"] = serde_json::json!("nope");
        assert!(Catalog::from_json(v.to_string().as_bytes(), "u").is_err());
        let mut v: serde_json::Value = serde_json::from_str(BUILTIN).unwrap();
        v["layouts"][0]["pattern"] = serde_json::json!("../{os}");
        assert!(Catalog::from_json(v.to_string().as_bytes(), "u").is_err());
        assert!(Catalog::from_json(b"{", "u").is_err());
        assert!(
            Catalog::from_json(br#"{"layouts":[],"drivers":[],"os":[],"extra":1}"#, "u").is_err()
        );
    }
}
