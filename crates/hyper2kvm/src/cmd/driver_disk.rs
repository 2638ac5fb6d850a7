//! `hyper2kvm driver-disk --virtio-win PATH --os OSID --arch ARCH
//! (--floppy OUT.img | --iso OUT.iso)`: the storage (and optionally
//! network or other) VirtIO drivers for one Windows version on a floppy or
//! ISO, for installs and repairs that need an F6 floppy or "Load driver".

use anyhow::{bail, Result};
use guest::drivers::{Arch, Role};
use hyper2kvm::driverdisk::{self, Medium, Options};
use std::path::PathBuf;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// virtio-win ISO image or directory tree (ISO layout or the
    /// distribution package's /usr/share/virtio-win).
    #[arg(long)]
    virtio_win: PathBuf,
    /// Windows version: a catalog id or alias (xp, 2k3, w7, 2k8R2, w10,
    /// 2k22, win10, windows9-64...).
    #[arg(long)]
    os: String,
    /// Architecture: amd64 or x86.
    #[arg(long)]
    arch: String,
    /// Write a 1.44 MB FAT12 floppy image.
    #[arg(long, conflicts_with = "iso", required_unless_present = "iso")]
    floppy: Option<PathBuf>,
    /// Write an ISO 9660 (Joliet) image.
    #[arg(long)]
    iso: Option<PathBuf>,
    /// Also include the network driver (NetKVM).
    #[arg(long)]
    net: bool,
    /// Driver roles to include instead of the default (storage-blk, plus
    /// storage-scsi when the media has it for this OS) (repeatable: storage-blk, storage-scsi, net, balloon,
    /// serial, rng, panic, input, display, fwcfg).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Driver catalog (JSON) replacing the built-in one.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Run the subcommand.
pub fn run(a: Args) -> Result<()> {
    let Some(arch) = Arch::parse(&a.arch) else {
        bail!("unknown architecture '{}' (amd64 or x86)", a.arch);
    };
    let mut roles = vec![];
    for r in &a.roles {
        match Role::parse(r) {
            Some(role) => roles.push(role),
            None => bail!(
                "unknown driver role '{r}' (one of: {})",
                Role::ALL.map(|r| r.name()).join(", ")
            ),
        }
    }
    // Default: viostor must be there; vioscsi when the media has it for
    // this OS (old releases lack it for XP).
    let mut optional_roles = vec![];
    if roles.is_empty() {
        roles = vec![Role::StorageBlk];
        optional_roles.push(Role::StorageScsi);
    }
    if a.net && !roles.contains(&Role::Net) {
        roles.push(Role::Net);
    }
    let (medium, out) = match (a.floppy, a.iso) {
        (Some(f), None) => (Medium::Floppy, f),
        (None, Some(i)) => (Medium::Iso, i),
        _ => bail!("give exactly one of --floppy OUT.img or --iso OUT.iso"),
    };
    let rep = driverdisk::build(&Options {
        virtio_win: a.virtio_win,
        os: a.os,
        arch,
        roles,
        optional_roles,
        catalog: a.catalog,
        medium,
        out,
        force: a.force,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    println!(
        "{}: {} drivers for {} ({}) {}{}",
        rep.output.display(),
        match rep.medium {
            Medium::Floppy => "floppy with",
            Medium::Iso => "ISO with",
        },
        rep.os_name,
        rep.os_id,
        rep.arch,
        if rep.txtsetup_oem {
            ", txtsetup.oem for F6 text-mode setup"
        } else {
            ""
        }
    );
    for d in &rep.drivers {
        println!(
            "  {} ({}) from {}{}: {}",
            d.name,
            d.role,
            d.source_dir,
            d.service
                .as_deref()
                .map(|s| format!(", service {s}"))
                .unwrap_or_default(),
            d.hardware_ids.join(" ")
        );
    }
    for f in &rep.files {
        println!("    {:<28} {:>9}  {}", f.path, f.size, f.from);
    }
    for w in &rep.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
