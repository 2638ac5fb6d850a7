//! `migrate`: source VM in → inspect every disk together → plan typed
//! actions (fixers) → write `plan.json` (a dry run stops here) → convert
//! into a staging directory → apply the plan to the staged outputs in
//! place (one executor, never the source) → bootstrap and final domains →
//! move into place → optional validation by booting → report. Each stage
//! is one function of [`run_inner`]'s body.
//!
//! Output directory contract (`DIR`):
//! - `plan.json` — the plan ([`Plan`]), also printed;
//! - `<vm>-disk<N>.<fmt>` — converted disks;
//! - `<vm>-bootstrap.xml|.sh|.argv.json`, `<vm>-final.xml|.sh|.argv.json`
//!   — libvirt XML, runnable QEMU script, and the QEMU argv (without
//!   serial/QMP/display/accelerator options) that validation boots;
//! - `<vm>_VARS.fd` — per-VM OVMF variables for UEFI guests;
//! - `validation-<phase>.json`, `<phase>-serial.log`, `<phase>-screen.png`
//!   — when validated;
//! - `first-boot/bootstrap-serial.log|-qemu.log|-screen.png` — with
//!   `--first-boot` (the unattended bootstrap boot, [`firstboot`]);
//! - `report.json` — what happened, also on failure (then it is the only
//!   file written: everything else is staged in a hidden directory and
//!   moved into place only when every step succeeded).

pub mod firstboot;
pub mod fixers;
pub mod linux;
pub mod source;
pub mod summary;
pub mod virtio_win;

use crate::diskconv::{convert_disk, OutFormat};
use anyhow::{bail, Context, Result};
use domain::writer::{BlockBus, DomainOptions, OutputDisk, OutputFormat, Phase, QemuOptions};
use domain::VmModel;
use fixers::{Fixer, VmView};
use guest::audit::Audit;
use guest::fixgeo::{FixMode, GeometryPlan};
use guest::geometry::{Bus, DeviceGeometry};
use guest::inspect::VmInspection;
use guest::plan::{Action, PlannedAction};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vdisk::writer::Compression;
use vdisk::{Disk, DiskWrite};

/// Everything `migrate` takes.
#[derive(Debug, Clone)]
pub struct Options {
    /// A VM description (vmx, ovf, ova, vbox, libvirt xml) or disk images.
    pub sources: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// virtio-win ISO or directory tree: drivers for the bootstrap
    /// domain's CD-ROM.
    pub virtio_win: Option<PathBuf>,
    /// Output disk format.
    pub format: OutFormat,
    /// qcow2 compression.
    pub compress: Option<Compression>,
    /// Final block bus.
    pub block: BlockBus,
    /// Stop after the plan.
    pub dry_run: bool,
    /// Boot the results.
    pub validate: bool,
    /// Validation settings.
    pub validate_timeout: u64,
    /// `auto`, `kvm` or `tcg`.
    pub accel: String,
    /// Write into a non-empty DIR.
    pub force: bool,
    /// Allow file references outside the source's directory.
    pub allow_outside: bool,
    /// User overrides.
    pub overrides: source::Overrides,
    /// Conversion threads (0 = all CPUs).
    pub threads: usize,
    /// Force a geometry fix mode instead of the automatic choice.
    pub geometry: Option<FixMode>,
    /// Extra serial/screen strings that mean a successful boot (written to
    /// `DIR/validate.json`).
    pub success_markers: Vec<String>,
    /// Audit geometry but apply no fix.
    pub geometry_off: bool,
    /// Progress bars.
    pub progress: bool,
    /// Print the plan (text) to stdout as soon as it is made, before
    /// converting.
    pub print_plan: bool,
    /// Boot the bootstrap domain unattended until the Windows first-boot
    /// runner reports its bootstrap phase done ([`firstboot`]).
    pub first_boot: Option<firstboot::FirstBootSettings>,
    /// Run the Linux bootstrap boot when the plan needs one (false:
    /// `--no-bootstrap-boot`, a `Manual` line instead).
    pub linux_bootstrap: bool,
}

/// One disk in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct DiskPlan {
    /// Index in the VM.
    pub index: usize,
    /// Source as named by the metadata.
    pub source: String,
    /// Probed format of the top layer.
    pub format: String,
    /// Subformat.
    pub subformat: Option<String>,
    /// Layers in the chain.
    pub chain: Vec<String>,
    /// Virtual size.
    pub virtual_size: u64,
    /// Boot disk.
    pub boot: bool,
    /// Boot order in both domains (1 = boot disk).
    pub boot_order: u32,
    /// Output file.
    pub output: PathBuf,
    /// Geometry findings (one line each; BIOS guests only).
    pub geometry_findings: Vec<String>,
    /// Geometry fix (BIOS guests only).
    pub geometry: Option<GeometryPlan>,
}

/// The plan (`plan.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The source VM as read (boot disk as chosen).
    pub vm: VmModel,
    /// Disks.
    pub disks: Vec<DiskPlan>,
    /// How the boot disk was chosen.
    pub boot_choice: BootChoice,
    /// Bus of the bootstrap domain's disks.
    pub bootstrap_bus: Bus,
    /// Bus of the final domain's disks.
    pub final_bus: Bus,
    /// What is on the disks.
    pub inspection: VmInspection,
    /// Exactly the actions the executor carries out, in order (`manual`
    /// ones are reported, not applied).
    pub actions: Vec<PlannedAction>,
    /// The virtio-win media: drivers found for this guest and the CD the
    /// bootstrap domain gets.
    pub virtio_win: Option<virtio_win::VirtioWinPlan>,
    /// Files that will be written.
    pub outputs: Vec<PathBuf>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// How the boot disk was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct BootChoice {
    /// The boot disk.
    pub disk: usize,
    /// The disk the metadata named (or its first disk).
    pub metadata: Option<usize>,
    /// Why.
    pub reason: String,
    /// True when nothing on the disks confirms the choice.
    pub guess: bool,
}

/// Result of one phase's validation.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// bootstrap or final.
    pub phase: String,
    /// Booted successfully.
    pub ok: bool,
    /// One-line classification.
    pub outcome: String,
    /// The validation report file.
    pub report: Option<PathBuf>,
}

/// The report (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether every step (and validation, if asked) succeeded.
    pub success: bool,
    /// A dry run (only `plan.json` and this report were written).
    pub dry_run: bool,
    /// The error that stopped the run.
    pub error: Option<String>,
    /// The plan, when one was made.
    pub plan: Option<Plan>,
    /// Conversion statistics per disk.
    pub conversions: Vec<vdisk::convert::ConvertStats>,
    /// One line per planned action as carried out.
    pub applied: Vec<String>,
    /// Checker results of what the executor touched.
    pub checks: Vec<String>,
    /// Files moved into the output directory.
    pub written: Vec<PathBuf>,
    /// Validation results.
    pub validation: Vec<PhaseResult>,
    /// The unattended bootstrap boot (`--first-boot`).
    pub first_boot: Option<firstboot::FirstBootResult>,
    /// The Linux bootstrap boot, when one ran.
    pub bootstrap: Option<crate::linuxfix::BootstrapReport>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// A failed run: the error, and the report when one was written for this
/// run (`DIR/report.json`).
#[derive(Debug)]
pub struct Failure {
    /// What stopped the run.
    pub error: anyhow::Error,
    /// The report written to `DIR/report.json` by this run, if any.
    pub report: Option<(PathBuf, Box<Report>)>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.report {
            Some((p, _)) => write!(f, "migration failed (see {})", p.display()),
            None => write!(f, "migration failed"),
        }
    }
}

impl Failure {
    /// As an error whose chain ends in the cause.
    pub fn into_error(self) -> anyhow::Error {
        let msg = self.to_string();
        self.error.context(msg)
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Bootstrap => "bootstrap",
        Phase::Final => "final",
    }
}

/// The bus the bootstrap domain puts the disks on: decided by the domain
/// writer ([`domain::writer::bootstrap_uses_ide`]), so the plan's geometry
/// audit and the domains agree.
pub fn bootstrap_bus(model: &VmModel) -> Bus {
    if domain::writer::bootstrap_uses_ide(model) {
        Bus::Ide
    } else {
        Bus::Sata
    }
}

/// The bus of the final domain.
pub fn final_bus(block: BlockBus) -> Bus {
    match block {
        BlockBus::VirtioBlk => Bus::VirtioBlk,
        BlockBus::VirtioScsi => Bus::VirtioScsi,
    }
}

/// Run a migration with the built-in fixers. Writes `report.json`
/// whatever happens once the output directory is usable.
pub fn run(o: &Options) -> Result<Report, Failure> {
    run_with(o, &fixers::fixers())
}

/// [`run`] with the given fixers (tests plug their own in here).
pub fn run_with(o: &Options, fixers: &[Box<dyn Fixer>]) -> Result<Report, Failure> {
    let t0 = std::time::Instant::now();
    let no_report = |error| Failure {
        error,
        report: None,
    };
    crate::cleanup::remove_stale_staging(&o.out);
    check_out_dir(o).map_err(no_report)?;
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("cannot create {}", o.out.display()))
        .map_err(no_report)?;
    let staging = crate::cleanup::staging_path(&o.out, std::process::id());
    let _interrupt = crate::cleanup::register_dir(&staging);
    let mut report = Report {
        success: false,
        dry_run: o.dry_run,
        error: None,
        plan: None,
        conversions: vec![],
        applied: vec![],
        checks: vec![],
        written: vec![],
        validation: vec![],
        first_boot: None,
        bootstrap: None,
        seconds: 0.0,
    };
    let res = run_inner(o, fixers, &staging, &mut report);
    let _ = std::fs::remove_dir_all(&staging);
    report.seconds = t0.elapsed().as_secs_f64();
    if let Err(e) = &res {
        report.success = false;
        report.error = Some(crate::errors::chain_text(e));
    }
    let path = o.out.join("report.json");
    let written = serde_json::to_string_pretty(&report)
        .map_err(anyhow::Error::from)
        .and_then(|t| {
            std::fs::write(&path, t).with_context(|| format!("cannot write {}", path.display()))
        });
    match (res, written) {
        (Ok(()), Ok(())) => Ok(report),
        (Ok(()), Err(e)) => Err(no_report(e)),
        (Err(e), Ok(())) => Err(Failure {
            error: e,
            report: Some((path, Box::new(report))),
        }),
        (Err(e), Err(w)) => Err(no_report(e.context(format!("{w:#}")))),
    }
}

/// The report of a dry run, as far as deciding reuse goes.
#[derive(Deserialize)]
struct DryRunMark {
    dry_run: bool,
}

/// `DIR` must be empty unless `--force`; a folder holding only what a dry
/// run wrote (`plan.json`, `report.json` marked `dry_run`) counts as
/// empty.
fn check_out_dir(o: &Options) -> Result<()> {
    if !o.out.exists() || o.force {
        return Ok(());
    }
    let mut names = vec![];
    for e in
        std::fs::read_dir(&o.out).with_context(|| format!("cannot read {}", o.out.display()))?
    {
        names.push(e?.file_name().to_string_lossy().into_owned());
    }
    let dry_run_only = !names.is_empty()
        && names.iter().all(|n| n == "plan.json" || n == "report.json")
        && std::fs::read(o.out.join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<DryRunMark>(&b).ok())
            .is_some_and(|m| m.dry_run);
    if names.is_empty() || dry_run_only {
        return Ok(());
    }
    bail!(
        "{} exists and is not empty; pass --force to write into it",
        o.out.display()
    )
}

/// The source VM, its disks opened read-only.
struct Loaded {
    model: VmModel,
    disks: Vec<Box<dyn Disk>>,
}

/// What inspection found, besides the [`VmInspection`].
struct Inspected {
    inspection: VmInspection,
    audits: Vec<Option<Audit>>,
    boot: BootChoice,
    warnings: Vec<String>,
}

/// The stages, in order. A dry run stops after the plan; any error leaves
/// the staging directory to be removed by [`run_with`].
fn run_inner(
    o: &Options,
    fixers: &[Box<dyn Fixer>],
    staging: &Path,
    report: &mut Report,
) -> Result<()> {
    let mut vm = load_source(o, staging)?;
    let ins = inspect(&mut vm);
    let (plan, vw_iso) = make_plan(o, fixers, &vm, ins)?;
    firstboot::check(o, &plan)?;
    if o.dry_run {
        write_plan(o, &plan, &o.out, report)?;
        report.success = true;
        return Ok(());
    }
    // A real run stages the plan too: on failure `report.json` (which
    // holds the plan) is the only file left.
    std::fs::create_dir_all(staging)?;
    write_plan(o, &plan, staging, report)?;
    let mut staged = convert(o, staging, &vm, &plan, report)?;
    drop(vm);
    apply(&plan, &staged, report)?;
    linux::bootstrap_linux(o, staging, &plan, &mut staged, report)?;
    write_driver_cd(staging, &plan, vw_iso.as_ref(), &mut staged)?;
    write_domains(o, staging, &plan, &mut staged, report)?;
    staged.push((staging.join("plan.json"), o.out.join("plan.json")));
    move_into_place(&staged, report)?;
    report.success = true;
    firstboot::run(o, &plan.vm.safe_name(), report)?;
    if o.validate {
        validate(o, &plan.vm.safe_name(), report)?;
    }
    Ok(())
}

fn load_source(o: &Options, staging: &Path) -> Result<Loaded> {
    let src = source::load(&o.sources, &o.overrides, o.allow_outside)?;
    let scratch = staging.join("scratch");
    let mut disks = vec![];
    for d in &src.model.disks {
        disks.push(source::open_disk(&src, d, &scratch, o.allow_outside)?);
    }
    Ok(Loaded {
        model: src.model,
        disks,
    })
}

/// Inspect every disk together, choose the boot disk from what is on
/// them, and audit the geometry of BIOS guests.
fn inspect(vm: &mut Loaded) -> Inspected {
    let refs: Vec<&dyn Disk> = vm.disks.iter().map(|d| d.as_ref()).collect();
    let inspection = guest::inspect::inspect_vm(&refs);
    let mut warnings = inspection.warnings.clone();
    warnings.extend(os_disagreements(&vm.model, &inspection));
    let boot = choose_boot_disk(&vm.model, &inspection);
    if boot.guess && vm.model.disks.len() > 1 {
        warnings.push(format!("boot disk: {} (a guess)", boot.reason));
    } else if Some(boot.disk) != boot.metadata {
        warnings.push(format!("boot disk: {}", boot.reason));
    }
    if !vm.model.disks.is_empty() {
        vm.model.set_boot_disk(boot.disk);
    }
    if let Some(w) = guest_os_from_disks(&mut vm.model, &inspection) {
        warnings.push(w);
    }
    let uefi = vm.model.firmware.kind == domain::FirmwareKind::Uefi;
    let audits = vm
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if uefi || inspection.disks[i].table == "none" {
                return None;
            }
            match guest::audit::audit(d.as_ref(), &DeviceGeometry::default()) {
                Ok(a) => Some(a),
                Err(e) => {
                    warnings.push(format!("disk {i}: geometry audit failed: {e}"));
                    None
                }
            }
        })
        .collect();
    Inspected {
        inspection,
        audits,
        boot,
        warnings,
    }
}

/// The OS the metadata declares is a hint: what is on the disks wins,
/// and a disagreement is a warning.
fn os_disagreements(model: &VmModel, ins: &VmInspection) -> Vec<String> {
    let declared = &model.guest_os;
    let mut out = vec![];
    for w in &ins.windows {
        if declared.family != domain::OsFamily::Windows {
            out.push(format!(
                "the VM metadata declares guest OS {} but disk {} holds {} ({}): the disks win",
                declared.id(),
                w.system.disk,
                w.product_name,
                w.os_id
            ));
        }
    }
    if !ins.linux.is_empty() && declared.family == domain::OsFamily::Windows {
        out.push(format!(
            "the VM metadata declares guest OS {} but the disks hold a Linux install",
            declared.id()
        ));
    }
    out
}

/// The Windows version found on the boot disk wins over the metadata's
/// hint where they disagree on the NT version, so the domains (i440fx +
/// IDE for XP/2003, Q35 + AHCI for Vista and later) match the bootstrap
/// controller the Windows fix prepared. Returns the warning to give.
fn guest_os_from_disks(model: &mut VmModel, ins: &VmInspection) -> Option<String> {
    let boot = model.boot_disk().unwrap_or(0);
    let w = ins
        .windows
        .iter()
        .find(|w| w.system.disk == boot)
        .or_else(|| ins.windows.first())?;
    let found = (w.major, w.minor);
    let meta = model
        .guest_os
        .nt_version()
        .map(|(a, b)| (u32::from(a), u32::from(b)));
    if meta == Some(found) {
        return None;
    }
    let x64 = if w.arch == guest::drivers::Arch::Amd64 {
        "_64"
    } else {
        ""
    };
    let os = domain::GuestOs::parse(&format!("{}{x64}", w.os_id));
    if !os.is_windows() || os.nt_version().is_none() {
        return None;
    }
    let msg = format!(
        "guest OS: {} ({}) found on the disks; the metadata said {:?}",
        w.product_name,
        os.id(),
        model.guest_os.raw
    );
    model.guest_os = os;
    Some(msg)
}

/// Evidence that a disk is the one the firmware should boot, strongest
/// first: the installed OS's boot volume, its system volume, an ESP
/// (UEFI) or an active partition with MBR boot code (BIOS), boot code.
fn boot_evidence(ins: &VmInspection, disk: usize, uefi: bool) -> (u32, String) {
    let d = &ins.disks[disk];
    for w in &ins.windows {
        if w.boot_volume.as_ref().unwrap_or(&w.system).disk == disk {
            return (4, format!("it holds the boot volume of {}", w.product_name));
        }
    }
    for w in &ins.windows {
        if w.system.disk == disk {
            return (
                3,
                format!("it holds the system volume of {}", w.product_name),
            );
        }
    }
    if let Some(l) = ins.linux.iter().find(|l| {
        l.boot
            .as_ref()
            .or(l.root.as_ref())
            .is_some_and(|v| v.disk == disk)
    }) {
        return (
            3,
            format!(
                "it holds {}",
                l.pretty_name
                    .clone()
                    .unwrap_or_else(|| "a Linux install".into())
            ),
        );
    }
    let esp = d
        .volumes
        .iter()
        .any(|v| v.boot_flag && v.fs == "fat" && d.table == "gpt");
    let active = d.volumes.iter().any(|v| v.boot_flag && d.table == "mbr");
    if uefi && esp {
        return (2, "it has an EFI system partition".into());
    }
    if !uefi && d.boot_code && active {
        return (2, "it has MBR boot code and an active partition".into());
    }
    if d.boot_code || esp {
        return (1, "it has boot code".into());
    }
    (
        0,
        "it shows no boot code, boot partition or installed OS".into(),
    )
}

/// Keep the metadata's boot disk when the disks confirm it (or nothing
/// contradicts it); otherwise take the disk with the strongest evidence.
fn choose_boot_disk(model: &VmModel, ins: &VmInspection) -> BootChoice {
    let meta = model.boot_disk();
    let n = model.disks.len().min(ins.disks.len());
    let uefi = model.firmware.kind == domain::FirmwareKind::Uefi;
    let ev: Vec<(u32, String)> = (0..n).map(|i| boot_evidence(ins, i, uefi)).collect();
    let best = (0..n).max_by_key(|&i| (ev[i].0, std::cmp::Reverse(i)));
    let cur = meta.unwrap_or(0);
    match best {
        None => BootChoice {
            disk: 0,
            metadata: meta,
            reason: "the VM has no disks".into(),
            guess: true,
        },
        Some(b) if ev[b].0 == 0 => BootChoice {
            disk: cur,
            metadata: meta,
            reason: format!(
                "no disk shows boot code, a boot partition or an installed OS; disk {cur} kept as the metadata orders it"
            ),
            guess: true,
        },
        Some(_) if cur < n && ev[cur].0 > 0 => BootChoice {
            disk: cur,
            metadata: meta,
            reason: format!("disk {cur} as the metadata says; {}", ev[cur].1),
            guess: false,
        },
        Some(b) => BootChoice {
            disk: b,
            metadata: meta,
            reason: format!(
                "disk {b} chosen because {}; disk {cur}, first in the metadata, {}",
                ev[b].1,
                ev.get(cur).map(|e| e.1.as_str()).unwrap_or("does not exist")
            ),
            guess: ev[b].0 < 2 || (0..n).filter(|&i| ev[i].0 == ev[b].0).count() > 1,
        },
    }
}

/// Geometry plans, driver media, the fixers' actions, the outputs.
fn make_plan(
    o: &Options,
    fixers: &[Box<dyn Fixer>],
    vm: &Loaded,
    ins: Inspected,
) -> Result<(Plan, Option<virtio_win::IsoContents>)> {
    let model = &vm.model;
    let name = model.safe_name();
    let ext = o.format.as_str();
    let boot_bus = bootstrap_bus(model);
    let fin_bus = final_bus(o.block);
    let mut warnings = model.warnings.clone();
    warnings.extend(ins.warnings.iter().cloned());
    let mut geometry = vec![];
    for (i, a) in ins.audits.iter().enumerate() {
        geometry.push(match a {
            Some(a) if !o.geometry_off && a.table.partitions().iter().next().is_some() => Some(
                guest::fixgeo::plan(vm.disks[i].as_ref(), a, o.geometry, &[boot_bus, fin_bus])
                    .with_context(|| format!("geometry plan of disk {i}"))?,
            ),
            _ => None,
        });
    }
    let (vw, vw_iso) = match &o.virtio_win {
        Some(m) => {
            let (p, iso) = virtio_win::plan(m, model, o.block, &o.out, &mut warnings);
            (Some(p), iso)
        }
        None => {
            if model.guest_os.is_windows() || !ins.inspection.windows.is_empty() {
                warnings.push(
                    "no --virtio-win ISO given: the bootstrap domain has no driver CD".into(),
                );
            }
            (None, None)
        }
    };
    let refs: Vec<&dyn Disk> = vm.disks.iter().map(|d| d.as_ref()).collect();
    let notes = std::cell::RefCell::new(vec![]);
    let view = VmView {
        model,
        disks: &refs,
        inspection: &ins.inspection,
        audits: &ins.audits,
        geometry: &geometry,
        virtio_win: vw.as_ref(),
        bootstrap_bus: boot_bus,
        final_bus: fin_bus,
        linux_bootstrap: o.linux_bootstrap,
        warnings: &notes,
    };
    let actions = fixers::plan_all(fixers, &view)?;
    warnings.extend(notes.into_inner());
    let boot = model.boot_disk().unwrap_or(0);
    let mut disks = vec![];
    for (i, (d, disk)) in model.disks.iter().zip(&vm.disks).enumerate() {
        let chain = vdisk::disk::chain(disk.as_ref());
        for l in &chain {
            warnings.extend(l.warnings.iter().map(|w| format!("disk {i}: {w}")));
        }
        disks.push(DiskPlan {
            index: i,
            source: d.source_name.clone(),
            format: chain[0].format.clone(),
            subformat: chain[0].subformat.clone(),
            chain: chain.iter().map(|l| l.path.display().to_string()).collect(),
            virtual_size: disk.size(),
            boot: d.boot,
            // The writers attach the boot disk first, then the others in
            // model order.
            boot_order: if i == boot {
                1
            } else {
                i as u32 + if i < boot { 2 } else { 1 }
            },
            output: o.out.join(format!("{name}-disk{i}.{ext}")),
            geometry_findings: ins.audits[i]
                .as_ref()
                .map(|a| a.findings.iter().map(|f| f.message.clone()).collect())
                .unwrap_or_default(),
            geometry: geometry[i].clone(),
        });
    }
    let mut outputs = planned_outputs(o, model, &disks, vw.as_ref());
    if actions
        .iter()
        .any(|a| matches!(a.action, Action::LinuxBootstrap { .. }))
    {
        outputs.push(o.out.join(format!("{name}-bootstrap-boot-serial.log")));
    }
    let mut plan = Plan {
        vm: model.clone(),
        disks,
        boot_choice: ins.boot,
        bootstrap_bus: boot_bus,
        final_bus: fin_bus,
        inspection: ins.inspection,
        actions,
        virtio_win: vw,
        outputs,
        warnings,
    };
    // Everything the domain writers could refuse is refused now, before
    // any disk is converted; what they would drop is a warning.
    let nvram = (model.firmware.kind == domain::FirmwareKind::Uefi)
        .then(|| o.out.join(format!("{name}_VARS.fd")));
    let iso = plan.virtio_win.as_ref().and_then(|p| p.attach.clone());
    for w in source::check_domains(
        model,
        &output_disks(o, &plan),
        o.block,
        iso.as_deref(),
        nvram.as_deref(),
    )? {
        if !plan.warnings.contains(&w) {
            plan.warnings.push(w);
        }
    }
    Ok((plan, vw_iso))
}

fn planned_outputs(
    o: &Options,
    model: &VmModel,
    disks: &[DiskPlan],
    vw: Option<&virtio_win::VirtioWinPlan>,
) -> Vec<PathBuf> {
    let name = model.safe_name();
    let mut outputs: Vec<PathBuf> = disks.iter().map(|d| d.output.clone()).collect();
    if let Some(p) = vw.filter(|p| p.built) {
        outputs.extend(p.attach.clone());
    }
    for p in ["bootstrap", "final"] {
        for e in ["xml", "sh", "argv.json"] {
            outputs.push(o.out.join(format!("{name}-{p}.{e}")));
        }
    }
    if model.firmware.kind == domain::FirmwareKind::Uefi {
        outputs.push(o.out.join(format!("{name}_VARS.fd")));
    }
    if !o.success_markers.is_empty() {
        outputs.push(o.out.join("validate.json"));
    }
    outputs
}

fn write_plan(o: &Options, plan: &Plan, dir: &Path, report: &mut Report) -> Result<()> {
    let path = dir.join("plan.json");
    std::fs::write(&path, serde_json::to_string_pretty(plan)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    report.plan = Some(plan.clone());
    if o.print_plan {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) must not stop the migration.
        let _ = out.write_all(summary::plan_text(plan, o).as_bytes());
        let _ = out.flush();
    }
    Ok(())
}

/// Convert every disk into the staging directory.
fn convert(
    o: &Options,
    staging: &Path,
    vm: &Loaded,
    plan: &Plan,
    report: &mut Report,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut staged = vec![];
    for (i, disk) in vm.disks.iter().enumerate() {
        let dp = &plan.disks[i];
        let tmp = staging.join(
            dp.output
                .file_name()
                .context("output without a file name")?,
        );
        let stats = convert_disk(
            disk.as_ref(),
            &tmp,
            o.format,
            o.compress,
            o.threads,
            false,
            o.progress,
        )
        .with_context(|| format!("converting disk {i} ({})", dp.source))?;
        report.conversions.push(stats);
        staged.push((tmp, dp.output.clone()));
    }
    Ok(staged)
}

/// Whether an action changes a disk (the others are only reported).
fn writes_disk(a: &Action) -> bool {
    !matches!(
        a,
        Action::Manual { .. }
            | Action::PinGeometry { .. }
            | Action::FirstBoot { .. }
            | Action::LinuxBootstrap { .. }
    )
}

/// Carry out the plan on the staged output disks, in place: a qcow2 is
/// opened with the in-place writer (compressed clusters it rewrites are
/// stored uncompressed), a raw file directly. Memory stays bounded: no
/// overlay holds the changes.
fn apply(plan: &Plan, staged: &[(PathBuf, PathBuf)], report: &mut Report) -> Result<()> {
    let mut disks: Vec<Arc<dyn DiskWrite>> = vec![];
    let needed: Vec<bool> = (0..plan.disks.len())
        .map(|i| {
            plan.actions.iter().any(|a| {
                writes_disk(&a.action)
                    && match &a.action {
                        Action::RewriteGeometry { disk, .. } => *disk == i,
                        other => other.volume().is_some_and(|v| v.disk == i),
                    }
            })
        })
        .collect();
    for (i, (tmp, _)) in staged.iter().take(plan.disks.len()).enumerate() {
        let d: Arc<dyn DiskWrite> = if !needed[i] {
            Arc::new(ReadOnlyGuard(i))
        } else if plan.disks[i]
            .output
            .extension()
            .is_some_and(|e| e == "qcow2")
        {
            Arc::new(
                vdisk::qcow2::open_rw(tmp)
                    .with_context(|| format!("cannot open {} for writing", tmp.display()))?,
            )
        } else {
            Arc::new(
                vdisk::raw::RawDiskMut::open(tmp)
                    .with_context(|| format!("cannot open {} for writing", tmp.display()))?,
            )
        };
        disks.push(d);
    }
    let sources = crate::winfix::Sources::default();
    let r = guest::apply::execute(&plan.actions, &disks, &|f| sources.open(f))
        .context("applying the plan to the converted disks")?;
    for d in &disks {
        d.flush().context("flushing an output disk")?;
    }
    report.applied = r.lines;
    report.checks = r.checks;
    Ok(())
}

/// Stands for a disk no action writes to (never opened for writing).
#[derive(Debug)]
struct ReadOnlyGuard(usize);

impl Disk for ReadOnlyGuard {
    fn size(&self) -> u64 {
        0
    }
    fn read_at(&self, _: &mut [u8], offset: u64) -> vdisk::Result<()> {
        vdisk::disk::check_range(0, offset, 1)
    }
    fn layer(&self) -> vdisk::LayerInfo {
        vdisk::LayerInfo {
            path: PathBuf::from(format!(
                "disk {} (not opened: the plan does not write it)",
                self.0
            )),
            format: "none".into(),
            subformat: None,
            virtual_size: 0,
            file_size: 0,
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }
}

impl DiskWrite for ReadOnlyGuard {
    fn write_at(&self, _: &[u8], offset: u64) -> vdisk::Result<()> {
        vdisk::disk::check_range(0, offset, 1)
    }
    fn flush(&self) -> vdisk::Result<()> {
        Ok(())
    }
}

/// The driver CD built from a virtio-win directory.
fn write_driver_cd(
    staging: &Path,
    plan: &Plan,
    iso: Option<&virtio_win::IsoContents>,
    staged: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<()> {
    if let (Some(iso), Some(path)) = (
        iso,
        plan.virtio_win.as_ref().and_then(|p| p.attach.as_ref()),
    ) {
        let tmp = staging.join(path.file_name().context("driver CD without a file name")?);
        iso.write(&tmp)?;
        staged.push((tmp, path.clone()));
    }
    Ok(())
}

/// The output disks as the domain writers see them (pins from the
/// plan's `PinGeometry` actions).
fn output_disks(o: &Options, plan: &Plan) -> Vec<OutputDisk> {
    plan.disks
        .iter()
        .map(|d| OutputDisk {
            path: d.output.clone(),
            format: match o.format {
                OutFormat::Qcow2 => OutputFormat::Qcow2,
                OutFormat::Raw => OutputFormat::Raw,
            },
            bios_geometry: plan.actions.iter().find_map(|a| match a.action {
                Action::PinGeometry {
                    disk,
                    cylinders,
                    heads,
                    sectors,
                } if disk == d.index => Some(vdisk::Chs {
                    cylinders,
                    heads,
                    sectors,
                }),
                _ => None,
            }),
        })
        .collect()
}

fn write_domains(
    o: &Options,
    staging: &Path,
    plan: &Plan,
    staged: &mut Vec<(PathBuf, PathBuf)>,
    report: &mut Report,
) -> Result<()> {
    let model = &plan.vm;
    let name = model.safe_name();
    let out_disks = output_disks(o, plan);
    let nvram = if model.firmware.kind == domain::FirmwareKind::Uefi {
        let ovmf = domain::writer::OvmfPaths::default();
        let p = domain::writer::prepare_nvram(model, staging, &ovmf)?;
        let fin = o
            .out
            .join(p.file_name().context("NVRAM without a file name")?);
        staged.push((p, fin.clone()));
        Some(fin)
    } else {
        None
    };
    for phase in [Phase::Bootstrap, Phase::Final] {
        let pn = phase_name(phase);
        let mut dopts = DomainOptions::new(phase, out_disks.clone());
        dopts.block_bus = o.block;
        dopts.nvram = nvram.clone();
        if phase == Phase::Bootstrap {
            dopts.virtio_win_iso = plan.virtio_win.as_ref().and_then(|p| p.attach.clone());
        }
        let (xml, w1) = domain::writer::libvirt_xml(model, &dopts)?;
        let q = QemuOptions::new(&o.out, model);
        let cmd = domain::writer::qemu_command(model, &dopts, &q)?;
        for (ext, body) in [
            ("xml", xml),
            ("sh", cmd.script.clone()),
            (
                "argv.json",
                serde_json::to_string_pretty(&validation_argv(&cmd.argv))?,
            ),
        ] {
            let tmp = staging.join(format!("{name}-{pn}.{ext}"));
            std::fs::write(&tmp, body)?;
            if ext == "sh" {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
            }
            staged.push((tmp.clone(), o.out.join(format!("{name}-{pn}.{ext}"))));
        }
        for w in w1.into_iter().chain(cmd.warnings) {
            if let Some(p) = report.plan.as_mut() {
                if !p.warnings.contains(&w) {
                    p.warnings.push(w);
                }
            }
        }
    }
    if !o.success_markers.is_empty() {
        let tmp = staging.join("validate.json");
        let cfg = serde_json::json!({ "success_markers": o.success_markers });
        std::fs::write(&tmp, serde_json::to_string_pretty(&cfg)?)?;
        staged.push((tmp, o.out.join("validate.json")));
    }
    Ok(())
}

/// Everything succeeded: move the staged files into `DIR`.
fn move_into_place(staged: &[(PathBuf, PathBuf)], report: &mut Report) -> Result<()> {
    for (from, to) in staged {
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        report.written.push(to.clone());
    }
    Ok(())
}

fn validate(o: &Options, name: &str, report: &mut Report) -> Result<()> {
    for phase in [Phase::Bootstrap, Phase::Final] {
        let r = validate_phase(o, name, phase_name(phase))?;
        report.success &= r.ok;
        report.validation.push(r);
    }
    Ok(())
}

/// The QEMU argv for validation: the domain's argv without the options the
/// validator sets itself (serial, QMP, display, accelerator). Disks stay as
/// the domain writer gives them (`-blockdev`): the validator boots them
/// from throw-away overlays.
pub fn validation_argv(argv: &[String]) -> Vec<String> {
    let mut out = vec![];
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_str();
        if matches!(a, "-serial" | "-qmp" | "-display" | "-accel" | "-nographic")
            && i + 1 < argv.len()
        {
            i += if a == "-nographic" { 1 } else { 2 };
            continue;
        }
        if a == "-machine" && i + 1 < argv.len() {
            let m: Vec<&str> = argv[i + 1]
                .split(',')
                .filter(|p| !p.starts_with("accel="))
                .collect();
            out.push(a.to_string());
            out.push(m.join(","));
            i += 2;
            continue;
        }
        out.push(argv[i].clone());
        i += 1;
    }
    out
}

fn validate_phase(o: &Options, name: &str, phase: &str) -> Result<PhaseResult> {
    let accel: crate::validate::Accel = o.accel.parse().map_err(anyhow::Error::msg)?;
    let opts = crate::validate::DirOptions {
        phases: vec![phase.to_string()],
        timeout: Some(std::time::Duration::from_secs(o.validate_timeout)),
        accel,
        vm: Some(name.to_string()),
        // Taken from DIR/validate.json, written with the outputs.
        success_markers: Vec::new(),
    };
    let res = crate::validate::validate_dir(&o.out, &opts)?;
    let r = res
        .into_iter()
        .next()
        .context("validation produced no result")?;
    Ok(PhaseResult {
        phase: phase.into(),
        ok: r.report.ok,
        outcome: r.report.reason.clone(),
        report: Some(r.report_path),
    })
}
