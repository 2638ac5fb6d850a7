//! `hyper2kvm validate DIR`: boot a migration output under QEMU (from
//! throw-away qcow2 overlays: the disks are never written) and classify the result. The file
//! contract with `migrate` is documented in `hyper2kvm::validate`.

use anyhow::Context;
use hyper2kvm::validate::{validate_dir, Accel, DirOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Which phases to boot.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Phase {
    /// The bootstrap boot (generic drivers, before virtio is switched on).
    Bootstrap,
    /// The final configuration.
    Final,
    /// Bootstrap then final.
    Both,
}

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Migration output directory holding `<vm>-<phase>.argv.json`.
    dir: PathBuf,
    /// Phase(s) to boot.
    #[arg(long, value_enum, default_value = "both")]
    phase: Phase,
    /// Seconds allowed per boot (default: validate.json's, else 300).
    #[arg(long)]
    timeout: Option<u64>,
    /// Accelerator: auto probes KVM with a tiny boot and falls back to TCG.
    #[arg(long, default_value = "auto")]
    accel: Accel,
    /// VM to validate when DIR holds several.
    #[arg(long)]
    vm: Option<String>,
    /// A serial/screen string that means the guest booted (repeatable),
    /// in addition to DIR/validate.json's.
    #[arg(long = "success-marker")]
    success_markers: Vec<String>,
    /// Print the reports as a JSON array instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Run the subcommand. Fails (non-zero exit) when a phase did not boot.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    // QEMU runs in DIR and is given paths under it: they must be absolute.
    args.dir = super::absolute(&args.dir)?;
    let phases = match args.phase {
        Phase::Bootstrap => vec!["bootstrap".to_string()],
        Phase::Final => vec!["final".to_string()],
        Phase::Both => {
            // Boot the phases that exist; at least one must.
            let found = hyper2kvm::validate::find_phases(&args.dir)
                .with_context(|| format!("reading {}", args.dir.display()))?;
            let mut v = Vec::new();
            for p in ["bootstrap", "final"] {
                if found
                    .iter()
                    .any(|f| f.phase == p && args.vm.as_ref().is_none_or(|vm| &f.vm == vm))
                {
                    v.push(p.to_string());
                }
            }
            if v.is_empty() {
                anyhow::bail!(
                    "{}: no <vm>-bootstrap.argv.json or <vm>-final.argv.json",
                    args.dir.display()
                );
            }
            v
        }
    };
    let opts = DirOptions {
        phases,
        timeout: args.timeout.map(Duration::from_secs),
        accel: args.accel,
        vm: args.vm,
        success_markers: args.success_markers,
    };
    let results = validate_dir(&args.dir, &opts)?;
    if args.json {
        let reports: Vec<_> = results.iter().map(|r| &r.report).collect();
        println!("{}", serde_json::to_string_pretty(&reports)?);
        // The reports say what failed: no second JSON document.
        hyper2kvm::errors::mark_json_error_printed();
    } else {
        for r in &results {
            let rep = &r.report;
            println!(
                "{} {}: {} in {:.1} s ({}): {}",
                r.file.vm,
                rep.phase,
                if rep.ok { "BOOTED" } else { "FAILED" },
                rep.seconds,
                rep.accel,
                rep.reason
            );
            if !rep.ok {
                for l in rep.last_serial_lines.iter().rev().take(5).rev() {
                    println!("    serial| {l}");
                }
            }
            if let Some(s) = &rep.screenshot {
                println!("    screen: {}", s.display());
            }
            println!("    report: {}", r.report_path.display());
        }
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !r.report.ok)
        .map(|r| r.report.phase.as_str())
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("validation failed: {}", failed.join(", "));
    }
    Ok(())
}
