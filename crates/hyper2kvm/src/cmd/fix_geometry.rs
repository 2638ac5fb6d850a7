//! `hyper2kvm fix-geometry IMAGE [--mode pin|rewrite] [--bus B]... [--json]`:
//! fix CHS geometry mismatches of an *output* image (raw or qcow2, written
//! in place). Rewrite changes the image in place and
//! lists every change; pin changes nothing and prints the pinned geometry
//! with the QEMU and libvirt snippets.

use anyhow::{bail, Context};
use guest::audit::audit;
use guest::fixgeo::{self, Change, FixMode, GeometryPlan};
use guest::geometry::{Bus, DeviceGeometry};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Output image to fix in place (raw or qcow2). Never point this at a source.
    image: PathBuf,
    /// pin (QEMU lcyls/lheads/lsecs; nothing written) or rewrite (BPB and
    /// MBR CHS fields); chosen automatically when absent.
    #[arg(long, value_parser = ["pin", "rewrite"])]
    mode: Option<String>,
    /// Target bus: ide, sata, virtio (virtio-blk) or virtio-scsi. Repeat
    /// for a migration (bootstrap first, final last). Default: sata then
    /// virtio.
    #[arg(long = "bus")]
    buses: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output {
    image: PathBuf,
    plan: GeometryPlan,
    changes: Vec<Change>,
}

/// Run the subcommand.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    args.image = super::absolute(&args.image)?;
    let mode = args.mode.as_deref().and_then(FixMode::parse);
    let mut buses = vec![];
    for b in &args.buses {
        buses.push(Bus::parse(b).with_context(|| {
            format!("unknown bus '{b}' (expected ide, sata, virtio or virtio-scsi)")
        })?);
    }
    if buses.is_empty() {
        buses = vec![Bus::Sata, Bus::VirtioBlk];
    }
    let file = vdisk::file::ImageFile::open(&args.image)?;
    let format = vdisk::probe::detect(&file)?;
    drop(file);
    let (plan, changes) = match format {
        vdisk::Format::Raw => {
            let disk = vdisk::raw::RawDiskMut::open(&args.image)?;
            let a = audit(&disk, &DeviceGeometry::default())?;
            let plan = fixgeo::plan(&disk, &a, mode, &buses)?;
            let changes = fixgeo::apply(&disk, &a, &plan)?;
            (plan, changes)
        }
        vdisk::Format::Qcow2 => {
            let disk = vdisk::qcow2::open_rw(&args.image)?;
            let a = audit(&disk, &DeviceGeometry::default())?;
            let plan = fixgeo::plan(&disk, &a, mode, &buses)?;
            let changes = fixgeo::apply(&disk, &a, &plan)?;
            (plan, changes)
        }
        other => {
            // Read-only: fine for pin, refused for rewrite.
            let disk = vdisk::open(&args.image)?;
            let a = audit(&*disk, &DeviceGeometry::default())?;
            let plan = fixgeo::plan(&*disk, &a, mode, &buses)?;
            if plan.mode == Some(FixMode::Rewrite) {
                bail!(
                    "{}: rewrite needs an in-place writer; {other:?} images cannot be written \
                     in place yet (convert to raw first, or use --mode pin)",
                    args.image.display()
                );
            }
            (plan, vec![])
        }
    };
    if args.json {
        let out = Output {
            image: args.image.clone(),
            plan,
            changes,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{}", args.image.display());
    for r in &plan.reasons {
        println!("  {r}");
    }
    super::inspect::print_plan(&plan, "  ");
    if let Some(props) = &plan.qemu_device_props {
        println!("  QEMU: -device <ide-hd|virtio-blk-pci|scsi-hd>,drive=...,{props}");
    }
    if let Some(x) = &plan.libvirt_override {
        println!(
            "  libvirt (<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>, \
             disk with <alias name='{}'/>):",
            fixgeo::LIBVIRT_ALIAS
        );
        for l in x.lines() {
            println!("    {l}");
        }
    }
    if changes.is_empty() {
        println!("  no change written to the image");
    } else {
        for c in &changes {
            println!("  changed at byte {:#x}: {}", c.offset, c.what);
        }
    }
    Ok(())
}
