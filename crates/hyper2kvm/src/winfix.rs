//! The Windows boot-storage fix, wired to real disks and media: the glue
//! between the planner ([`guest::windows::storage`]), the driver media
//! ([`crate::driverdisk`]) and the executor ([`guest::apply::execute`]),
//! shared by `hyper2kvm fix-windows` and `migrate`.
//!
//! [`plan_windows`] opens the virtio-win media (directory tree or ISO),
//! selects and hashes the drivers for the install's OS and architecture,
//! opens SYSTEM and SOFTWARE with their transaction logs replayed, reads
//! the guest's volumes read-only ([`VolumeAccess`]) and returns the typed
//! actions. Nothing is written. [`Sources`] is the executor's file
//! opener for host files and ISO members.

use crate::driverdisk;
use guest::drivers::catalog::Catalog;
use guest::inspect::{DiskInfo, VmInspection, WindowsInstall};
use guest::plan::{FileSource, HiveRef, VolumeRef};
use guest::windows::firstboot;
use guest::windows::hives;
use guest::windows::storage::{
    self, FinalBus, GuestAccess, MediaOrigin, PartitionId, StorageMedia, StoragePlan,
};
use guest::windows::volume::Vol;
use regf::Hive;
use std::io::Read;
use std::path::{Path, PathBuf};
use vdisk::Disk;

/// Errors of planning the Windows fix.
#[derive(Debug, thiserror::Error)]
pub enum WinFixError {
    /// The planner refused or failed (refusing blockers, no storage driver
    /// for the bus on the media, a broken INF).
    #[error(transparent)]
    Plan(#[from] storage::Error),
    /// The virtio-win media could not be opened.
    #[error("virtio-win media {path}: {source:#}")]
    Media {
        /// The media given.
        path: PathBuf,
        /// Cause.
        source: anyhow::Error,
    },
    /// The first-boot runner could not be planned.
    #[error(transparent)]
    FirstBoot(#[from] guest::windows::firstboot::Error),
    /// A hive of the install could not be read.
    #[error("disk {disk}: {source}")]
    Hive {
        /// Disk of the hive.
        disk: usize,
        /// Cause.
        source: hives::HiveError,
    },
    /// The volume of a hive is not one inspection found or cannot be opened.
    #[error("{volume}: {msg}")]
    Volume {
        /// The volume.
        volume: String,
        /// What went wrong.
        msg: String,
    },
}

impl WinFixError {
    /// Whether the install must not be modified offline (a refusing
    /// blocker: hibernation, Fast Startup, BitLocker, dirty NTFS, a hive
    /// that cannot be replayed).
    pub fn is_refusal(&self) -> bool {
        matches!(self, WinFixError::Plan(storage::Error::Refused { .. }))
    }
    /// Whether the media lacks the storage driver of the bus.
    pub fn is_missing_driver(&self) -> bool {
        matches!(
            self,
            WinFixError::Plan(storage::Error::NoStorageDriver { .. })
        )
    }
}

/// Lowercase hex SHA-256 of `b`.
pub fn sha256_hex(b: &[u8]) -> String {
    let mut r: &[u8] = b;
    // Reading from a slice cannot fail.
    guest::apply::sha256_reader(&mut r)
        .map(|(h, _)| h)
        .unwrap_or_default()
}

/// The media's origin for the executor: an ISO file or a directory root,
/// made absolute so the plan stays valid from any working directory.
pub fn media_origin(path: &Path) -> MediaOrigin {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if abs.is_file() {
        MediaOrigin::Iso(abs)
    } else {
        MediaOrigin::Dir(abs)
    }
}

/// Open the virtio-win media and select the drivers for `install` on
/// `bus` (the storage driver is required).
pub fn select_media(
    media: &Path,
    install: &WindowsInstall,
    bus: FinalBus,
) -> Result<StorageMedia, WinFixError> {
    let m = driverdisk::open_media(media).map_err(|source| WinFixError::Media {
        path: media.to_path_buf(),
        source,
    })?;
    Ok(StorageMedia::select(
        &*m,
        &media_origin(media),
        &Catalog::builtin(),
        &install.os_id,
        install.arch,
        bus,
        &sha256_hex,
    )?)
}

/// Read-only access to every NTFS/FAT volume of the VM, as the planner
/// needs it (inbox driver files, BCD stores, the ESP's loaders).
pub struct VolumeAccess<'a> {
    vols: Vec<(VolumeRef, Vol<'a>)>,
    parts: Vec<PartitionId>,
}

impl<'a> VolumeAccess<'a> {
    /// Open the volumes `infos` describe on `disks` (`disks[i]` is disk
    /// `i`); volumes that cannot be opened are left out (the planner then
    /// sees their files as missing and says so).
    pub fn new(disks: &[&'a dyn Disk], infos: &[DiskInfo]) -> VolumeAccess<'a> {
        let mut vols = vec![];
        let mut parts = vec![];
        for (disk, info) in disks.iter().zip(infos) {
            for v in &info.volumes {
                if let Ok(Some(vol)) = Vol::open(*disk, v.start, v.len, &v.fs) {
                    vols.push((v.volume.clone(), vol));
                }
            }
            let Ok(table) = guest::partition::read_table(*disk) else {
                continue;
            };
            let gpt_disk = table.gpt.as_ref().map(|g| g.header.disk_guid.clone());
            for p in table.data_partitions() {
                parts.push(PartitionId {
                    volume: VolumeRef {
                        disk: info.index,
                        partition: Some(p.index),
                    },
                    start: p.start,
                    mbr_signature: if gpt_disk.is_none() {
                        info.mbr_signature
                    } else {
                        None
                    },
                    gpt_disk: gpt_disk.clone(),
                    gpt_partition: p.guid.clone(),
                });
            }
        }
        VolumeAccess { vols, parts }
    }

    /// The opened volume `v`.
    pub fn vol(&self, v: &VolumeRef) -> Option<&Vol<'a>> {
        self.vols.iter().find(|(r, _)| r == v).map(|(_, v)| v)
    }

    /// Open the hive `h` with its logs replayed.
    pub fn hive(&self, h: &HiveRef) -> Result<Hive, WinFixError> {
        let vol = self.vol(&h.volume).ok_or_else(|| WinFixError::Volume {
            volume: guest::windows::vol_name(&h.volume),
            msg: format!("cannot open the volume holding {}", h.path),
        })?;
        hives::open(vol, &h.path)
            .map(|o| o.hive)
            .map_err(|source| WinFixError::Hive {
                disk: h.volume.disk,
                source,
            })
    }
}

impl GuestAccess for VolumeAccess<'_> {
    fn exists(&self, volume: &VolumeRef, path: &str) -> bool {
        self.vol(volume)
            .is_some_and(|v| v.file_size(path).is_some())
    }
    fn read(&self, volume: &VolumeRef, path: &str, max: u64) -> Option<Vec<u8>> {
        let v = self.vol(volume)?;
        if v.file_size(path)? > max {
            return None;
        }
        v.read(path).ok()
    }
    fn digest(&self, volume: &VolumeRef, path: &str, max: u64) -> Option<(u64, String)> {
        self.read(volume, path, max)
            .map(|b| (b.len() as u64, sha256_hex(&b)))
    }
    fn partitions(&self) -> Vec<PartitionId> {
        self.parts.clone()
    }
}

/// Plan the Windows fixes of `install` (found by `inspection` on `disks`)
/// for the final `bus` with the drivers of `media`: the boot-storage fix,
/// then the first-boot runner that installs the staged drivers, retires
/// the old hypervisor's tools and brings static addresses back
/// (`nic_macs`: the VM's NIC MACs in metadata order, empty when unknown).
/// Both are planned against the hives as they are. Nothing is written.
pub fn plan_windows(
    disks: &[&dyn Disk],
    inspection: &VmInspection,
    install: &WindowsInstall,
    media: &Path,
    bus: FinalBus,
    nic_macs: &[String],
) -> Result<StoragePlan, WinFixError> {
    // Refuse before reading the media: nothing to hash for a guest that
    // must not be touched.
    storage::check_blockers(install)?;
    let sm = select_media(media, install, bus)?;
    let access = VolumeAccess::new(disks, &inspection.disks);
    let system = access.hive(&install.system_hive)?;
    let software = access.hive(&install.software_hive)?;
    let mut plan = storage::plan_storage(install, &system, &software, &sm, bus, &access)?;
    let mut fo = firstboot::FirstBootOptions::from_storage_plan(install, &plan, bus);
    fo.nic_macs = nic_macs.to_vec();
    let fb = firstboot::plan_firstboot(install, &system, &software, &fo)?;
    plan.actions.extend(fb.actions);
    plan.warnings.extend(fb.warnings);
    // Risks that do not stop the fix (a BitLocker data volume, …) are
    // said, once each.
    for b in install.blockers.iter().filter(|b| !b.refuse) {
        if !plan.warnings.contains(&b.message) {
            plan.warnings.push(b.message.clone());
        }
    }
    Ok(plan)
}

/// The executor's file opener: host files, inline bytes, and members of
/// ISO images (the virtio-win ISO) read through the `iso9660` crate into an
/// anonymous temporary file. Each ISO is opened once and kept for the
/// following members (the executor opens every source twice: to verify
/// it, then to write it).
#[derive(Default)]
pub struct Sources {
    isos: std::cell::RefCell<Vec<(PathBuf, std::rc::Rc<iso9660::Iso<std::fs::File>>)>>,
}

impl Sources {
    /// Open the bytes of `src`.
    pub fn open(&self, src: &FileSource) -> std::io::Result<Box<dyn Read>> {
        let FileSource::Iso { iso, path } = src else {
            return guest::apply::host_files(src);
        };
        let other = |e: iso9660::Error| std::io::Error::other(format!("{}: {e}", iso.display()));
        let img = self.iso(iso).map_err(other)?;
        let e = img.find(path).map_err(other)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no {path} inside", iso.display()),
            )
        })?;
        let mut tmp = tempfile::tempfile()?;
        img.copy_to(&e, &mut tmp).map_err(other)?;
        std::io::Seek::rewind(&mut tmp)?;
        Ok(Box::new(tmp))
    }

    fn iso(&self, path: &Path) -> Result<std::rc::Rc<iso9660::Iso<std::fs::File>>, iso9660::Error> {
        if let Some((_, i)) = self.isos.borrow().iter().find(|(p, _)| p == path) {
            return Ok(i.clone());
        }
        let i = std::rc::Rc::new(iso9660::Iso::open(path)?);
        self.isos.borrow_mut().push((path.to_path_buf(), i.clone()));
        Ok(i)
    }
}
