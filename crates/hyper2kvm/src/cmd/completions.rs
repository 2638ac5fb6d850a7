//! `hyper2kvm completions SHELL` and `hyper2kvm man [--dir DIR]`: shell
//! completion scripts and man pages generated from the CLI definition
//! itself (clap_complete, clap_mangen), so they never drift from it.

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Generator;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `completions`.
#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(clap::Args)]
pub struct ManArgs {
    /// Write `hyper2kvm.1` and one `hyper2kvm-<subcommand>.1` per
    /// subcommand into DIR instead of printing the main page.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn cli() -> clap::Command {
    let mut cmd = crate::Cli::command();
    cmd.set_bin_name("hyper2kvm");
    cmd.build();
    cmd
}

fn print(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Run `completions`: the script on stdout.
pub fn run(a: Args) -> Result<()> {
    let mut buf = Vec::new();
    a.shell
        .try_generate(&cli(), &mut buf)
        .with_context(|| format!("generating {} completions", a.shell))?;
    print(&buf)
}

/// Run `man`: the main page (roff) on stdout, or every page into a folder.
pub fn man(a: ManArgs) -> Result<()> {
    match a.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cli(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cli()).render(&mut buf)?;
            print(&buf)
        }
    }
}
