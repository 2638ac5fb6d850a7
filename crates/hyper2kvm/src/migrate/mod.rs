//! `migrate`: source VM in → inspect → plan → convert (with fixes applied
//! through a copy-on-write overlay, never to the source) → bootstrap and
//! final domains out → optional validation by booting → report.
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
//! - `report.json` — what happened, also on failure (then it is the only
//!   file written: everything else is staged in a hidden directory and
//!   moved into place only when every step succeeded).

pub mod fixers;
pub mod source;
pub mod summary;
pub mod virtio_win;

use crate::diskconv::{convert_disk, OutFormat};
use anyhow::{bail, Context, Result};
use domain::writer::{BlockBus, DomainOptions, OutputDisk, OutputFormat, Phase, QemuOptions};
use domain::VmModel;
use fixers::{FixContext, PlannedFix};
use guest::audit::Audit;
use guest::fixgeo::{FixMode, GeometryPlan};
use guest::geometry::{Bus, DeviceGeometry};
use serde::Serialize;
use std::path::{Path, PathBuf};
use vdisk::overlay::Overlay;
use vdisk::writer::Compression;
use vdisk::Disk;

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
    /// Output file.
    pub output: PathBuf,
    /// Geometry findings (one line each).
    pub geometry_findings: Vec<String>,
    /// Geometry fix.
    pub geometry: Option<GeometryPlan>,
}

/// The plan (`plan.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The source VM as read.
    pub vm: VmModel,
    /// Disks.
    pub disks: Vec<DiskPlan>,
    /// Fixes planned (supported) and still needed (unsupported).
    pub fixes: Vec<PlannedFix>,
    /// The virtio-win media: drivers found for this guest and the CD the
    /// bootstrap domain gets.
    pub virtio_win: Option<virtio_win::VirtioWinPlan>,
    /// Files that will be written.
    pub outputs: Vec<PathBuf>,
    /// Warnings.
    pub warnings: Vec<String>,
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
    /// The error that stopped the run.
    pub error: Option<String>,
    /// The plan, when one was made.
    pub plan: Option<Plan>,
    /// Conversion statistics per disk.
    pub conversions: Vec<vdisk::convert::ConvertStats>,
    /// Changes applied to the outputs.
    pub applied: Vec<String>,
    /// Validation results.
    pub validation: Vec<PhaseResult>,
    /// Wall time in seconds.
    pub seconds: f64,
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Bootstrap => "bootstrap",
        Phase::Final => "final",
    }
}

/// The bus the bootstrap domain puts the system disk on.
pub fn bootstrap_bus(model: &VmModel) -> Bus {
    if model.guest_os.is_legacy_windows() {
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

struct Inspected {
    disk: Box<dyn Disk>,
    audit: Option<Audit>,
}

fn inspect_disk(disk: Box<dyn Disk>) -> Inspected {
    // A disk without a readable partition table (blank data disk, LVM PV
    // on the whole disk) has nothing for the geometry audit to check.
    let audit = guest::audit::audit(disk.as_ref(), &DeviceGeometry::default()).ok();
    Inspected { disk, audit }
}

/// Run a migration. Writes `report.json` whatever happens.
pub fn run(o: &Options) -> Result<Report> {
    let t0 = std::time::Instant::now();
    crate::cleanup::remove_stale_staging(&o.out);
    let read_out =
        || std::fs::read_dir(&o.out).with_context(|| format!("cannot read {}", o.out.display()));
    if o.out.exists() && read_out()?.next().is_some() && !o.force {
        bail!(
            "{} exists and is not empty; pass --force to write into it",
            o.out.display()
        );
    }
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("cannot create {}", o.out.display()))?;
    let staging = crate::cleanup::staging_path(&o.out, std::process::id());
    let _interrupt = crate::cleanup::register_dir(&staging);
    let mut report = Report {
        success: false,
        error: None,
        plan: None,
        conversions: vec![],
        applied: vec![],
        validation: vec![],
        seconds: 0.0,
    };
    let res = run_inner(o, &staging, &mut report);
    let _ = std::fs::remove_dir_all(&staging);
    report.seconds = t0.elapsed().as_secs_f64();
    if let Err(e) = &res {
        report.success = false;
        report.error = Some(crate::errors::chain_text(e));
    }
    let text = serde_json::to_string_pretty(&report)?;
    let report_path = o.out.join("report.json");
    let written = std::fs::write(&report_path, text)
        .with_context(|| format!("cannot write {}", report_path.display()));
    // The run's own error first: a folder we cannot write fails both.
    res?;
    written.map(|_| report)
}

fn run_inner(o: &Options, staging: &Path, report: &mut Report) -> Result<()> {
    let src = source::load(&o.sources, &o.overrides, o.allow_outside)?;
    let model = src.model.clone();
    let name = model.safe_name();
    let ext = o.format.as_str();
    let boot_bus = bootstrap_bus(&model);
    let fin_bus = final_bus(o.block);

    // Inspect.
    let scratch = staging.join("scratch");
    let mut inspected = vec![];
    for d in &model.disks {
        let disk = source::open_disk(&src, d, &scratch, o.allow_outside)?;
        inspected.push(inspect_disk(disk));
    }

    // Plan.
    let mut disks = vec![];
    let mut warnings = model.warnings.clone();
    for (i, (d, ins)) in model.disks.iter().zip(&inspected).enumerate() {
        let chain = vdisk::disk::chain(ins.disk.as_ref());
        let geometry = match &ins.audit {
            Some(a) if !o.geometry_off && a.table.partitions().iter().next().is_some() => Some(
                guest::fixgeo::plan(ins.disk.as_ref(), a, o.geometry, &[boot_bus, fin_bus])
                    .with_context(|| format!("geometry plan of disk {i}"))?,
            ),
            _ => None,
        };
        for l in &chain {
            warnings.extend(l.warnings.iter().map(|w| format!("disk {i}: {w}")));
        }
        disks.push(DiskPlan {
            index: i,
            source: d.source_name.clone(),
            format: chain[0].format.clone(),
            subformat: chain[0].subformat.clone(),
            chain: chain.iter().map(|l| l.path.display().to_string()).collect(),
            virtual_size: ins.disk.size(),
            boot: d.boot,
            output: o.out.join(format!("{name}-disk{i}.{ext}")),
            geometry_findings: ins
                .audit
                .as_ref()
                .map(|a| a.findings.iter().map(|f| f.message.clone()).collect())
                .unwrap_or_default(),
            geometry,
        });
    }
    let mut fixes = vec![];
    let all = fixers::fixers();
    for (i, ins) in inspected.iter().enumerate() {
        let cx = FixContext {
            model: &model,
            disk_index: i,
            audit: ins.audit.as_ref(),
            geometry: disks[i].geometry.as_ref(),
        };
        for f in &all {
            fixes.extend(f.plan(&cx));
        }
    }
    let (vw, vw_iso) = match &o.virtio_win {
        Some(m) => {
            let (p, iso) = virtio_win::plan(m, &model, o.block, &o.out, &mut warnings);
            (Some(p), iso)
        }
        None => {
            if model.guest_os.is_windows() {
                warnings.push(
                    "no --virtio-win ISO given: the bootstrap domain has no driver CD".into(),
                );
            }
            (None, None)
        }
    };
    let mut outputs: Vec<PathBuf> = disks.iter().map(|d| d.output.clone()).collect();
    if let Some(p) = vw.as_ref().filter(|p| p.built) {
        outputs.extend(p.attach.clone());
    }
    for p in ["bootstrap", "final"] {
        for e in ["xml", "sh", "argv.json"] {
            outputs.push(o.out.join(format!("{name}-{p}.{e}")));
        }
    }
    let uefi = model.firmware.kind == domain::FirmwareKind::Uefi;
    if uefi {
        outputs.push(o.out.join(format!("{name}_VARS.fd")));
    }
    let plan = Plan {
        vm: model.clone(),
        disks,
        fixes,
        virtio_win: vw,
        outputs,
        warnings,
    };
    std::fs::write(
        o.out.join("plan.json"),
        serde_json::to_string_pretty(&plan)?,
    )?;
    report.plan = Some(plan.clone());
    if o.dry_run {
        report.success = true;
        return Ok(());
    }

    // Convert, with fixes applied through an overlay.
    std::fs::create_dir_all(staging)?;
    let mut staged: Vec<(PathBuf, PathBuf)> = vec![];
    for (i, ins) in inspected.into_iter().enumerate() {
        let dp = &plan.disks[i];
        let overlay = Overlay::new(ins.disk, 256 << 20);
        let cx = FixContext {
            model: &model,
            disk_index: i,
            audit: ins.audit.as_ref(),
            geometry: dp.geometry.as_ref(),
        };
        for f in &all {
            for line in f.apply(&cx, &overlay)? {
                report
                    .applied
                    .push(format!("disk {i}: {}: {line}", f.name()));
            }
        }
        let tmp = staging.join(dp.output.file_name().unwrap());
        let stats = convert_disk(
            &overlay, &tmp, o.format, o.compress, o.threads, false, o.progress,
        )
        .with_context(|| format!("converting disk {i} ({})", dp.source))?;
        report.conversions.push(stats);
        staged.push((tmp, dp.output.clone()));
    }

    // The driver CD built from a virtio-win directory.
    if let (Some(iso), Some(path)) = (
        &vw_iso,
        plan.virtio_win.as_ref().and_then(|p| p.attach.as_ref()),
    ) {
        let tmp = staging.join(path.file_name().unwrap());
        iso.write(&tmp)?;
        staged.push((tmp, path.clone()));
    }

    // Domains.
    let out_disks: Vec<OutputDisk> = plan
        .disks
        .iter()
        .map(|d| OutputDisk {
            path: d.output.clone(),
            format: match o.format {
                OutFormat::Qcow2 => OutputFormat::Qcow2,
                OutFormat::Raw => OutputFormat::Raw,
            },
            bios_geometry: d
                .geometry
                .as_ref()
                .filter(|g| g.mode == Some(FixMode::Pin))
                .and_then(|g| g.pin.map(|p| p.chs())),
        })
        .collect();
    let nvram = if uefi {
        let ovmf = domain::writer::OvmfPaths::default();
        let p = domain::writer::prepare_nvram(&model, staging, &ovmf)?;
        let fin = o.out.join(p.file_name().unwrap());
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
        let (xml, w1) = domain::writer::libvirt_xml(&model, &dopts)?;
        let q = QemuOptions::new(&o.out, &model);
        let cmd = domain::writer::qemu_command(&model, &dopts, &q)?;
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
            staged.push((tmp.clone(), o.out.join(tmp.file_name().unwrap())));
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

    // Everything succeeded: move into place.
    for (from, to) in &staged {
        std::fs::rename(from, to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    }
    report.success = true;

    if o.validate {
        for phase in [Phase::Bootstrap, Phase::Final] {
            let r = validate_phase(o, &name, phase_name(phase))?;
            report.success &= r.ok;
            report.validation.push(r);
        }
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
