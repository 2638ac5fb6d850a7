//! `hyper2kvm migrate SOURCE --out DIR ...`.

use anyhow::Result;
use hyper2kvm::diskconv::{Compress, OutFormat};
use hyper2kvm::migrate::{self, source::Overrides, Options};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Final block device model.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Block {
    /// One virtio-blk device per disk.
    VirtioBlk,
    /// One virtio-scsi controller.
    VirtioScsi,
}

/// Geometry fix mode.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum GeoMode {
    /// Automatic choice.
    Auto,
    /// Pin the BIOS geometry in the domains.
    Pin,
    /// Rewrite BPB/MBR CHS fields on the output.
    Rewrite,
    /// Audit only: change nothing (to reproduce a failure).
    Off,
}

/// Arguments of `migrate`.
#[derive(clap::Args)]
pub struct Args {
    /// VM description (.vmx, .ovf, .ova, .vbox, libvirt .xml) or disk images.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// Output directory (must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// virtio-win ISO (attached to the bootstrap domain) or directory tree
    /// (a CD with this guest's drivers is built into DIR and attached).
    #[arg(long)]
    virtio_win: Option<PathBuf>,
    /// Output disk format.
    #[arg(short = 'O', long = "format", value_enum, default_value = "qcow2")]
    format: OutFormat,
    /// Compress qcow2 outputs.
    #[arg(long, value_enum)]
    compress: Option<Compress>,
    /// Final block device model.
    #[arg(long, value_enum, default_value = "virtio-blk")]
    block: Block,
    /// Geometry fix mode.
    #[arg(long, value_enum, default_value = "auto")]
    geometry: GeoMode,
    /// Only inspect and plan.
    #[arg(long)]
    dry_run: bool,
    /// Boot both domains and classify the result.
    #[arg(long)]
    validate: bool,
    /// Validation timeout per phase, seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Accelerator for validation: auto, kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: String,
    /// A serial/screen string that means the guest booted (repeatable).
    #[arg(long = "success-marker")]
    success_markers: Vec<String>,
    /// Boot the bootstrap domain headless (on the output disks) until the
    /// Windows first-boot runner reports its bootstrap phase done on COM1,
    /// then power it off; the final domain's first boot finishes the rest.
    /// Uses --accel.
    #[arg(long)]
    first_boot: bool,
    /// --first-boot: time limit for the bootstrap phase, seconds (1 to
    /// 604800, a week).
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    first_boot_timeout: u64,
    /// --first-boot: seconds the guest gets to power off after the ACPI
    /// power button before QEMU is stopped (0 to 3600).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=3600))]
    first_boot_grace: u64,
    /// Write into a non-empty output directory.
    #[arg(long)]
    force: bool,
    /// Allow file references outside the source's directory.
    #[arg(long)]
    allow_outside_paths: bool,
    /// Memory in MiB (override or for bare disks), 1 to 67108864 (64 TiB).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=domain::MAX_MEMORY_MIB))]
    memory: Option<u64>,
    /// vCPUs (override or for bare disks), 1 to 1024.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(domain::MAX_VCPUS)))]
    vcpus: Option<u32>,
    /// Firmware: bios or uefi (override or for bare disks).
    #[arg(long)]
    firmware: Option<String>,
    /// Guest OS id, e.g. win10, winxp, linux (override or for bare disks).
    #[arg(long)]
    os: Option<String>,
    /// VM name (override).
    #[arg(long)]
    name: Option<String>,
    /// Conversion threads (0 = all CPUs).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Linux guests: do not run the bootstrap boot that rebuilds the
    /// initramfs for virtio (a TODO line instead).
    #[arg(long)]
    no_bootstrap_boot: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
}

/// Run `migrate`.
pub fn run(mut a: Args) -> Result<()> {
    // Absolute once, here: the libvirt XML and scripts name these paths.
    for p in a
        .sources
        .iter_mut()
        .chain([&mut a.out])
        .chain(a.virtio_win.as_mut())
    {
        *p = super::absolute(p)?;
    }
    let o = Options {
        sources: a.sources,
        out: a.out.clone(),
        virtio_win: a.virtio_win,
        format: a.format,
        compress: a.compress.map(|c| match c {
            Compress::Zlib => vdisk::writer::Compression::Zlib,
            Compress::Zstd => vdisk::writer::Compression::Zstd,
        }),
        block: match a.block {
            Block::VirtioBlk => domain::writer::BlockBus::VirtioBlk,
            Block::VirtioScsi => domain::writer::BlockBus::VirtioScsi,
        },
        dry_run: a.dry_run,
        validate: a.validate,
        validate_timeout: a.timeout,
        accel: a.accel,
        force: a.force,
        allow_outside: a.allow_outside_paths,
        overrides: Overrides {
            memory_mib: a.memory,
            vcpus: a.vcpus,
            firmware: a.firmware,
            os: a.os,
            name: a.name,
        },
        threads: a.threads,
        geometry: match a.geometry {
            GeoMode::Auto => None,
            GeoMode::Pin => Some(guest::fixgeo::FixMode::Pin),
            GeoMode::Rewrite => Some(guest::fixgeo::FixMode::Rewrite),
            GeoMode::Off => None,
        },
        success_markers: a.success_markers,
        geometry_off: matches!(a.geometry, GeoMode::Off),
        progress: !a.quiet && !a.json && std::io::stderr().is_terminal(),
        print_plan: !a.json,
        first_boot: a.first_boot.then(|| migrate::firstboot::FirstBootSettings {
            timeout: std::time::Duration::from_secs(a.first_boot_timeout),
            grace: std::time::Duration::from_secs(a.first_boot_grace),
        }),
        linux_bootstrap: !a.no_bootstrap_boot,
    };
    let res = migrate::run(&o);
    match res {
        Ok(r) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                hyper2kvm::errors::mark_json_error_printed();
            } else {
                print!("{}", migrate::summary::human(&r, &o));
            }
            if r.success {
                return Ok(());
            }
            let failed: Vec<String> = r
                .validation
                .iter()
                .filter(|v| !v.ok)
                .map(|v| format!("{}: {}", v.phase, v.outcome))
                .collect();
            anyhow::bail!("validation failed: {}", failed.join("; "))
        }
        Err(f) => {
            // Only this run's report, never one left by an earlier run.
            if let (true, Some((_, r))) = (a.json, &f.report) {
                println!("{}", serde_json::to_string_pretty(r)?);
                hyper2kvm::errors::mark_json_error_printed();
            }
            Err(f.into_error())
        }
    }
}
