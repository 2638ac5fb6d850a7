//! Guest fixers: one per concern or OS family, each planning its changes
//! from the inspection and applying them to the output (a copy-on-write
//! overlay over the source, converted afterwards). This is where the
//! Windows registry/driver work plugs in: implement [`GuestFixer`] and add
//! it to [`fixers`].

use domain::{OsFamily, VmModel};
use guest::audit::Audit;
use guest::fixgeo::{FixMode, GeometryPlan};
use serde::Serialize;
use vdisk::DiskWrite;

/// What a fixer sees of one disk.
pub struct FixContext<'a> {
    /// The VM.
    pub model: &'a VmModel,
    /// Index of the disk in `model.disks`.
    pub disk_index: usize,
    /// Partition/geometry audit of the disk (None when it has no table).
    pub audit: Option<&'a Audit>,
    /// The geometry plan for this disk.
    pub geometry: Option<&'a GeometryPlan>,
}

/// One planned change, or one change a real migration still needs that no
/// fixer can make yet.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFix {
    /// Fixer name.
    pub fixer: &'static str,
    /// Disk index.
    pub disk: usize,
    /// What will be (or would have to be) done.
    pub description: String,
    /// False when hyper2kvm cannot do it yet: reported, not applied.
    pub supported: bool,
}

/// A guest fixer.
pub trait GuestFixer {
    /// Short name.
    fn name(&self) -> &'static str;
    /// Plan changes for one disk.
    fn plan(&self, cx: &FixContext) -> Vec<PlannedFix>;
    /// Apply the supported planned changes; returns a line per change.
    fn apply(&self, cx: &FixContext, out: &dyn DiskWrite) -> anyhow::Result<Vec<String>>;
}

/// Rewrites BPB/MBR geometry when the geometry plan says *rewrite* (a pin
/// needs no disk change: it goes into the domain definitions).
pub struct GeometryFixer;

impl GuestFixer for GeometryFixer {
    fn name(&self) -> &'static str {
        "geometry"
    }
    fn plan(&self, cx: &FixContext) -> Vec<PlannedFix> {
        let Some(g) = cx.geometry else { return vec![] };
        let description = match g.mode {
            Some(FixMode::Rewrite) => format!(
                "rewrite BPB and MBR CHS fields to the target geometry{}: {}",
                g.rewrite_geometry
                    .map(|c| format!(" {}/{}/{}", c.cylinders, c.heads, c.sectors))
                    .unwrap_or_default(),
                g.reasons.join("; ")
            ),
            Some(FixMode::Pin) => format!(
                "pin the BIOS geometry in both domains ({}): {}",
                g.qemu_device_props.clone().unwrap_or_default(),
                g.reasons.join("; ")
            ),
            None => return vec![],
        };
        vec![PlannedFix {
            fixer: self.name(),
            disk: cx.disk_index,
            description,
            supported: true,
        }]
    }
    fn apply(&self, cx: &FixContext, out: &dyn DiskWrite) -> anyhow::Result<Vec<String>> {
        match (cx.geometry, cx.audit) {
            (Some(g), Some(a)) if g.mode == Some(FixMode::Rewrite) => {
                Ok(guest::fixgeo::apply(out, a, g)?
                    .into_iter()
                    .map(|c| format!("offset {:#x}: {}", c.offset, c.what))
                    .collect())
            }
            _ => Ok(vec![]),
        }
    }
}

/// Reports, per guest, what a real migration still needs that hyper2kvm
/// does not do yet (Windows driver injection comes in a later release).
pub struct PendingOsWork;

impl GuestFixer for PendingOsWork {
    fn name(&self) -> &'static str {
        "guest-os"
    }
    fn plan(&self, cx: &FixContext) -> Vec<PlannedFix> {
        let d = &cx.model.disks[cx.disk_index];
        if !d.boot {
            return vec![];
        }
        let os = &cx.model.guest_os;
        let mut v = vec![];
        let mut need = |s: &str| {
            v.push(PlannedFix {
                fixer: "guest-os",
                disk: cx.disk_index,
                description: s.to_string(),
                supported: false,
            })
        };
        match os.family {
            OsFamily::Windows => {
                need("Windows: VirtIO storage driver not installed: the final domain will fail with STOP 0x7B (INACCESSIBLE_BOOT_DEVICE); boot the bootstrap domain, install the drivers from the virtio-win CD, then switch to the final domain");
                if os.is_legacy_windows() {
                    need("Windows XP/2003: MergeIDE not applied: the bootstrap domain uses IDE on i440fx, which the inbox atapi/intelide drivers handle only if the source already used an Intel IDE controller");
                }
                need("Windows: VMware Tools / Hyper-V integration services not disabled; uninstall them after the first boot");
                need("Windows: static IP settings are tied to the old NIC and will not move to the new one automatically");
            }
            OsFamily::Linux => {
                need("Linux: initramfs not checked for virtio_blk/virtio_scsi; if the final domain drops to an (initramfs) shell, boot the bootstrap domain and rebuild the initramfs with the virtio modules");
            }
            _ => {}
        }
        v
    }
    fn apply(&self, _cx: &FixContext, _out: &dyn DiskWrite) -> anyhow::Result<Vec<String>> {
        Ok(vec![])
    }
}

/// All fixers, in the order they run.
pub fn fixers() -> Vec<Box<dyn GuestFixer>> {
    vec![Box::new(GeometryFixer), Box::new(PendingOsWork)]
}
