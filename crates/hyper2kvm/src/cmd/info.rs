//! `hyper2kvm info IMAGE [--json]`.

use anyhow::Result;
use std::path::PathBuf;
use vdisk::{Disk, ExtentKind, OpenOptions};

/// Arguments of `info`.
#[derive(clap::Args)]
pub struct Args {
    /// Disk image (any supported format; probed by content).
    image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Allow files referenced by the image (extents, backing files) outside
    /// its directory.
    #[arg(long)]
    allow_outside_paths: bool,
}

/// Summary printed by `info`.
#[derive(serde::Serialize)]
pub struct Info {
    /// Top layer's format.
    pub format: String,
    /// Top layer's subformat.
    pub subformat: Option<String>,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Bytes of the virtual disk backed by data anywhere in the chain.
    pub allocated_bytes: u64,
    /// Bytes recorded as zero.
    pub zero_bytes: u64,
    /// Each layer, top first.
    pub chain: Vec<vdisk::LayerInfo>,
    /// Effective geometry hints.
    pub geometry: vdisk::GeometryHints,
    /// Warnings of every layer.
    pub warnings: Vec<String>,
}

/// Gather the summary of an open disk.
pub fn gather(disk: &dyn Disk) -> Result<Info> {
    let chain = vdisk::disk::chain(disk);
    let (mut alloc, mut zero, mut pos) = (0u64, 0u64, 0u64);
    let size = disk.size();
    while pos < size {
        let e = disk.extent(pos, size - pos)?;
        match e.kind {
            ExtentKind::Data => alloc += e.len,
            ExtentKind::Zero => zero += e.len,
            ExtentKind::Unallocated => {}
        }
        pos += e.len.max(1);
    }
    let warnings = chain.iter().flat_map(|l| l.warnings.clone()).collect();
    Ok(Info {
        format: chain[0].format.clone(),
        subformat: chain[0].subformat.clone(),
        virtual_size: size,
        allocated_bytes: alloc,
        zero_bytes: zero,
        geometry: disk.geometry_hints(),
        chain,
        warnings,
    })
}

/// Run `info`.
pub fn run(mut a: Args) -> Result<()> {
    a.image = super::absolute(&a.image)?;
    let opts = OpenOptions {
        allow_outside: a.allow_outside_paths,
        ..Default::default()
    };
    let disk = super::open_image(&a.image, opts)?;
    let info = gather(disk.as_ref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!("image:          {}", a.image.display());
    println!(
        "format:         {}{}",
        info.format,
        info.subformat
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default()
    );
    println!(
        "virtual size:   {} ({} bytes)",
        human(info.virtual_size),
        info.virtual_size
    );
    println!("allocated:      {}", human(info.allocated_bytes));
    if info.zero_bytes > 0 {
        println!("zero clusters:  {}", human(info.zero_bytes));
    }
    for (i, l) in info.chain.iter().enumerate() {
        println!(
            "layer {i}:        {} [{}{}] file size {}",
            l.path.display(),
            l.format,
            l.subformat
                .as_ref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default(),
            human(l.file_size)
        );
        for x in &l.extra_files {
            println!("                  + {}", x.display());
        }
    }
    if let Some(g) = info.geometry.physical {
        println!(
            "geometry:       C/H/S {}/{}/{} ({})",
            g.cylinders,
            g.heads,
            g.sectors,
            info.geometry.source.clone().unwrap_or_default()
        );
    }
    if let Some(g) = info.geometry.bios {
        println!(
            "BIOS geometry:  C/H/S {}/{}/{}",
            g.cylinders, g.heads, g.sectors
        );
    }
    for w in &info.warnings {
        println!("warning:        {w}");
    }
    Ok(())
}

/// Bytes in binary units.
pub fn human(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}
