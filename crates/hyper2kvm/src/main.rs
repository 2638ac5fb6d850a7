//! `hyper2kvm`: the command-line front end. Each subcommand lives in its
//! own module under `cmd/`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{Parser, Subcommand};

/// Move VMs onto KVM/QEMU so that they boot on the first try.
#[derive(Parser)]
#[command(name = "hyper2kvm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a disk image: format, size, allocation, chain, geometry.
    Info(cmd::info::Args),
    /// Convert a disk image (any source format) to qcow2 or raw.
    Convert(cmd::convert::Args),
    /// Registry hive tools: export, import, replay, check, new.
    Hive(cmd::hive::Args),
    /// Inspect disks: partitions, filesystems, geometry audit.
    Inspect(cmd::inspect::Args),
    /// Fix CHS geometry mismatches on an output image.
    FixGeometry(cmd::fix_geometry::Args),
    /// Make Windows on output images boot on VirtIO storage (in place).
    FixWindows(cmd::fix_windows::Args),
    /// Offline guest filesystem access (ls, cat, put, mkdir, rm, check).
    Fs(cmd::fs::Args),
    /// Migrate a VM: inspect, plan, convert, fix, write domains, validate.
    Migrate(cmd::migrate::Args),
    /// Boot a migration output under QEMU and classify the result.
    Validate(cmd::validate::Args),
    /// Build an F6 floppy or ISO with VirtIO drivers for one OS.
    DriverDisk(cmd::driver_disk::Args),
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Info(a) => cmd::info::run(a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Hive(a) => cmd::hive::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::FixGeometry(a) => cmd::fix_geometry::run(a),
        Command::FixWindows(a) => cmd::fix_windows::run(a),
        Command::Fs(a) => cmd::fs::run(a),
        Command::Migrate(a) => cmd::migrate::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::DriverDisk(a) => cmd::driver_disk::run(a),
    };
    if let Err(e) = res {
        // One line with the whole cause chain.
        let msg = e
            .chain()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        eprintln!("hyper2kvm: error: {msg}");
        std::process::exit(1);
    }
}
