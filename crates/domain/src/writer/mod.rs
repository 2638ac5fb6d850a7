//! Domain writers: a [`VmModel`] plus what was converted → libvirt XML
//! ([`libvirt_xml`]) or a QEMU command line and `#!/bin/sh` script
//! ([`qemu_command`]).
//!
//! Both render one device plan built here, so they always agree:
//! - machine `q35` for Vista/2008 and later, Linux, other and every UEFI
//!   guest; `pc` (i440fx) for Windows XP/2003 and older;
//! - [`Phase::Bootstrap`]: the boot disk on SATA/AHCI (q35) or IDE (pc),
//!   other disks next to it (overflow on virtio-blk, with a warning), the
//!   virtio-win ISO on a CD-ROM, then the source VM's CD-ROM images found
//!   on this host (read-only, on the next free ports), NICs on an inbox-driver model (rtl8139
//!   before XP, e1000 for XP–7/2008 R2 and Linux, e1000e for Windows 8+),
//!   standard VGA;
//! - [`Phase::Final`]: virtio-blk or virtio-scsi disks, virtio-net, balloon,
//!   virtio-rng (`/dev/urandom`), qemu-guest-agent channel, pvpanic and
//!   Hyper-V `crash`, video by OS (VGA before Vista, QXL for Vista/7,
//!   virtio for 8+ and Linux);
//! - both: USB tablet, serial console, Hyper-V enlightenments for Windows
//!   Vista and later (relaxed, vapic, spinlocks 8191, vpindex, runtime,
//!   synic, stimer, reset, frequencies, hv-time), clock `localtime` for
//!   Windows unless it uses RealTimeIsUniversal, the source SMBIOS UUID,
//!   SeaBIOS or OVMF (secure-boot build with SMM when the source had
//!   secure boot) with a per-VM NVRAM ([`prepare_nvram`]), a TPM 2.0 CRB
//!   on swtpm when the source had a vTPM.
//!
//! Every PCI device gets an explicit slot on the root bus from one
//! allocator per domain, and the plan is checked for collisions. Every
//! refusal either writer can make is in that plan; [`check`] runs it
//! without rendering, so planning can refuse what the writers would.

mod libvirt;
mod qemu;

pub use libvirt::libvirt_xml;
pub use qemu::{qemu_command, shell_quote, QemuCommand, QemuNetdev, QemuOptions};

use crate::error::{Error, Result};
use crate::guestos::WinVersion;
use crate::model::{DiskMode, FirmwareKind, VmModel, MAX_MEMORY_MIB, MAX_VCPUS};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Which domain to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// First boot on devices the guest has inbox drivers for, with the
    /// virtio-win ISO attached, so the guest can install virtio drivers.
    Bootstrap,
    /// The steady state on virtio devices.
    Final,
}

/// Block device model of the final domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockBus {
    /// One virtio-blk PCI device per disk.
    VirtioBlk,
    /// One virtio-scsi controller, disks as SCSI targets.
    VirtioScsi,
}

/// Format of a converted disk (the libvirt `driver type` / QEMU driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Raw image.
    Raw,
    /// qcow2.
    Qcow2,
}

impl OutputFormat {
    /// `raw` or `qcow2`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Raw => "raw",
            OutputFormat::Qcow2 => "qcow2",
        }
    }
}

/// One converted disk, in the order of [`VmModel::disks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDisk {
    /// Path of the converted image.
    pub path: PathBuf,
    /// Its real format.
    pub format: OutputFormat,
    /// BIOS (logical) geometry to pin, so an old boot loader that
    /// addresses the disk by CHS finds the same layout as on the source.
    pub bios_geometry: Option<vdisk::Chs>,
}

/// Firmware image paths (Debian's `ovmf` package by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfPaths {
    /// OVMF code without secure boot.
    pub code: PathBuf,
    /// OVMF code with secure boot (needs SMM).
    pub code_secboot: PathBuf,
    /// Variable store template, no keys enrolled.
    pub vars: PathBuf,
    /// Variable store template with Microsoft keys enrolled.
    pub vars_secboot: PathBuf,
}

impl Default for OvmfPaths {
    fn default() -> Self {
        let d = Path::new("/usr/share/OVMF");
        OvmfPaths {
            code: d.join("OVMF_CODE_4M.fd"),
            code_secboot: d.join("OVMF_CODE_4M.secboot.fd"),
            vars: d.join("OVMF_VARS_4M.fd"),
            vars_secboot: d.join("OVMF_VARS_4M.ms.fd"),
        }
    }
}

/// Everything a writer needs besides the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainOptions {
    /// Bootstrap or final.
    pub phase: Phase,
    /// Final block bus.
    pub block_bus: BlockBus,
    /// Converted disks, one per model disk, same order.
    pub disks: Vec<OutputDisk>,
    /// virtio-win ISO to attach as a CD-ROM (usually only for bootstrap).
    pub virtio_win_iso: Option<PathBuf>,
    /// Per-VM OVMF variable store (required for UEFI guests).
    pub nvram: Option<PathBuf>,
    /// Windows keeps its RTC in UTC (`RealTimeIsUniversal=1`).
    pub windows_rtc_utc: bool,
    /// libvirt network every NIC joins.
    pub network: String,
    /// Firmware paths.
    pub ovmf: OvmfPaths,
}

impl DomainOptions {
    /// Defaults: virtio-blk, no ISO, no NVRAM, network `default`.
    pub fn new(phase: Phase, disks: Vec<OutputDisk>) -> Self {
        DomainOptions {
            phase,
            block_bus: BlockBus::VirtioBlk,
            disks,
            virtio_win_iso: None,
            nvram: None,
            windows_rtc_utc: false,
            network: "default".into(),
            ovmf: OvmfPaths::default(),
        }
    }
}

/// Copy the OVMF variable template (the Microsoft-keys variant when the
/// source had secure boot) to `<out_dir>/<name>_VARS.fd` and return it.
pub fn prepare_nvram(model: &VmModel, out_dir: &Path, ovmf: &OvmfPaths) -> Result<PathBuf> {
    let src = if model.firmware.secure_boot {
        &ovmf.vars_secboot
    } else {
        &ovmf.vars
    };
    let dest = out_dir.join(format!("{}_VARS.fd", model.safe_name()));
    std::fs::copy(src, &dest).map_err(|e| {
        Error::io(
            src,
            format!("cannot copy the OVMF variable store to {}", dest.display()),
            e,
        )
    })?;
    Ok(dest)
}

/// Machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Machine {
    Q35,
    Pc,
}

/// A slot (and function) on the root PCI bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pci {
    pub slot: u8,
    pub function: u8,
}

struct PciAllocator {
    used: BTreeSet<u8>,
    next: u8,
    last: u8,
}

impl PciAllocator {
    fn new(m: Machine) -> Self {
        match m {
            // 0 host bridge, 1 video, 0x1f ICH9 (LPC, SATA, SMBus)
            Machine::Q35 => PciAllocator {
                used: [0, 1, 0x1f].into(),
                next: 2,
                last: 0x1e,
            },
            // 0 host bridge, 1 PIIX3 (ISA, IDE, USB, PM), 2 video
            Machine::Pc => PciAllocator {
                used: [0, 1, 2].into(),
                next: 3,
                last: 0x1f,
            },
        }
    }
    fn alloc(&mut self, what: &str) -> Result<Pci> {
        while self.next <= self.last {
            let s = self.next;
            self.next += 1;
            if self.used.insert(s) {
                return Ok(Pci {
                    slot: s,
                    function: 0,
                });
            }
        }
        Err(Error::Plan(format!(
            "no free PCI slot left for {what} (too many disks and NICs)"
        )))
    }
}

/// How a disk or CD-ROM is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Attach {
    /// q35 AHCI port 0..5 (`ide.N` in QEMU).
    Sata(u32),
    /// PIIX IDE bus 0/1, unit 0/1.
    Ide(u32, u32),
    /// Its own virtio-blk PCI device.
    VirtioBlk(Pci),
    /// Target on the virtio-scsi controller.
    Scsi(u32),
}

pub(crate) struct PDisk {
    pub path: PathBuf,
    pub format: OutputFormat,
    pub geometry: Option<vdisk::Chs>,
    pub attach: Attach,
    /// 1 for the boot disk, then 2, 3, … in attachment order.
    pub boot_order: u32,
    pub alias: String,
    pub target: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Video {
    Vga,
    Qxl,
    Virtio,
}

/// A CD-ROM drive with an image, read-only.
pub(crate) struct PCdrom {
    pub path: PathBuf,
    pub attach: Attach,
    pub target: String,
    pub alias: String,
}

pub(crate) struct PNic {
    pub mac: String,
    /// libvirt model name; the QEMU device is derived from it.
    pub model: &'static str,
    pub pci: Pci,
}

pub(crate) struct Uefi {
    pub code: PathBuf,
    pub nvram: PathBuf,
    pub secure: bool,
}

/// The device plan both writers render.
pub(crate) struct Plan {
    pub machine: Machine,
    pub uefi: Option<Uefi>,
    pub disks: Vec<PDisk>,
    /// The virtio-win CD first (alias `ua-virtio-win`), then the source
    /// VM's CD-ROM images (bootstrap only, aliases `ua-cdrom<N>`).
    pub cdroms: Vec<PCdrom>,
    pub scsi: Option<Pci>,
    pub nics: Vec<PNic>,
    pub video: (Video, Pci),
    /// q35: qemu-xhci slot; pc: PIIX3 UHCI at 01.2.
    pub usb: Pci,
    pub balloon: Option<Pci>,
    pub rng: Option<Pci>,
    pub vserial: Option<Pci>,
    pub panic: bool,
    pub hyperv: bool,
    pub tpm: bool,
    pub localtime: bool,
    pub warnings: Vec<String>,
}

const KNOWN_CONTROLLERS: &[&str] = &[
    "",
    "lsilogic",
    "lsisas1068",
    "lsilogicsas",
    "pvscsi",
    "virtualscsi",
    "buslogic",
    "ahci",
    "piix3",
    "piix4",
    "ich6",
    "nvme",
    "virtio-scsi",
    "virtio-blk",
    "usb",
    "vmware.sata.ahci",
    "vmware.nvme.controller",
];

fn sd_name(n: u32) -> String {
    let mut s = String::new();
    let mut n = n as i64;
    loop {
        s.insert(0, (b'a' + (n % 26) as u8) as char);
        n = n / 26 - 1;
        if n < 0 {
            break;
        }
    }
    s
}

/// Run every refusal the libvirt and QEMU writers can make for
/// `opts.phase` (memory and vCPUs out of range, an output disk list not
/// matching the model, a UEFI guest without NVRAM, running out of PCI
/// slots, colliding addresses) without rendering anything, and return the
/// warnings the writers would give (dropped devices, attached source
/// CD-ROMs...). [`libvirt_xml`] and [`qemu_command`] build their device
/// plan through the same function, so a model that passes here for both
/// phases cannot be refused by them. Meant for planning, before any disk
/// is converted: the output paths need not exist yet.
pub fn check(model: &VmModel, opts: &DomainOptions) -> Result<Vec<String>> {
    Ok(build_plan(model, opts)?.warnings)
}

/// Memory and vCPUs within what libvirt's schema and QEMU's machine type
/// accept, and a topology that multiplies out to the vCPU count.
fn check_resources(m: &VmModel, machine: Machine) -> Result<()> {
    if m.memory_mib == 0 || m.memory_mib > MAX_MEMORY_MIB {
        return Err(Error::Plan(format!(
            "memory {} MiB is out of range: expected 1 to {MAX_MEMORY_MIB} MiB (64 TiB)",
            m.memory_mib
        )));
    }
    let (max, mt) = match machine {
        Machine::Q35 => (MAX_VCPUS, "q35"),
        Machine::Pc => (255, "pc (i440fx, used for Windows XP/2003 and older)"),
    };
    let c = &m.cpu;
    if c.vcpus == 0 || c.vcpus > max {
        return Err(Error::Plan(format!(
            "{} vCPUs is out of range: expected 1 to {max} for machine type {mt}",
            c.vcpus
        )));
    }
    let product = u64::from(c.sockets) * u64::from(c.cores) * u64::from(c.threads);
    if product != u64::from(c.vcpus) {
        return Err(Error::Plan(format!(
            "CPU topology of {} socket(s) x {} core(s) x {} thread(s) does not make {} vCPUs",
            c.sockets, c.cores, c.threads, c.vcpus
        )));
    }
    Ok(())
}

/// Whether the bootstrap domain attaches disks to IDE on i440fx (legacy
/// Windows on BIOS, whose inbox drivers know no AHCI) rather than SATA on
/// q35. The one place this is decided: the migration plan (geometry audit
/// buses) and the writers both ask here.
pub fn bootstrap_uses_ide(m: &VmModel) -> bool {
    m.guest_os.is_legacy_windows() && m.firmware.kind != FirmwareKind::Uefi
}

pub(crate) fn build_plan(m: &VmModel, o: &DomainOptions) -> Result<Plan> {
    if o.disks.len() != m.disks.len() {
        return Err(Error::Plan(format!(
            "{} output disks given for {} source disks",
            o.disks.len(),
            m.disks.len()
        )));
    }
    let os = &m.guest_os;
    let uefi_fw = m.firmware.kind == FirmwareKind::Uefi;
    let machine = if bootstrap_uses_ide(m) {
        Machine::Pc
    } else {
        Machine::Q35
    };
    check_resources(m, machine)?;
    let mut warnings = Vec::new();
    let mut pci = PciAllocator::new(machine);
    let final_phase = o.phase == Phase::Final;
    let uefi = if uefi_fw {
        let nvram = o.nvram.clone().ok_or_else(|| {
            Error::Plan("a UEFI guest needs a per-VM NVRAM file (see prepare_nvram)".into())
        })?;
        let secure = m.firmware.secure_boot;
        Some(Uefi {
            code: if secure {
                o.ovmf.code_secboot.clone()
            } else {
                o.ovmf.code.clone()
            },
            nvram,
            secure,
        })
    } else {
        None
    };
    // Boot disk first, then the others in model order.
    let boot = m.boot_disk().unwrap_or(0);
    let mut order: Vec<usize> = (0..m.disks.len()).collect();
    if !order.is_empty() {
        order.retain(|&i| i != boot);
        order.insert(0, boot);
    }
    let mut vd = 0u32;
    let mut sd = 0u32;
    let mut disks = Vec::new();
    let mut legacy_slots: Vec<Attach> = match machine {
        Machine::Q35 => (0..6).map(Attach::Sata).collect(),
        Machine::Pc => vec![
            Attach::Ide(0, 0),
            Attach::Ide(0, 1),
            Attach::Ide(1, 1),
            Attach::Ide(1, 0),
        ],
    };
    // Keep a slot for the virtio-win CD-ROM: the last one on pc (ide1:0),
    // otherwise taken in order after the disks (see plan_cdroms).
    let cd_reserved = o.virtio_win_iso.is_some() && machine == Machine::Pc;
    if cd_reserved {
        legacy_slots.pop();
    }
    let mut scsi_target = 0u32;
    for (n, &i) in order.iter().enumerate() {
        let d = &m.disks[i];
        let out = &o.disks[i];
        if !KNOWN_CONTROLLERS.contains(&d.controller.model.as_str()) {
            warnings.push(format!(
                "disk {} was on an unknown controller type {:?}; attached as {}",
                d.source_name,
                d.controller.model,
                if final_phase {
                    "virtio"
                } else if machine == Machine::Q35 {
                    "SATA"
                } else {
                    "IDE"
                }
            ));
        }
        if matches!(
            d.mode,
            DiskMode::IndependentNonpersistent | DiskMode::Nonpersistent | DiskMode::Undoable
        ) {
            warnings.push(format!(
                "disk {} discarded its writes at power-off in the source ({:?}); the migrated disk keeps them",
                d.source_name, d.mode
            ));
        }
        let attach = if final_phase {
            match o.block_bus {
                BlockBus::VirtioBlk => Attach::VirtioBlk(pci.alloc("a virtio-blk disk")?),
                BlockBus::VirtioScsi => {
                    scsi_target += 1;
                    Attach::Scsi(scsi_target - 1)
                }
            }
        } else if !legacy_slots.is_empty() {
            legacy_slots.remove(0)
        } else {
            warnings.push(format!(
                "bootstrap: no {} port left for disk {}; attached as virtio-blk",
                if machine == Machine::Q35 {
                    "SATA"
                } else {
                    "IDE"
                },
                d.source_name
            ));
            Attach::VirtioBlk(pci.alloc("a virtio-blk disk")?)
        };
        let target = match attach {
            Attach::Ide(b, u) => format!("hd{}", sd_name(b * 2 + u)),
            Attach::VirtioBlk(_) => {
                vd += 1;
                format!("vd{}", sd_name(vd - 1))
            }
            Attach::Sata(_) | Attach::Scsi(_) => {
                sd += 1;
                format!("sd{}", sd_name(sd - 1))
            }
        };
        disks.push(PDisk {
            path: out.path.clone(),
            format: out.format,
            geometry: out.bios_geometry,
            attach,
            boot_order: n as u32 + 1,
            alias: format!("ua-disk{n}"),
            target,
        });
    }
    let scsi = if disks.iter().any(|d| matches!(d.attach, Attach::Scsi(_))) {
        Some(pci.alloc("the virtio-scsi controller")?)
    } else {
        None
    };
    let cdroms = plan_cdroms(m, o, machine, &disks, &mut sd, &mut warnings);
    let win = os.is_windows();
    let nic_model: &'static str = if final_phase {
        "virtio"
    } else if win && os.nt_version().is_some_and(|v| v < (5, 1)) {
        "rtl8139"
    } else if win && os.windows_at_least(WinVersion::Win8) {
        "e1000e"
    } else {
        "e1000"
    };
    let mut nics = Vec::new();
    for n in &m.nics {
        nics.push(PNic {
            mac: n.mac.clone(),
            model: nic_model,
            pci: pci.alloc("a NIC")?,
        });
    }
    let video_kind = if !final_phase || os.is_legacy_windows() {
        Video::Vga
    } else if win && !os.windows_at_least(WinVersion::Win8) {
        Video::Qxl
    } else {
        Video::Virtio
    };
    let video = (
        video_kind,
        Pci {
            slot: if machine == Machine::Q35 { 1 } else { 2 },
            function: 0,
        },
    );
    let usb = match machine {
        Machine::Q35 => pci.alloc("the USB controller")?,
        Machine::Pc => Pci {
            slot: 1,
            function: 2,
        },
    };
    let (balloon, rng, vserial) = if final_phase {
        (
            Some(pci.alloc("the balloon")?),
            Some(pci.alloc("the RNG")?),
            Some(pci.alloc("virtio-serial")?),
        )
    } else {
        (None, None, None)
    };
    if m.vtpm {
        warnings.push(
            "the source VM had a virtual TPM: a new, empty TPM 2.0 is attached; keys sealed in the old vTPM \
             (BitLocker, Windows Hello, credentials) are lost: have BitLocker recovery keys at hand"
                .into(),
        );
    }
    let plan = Plan {
        machine,
        uefi,
        disks,
        cdroms,
        scsi,
        nics,
        video,
        usb,
        balloon,
        rng,
        vserial,
        panic: final_phase,
        hyperv: win && !os.is_legacy_windows(),
        tpm: m.vtpm,
        localtime: win && !o.windows_rtc_utc,
        warnings,
    };
    validate(&plan)?;
    Ok(plan)
}

/// The CD-ROM drives: the virtio-win ISO (pc: on ide1:0, kept free for it;
/// q35: the first SATA port no disk uses), then, in the bootstrap phase
/// only, every source CD-ROM image found on this host, on the next free
/// ports. A drive that finds no port is left out with a warning; each
/// attached source image is noted in the warnings. The final domain
/// carries no source image (it would tie the production VM to the source
/// folder), which is noted too.
fn plan_cdroms(
    m: &VmModel,
    o: &DomainOptions,
    machine: Machine,
    disks: &[PDisk],
    sd: &mut u32,
    warnings: &mut Vec<String>,
) -> Vec<PCdrom> {
    let mut free: Vec<Attach> = match machine {
        Machine::Q35 => (0..6).map(Attach::Sata).collect(),
        Machine::Pc => vec![
            Attach::Ide(1, 0),
            Attach::Ide(0, 0),
            Attach::Ide(0, 1),
            Attach::Ide(1, 1),
        ],
    };
    free.retain(|a| !disks.iter().any(|d| d.attach == *a));
    let port = if machine == Machine::Q35 {
        "SATA"
    } else {
        "IDE"
    };
    let mut out = Vec::new();
    let mut take = |path: &Path, alias: String, free: &mut Vec<Attach>| -> Option<String> {
        if free.is_empty() {
            return None;
        }
        let attach = free.remove(0);
        let target = match attach {
            Attach::Ide(b, u) => format!("hd{}", sd_name(b * 2 + u)),
            _ => {
                *sd += 1;
                format!("sd{}", sd_name(*sd - 1))
            }
        };
        out.push(PCdrom {
            path: path.to_path_buf(),
            attach,
            target: target.clone(),
            alias,
        });
        Some(target)
    };
    if let Some(iso) = &o.virtio_win_iso {
        if take(iso, "ua-virtio-win".into(), &mut free).is_none() {
            warnings.push(format!(
                "no {port} port left for the virtio-win CD-ROM; not attached"
            ));
        }
    }
    let sources = m.cdroms.iter().filter_map(|c| {
        let p = c.path.as_ref()?;
        Some((c.image.as_deref().unwrap_or(""), p))
    });
    for (n, (image, path)) in sources.enumerate() {
        if o.phase == Phase::Final {
            warnings.push(format!(
                "source CD-ROM image {image:?} is attached to the bootstrap domain only, not to the final one"
            ));
            continue;
        }
        match take(path, format!("ua-cdrom{n}"), &mut free) {
            Some(t) => warnings.push(format!(
                "source CD-ROM image {image:?} ({}) is attached to the bootstrap domain as {t}, read-only",
                path.display()
            )),
            None => warnings.push(format!(
                "no {port} port left for the source CD-ROM image {image:?}; not attached"
            )),
        }
    }
    out
}

/// Check that no two devices share a PCI address, a drive address or a
/// target name.
fn validate(p: &Plan) -> Result<()> {
    let mut pcis: Vec<(Pci, &str)> = vec![(p.video.1, "video"), (p.usb, "usb")];
    pcis.extend(p.scsi.map(|x| (x, "virtio-scsi")));
    pcis.extend(p.balloon.map(|x| (x, "balloon")));
    pcis.extend(p.rng.map(|x| (x, "rng")));
    pcis.extend(p.vserial.map(|x| (x, "virtio-serial")));
    pcis.extend(p.nics.iter().map(|n| (n.pci, "nic")));
    let mut attaches: Vec<Attach> = Vec::new();
    let mut targets: Vec<&str> = Vec::new();
    for d in &p.disks {
        if let Attach::VirtioBlk(x) = d.attach {
            pcis.push((x, "disk"));
        }
        attaches.push(d.attach);
        targets.push(&d.target);
    }
    for c in &p.cdroms {
        if !matches!(c.attach, Attach::Sata(_) | Attach::Ide(..)) {
            return Err(Error::Plan(format!(
                "CD-ROM {} must be on SATA or IDE",
                c.path.display()
            )));
        }
        attaches.push(c.attach);
        targets.push(&c.target);
    }
    let reserved: &[u8] = if p.machine == Machine::Q35 {
        &[0, 0x1f]
    } else {
        &[0, 1]
    };
    let mut seen = BTreeSet::new();
    for (x, what) in &pcis {
        let ok_reserved =
            (p.machine == Machine::Pc && *what == "usb" && x.slot == 1 && x.function == 2)
                || !reserved.contains(&x.slot);
        if !ok_reserved || !seen.insert(*x) {
            return Err(Error::Plan(format!(
                "PCI address {:02x}.{} of the {what} collides",
                x.slot, x.function
            )));
        }
    }
    let mut seen = BTreeSet::new();
    if !attaches.iter().all(|a| seen.insert(*a)) {
        return Err(Error::Plan("two drives share a controller port".into()));
    }
    let mut seen = BTreeSet::new();
    if !targets.iter().all(|t| seen.insert(*t)) {
        return Err(Error::Plan("two drives share a target name".into()));
    }
    if let Some(bad) = p
        .disks
        .iter()
        .find(|d| matches!(d.attach, Attach::Ide(..)) && p.machine == Machine::Q35)
    {
        return Err(Error::Plan(format!(
            "disk {} on IDE in a q35 machine",
            bad.path.display()
        )));
    }
    Ok(())
}
