//! `phony-windows`: build a phony Windows guest image and print the facts
//! it was built with (JSON).

use anyhow::{bail, Context, Result};
use clap::Parser;
use guest::drivers::Arch;
use guest::inspect::Firmware;
use phony::{Hypervisor, ImageFormat, Options, Version};
use std::path::PathBuf;

/// Build a phony Windows guest (disk image laid out like a real install).
#[derive(Parser, Debug)]
#[command(about, disable_version_flag = true)]
struct Cli {
    /// Windows version: xp, 2003, win7, 2008r2, win10, 2016, 2019, 2022, 2025, win11.
    #[arg(long = "version")]
    win: String,
    /// Architecture: x86 or x64 (default: the version's).
    #[arg(long)]
    arch: Option<String>,
    /// Firmware: bios or uefi (default: the version's).
    #[arg(long)]
    firmware: Option<String>,
    /// Variants (repeatable or comma-separated): vmware, hyperv,
    /// virtualbox, static-ip, hibernated, fast-startup, bitlocker, dirty-hive.
    #[arg(long, value_delimiter = ',')]
    variant: Vec<String>,
    /// Virtual size (bytes, or with K/M/G/T suffix).
    #[arg(long, default_value = "1G")]
    size: String,
    /// Output format: raw or qcow2.
    #[arg(long, default_value = "raw")]
    format: String,
    /// Host name (default `PHONY-<OSID>`).
    #[arg(long)]
    hostname: Option<String>,
    /// Shared test data directory (holding hives/ and phony-windows/).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata"))]
    testdata: PathBuf,
    /// Output image.
    out: PathBuf,
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| {
        format!("size {s:?}: expected a number with an optional K/M/G/T suffix")
    })?;
    n.checked_mul(mul)
        .with_context(|| format!("size {s:?} overflows"))
}

fn options(cli: &Cli) -> Result<Options> {
    let mut o = Options::new(Version::parse(&cli.win)?);
    o.arch = match cli.arch.as_deref() {
        None => None,
        Some("x86" | "i386" | "32") => Some(Arch::X86),
        Some("x64" | "amd64" | "x86_64" | "64") => Some(Arch::Amd64),
        Some(a) => bail!("--arch {a:?}: expected x86 or x64"),
    };
    o.firmware = match cli.firmware.as_deref() {
        None => None,
        Some("bios") => Some(Firmware::Bios),
        Some("uefi" | "efi") => Some(Firmware::Uefi),
        Some(f) => bail!("--firmware {f:?}: expected bios or uefi"),
    };
    for v in &cli.variant {
        match v.as_str() {
            "vmware" | "hyperv" | "virtualbox" if o.hypervisor != Hypervisor::None => {
                bail!("--variant {v}: only one hypervisor variant at a time")
            }
            "vmware" => o.hypervisor = Hypervisor::Vmware,
            "hyperv" | "hyper-v" => o.hypervisor = Hypervisor::Hyperv,
            "virtualbox" | "vbox" => o.hypervisor = Hypervisor::Virtualbox,
            "static-ip" => o.static_ip = true,
            "hibernated" => o.hibernated = true,
            "fast-startup" => o.fast_startup = true,
            "bitlocker" => o.bitlocker = true,
            "dirty-hive" => o.dirty_hive = true,
            _ => bail!("unknown --variant {v:?}"),
        }
    }
    o.size = parse_size(&cli.size)?;
    o.format = match cli.format.as_str() {
        "raw" => ImageFormat::Raw,
        "qcow2" => ImageFormat::Qcow2,
        f => bail!("--format {f:?}: expected raw or qcow2"),
    };
    o.hostname = cli.hostname.clone();
    Ok(o)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let o = options(&cli)?;
    let e = phony::build(&o, &cli.testdata, &cli.out)
        .with_context(|| format!("building {}", cli.out.display()))?;
    println!("{}", serde_json::to_string_pretty(&e)?);
    Ok(())
}
