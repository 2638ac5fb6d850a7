//! The Linux fix of `migrate`: decide per Linux install whether the guest
//! must boot once to fix itself ([`plan_install`], used by
//! [`super::fixers::LinuxFixer`]), and run that bootstrap boot on the
//! staged output disks ([`bootstrap_linux`], a stage of `run_inner` after
//! the offline executor and before the domains are moved into place).
//!
//! The bootstrap boot is [`crate::linuxfix::run_bootstrap`]: the guest's
//! own kernel and initrd (read from the staged outputs with
//! [`guest::linux::read_file`]) plus our archive; its own
//! `update-initramfs`/`dracut` rebuilds the initramfs with the virtio
//! drivers in a chroot of its root, the files the inspection planned are
//! rewritten, interface names are pinned to their MACs. The decision and
//! the boot's inputs are both derived from the plan (`plan.inspection`,
//! `plan.vm`), so what `plan.json` lists is what the boot does.

use super::fixers::VmView;
use super::{Options, Plan, Report};
use crate::linuxfix::{self, Bootstrap, BootstrapReport, FileEdit, LinkPin, VIRTIO_MODULES};
use anyhow::{Context, Result};
use domain::{OsFamily, VmModel};
use guest::geometry::Bus;
use guest::inspect::{ForeignTool, LinuxInstall, VmInspection};
use guest::plan::{Action, PlannedAction};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fixer name of the Linux actions.
pub const FIXER: &str = "linux";

/// Largest kernel image read from the guest.
const MAX_KERNEL: u64 = 256 << 20;
/// Largest initrd read from the guest (each image).
const MAX_INITRD: u64 = 1 << 30;
/// Largest kernel config read.
const MAX_KCONFIG: u64 = 16 << 20;
/// Time limit of the bootstrap boot (dracut under TCG takes minutes).
const BOOT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The `Manual` text when the Linux fix is not run (no install readable,
/// or `--no-bootstrap-boot`).
pub const NOT_CHECKED: &str = "Linux: initramfs not checked for virtio_blk/virtio_scsi; if the final domain drops to an (initramfs) shell, boot the bootstrap domain and rebuild the initramfs with the virtio modules";

/// The Linux install the bootstrap boot fixes: the one on the boot disk,
/// else the first found.
pub fn target_install(model: &VmModel, ins: &VmInspection) -> Option<usize> {
    let boot = model.boot_disk().unwrap_or(0);
    ins.linux
        .iter()
        .position(|l| {
            l.boot
                .as_ref()
                .or(l.root.as_ref())
                .is_some_and(|v| v.disk == boot)
        })
        .or(if ins.linux.is_empty() { None } else { Some(0) })
}

/// A name for messages (`Debian GNU/Linux 12 (bookworm)`).
pub fn install_name(l: &LinuxInstall) -> String {
    l.pretty_name
        .clone()
        .or_else(|| {
            l.distro
                .as_ref()
                .map(|d| format!("{d} {}", l.version.clone().unwrap_or_default()))
        })
        .unwrap_or_else(|| "Linux".into())
        .trim()
        .to_string()
}

/// Why the install needs the bootstrap boot on `final_bus` (empty: it
/// does not).
pub fn boot_reasons(l: &LinuxInstall, final_bus: Bus) -> Vec<String> {
    let mut why = vec![];
    let initrd = l
        .default_boot
        .as_ref()
        .and_then(|b| b.initrd.last().cloned())
        .unwrap_or_else(|| "the default initrd".into());
    match &l.virtio {
        None => why.push(format!(
            "{initrd} was not read, so whether it drives virtio is unknown"
        )),
        Some(v) => {
            let (ok, module) = match final_bus {
                Bus::VirtioScsi => (v.scsi, "virtio_scsi"),
                _ => (v.blk, "virtio_blk"),
            };
            if !ok {
                why.push(format!(
                    "{initrd} lacks {module} (its storage drivers: {}), so the root is not found on {}",
                    if v.storage_drivers.is_empty() {
                        "none found".to_string()
                    } else {
                        v.storage_drivers.join(", ")
                    },
                    final_bus.name()
                ));
            }
        }
    }
    if !l.device_names.is_empty() {
        let names: Vec<String> = l
            .device_names
            .iter()
            .map(|d| format!("{} in {}:{}", d.device, d.file, d.line))
            .collect();
        why.push(format!(
            "bus-specific device names ({}) change on virtio",
            names.join(", ")
        ));
    } else if !l.edits.is_empty() {
        let files: Vec<&str> = l.edits.iter().map(|e| e.path.as_str()).collect();
        why.push(format!("{} must be rewritten", files.join(", ")));
    }
    let pins = interface_names(l);
    if !pins.is_empty() {
        why.push(format!(
            "network configs name {} (names follow the virtual hardware and change on KVM)",
            pins.join(", ")
        ));
    }
    if l.lvm_devices_file {
        why.push("/etc/lvm/devices/system.devices lists the old disks' IDs (LVM stops activating when they change)".into());
    }
    for t in removable_tools(l) {
        why.push(format!(
            "{} tools installed from a tarball ({}) rebuild modules for the old hypervisor; their uninstaller runs in the guest",
            t.vendor, t.location
        ));
    }
    why
}

/// Tarball-installed tools of another hypervisor whose own uninstaller
/// the bootstrap boot runs.
pub fn removable_tools(l: &LinuxInstall) -> impl Iterator<Item = &ForeignTool> {
    l.foreign_tools
        .iter()
        .filter(|t| t.kind == "tarball" && t.uninstall.is_some())
}

/// The interface names the configs use, in inspection order, without
/// `lo`, VLAN suffixes (`eth0.100` pins `eth0`) and aliases (`eth0:1`).
pub fn interface_names(l: &LinuxInstall) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for i in &l.interfaces {
        let base = i
            .name
            .split([':', '.'])
            .next()
            .unwrap_or_default()
            .to_string();
        if base.is_empty() || base == "lo" || out.contains(&base) {
            continue;
        }
        out.push(base);
    }
    out
}

/// The interface pins: each name to the MAC its config names, else to
/// the VM's NICs in order (the domains keep the source MACs). Names no
/// MAC can be found for are returned as problems.
pub fn link_pins(l: &LinuxInstall, model: &VmModel) -> (Vec<LinkPin>, Vec<String>) {
    let mut pins = vec![];
    let mut problems = vec![];
    for (k, name) in interface_names(l).into_iter().enumerate() {
        let own = l
            .interfaces
            .iter()
            .filter(|i| i.name.split([':', '.']).next() == Some(name.as_str()))
            .find_map(|i| i.mac.clone());
        match own.or_else(|| model.nics.get(k).map(|n| n.mac.clone())) {
            Some(mac) => pins.push(LinkPin {
                mac: mac.to_ascii_lowercase(),
                name,
            }),
            None => problems.push(format!(
                "interface {name}: its config names no MAC and the VM has {} NIC(s), so its name is not pinned",
                model.nics.len()
            )),
        }
    }
    (pins, problems)
}

/// What is missing for a bootstrap boot (the default entry's kernel,
/// initrd, release), or None when it can run.
fn missing(l: &LinuxInstall) -> Option<String> {
    let Some(b) = &l.default_boot else {
        return Some(format!(
            "no default boot entry was found ({})",
            l.boot_config
                .as_deref()
                .map(|c| format!("boot loader config {c}"))
                .unwrap_or_else(|| "no boot loader config was read".into())
        ));
    };
    let mut m = vec![];
    if b.kernel.is_empty() {
        m.push("kernel image");
    }
    if b.initrd.is_empty() {
        m.push("initrd");
    }
    if b.release.is_none() {
        m.push("kernel release");
    }
    (!m.is_empty()).then(|| format!("the default boot entry lacks: {}", m.join(", ")))
}

/// Plan the Linux fix of one install: the `LinuxBootstrap` steps with
/// their reasons, a `Manual` line when it cannot run, or nothing when no
/// boot is needed (then the note says so). Notes go to the plan's
/// warnings.
pub fn plan_install(
    l: &LinuxInstall,
    model: &VmModel,
    final_bus: Bus,
    bootstrap: bool,
    notes: &mut Vec<String>,
) -> Vec<PlannedAction> {
    let name = install_name(l);
    let why = boot_reasons(l, final_bus);
    let boots = !why.is_empty() && bootstrap && missing(l).is_none();
    let mut out = foreign_tools(l, &name, boots, notes);
    if why.is_empty() {
        notes.push(format!(
            "{name}: no bootstrap boot needed: the initrd drives {} and nothing bus-specific was found",
            final_bus.name()
        ));
        return out;
    }
    let manual =
        |reason: String, text: String| PlannedAction::new(FIXER, reason, Action::Manual { text });
    if !bootstrap {
        out.push(manual(
            format!(
                "{name}: --no-bootstrap-boot: not fixed ({})",
                why.join("; ")
            ),
            NOT_CHECKED.into(),
        ));
        return out;
    }
    if let Some(m) = missing(l) {
        out.push(manual(
            format!("{name}: the bootstrap boot cannot run: {m}"),
            format!("Linux: {m}, so the initramfs was not rebuilt for virtio ({}); rebuild it in the bootstrap domain", why.join("; ")),
        ));
        return out;
    }
    let Some(b) = l.default_boot.as_ref() else {
        return out;
    };
    out.extend(bootstrap_steps(l, b, model, &name, &why, notes));
    out
}

/// Other hypervisors' tools: a note each (they stay idle on KVM), a
/// `Manual` line for a tarball install the bootstrap boot does not remove
/// (no uninstaller found, or no boot).
fn foreign_tools(
    l: &LinuxInstall,
    name: &str,
    boots: bool,
    notes: &mut Vec<String>,
) -> Vec<PlannedAction> {
    let mut out = vec![];
    for t in &l.foreign_tools {
        if boots && t.kind == "tarball" && t.uninstall.is_some() {
            continue;
        }
        notes.push(format!(
            "{name}: {} tools installed ({} {} at {}): left in place; they stay idle off their hypervisor, remove them after the first boot",
            t.vendor, t.kind, t.name, t.location
        ));
        if t.kind == "tarball" {
            out.push(PlannedAction::new(
                FIXER,
                format!("{name}: {} tools installed from a tarball ({})", t.vendor, t.location),
                Action::Manual {
                    text: format!("Linux: uninstall the {} tools tarball install ({}) after the first boot (its own uninstaller), it may rebuild modules for the old hypervisor", t.vendor, t.name),
                },
            ));
        }
    }
    out
}

/// The `LinuxBootstrap` steps for `l`, whose default entry is `b` and
/// which needs the boot for the reasons `why`.
fn bootstrap_steps(
    l: &LinuxInstall,
    b: &guest::inspect::LinuxBoot,
    model: &VmModel,
    name: &str,
    why: &[String],
    notes: &mut Vec<String>,
) -> Vec<PlannedAction> {
    let mut out = vec![];
    let initrd = b.initrd.last().cloned().unwrap_or_default();
    let step = |step: &str, detail: String, reason: String| {
        PlannedAction::new(
            FIXER,
            reason,
            Action::LinuxBootstrap {
                step: step.into(),
                detail,
            },
        )
    };
    out.push(step(
        "rebuild-initramfs",
        format!(
            "{} for kernel {}: add {} to {initrd} (the old one kept as {initrd}.hyper2kvm-backup)",
            l.initramfs_tool
                .as_deref()
                .unwrap_or("the guest's update-initramfs or dracut"),
            b.release.as_deref().unwrap_or_default(),
            VIRTIO_MODULES.join(" ")
        ),
        format!("{name}: {}", why.join("; ")),
    ));
    for e in &l.edits {
        out.push(step(
            &format!("edit-{}", e.path),
            format!("rewrite {} (backup {}.hyper2kvm-backup)", e.path, e.path),
            format!("{name}: {}", e.reason),
        ));
    }
    let (pins, problems) = link_pins(l, model);
    for p in &pins {
        let files: Vec<String> = l
            .interfaces
            .iter()
            .filter(|i| i.name.split([':', '.']).next() == Some(p.name.as_str()))
            .map(|i| format!("{} ({})", i.file, i.kind))
            .collect();
        out.push(step(
            &format!("link-{}", p.name),
            format!(
                "/etc/systemd/network/10-hyper2kvm-{}.link: {} -> {}",
                p.name, p.mac, p.name
            ),
            format!(
                "{name}: {} configure {}; the name would change on KVM",
                files.join(", "),
                p.name
            ),
        ));
    }
    notes.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
    if l.lvm_devices_file {
        out.push(step(
            "lvm-devices",
            "move /etc/lvm/devices/system.devices aside".into(),
            format!("{name}: LVM's device list names the old disks' IDs"),
        ));
    }
    for t in removable_tools(l) {
        out.push(step(
            &format!("remove-{}-tools", t.vendor),
            format!(
                "run {} in the guest (the tools' own uninstaller; a failure is reported, not fatal)",
                t.uninstall.as_deref().unwrap_or_default()
            ),
            format!(
                "{name}: {} tools installed from a tarball ({}) rebuild their modules for the old hypervisor at each boot and kernel update",
                t.vendor, t.location
            ),
        ));
    }
    if l.selinux.as_deref() == Some("enforcing") {
        out.push(step(
            "selinux-relabel",
            "touch /.autorelabel".into(),
            format!("{name}: SELinux is enforcing and the boot rewrites files"),
        ));
    }
    out
}

/// The Linux part of the plan for the whole VM (see [`plan_linux`]).
pub fn plan_vm(vm: &VmView) -> Vec<PlannedAction> {
    let mut notes = vec![];
    let out = plan_linux(
        vm.model,
        vm.inspection,
        vm.final_bus,
        vm.linux_bootstrap,
        &mut notes,
    );
    vm.warnings.borrow_mut().extend(notes);
    out
}

/// The Linux part of the plan: [`plan_install`] for the install on the
/// boot disk, a note for other installs that would need fixing, a loud
/// `Manual` line for a Linux-declared VM without a readable install.
pub fn plan_linux(
    model: &VmModel,
    ins: &VmInspection,
    final_bus: Bus,
    bootstrap: bool,
    notes: &mut Vec<String>,
) -> Vec<PlannedAction> {
    let Some(t) = target_install(model, ins) else {
        if model.guest_os.family != OsFamily::Linux {
            return vec![];
        }
        return vec![PlannedAction::new(
            FIXER,
            "the VM is declared Linux but no Linux install could be read on its disks (an unreadable or unsupported filesystem, or encrypted): nothing was checked",
            Action::Manual {
                text: NOT_CHECKED.into(),
            },
        )];
    };
    let out = plan_install(&ins.linux[t], model, final_bus, bootstrap, notes);
    for (i, l) in ins.linux.iter().enumerate() {
        let why = boot_reasons(l, final_bus);
        if i != t && !why.is_empty() {
            notes.push(format!(
                "{} (another Linux install, not on the boot disk) is not fixed: {}",
                install_name(l),
                why.join("; ")
            ));
        }
    }
    out
}

/// Whether the plan runs a bootstrap boot.
pub fn plan_boots(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| matches!(a.action, Action::LinuxBootstrap { .. }))
}

/// The guest files the boot needs, read from the staged outputs.
struct GuestFiles {
    kernel: Vec<u8>,
    initrd: Vec<u8>,
    kconfig: Option<guest::linux::kconfig::KernelConfig>,
}

fn read_guest_files(paths: &[PathBuf], ins: &VmInspection, l: &LinuxInstall) -> Result<GuestFiles> {
    let b = l
        .default_boot
        .as_ref()
        .context("the plan's Linux install has no default boot entry")?;
    let mut opened = vec![];
    for p in paths {
        opened.push(
            vdisk::open(p).with_context(|| format!("cannot open the staged {}", p.display()))?,
        );
    }
    let refs: Vec<&dyn vdisk::Disk> = opened.iter().map(|d| d.as_ref()).collect();
    let read = |path: &str, max: u64| {
        guest::linux::read_file(&refs, ins, l, path, max)
            .with_context(|| format!("reading {path} from the converted disks"))
    };
    let kernel = read(&b.kernel, MAX_KERNEL)?;
    // The images load in order (an early-microcode one first); the
    // kernel unpacks them concatenated, so one file carries them all.
    let mut initrd = vec![];
    for p in &b.initrd {
        initrd.extend(read(p, MAX_INITRD)?);
        initrd.resize(initrd.len().div_ceil(4) * 4, 0);
    }
    let kconfig = b.release.as_ref().and_then(|r| {
        read(&format!("/boot/config-{r}"), MAX_KCONFIG)
            .ok()
            .map(|t| guest::linux::kconfig::KernelConfig::parse(&String::from_utf8_lossy(&t)))
    });
    Ok(GuestFiles {
        kernel,
        initrd,
        kconfig,
    })
}

/// The bootstrap boot's inputs from the plan and the guest files.
fn bootstrap_spec(
    o: &Options,
    plan: &Plan,
    l: &LinuxInstall,
    files: GuestFiles,
    disks: Vec<(PathBuf, String)>,
    work_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<Bootstrap> {
    let b = l.default_boot.as_ref().context("no default boot entry")?;
    let controller = match guest::linux::initrd::Initrd::parse(&files.initrd) {
        Ok(i) => linuxfix::choose_controller(&i.report(), files.kconfig.as_ref()),
        Err(e) => {
            notes.push(format!(
                "bootstrap boot: the initrd could not be listed ({e}); the disks go on IDE"
            ));
            linuxfix::Controller::Ide
        }
    };
    let machine = if controller == linuxfix::Controller::Sata {
        "q35"
    } else {
        "pc"
    };
    let accel: crate::validate::Accel = o.accel.parse().map_err(anyhow::Error::msg)?;
    let argv: Vec<String> = ["qemu-system-x86_64", "-machine", machine]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (accel, why) = crate::validate::accel::resolve_accel(accel, &argv);
    notes.extend(why.into_iter().map(|w| format!("bootstrap boot: {w}")));
    let (links, _) = link_pins(l, &plan.vm);
    Ok(Bootstrap {
        disks,
        kernel: files.kernel,
        initrd: files.initrd,
        cmdline: b.cmdline.clone(),
        initrd_path: b.initrd.last().cloned().unwrap_or_default(),
        kernel_version: b.release.clone().unwrap_or_default(),
        controller,
        edits: l
            .edits
            .iter()
            .map(|e| FileEdit {
                path: e.path.clone(),
                old: e.old.clone().into_bytes(),
                new: e.new.clone().into_bytes(),
            })
            .collect(),
        links,
        mounts: l.boot_mounts.clone(),
        uninstallers: removable_tools(l)
            .filter_map(|t| t.uninstall.clone())
            .collect(),
        work_dir: work_dir.to_path_buf(),
        timeout: BOOT_TIMEOUT,
        memory_mib: plan.vm.memory_mib.clamp(1024, 2048) as u32,
        accel: accel.name().into(),
    })
}

/// Run the planned bootstrap boot on the staged output disks (`staged`:
/// (staging path, final path), disks first). Its serial log joins the
/// staged outputs; its report goes into `report.bootstrap`. A failed step
/// fails the migration with the guest's own error text.
pub fn bootstrap_linux(
    o: &Options,
    staging: &Path,
    plan: &Plan,
    staged: &mut Vec<(PathBuf, PathBuf)>,
    report: &mut Report,
) -> Result<()> {
    if !plan_boots(plan) {
        return Ok(());
    }
    let t = target_install(&plan.vm, &plan.inspection)
        .context("the plan has bootstrap steps but no Linux install")?;
    let l = &plan.inspection.linux[t];
    let paths: Vec<PathBuf> = staged
        .iter()
        .take(plan.disks.len())
        .map(|s| s.0.clone())
        .collect();
    // Read everything, then close the disks before QEMU writes them.
    let files = read_guest_files(&paths, &plan.inspection, l)?;
    let disks = paths
        .iter()
        .map(|p| (p.clone(), o.format.as_str().to_string()))
        .collect();
    let work = staging.join("linux-bootstrap");
    let mut notes = vec![];
    let spec = bootstrap_spec(o, plan, l, files, disks, &work, &mut notes)?;
    if let Some(p) = report.plan.as_mut() {
        p.warnings.extend(notes);
    }
    let mut r: BootstrapReport = linuxfix::run_bootstrap(&spec).with_context(|| {
        format!(
            "the bootstrap boot of {} ({:?} controller, {} accel) failed; nothing was written",
            install_name(l),
            spec.controller,
            spec.accel
        )
    })?;
    let log = o
        .out
        .join(format!("{}-bootstrap-boot-serial.log", plan.vm.safe_name()));
    staged.push((r.serial_log.clone(), log.clone()));
    r.serial_log = log;
    report.bootstrap = Some(r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest::inspect::{
        ForeignTool, LinuxBoot, LinuxDeviceName, LinuxEdit, LinuxInterface, LinuxVirtio,
    };
    use guest::plan::VolumeRef;

    fn model(macs: &[&str]) -> VmModel {
        let mut m = VmModel::new("t", domain::SourceKind::Vmx);
        m.guest_os = domain::GuestOs::parse("debian12-64");
        for mac in macs {
            m.nics.push(domain::Nic {
                model: domain::NicModel::E1000,
                mac: mac.to_string(),
                mac_generated: false,
                network: None,
            });
        }
        m
    }

    fn virtio_ok() -> LinuxInstall {
        LinuxInstall {
            root: Some(VolumeRef {
                disk: 0,
                partition: Some(1),
            }),
            root_fs: Some("ext4".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            boot_config: Some("/boot/grub/grub.cfg".into()),
            default_boot: Some(LinuxBoot {
                title: Some("Debian GNU/Linux".into()),
                kernel: "/boot/vmlinuz-6.1.0-18-amd64".into(),
                initrd: vec!["/boot/initrd.img-6.1.0-18-amd64".into()],
                cmdline: "root=UUID=1 ro".into(),
                release: Some("6.1.0-18-amd64".into()),
            }),
            initramfs_tool: Some("initramfs-tools".into()),
            virtio: Some(LinuxVirtio {
                blk: true,
                scsi: true,
                storage_drivers: vec!["ahci".into(), "virtio_blk".into()],
                kernel_config: true,
            }),
            ..Default::default()
        }
    }

    fn host_only() -> LinuxInstall {
        let mut l = virtio_ok();
        l.virtio = Some(LinuxVirtio {
            blk: false,
            scsi: false,
            storage_drivers: vec!["ahci".into(), "ata_piix".into(), "sd_mod".into()],
            kernel_config: true,
        });
        l
    }

    fn steps(a: &[PlannedAction]) -> Vec<String> {
        a.iter()
            .map(|a| match &a.action {
                Action::LinuxBootstrap { step, .. } => step.clone(),
                Action::Manual { text } => format!("manual: {text}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn initrd_with_virtio_and_nothing_bus_specific_needs_no_boot() {
        let mut notes = vec![];
        let a = plan_install(&virtio_ok(), &model(&[]), Bus::VirtioBlk, true, &mut notes);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(
            notes,
            vec!["Debian GNU/Linux 12 (bookworm): no bootstrap boot needed: the initrd drives virtio-blk and nothing bus-specific was found".to_string()]
        );
    }

    #[test]
    fn host_only_initrd_plans_every_step_with_reasons() {
        let mut l = host_only();
        l.device_names = vec![LinuxDeviceName {
            file: "/etc/fstab".into(),
            line: 2,
            device: "/dev/sda1".into(),
            replacement: Some("UUID=1".into()),
        }];
        l.edits = vec![LinuxEdit {
            path: "/etc/fstab".into(),
            old: "/dev/sda1 / ext4 defaults 0 1\n".into(),
            new: "UUID=1 / ext4 defaults 0 1\n".into(),
            reason: "/dev/sda1 -> UUID=1".into(),
        }];
        l.interfaces = vec![
            LinuxInterface {
                name: "lo".into(),
                file: "/etc/network/interfaces".into(),
                kind: "ifupdown".into(),
                mac: None,
                addresses: vec![],
            },
            LinuxInterface {
                name: "ens192".into(),
                file: "/etc/network/interfaces".into(),
                kind: "ifupdown".into(),
                mac: None,
                addresses: vec!["192.0.2.10/24".into()],
            },
        ];
        l.lvm_devices_file = true;
        l.selinux = Some("enforcing".into());
        let mut notes = vec![];
        let a = plan_install(
            &l,
            &model(&["00:50:56:aa:bb:cc"]),
            Bus::VirtioBlk,
            true,
            &mut notes,
        );
        assert_eq!(
            steps(&a),
            [
                "rebuild-initramfs",
                "edit-/etc/fstab",
                "link-ens192",
                "lvm-devices",
                "selinux-relabel"
            ]
        );
        assert!(
            a[0].reason.contains("/boot/initrd.img-6.1.0-18-amd64 lacks virtio_blk (its storage drivers: ahci, ata_piix, sd_mod)")
                && a[0].reason.contains("/dev/sda1 in /etc/fstab:2"),
            "{}",
            a[0].reason
        );
        match &a[0].action {
            Action::LinuxBootstrap { detail, .. } => assert!(
                detail.starts_with("initramfs-tools for kernel 6.1.0-18-amd64: add virtio_blk"),
                "{detail}"
            ),
            _ => unreachable!(),
        }
        match &a[2].action {
            Action::LinuxBootstrap { detail, .. } => {
                assert!(detail.ends_with("00:50:56:aa:bb:cc -> ens192"), "{detail}")
            }
            _ => unreachable!(),
        }
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn only_the_final_bus_driver_counts() {
        let mut l = virtio_ok();
        l.virtio.as_mut().unwrap().scsi = false;
        let mut notes = vec![];
        assert!(plan_install(&l, &model(&[]), Bus::VirtioBlk, true, &mut notes).is_empty());
        let a = plan_install(&l, &model(&[]), Bus::VirtioScsi, true, &mut notes);
        assert_eq!(steps(&a), ["rebuild-initramfs"]);
        assert!(a[0].reason.contains("lacks virtio_scsi"), "{}", a[0].reason);
    }

    #[test]
    fn missing_boot_pieces_and_no_bootstrap_give_manual_lines() {
        let mut notes = vec![];
        let mut l = host_only();
        l.default_boot = None;
        let a = plan_install(&l, &model(&[]), Bus::VirtioBlk, true, &mut notes);
        assert_eq!(a.len(), 1);
        assert!(
            a[0].reason.contains(
                "no default boot entry was found (boot loader config /boot/grub/grub.cfg)"
            ),
            "{}",
            a[0].reason
        );
        let mut l = host_only();
        l.default_boot.as_mut().unwrap().initrd.clear();
        l.default_boot.as_mut().unwrap().release = None;
        let a = plan_install(&l, &model(&[]), Bus::VirtioBlk, true, &mut notes);
        assert!(
            a[0].reason
                .ends_with("the default boot entry lacks: initrd, kernel release"),
            "{}",
            a[0].reason
        );
        assert!(matches!(a[0].action, Action::Manual { .. }));
        let a = plan_install(&host_only(), &model(&[]), Bus::VirtioBlk, false, &mut notes);
        assert_eq!(steps(&a), [format!("manual: {NOT_CHECKED}")]);
        assert!(
            a[0].reason.contains("--no-bootstrap-boot"),
            "{}",
            a[0].reason
        );
    }

    #[test]
    fn interface_pins_use_the_configs_mac_then_the_nics_in_order() {
        let mut l = virtio_ok();
        let iface = |name: &str, mac: Option<&str>| LinuxInterface {
            name: name.into(),
            file: "/etc/network/interfaces".into(),
            kind: "ifupdown".into(),
            mac: mac.map(str::to_string),
            addresses: vec![],
        };
        l.interfaces = vec![
            iface("eth0", Some("00:0C:29:11:22:33")),
            iface("eth0:1", None),
            iface("ens224.100", None),
            iface("ens256", None),
        ];
        let (pins, problems) = link_pins(&l, &model(&["00:50:56:00:00:01", "00:50:56:00:00:02"]));
        let got: Vec<(&str, &str)> = pins
            .iter()
            .map(|p| (p.name.as_str(), p.mac.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("eth0", "00:0c:29:11:22:33"),
                ("ens224", "00:50:56:00:00:02")
            ]
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .starts_with("interface ens256: its config names no MAC and the VM has 2 NIC(s)"),
            "{problems:?}"
        );
        // Interface names alone are a reason to boot.
        let mut notes = vec![];
        let a = plan_install(
            &l,
            &model(&["00:50:56:00:00:01"]),
            Bus::VirtioBlk,
            true,
            &mut notes,
        );
        // One NIC: only the name with its own MAC is pinned, the others
        // are notes.
        assert_eq!(steps(&a), ["rebuild-initramfs", "link-eth0"]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("interface ens224: its config names no MAC"));
    }

    #[test]
    fn foreign_tools_are_reported_and_tarballs_need_the_admin() {
        let mut l = virtio_ok();
        l.foreign_tools = vec![
            ForeignTool {
                vendor: "vmware".into(),
                kind: "package".into(),
                name: "open-vm-tools".into(),
                location: "/var/lib/dpkg/status".into(),
                uninstall: None,
            },
            ForeignTool {
                vendor: "vmware".into(),
                kind: "tarball".into(),
                name: "vmware-tools".into(),
                location: "/etc/vmware-tools".into(),
                uninstall: None,
            },
        ];
        let mut notes = vec![];
        let a = plan_install(&l, &model(&[]), Bus::VirtioBlk, true, &mut notes);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(matches!(&a[0].action, Action::Manual { text } if text.contains("tarball")));
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes[0].contains("open-vm-tools") && notes[2].contains("no bootstrap boot needed")
        );
    }

    #[test]
    fn a_tarball_with_its_uninstaller_is_removed_in_the_bootstrap_boot() {
        let tarball = ForeignTool {
            vendor: "vmware".into(),
            kind: "tarball".into(),
            name: "locations".into(),
            location: "/etc/vmware-tools/locations".into(),
            uninstall: Some("/usr/bin/vmware-uninstall-tools.pl".into()),
        };
        // Alone it is a reason to boot: the initrd already has virtio.
        let mut l = virtio_ok();
        l.foreign_tools = vec![tarball.clone()];
        let mut notes = vec![];
        let a = plan_install(&l, &model(&[]), Bus::VirtioBlk, true, &mut notes);
        assert_eq!(steps(&a), ["rebuild-initramfs", "remove-vmware-tools"]);
        assert!(a[1].reason.contains("/etc/vmware-tools/locations"), "{a:?}");
        assert!(
            matches!(&a[1].action, Action::LinuxBootstrap { detail, .. } if detail.contains("run /usr/bin/vmware-uninstall-tools.pl"))
        );
        // Without the boot it stays a manual line.
        let a = plan_install(&l, &model(&[]), Bus::VirtioBlk, false, &mut notes);
        assert!(
            a.iter()
                .any(|x| matches!(&x.action, Action::Manual { text } if text.contains("tarball"))),
            "{a:?}"
        );
        assert!(!steps(&a).contains(&"remove-vmware-tools".to_string()));
    }

    #[test]
    fn linux_vm_without_a_readable_install_gets_a_loud_manual_line() {
        let mut m = model(&[]);
        let ins = VmInspection::default();
        let mut notes = vec![];
        let a = plan_linux(&m, &ins, Bus::VirtioBlk, true, &mut notes);
        assert_eq!(steps(&a), [format!("manual: {NOT_CHECKED}")]);
        assert!(a[0].reason.contains("no Linux install could be read"));
        m.guest_os = domain::GuestOs::parse("win10-64");
        assert!(plan_linux(&m, &ins, Bus::VirtioBlk, true, &mut notes).is_empty());
        // The boot disk's install is the one fixed; another is a note.
        let mut other = host_only();
        other.root = Some(VolumeRef {
            disk: 1,
            partition: Some(1),
        });
        other.pretty_name = Some("Other".into());
        let ins = VmInspection {
            linux: vec![other, virtio_ok()],
            ..Default::default()
        };
        let m = model(&[]);
        assert_eq!(target_install(&m, &ins), Some(1));
        let a = plan_linux(&m, &ins, Bus::VirtioBlk, true, &mut notes);
        assert!(a.is_empty());
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("Other (another Linux install")),
            "{notes:?}"
        );
    }
}
