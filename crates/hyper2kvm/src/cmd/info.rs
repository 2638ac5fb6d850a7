//! `hyper2kvm info` (not implemented yet).

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Arguments (unused until implemented).
    rest: Vec<String>,
}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("'info' is not implemented yet")
}
