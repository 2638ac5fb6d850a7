//! `hyper2kvm migrate` (not implemented yet).

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Arguments (unused until implemented).
    rest: Vec<String>,
}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("'migrate' is not implemented yet")
}
