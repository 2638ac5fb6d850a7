//! `hyper2kvm`: the command-line front end. Each subcommand lives in its
//! own module under `cmd/`.
#![forbid(unsafe_code)]

mod cmd;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use hyper2kvm::{cleanup, errors};

/// Move VMs onto KVM/QEMU so that they boot on the first try.
#[derive(Parser)]
#[command(name = "hyper2kvm", version, about)]
pub(crate) struct Cli {
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
    /// Print the man page (roff), or write one page per subcommand.
    Man(cmd::completions::ManArgs),
}

/// Whether the command line asked for JSON output (`--json` on the
/// subcommand that runs).
fn wants_json(m: &ArgMatches) -> bool {
    let here = matches!(m.try_get_one::<bool>("json"), Ok(Some(true)));
    here || m.subcommand().is_some_and(|(_, sub)| wants_json(sub))
}

/// A write to a closed stdout (`hyper2kvm info X | head -1`) panics inside
/// `println!`: end quietly instead, removing what is registered for
/// cleanup, the way a C tool dies of SIGPIPE.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        let printing = msg.starts_with("failed printing to stdout")
            || msg.starts_with("failed printing to stderr");
        if printing && msg.ends_with(&format!("(os error {EPIPE})")) {
            cleanup::terminate(signal_hook::consts::SIGPIPE);
        }
        default(info)
    }));
}

/// EPIPE, the OS error of a write to a pipe nobody reads (32 on Linux).
const EPIPE: i32 = 32;

fn parse() -> (Cli, bool) {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            let info = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            if !info && std::env::args_os().any(|a| a == "--json") {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                let first = first.strip_prefix("error: ").unwrap_or(first);
                let err = anyhow::anyhow!("{first}").context("invalid command line");
                println!("{}", errors::json_object(&err));
            }
            e.exit()
        }
    };
    let json = wants_json(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (cli, json)
}

fn main() {
    quiet_broken_pipe();
    let (cli, json) = parse();
    if let Err(e) = cleanup::install_signal_handlers() {
        cleanup::say(&format!(
            "cannot watch SIGINT/SIGTERM ({e}); an interrupted run may leave temporary files"
        ));
    }
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
        Command::Completions(a) => cmd::completions::run(a),
        Command::Man(a) => cmd::completions::man(a),
    };
    if let Err(e) = res {
        if errors::is_broken_pipe(&e) {
            cleanup::terminate(signal_hook::consts::SIGPIPE);
        }
        if json && !errors::json_error_printed() {
            println!("{}", errors::json_object(&e));
        }
        cleanup::say(&format!("error: {}", errors::chain_text(&e)));
        std::process::exit(1);
    }
}
