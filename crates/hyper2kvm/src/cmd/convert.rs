//! `hyper2kvm convert SRC DST [-O qcow2|raw] [--compress zlib|zstd]`.

use anyhow::{Context, Result};
use hyper2kvm::diskconv::{convert_disk, Compress, OutFormat};
use std::io::IsTerminal;
use std::path::PathBuf;
use vdisk::writer::Compression;
use vdisk::OpenOptions;

/// Arguments of `convert`.
#[derive(clap::Args)]
pub struct Args {
    /// Source image (any supported format; never modified).
    src: PathBuf,
    /// Destination file (written under a temporary name, renamed when done).
    dst: PathBuf,
    /// Output format.
    #[arg(short = 'O', long = "format", value_enum, default_value = "qcow2")]
    format: OutFormat,
    /// Compress qcow2 clusters.
    #[arg(long, value_enum)]
    compress: Option<Compress>,
    /// Worker threads (default: all CPUs).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// Replace an existing destination.
    #[arg(long)]
    force: bool,
    /// Allow files referenced by the image outside its directory.
    #[arg(long)]
    allow_outside_paths: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Run `convert`.
pub fn run(a: Args) -> Result<()> {
    let opts = OpenOptions {
        allow_outside: a.allow_outside_paths,
        ..Default::default()
    };
    let disk = vdisk::open_opts(&a.src, opts)
        .with_context(|| format!("cannot open {}", a.src.display()))?;
    let compress = a.compress.map(|c| match c {
        Compress::Zlib => Compression::Zlib,
        Compress::Zstd => Compression::Zstd,
    });
    let show = !a.quiet && !a.json && std::io::stderr().is_terminal();
    let t = std::time::Instant::now();
    let stats = convert_disk(
        disk.as_ref(),
        &a.dst,
        a.format,
        compress,
        a.threads,
        a.force,
        show,
    )
    .with_context(|| format!("converting {} to {}", a.src.display(), a.dst.display()))?;
    let secs = t.elapsed().as_secs_f64();
    if a.json {
        let v = serde_json::json!({
            "source": a.src, "destination": a.dst, "format": a.format,
            "seconds": secs, "stats": stats,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !a.quiet {
        println!(
            "converted {} -> {} ({:?}): {} virtual, {} read, {} data clusters, {} zero clusters, {:.2}s",
            a.src.display(),
            a.dst.display(),
            a.format,
            super::info::human(stats.virtual_size),
            super::info::human(stats.bytes_read),
            stats.data_clusters,
            stats.zero_clusters,
            secs
        );
    }
    Ok(())
}
