//! Generates the synthetic VMware VM used by `scripts/demo.sh`: see
//! [`hyper2kvm::fixtures::make_demo_vm`].
//!
//! Usage: `cargo run --example make_demo_vm -- DIR [255-heads|hidden-sectors]`.

use hyper2kvm::fixtures::{make_demo_vm, Seed};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: make_demo_vm DIR [seed]")?);
    let seed = match args.next().as_deref() {
        None | Some("255-heads") => Seed::Heads255,
        Some("hidden-sectors") => Seed::HiddenSectors,
        Some(other) => return Err(format!("unknown seed {other}").into()),
    };
    println!("{}", make_demo_vm(&dir, seed)?.display());
    Ok(())
}
