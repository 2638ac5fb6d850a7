//! `hyper2kvm fix-windows IMAGE... --virtio-win ISO|DIR [--block B]
//! [--dry-run] [--json]`: make the Windows install on a VM's *output*
//! images boot on VirtIO storage (boot-start driver in every control set,
//! device binding, bootstrap controller, staged drivers, BCD backup and
//! checks, AutoReboot=0).
//!
//! The images (raw or qcow2, all the VM's disks in order) are edited in
//! place: point it at the copies a conversion wrote, never at a source.
//! Every action is printed with its reason before anything is written; a
//! guest that must not be touched offline (hibernated, Fast Startup,
//! BitLocker, dirty NTFS, unreplayable hive) is refused with what to do on
//! the source VM, and nothing is written. A second run changes nothing.

use anyhow::{bail, Context};
use guest::apply::ExecReport;
use guest::inspect::{inspect_vm, VmInspection};
use guest::plan::PlannedAction;
use guest::windows::storage::FinalBus;
use hyper2kvm::migrate::summary::action_line;
use hyper2kvm::winfix;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use vdisk::DiskWrite;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The VM's output images, in disk order (raw or qcow2; edited in
    /// place). Never point this at a source.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// virtio-win ISO or directory tree holding the drivers.
    #[arg(long = "virtio-win", value_name = "ISO|DIR")]
    virtio_win: PathBuf,
    /// Disk bus of the final domain.
    #[arg(long, default_value = "virtio-blk", value_parser = ["virtio-blk", "virtio-scsi"])]
    block: String,
    /// Plan and print only; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan and the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    images: &'a [PathBuf],
    bus: FinalBus,
    dry_run: bool,
    installs: Vec<String>,
    actions: &'a [PlannedAction],
    warnings: &'a [String],
    report: Option<&'a ExecReport>,
}

/// The image formats edited in place.
#[derive(Clone, Copy)]
enum Fmt {
    Raw,
    Qcow2,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let bus = match args.block.as_str() {
        "virtio-scsi" => FinalBus::VirtioScsi,
        _ => FinalBus::VirtioBlk,
    };
    let fmts = formats(&args.images)?;
    let (ins, actions, warnings) = plan(&args, bus)?;
    let installs: Vec<String> = ins
        .windows
        .iter()
        .map(|w| format!("{} ({}, {:?})", w.product_name, w.os_id, w.arch))
        .collect();
    if !args.json {
        for i in &installs {
            println!("found {i}");
        }
        for a in &actions {
            println!("{}", action_line(a));
        }
        for w in &warnings {
            println!("warning: {w}");
        }
    }
    let report = if args.dry_run {
        None
    } else {
        Some(execute(&args.images, &fmts, &actions)?)
    };
    if args.json {
        let out = Output {
            images: &args.images,
            bus,
            dry_run: args.dry_run,
            installs,
            actions: &actions,
            warnings: &warnings,
            report: report.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match report {
        None => println!("dry run: nothing written"),
        Some(r) => {
            for l in &r.lines {
                println!("done {l}");
            }
            for c in &r.checks {
                println!("check {c}");
            }
            println!("{} action(s) changed the image(s)", r.changed);
        }
    }
    Ok(())
}

/// Every image must be raw or qcow2 (the formats written in place).
fn formats(images: &[PathBuf]) -> anyhow::Result<Vec<Fmt>> {
    let mut out = vec![];
    for p in images {
        let file = vdisk::file::ImageFile::open(p)
            .with_context(|| format!("cannot open {}", p.display()))?;
        out.push(match vdisk::probe::detect(&file)? {
            vdisk::Format::Raw => Fmt::Raw,
            vdisk::Format::Qcow2 => Fmt::Qcow2,
            other => bail!(
                "{}: {other:?} images cannot be edited in place; fix-windows edits the raw or \
                 qcow2 output of a conversion (hyper2kvm convert), never a source",
                p.display()
            ),
        });
    }
    Ok(out)
}

/// Inspect the images together (read-only) and plan every Windows install
/// found on them.
fn plan(
    args: &Args,
    bus: FinalBus,
) -> anyhow::Result<(VmInspection, Vec<PlannedAction>, Vec<String>)> {
    let mut disks = vec![];
    for p in &args.images {
        disks.push(vdisk::open(p).with_context(|| format!("cannot open {}", p.display()))?);
    }
    let refs: Vec<&dyn vdisk::Disk> = disks.iter().map(|d| d.as_ref()).collect();
    let ins = inspect_vm(&refs);
    if ins.windows.is_empty() {
        // Say why when inspection knows (a BitLocker system volume, an
        // unreadable hive): the admin acts on the source VM.
        let why: String = ins.warnings.iter().map(|w| format!("\n  {w}")).collect();
        bail!(
            "no Windows install found on {}; nothing was written{why}",
            args.images
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut actions = vec![];
    let mut warnings = ins.warnings.clone();
    for w in &ins.windows {
        let p = winfix::plan_windows(&refs, &ins, w, &args.virtio_win, bus, &[]).with_context(
            || {
                format!(
                    "{} on disk {}: nothing was written",
                    w.product_name, w.system.disk
                )
            },
        )?;
        actions.extend(p.actions);
        warnings.extend(p.warnings);
    }
    Ok((ins, actions, warnings))
}

/// Open the images for writing and carry the actions out.
fn execute(
    images: &[PathBuf],
    fmts: &[Fmt],
    actions: &[PlannedAction],
) -> anyhow::Result<ExecReport> {
    let mut disks: Vec<Arc<dyn DiskWrite>> = vec![];
    for (p, f) in images.iter().zip(fmts) {
        let ctx = || format!("cannot open {} for writing", p.display());
        disks.push(match f {
            Fmt::Raw => Arc::new(vdisk::raw::RawDiskMut::open(p).with_context(ctx)?),
            Fmt::Qcow2 => Arc::new(vdisk::qcow2::open_rw(p).with_context(ctx)?),
        });
    }
    let sources = winfix::Sources::default();
    let r = guest::apply::execute(actions, &disks, &|f| sources.open(f))
        .context("applying the Windows fix")?;
    for (d, p) in disks.iter().zip(images) {
        d.flush()
            .with_context(|| format!("flushing {}", p.display()))?;
    }
    Ok(r)
}
