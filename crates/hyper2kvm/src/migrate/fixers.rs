//! Guest fixers: one per concern or OS family. A fixer gets a read-only
//! view of the whole VM ([`VmView`]: the model, every source disk, the
//! inspection of all of them, the geometry audit and plan per disk, the
//! driver media plan) and returns typed [`PlannedAction`]s, each with its
//! reason. It writes nothing: `plan.json` lists the actions, and one
//! executor ([`guest::apply::execute`]) carries them out on the staged
//! output disks after conversion.
//!
//! Adding a fixer: implement [`Fixer`] (usually in its own module, e.g.
//! the Windows storage fixer over `guest::windows`) and add it to
//! [`fixers`]. Actions address volumes by disk index and partition number
//! (`guest::plan::VolumeRef`) and hives by their path on a volume, as the
//! inspection reports them.

use super::virtio_win::VirtioWinPlan;
use domain::{OsFamily, VmModel};
use guest::audit::Audit;
use guest::fixgeo::{FixMode, GeometryPlan};
use guest::geometry::Bus;
use guest::inspect::VmInspection;
use guest::plan::{Action, PlannedAction};
use vdisk::Disk;

/// What a fixer sees of the VM: everything, read-only.
pub struct VmView<'a> {
    /// The VM as its metadata describes it (boot disk already chosen).
    pub model: &'a VmModel,
    /// The source disks, in the model's order (never written).
    pub disks: &'a [&'a dyn Disk],
    /// What is on the disks.
    pub inspection: &'a VmInspection,
    /// Geometry audit per disk (None: no table, or a UEFI guest).
    pub audits: &'a [Option<Audit>],
    /// Geometry plan per disk (None: nothing to audit or `--geometry off`).
    pub geometry: &'a [Option<GeometryPlan>],
    /// The driver media chosen for the guest, if any.
    pub virtio_win: Option<&'a VirtioWinPlan>,
    /// Bus of the bootstrap domain's disks.
    pub bootstrap_bus: Bus,
    /// Bus of the final domain's disks.
    pub final_bus: Bus,
    /// The Linux bootstrap boot may run (`--no-bootstrap-boot` clears it).
    pub linux_bootstrap: bool,
    /// Where fixers put what the admin should know but need not act on
    /// (they become plan warnings).
    pub warnings: &'a std::cell::RefCell<Vec<String>>,
}

/// A guest fixer.
pub trait Fixer {
    /// Short name (`geometry`, `windows-storage`, …), recorded with each
    /// action.
    fn name(&self) -> &'static str;
    /// The actions this fixer wants, each with its reason. Errors stop
    /// the migration before anything is written.
    fn plan(&self, vm: &VmView) -> anyhow::Result<Vec<PlannedAction>>;
}

/// Rewrites BPB/MBR geometry on the output (`RewriteGeometry`) or pins a
/// BIOS geometry in the domains (`PinGeometry`), per the geometry plan of
/// each disk.
pub struct GeometryFixer;

impl Fixer for GeometryFixer {
    fn name(&self) -> &'static str {
        "geometry"
    }
    fn plan(&self, vm: &VmView) -> anyhow::Result<Vec<PlannedAction>> {
        let mut out = vec![];
        for (disk, g) in vm.geometry.iter().enumerate() {
            let Some(g) = g else { continue };
            let why = |what: &str| {
                format!(
                    "{what} ({} finding(s){})",
                    g.reasons.len(),
                    if g.automatic {
                        ", automatic choice"
                    } else {
                        ", as requested"
                    }
                )
            };
            match (g.mode, g.rewrite_geometry, g.pin) {
                (Some(FixMode::Rewrite), Some(c), _) => out.push(PlannedAction::new(
                    self.name(),
                    why(&format!(
                        "BPB/MBR geometry does not match what the BIOS presents on disk {disk}: rewrite to {} heads / {} sectors",
                        c.heads, c.sectors
                    )),
                    Action::RewriteGeometry {
                        disk,
                        cylinders: c.cylinders,
                        heads: c.heads,
                        sectors: c.sectors,
                    },
                )),
                (Some(FixMode::Pin), _, Some(p)) => out.push(PlannedAction::new(
                    self.name(),
                    why(&format!(
                        "the boot code of disk {disk} expects {} heads / {} sectors: pin it in both domains",
                        p.heads, p.sectors
                    )),
                    Action::PinGeometry {
                        disk,
                        cylinders: p.cylinders,
                        heads: p.heads,
                        sectors: p.sectors,
                    },
                )),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// What a real migration still needs that hyper2kvm does not do yet, as
/// `Manual` actions on the boot disk's guest. Boot storage of the Windows
/// installs found on the disks is [`WindowsStorageFixer`]'s; this one
/// names it only for a Windows guest where no install was found.
pub struct PendingOsWork;

impl Fixer for PendingOsWork {
    fn name(&self) -> &'static str {
        "guest-os"
    }
    fn plan(&self, vm: &VmView) -> anyhow::Result<Vec<PlannedAction>> {
        if vm.model.boot_disk().is_none() {
            return Ok(vec![]);
        }
        let os = &vm.model.guest_os;
        let windows = os.family == OsFamily::Windows || !vm.inspection.windows.is_empty();
        let mut v = vec![];
        let mut need = |reason: &str, text: &str| {
            v.push(PlannedAction::new(
                "guest-os",
                reason,
                Action::Manual { text: text.into() },
            ))
        };
        // Installs found on the disks are [`WindowsStorageFixer`]'s: it
        // fixes them or says loudly why not. A Windows guest without an
        // install found cannot be fixed offline at all.
        if windows && vm.inspection.windows.is_empty() {
            need(
                "no Windows install was found on the disks, so none was fixed offline",
                NO_STORAGE_DRIVER,
            );
            if os.is_legacy_windows() {
                need("MergeIDE is not applied offline yet", NO_MERGEIDE);
            }
        }
        // With media, every install found gets the first-boot runner (or
        // the migration stops on a refusal), which retires the old tools
        // and carries static addresses over.
        let runner_planned = vm.virtio_win.is_some() && !vm.inspection.windows.is_empty();
        if windows && !runner_planned {
            need(
                "no first-boot runner is planned (no --virtio-win media, or no Windows install found), so the old hypervisor's tools are not retired",
                "Windows: VMware Tools / Hyper-V integration services not disabled; uninstall them after the first boot",
            );
            need(
                "no first-boot runner is planned, so static addresses do not move to the new NIC",
                "Windows: static IP settings are tied to the old NIC and will not move to the new one automatically",
            );
        }
        Ok(v)
    }
}

/// The `Manual` text of a Windows guest whose boot storage was not fixed.
pub const NO_STORAGE_DRIVER: &str = "Windows: VirtIO storage driver not installed: the final domain will fail with STOP 0x7B (INACCESSIBLE_BOOT_DEVICE); boot the bootstrap domain, install the drivers from the virtio-win CD, then switch to the final domain";

/// The `Manual` text of an XP/2003 guest whose IDE bootstrap was not fixed.
pub const NO_MERGEIDE: &str = "Windows XP/2003: MergeIDE not applied: the bootstrap domain uses IDE on i440fx, which the inbox atapi/intelide drivers handle only if the source already used an Intel IDE controller";

/// The Windows boot-storage fix ([`crate::winfix`]) for every Windows
/// install found on the disks, when `--virtio-win` media is given: the
/// storage driver of the final bus at boot start in every control set,
/// its device binding, the bootstrap controller (AHCI, or MergeIDE on
/// XP/2003), staged drivers, BCD backup and checks, AutoReboot=0. An
/// install it cannot fix (no media, no driver for the bus on it, an
/// unreadable hive) gets the loud STOP 0x7B `Manual` line instead; one
/// that must not be modified offline (hibernated, BitLocker, ...) stops
/// the migration before anything is written.
pub struct WindowsStorageFixer;

impl Fixer for WindowsStorageFixer {
    fn name(&self) -> &'static str {
        guest::windows::storage::FIXER
    }
    fn plan(&self, vm: &VmView) -> anyhow::Result<Vec<PlannedAction>> {
        use guest::windows::storage::FinalBus;
        let bus = match vm.final_bus {
            Bus::VirtioScsi => FinalBus::VirtioScsi,
            _ => FinalBus::VirtioBlk,
        };
        let macs: Vec<String> = vm.model.nics.iter().map(|n| n.mac.clone()).collect();
        let mut out = vec![];
        for w in &vm.inspection.windows {
            let why = match vm.virtio_win {
                None => "no --virtio-win media was given".to_string(),
                Some(m) => {
                    match crate::winfix::plan_windows(
                        vm.disks,
                        vm.inspection,
                        w,
                        &m.media,
                        bus,
                        &macs,
                    ) {
                        Ok(p) => {
                            out.extend(p.actions);
                            vm.warnings.borrow_mut().extend(p.warnings);
                            continue;
                        }
                        Err(e) if e.is_refusal() => {
                            return Err(anyhow::Error::new(e).context(format!(
                                "{} on disk {} cannot be fixed offline; nothing was written",
                                w.product_name, w.system.disk
                            )))
                        }
                        Err(e) => format!("the Windows storage fix failed: {e}"),
                    }
                }
            };
            out.push(PlannedAction::new(
                "guest-os",
                format!("{}: {why}", w.product_name),
                Action::Manual {
                    text: NO_STORAGE_DRIVER.into(),
                },
            ));
            if w.major < 6 {
                out.push(PlannedAction::new(
                    "guest-os",
                    format!("{}: {why}", w.product_name),
                    Action::Manual {
                        text: NO_MERGEIDE.into(),
                    },
                ));
            }
        }
        Ok(out)
    }
}

/// The Linux fix ([`super::linux`]): for the Linux install on the boot
/// disk, nothing when its initrd drives the final virtio bus and nothing
/// bus-specific was found (a note says so); otherwise the
/// `LinuxBootstrap` steps the guest runs in its bootstrap boot (rebuild
/// the initramfs, rewrite files to `UUID=`, pin interface names to their
/// MACs, move LVM's device list aside, SELinux relabel), each with its
/// reason. A `Manual` line instead when the boot cannot run (no default
/// entry, kernel or initrd; `--no-bootstrap-boot`) or a Linux-declared VM
/// shows no readable install.
pub struct LinuxFixer;

impl Fixer for LinuxFixer {
    fn name(&self) -> &'static str {
        super::linux::FIXER
    }
    fn plan(&self, vm: &VmView) -> anyhow::Result<Vec<PlannedAction>> {
        Ok(super::linux::plan_vm(vm))
    }
}

/// All fixers, in the order they run.
pub fn fixers() -> Vec<Box<dyn Fixer>> {
    vec![
        Box::new(GeometryFixer),
        Box::new(WindowsStorageFixer),
        Box::new(LinuxFixer),
        Box::new(PendingOsWork),
    ]
}

/// Run `fixers` over the VM; every action carries its fixer's name.
pub fn plan_all(fixers: &[Box<dyn Fixer>], vm: &VmView) -> anyhow::Result<Vec<PlannedAction>> {
    let mut out = vec![];
    for f in fixers {
        let mut acts = f.plan(vm)?;
        for a in &mut acts {
            if a.fixer.is_empty() {
                a.fixer = f.name().into();
            }
        }
        out.extend(acts);
    }
    Ok(out)
}
