//! The virtio-win media of a Windows migration: which drivers on it fit
//! the guest (chosen from the media by [`guest::drivers`], checked against
//! their INF files) and what the bootstrap domain's CD-ROM holds.
//!
//! `--virtio-win` may be the virtio-win ISO (attached as it is) or a
//! directory tree such as the distribution package's
//! `/usr/share/virtio-win` (then a small ISO with just this guest's
//! drivers is built into the output directory and attached). A media that
//! lacks the storage driver for the guest is not an error — the bootstrap
//! domain still boots on SATA/IDE — but the plan says plainly that the
//! final domain cannot boot until one is installed.

use crate::driverdisk::{self, DiskDriver};
use anyhow::Result;
use domain::writer::BlockBus;
use domain::{OsFamily, VmModel};
use guest::drivers::media::DriverMedia;
use guest::drivers::select::DriverSet;
use guest::drivers::{Arch, Role};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What the plan says about the virtio-win media.
#[derive(Debug, Clone, Serialize)]
pub struct VirtioWinPlan {
    /// The media given.
    pub media: PathBuf,
    /// Catalog OS id the drivers were chosen for.
    pub os_id: Option<String>,
    /// Architecture.
    pub arch: Option<Arch>,
    /// Drivers found for the guest.
    pub drivers: Vec<DiskDriver>,
    /// The ISO the bootstrap domain attaches.
    pub attach: Option<PathBuf>,
    /// Whether `attach` is built by this run from a directory tree.
    pub built: bool,
}

/// The contents of the driver ISO a run builds from a directory tree.
pub struct IsoContents {
    media: Box<dyn DriverMedia>,
    set: DriverSet,
}

impl IsoContents {
    /// Read the drivers' files from the media and write the ISO to `path`
    /// (temporary name, then renamed). Done at write time, not while
    /// planning, so a dry run reads no driver files.
    pub fn write(&self, path: &Path) -> Result<()> {
        let files = driverdisk::disk_files(self.media.as_ref(), &self.set)?;
        driverdisk::write_iso(&files, &driverdisk::volume_id(&self.set), path, false)
    }
}

/// Plan the virtio-win media for `model`; problems become `warnings`.
/// `out` is the output directory (where a built ISO goes). When the media
/// is a directory, the second value holds the ISO to build.
pub fn plan(
    media: &Path,
    model: &VmModel,
    block: BlockBus,
    out: &Path,
    warnings: &mut Vec<String>,
) -> (VirtioWinPlan, Option<IsoContents>) {
    let is_iso = media.is_file();
    let mut p = VirtioWinPlan {
        media: media.to_path_buf(),
        os_id: None,
        arch: None,
        drivers: vec![],
        attach: is_iso.then(|| absolute(media)),
        built: false,
    };
    if model.guest_os.family != OsFamily::Windows {
        warnings.push(format!(
            "--virtio-win {} given for a guest that is not Windows; attached as given",
            media.display()
        ));
        if !is_iso {
            warnings
                .push("a virtio-win directory is only turned into a CD for Windows guests".into());
        }
        return (p, None);
    }
    let Some(ver) = model.guest_os.windows else {
        warnings.push(format!(
            "the Windows version is unknown (guest OS hint '{}'): no drivers chosen from {}; \
             give --os (e.g. win10) to choose them",
            model.guest_os.raw,
            media.display()
        ));
        return (p, None);
    };
    let arch = match model.guest_os.arch {
        domain::Arch::X86 => Arch::X86,
        domain::Arch::X86_64 => Arch::Amd64,
        domain::Arch::Unknown => {
            warnings.push("guest architecture unknown: choosing amd64 drivers".into());
            Arch::Amd64
        }
    };
    p.arch = Some(arch);
    let storage = match block {
        BlockBus::VirtioBlk => Role::StorageBlk,
        BlockBus::VirtioScsi => Role::StorageScsi,
    };
    // Everything else the media has for this guest goes on the CD too
    // (network, balloon, serial, display...), each only if present.
    let optional: Vec<Role> = Role::ALL.into_iter().filter(|r| *r != storage).collect();
    let chosen = driverdisk::open_media(media).and_then(|m| {
        let cat = driverdisk::load_catalog(None)?;
        let set =
            driverdisk::select_drivers(m.as_ref(), &cat, ver.id(), arch, &[storage], &optional)?;
        Ok((m, set))
    });
    match chosen {
        Ok((m, set)) => {
            p.os_id = Some(set.os_id.clone());
            p.drivers = driverdisk::describe(&set);
            warnings.extend(
                set.warnings
                    .iter()
                    .filter(|w| !w.contains("driver left out") || w.starts_with("net "))
                    .map(|w| format!("virtio-win: {w}")),
            );
            if !is_iso {
                let iso = out.join(format!("virtio-win-{}-{}.iso", set.os_id, arch));
                p.attach = Some(iso);
                p.built = true;
                return (p, Some(IsoContents { media: m, set }));
            }
        }
        Err(e) => warnings.push(format!(
            "virtio-win {}: {e:#}: the final domain will fail with STOP 0x7B until a VirtIO \
             storage driver is installed",
            media.display()
        )),
    }
    (p, None)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
