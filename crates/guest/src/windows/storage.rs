//! The Windows boot-storage fix, planned: what must change in a Windows
//! install so its first boot on a VirtIO disk does not end in STOP 0x7B.
//!
//! [`plan_storage`] turns a [`WindowsInstall`], its SYSTEM and SOFTWARE
//! hives and the driver media ([`StorageMedia`]) into typed
//! [`PlannedAction`]s; nothing here writes anything. The plan holds, for
//! every control set `Select` references:
//!
//! 1. the storage driver of the final bus (viostor for virtio-blk, vioscsi
//!    for virtio-scsi) copied to `System32\drivers`, its service at
//!    Start=0 with every value its INF gives ([`service`]);
//! 2. the device binding: `CriticalDeviceDatabase` before Windows 8
//!    ([`cdd`]), the `DriverDatabase` registration from Windows 8 on
//!    ([`driverdb`]), chosen by whether the hive has a `DriverDatabase`;
//! 3. the bootstrap controller that boots before VirtIO is installed: AHCI
//!    on Vista and later, MergeIDE on XP/2003 ([`bootstrap`]);
//! 4. every driver of the media staged under
//!    `%SystemRoot%\Drivers\VirtIO\<driver>` and `DevicePath` extended
//!    ([`stage`]);
//! 5. BCD backups and checks, the UEFI fallback loader ([`bcd`]);
//! 6. `CrashControl\AutoReboot=0`.
//!
//! Actions that would change nothing in the hives as they are are left
//! out, so planning against an already fixed install gives no registry
//! action, and applying a plan twice changes nothing the second time.

pub mod bcd;
pub mod bootstrap;
pub mod cdd;
pub mod driverdb;
pub mod service;
pub mod stage;

use crate::drivers::catalog::Catalog;
use crate::drivers::inf::{Inf, InfError, MAX_INF_SIZE};
use crate::drivers::media::{DriverMedia, MediaIndex};
use crate::drivers::select::{select_indexed, DriverSet, SelectedDriver};
use crate::drivers::{Arch, Role};
use crate::inspect::{Blocker, WindowsInstall};
use crate::plan::{Action, FileSource, HiveRef, PlannedAction, RegData, VolumeRef};
use regf::{Hive, Value};
use std::collections::HashSet;
use std::path::PathBuf;

pub use bcd::PartitionId;

/// Fixer name on every planned action.
pub const FIXER: &str = "windows-storage";
/// Largest driver file read from the media.
pub const MAX_DRIVER_FILE: u64 = 64 << 20;

/// Errors of storage planning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The install must not be modified offline (hibernated, Fast Startup,
    /// BitLocker, dirty NTFS, a hive that cannot be replayed safely).
    #[error("refusing to modify {product} on {volume}: {}", messages(.blockers))]
    Refused {
        /// `ProductName` of the install.
        product: String,
        /// The system volume, as `disk N partition P`.
        volume: String,
        /// The blockers that refuse.
        blockers: Vec<Blocker>,
    },
    /// The media has no driver for the final bus.
    #[error("the driver media has no {role} driver for {os} {arch}: the final domain would fail with STOP 0x7B; give a virtio-win ISO or tree that has one")]
    NoStorageDriver {
        /// Role asked for.
        role: Role,
        /// OS id.
        os: String,
        /// Architecture.
        arch: Arch,
    },
    /// The driver's INF lacks something the fix needs.
    #[error("{inf}: {msg}")]
    Driver {
        /// INF path on the media.
        inf: String,
        /// What is missing or wrong.
        msg: String,
    },
    /// An INF could not be parsed.
    #[error(transparent)]
    Inf(#[from] InfError),
    /// Reading the driver media failed.
    #[error(transparent)]
    Media(#[from] crate::drivers::Error),
}

fn messages(b: &[Blocker]) -> String {
    b.iter()
        .map(|b| format!("[{}] {}", b.id, b.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The disk bus of the final domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalBus {
    /// virtio-blk (viostor).
    VirtioBlk,
    /// virtio-scsi (vioscsi).
    VirtioScsi,
}

impl FinalBus {
    /// The driver role the bus needs.
    pub fn role(self) -> Role {
        match self {
            FinalBus::VirtioBlk => Role::StorageBlk,
            FinalBus::VirtioScsi => Role::StorageScsi,
        }
    }
}

/// Where the media's bytes come from when the plan is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOrigin {
    /// A directory tree on the host (its root).
    Dir(PathBuf),
    /// An ISO image on the host.
    Iso(PathBuf),
}

impl MediaOrigin {
    /// The [`FileSource`] of media path `path`.
    pub fn source(&self, path: &str) -> FileSource {
        match self {
            MediaOrigin::Dir(root) => FileSource::Host {
                path: path.split('/').fold(root.clone(), |p, c| p.join(c)),
            },
            MediaOrigin::Iso(iso) => FileSource::Iso {
                iso: iso.clone(),
                path: path.to_string(),
            },
        }
    }
}

/// One file of a driver package on the media, hashed.
#[derive(Debug, Clone)]
pub struct MediaBlob {
    /// Path on the media.
    pub path: String,
    /// File name (last component).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Where the executor reads it.
    pub source: FileSource,
}

/// One selected driver with its parsed INF and hashed files.
#[derive(Debug, Clone)]
pub struct MediaDriver {
    /// The selection (directory, INF summary for the guest's OS/arch).
    pub selected: SelectedDriver,
    /// The parsed INF.
    pub inf: Inf,
    /// The package's files (INF first, then catalog, then the rest).
    pub files: Vec<MediaBlob>,
}

impl MediaDriver {
    /// A package file by name (case-insensitive).
    pub fn file(&self, name: &str) -> Option<&MediaBlob> {
        self.files
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
    /// The INF file (the first of [`MediaDriver::files`]).
    pub fn inf_blob(&self) -> Option<&MediaBlob> {
        self.files.first()
    }
    /// The INF file name (`viostor.inf`).
    pub fn inf_name(&self) -> &str {
        SelectedDriver::base_name(&self.selected.inf_path)
    }
}

/// The drivers chosen on the media for one guest, with their bytes hashed.
#[derive(Debug, Clone)]
pub struct StorageMedia {
    /// OS id the drivers were selected for.
    pub os_id: String,
    /// Architecture.
    pub arch: Arch,
    /// Every selected driver (storage and others), in selection order.
    pub drivers: Vec<MediaDriver>,
    /// Selection warnings.
    pub warnings: Vec<String>,
}

impl StorageMedia {
    /// Read and hash the files of every driver of `set` from `media`.
    /// `sha256` returns the lowercase hex SHA-256 of its input (the caller
    /// supplies it so this crate needs no hashing dependency).
    pub fn load(
        media: &dyn DriverMedia,
        origin: &MediaOrigin,
        set: &DriverSet,
        sha256: &dyn Fn(&[u8]) -> String,
    ) -> Result<StorageMedia> {
        let mut drivers = Vec::new();
        for d in &set.drivers {
            let mut files = Vec::new();
            let mut inf = None;
            for f in &d.files {
                let max = if files.is_empty() {
                    MAX_INF_SIZE as u64
                } else {
                    MAX_DRIVER_FILE
                };
                let bytes = media.read(&f.path, max)?;
                if files.is_empty() {
                    inf = Some(Inf::parse(&bytes, &f.path)?);
                }
                files.push(MediaBlob {
                    path: f.path.clone(),
                    name: SelectedDriver::base_name(&f.path).to_string(),
                    size: bytes.len() as u64,
                    sha256: sha256(&bytes),
                    source: origin.source(&f.path),
                });
            }
            let inf = inf.ok_or_else(|| Error::Driver {
                inf: d.inf_path.clone(),
                msg: "the selection lists no files".into(),
            })?;
            drivers.push(MediaDriver {
                selected: d.clone(),
                inf,
                files,
            });
        }
        Ok(StorageMedia {
            os_id: set.os_id.clone(),
            arch: set.arch,
            drivers,
            warnings: set.warnings.clone(),
        })
    }

    /// Select and load the drivers for an install: the storage driver of
    /// `bus` (required: its absence is [`Error::NoStorageDriver`]) and every
    /// other role the media has for `os`/`arch` (left out when missing).
    pub fn select(
        media: &dyn DriverMedia,
        origin: &MediaOrigin,
        catalog: &Catalog,
        os: &str,
        arch: Arch,
        bus: FinalBus,
        sha256: &dyn Fn(&[u8]) -> String,
    ) -> Result<StorageMedia> {
        let index = MediaIndex::new(media)?;
        let mut set = select_indexed(media, &index, catalog, os, arch, &[bus.role()]).map_err(
            |e| match e {
                crate::drivers::Error::NoDirectory { .. } => Error::NoStorageDriver {
                    role: bus.role(),
                    os: os.to_string(),
                    arch,
                },
                e => Error::Media(e),
            },
        )?;
        for role in Role::ALL.into_iter().filter(|r| *r != bus.role()) {
            match select_indexed(media, &index, catalog, os, arch, &[role]) {
                Ok(s) => {
                    set.warnings.extend(s.warnings);
                    set.drivers.extend(s.drivers);
                }
                Err(e) => set.warnings.push(format!("{role} driver left out: {e}")),
            }
        }
        StorageMedia::load(media, origin, &set, sha256)
    }

    /// The driver filling `role`, if selected.
    pub fn driver(&self, role: Role) -> Option<&MediaDriver> {
        self.drivers.iter().find(|d| d.selected.role == role)
    }
}

/// Read access to the guest's volumes as they are before the plan.
pub trait GuestAccess {
    /// Whether file `path` (`/`-separated, case-insensitive) exists on
    /// `volume`.
    fn exists(&self, volume: &VolumeRef, path: &str) -> bool;
    /// The bytes of file `path` on `volume`, when it exists and holds at
    /// most `max` bytes.
    fn read(&self, volume: &VolumeRef, path: &str, max: u64) -> Option<Vec<u8>>;
    /// Size and SHA-256 (lowercase hex) of file `path` on `volume`, when
    /// it exists and holds at most `max` bytes.
    fn digest(&self, volume: &VolumeRef, path: &str, max: u64) -> Option<(u64, String)>;
    /// The partitions of the VM's disks (for the BCD device check).
    fn partitions(&self) -> Vec<PartitionId>;
}

/// What [`plan_storage`] returns.
#[derive(Debug, Clone, Default)]
pub struct StoragePlan {
    /// The actions, in the order they should be applied.
    pub actions: Vec<PlannedAction>,
    /// Things the admin should know that need no action (the plan's
    /// `Manual` actions say what must be done).
    pub warnings: Vec<String>,
}

/// A hive being planned against: where it is and its current contents.
pub struct Reg<'h> {
    /// Where the hive is.
    pub hive_ref: HiveRef,
    /// Its contents before the plan.
    pub hive: &'h Hive,
}

/// Current value `name` of `key`, if present and readable.
pub fn get_value(h: &Hive, key: &str, name: &str) -> Option<Value> {
    h.get_key(key).ok()??.value(name).ok()??.data().ok()
}

/// Whether `key` exists.
pub fn has_key(h: &Hive, key: &str) -> bool {
    matches!(h.get_key(key), Ok(Some(_)))
}

/// Names of the subkeys of `key` (empty when absent).
pub fn subkeys(h: &Hive, key: &str) -> Vec<String> {
    match h.get_key(key) {
        Ok(Some(k)) => k
            .subkeys()
            .map(|v| v.iter().filter_map(|s| s.name().ok()).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The plan under construction: actions that would change nothing are
/// dropped, a value set twice keeps the last data.
#[derive(Debug, Default)]
pub struct Out {
    /// The plan.
    pub plan: StoragePlan,
    keys: HashSet<String>,
}

fn lc(s: &str) -> String {
    s.to_lowercase()
}

impl Out {
    fn push(&mut self, reason: &str, a: Action) {
        self.plan.actions.push(PlannedAction::new(FIXER, reason, a));
    }

    fn note_key(&mut self, hive: &HiveRef, key: &str) {
        let mut p = String::new();
        for c in key.split('\\') {
            if !p.is_empty() {
                p.push('\\');
            }
            p.push_str(c);
            self.keys.insert(format!("{}|{}", hive.path, lc(&p)));
        }
    }

    /// Set a value unless it already holds `data`.
    pub fn set(&mut self, reg: &Reg, key: &str, name: &str, data: RegData, reason: &str) {
        let want = data.to_value();
        if let Some(cur) = get_value(reg.hive, key, name) {
            if cur.kind() == want.kind() && cur.to_bytes() == want.to_bytes() {
                return;
            }
        }
        for pa in self.plan.actions.iter_mut() {
            if let Action::SetValue {
                hive,
                key: k,
                name: n,
                data: d,
            } = &mut pa.action
            {
                if *hive == reg.hive_ref && lc(k) == lc(key) && lc(n) == lc(name) {
                    *d = data;
                    return;
                }
            }
        }
        self.note_key(&reg.hive_ref, key);
        self.push(
            reason,
            Action::SetValue {
                hive: reg.hive_ref.clone(),
                key: key.to_string(),
                name: name.to_string(),
                data,
            },
        );
    }

    /// Create a key unless it exists or an earlier action creates it.
    pub fn create_key(&mut self, reg: &Reg, key: &str, reason: &str) {
        if has_key(reg.hive, key)
            || self
                .keys
                .contains(&format!("{}|{}", reg.hive_ref.path, lc(key)))
        {
            return;
        }
        self.note_key(&reg.hive_ref, key);
        self.push(
            reason,
            Action::CreateKey {
                hive: reg.hive_ref.clone(),
                key: key.to_string(),
            },
        );
    }

    /// Delete a value if present.
    pub fn delete_value(&mut self, reg: &Reg, key: &str, name: &str, reason: &str) {
        let present =
            matches!(reg.hive.get_key(key), Ok(Some(k)) if matches!(k.value(name), Ok(Some(_))));
        if present {
            self.push(
                reason,
                Action::DeleteValue {
                    hive: reg.hive_ref.clone(),
                    key: key.to_string(),
                    name: name.to_string(),
                },
            );
        }
    }

    /// Delete a key if present.
    pub fn delete_key(&mut self, reg: &Reg, key: &str, reason: &str) {
        if has_key(reg.hive, key) {
            self.push(
                reason,
                Action::DeleteKey {
                    hive: reg.hive_ref.clone(),
                    key: key.to_string(),
                },
            );
        }
    }

    /// A file or other non-registry action.
    pub fn action(&mut self, a: Action, reason: &str) {
        if !self.plan.actions.iter().any(|p| p.action == a) {
            self.push(reason, a);
        }
    }

    /// Something the admin must do.
    pub fn manual(&mut self, text: String) {
        self.push("cannot be fixed offline", Action::Manual { text });
    }

    /// A warning.
    pub fn warn(&mut self, text: String) {
        if !self.plan.warnings.contains(&text) {
            self.plan.warnings.push(text);
        }
    }
}

/// Join a system-volume path under the system root.
pub fn under_root(install: &WindowsInstall, rel: &str) -> String {
    if install.systemroot.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{}", install.systemroot, rel)
    }
}

/// Windows generation, as far as boot storage cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// XP, Server 2003 (NT 5.x): IDE bootstrap, MergeIDE.
    Nt5,
    /// Vista, 7, Server 2008/R2 (NT 6.0/6.1): msahci.
    Nt60,
    /// Windows 8 / Server 2012 and later: storahci.
    Nt62,
}

impl Generation {
    /// From the NT version.
    pub fn of(install: &WindowsInstall) -> Generation {
        match (install.major, install.minor) {
            (..=5, _) => Generation::Nt5,
            (6, 0 | 1) => Generation::Nt60,
            _ => Generation::Nt62,
        }
    }
}

/// Refuse when an inspection blocker says so.
pub fn check_blockers(install: &WindowsInstall) -> Result<()> {
    let refusing: Vec<Blocker> = install
        .blockers
        .iter()
        .filter(|b| b.refuse)
        .cloned()
        .collect();
    if refusing.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        product: install.product_name.clone(),
        volume: match install.system.partition {
            Some(p) => format!("disk {} partition {p}", install.system.disk),
            None => format!("disk {}", install.system.disk),
        },
        blockers: refusing,
    })
}

/// Plan the boot-storage fix of `install` for the final `bus`.
///
/// `system` and `software` are the install's hives as they are now (logs
/// replayed); `media` the drivers selected for the install's OS and
/// architecture (the storage driver of `bus` must be among them); `guest`
/// reads the guest's volumes (inbox driver files, BCD stores, the ESP).
/// Errors: a refusing blocker, no storage driver for the bus, an INF
/// without what the fix needs.
pub fn plan_storage(
    install: &WindowsInstall,
    system: &Hive,
    software: &Hive,
    media: &StorageMedia,
    bus: FinalBus,
    guest: &dyn GuestAccess,
) -> Result<StoragePlan> {
    check_blockers(install)?;
    let drv = media
        .driver(bus.role())
        .ok_or_else(|| Error::NoStorageDriver {
            role: bus.role(),
            os: install.os_id.clone(),
            arch: install.arch,
        })?;
    let sys = Reg {
        hive_ref: install.system_hive.clone(),
        hive: system,
    };
    let soft = Reg {
        hive_ref: install.software_hive.clone(),
        hive: software,
    };
    let mut out = Out::default();
    for w in &media.warnings {
        out.warn(format!("virtio-win: {w}"));
    }
    let svc = service::plan_service(install, &sys, drv, &mut out)?;
    stage::plan_driver_file(install, drv, &svc, &mut out)?;
    let mut temporary = Vec::new();
    if has_key(system, driverdb::ROOT) {
        temporary = driverdb::plan_driverdb(install, &sys, drv, &svc, &mut out)?;
    } else {
        cdd::plan_cdd(install, &sys, drv, &svc, &mut out)?;
    }
    bootstrap::plan_bootstrap(install, &sys, guest, &mut out);
    stage::plan_staging(install, &soft, media, &temporary, &mut out);
    bcd::plan_bcd(install, guest, &mut out);
    for cs in &install.control_sets.in_use {
        out.set(
            &sys,
            &format!(r"{cs}\Control\CrashControl"),
            "AutoReboot",
            RegData::Dword(0),
            "keep a blue screen on screen instead of rebooting, so a failed boot can be read",
        );
    }
    Ok(out.plan)
}
