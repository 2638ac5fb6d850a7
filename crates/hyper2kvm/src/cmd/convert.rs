//! `hyper2kvm convert SRC DST [-O qcow2|raw] [--compress zlib|zstd]`.

use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use vdisk::convert::{ConvertOptions, ConvertStats};
use vdisk::writer::{Compression, Qcow2Options, Qcow2Writer, RawWriter, SeqWriter};
use vdisk::{Disk, OpenOptions};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutFormat {
    /// qcow2 v3.
    Qcow2,
    /// Sparse raw.
    Raw,
}

/// Compression choice.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Compress {
    /// Deflate (readable by every qcow2 implementation).
    Zlib,
    /// Zstandard (QEMU 5.1+).
    Zstd,
}

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

/// Convert an open disk to `dst`; shared with `migrate`.
pub fn convert_disk(
    disk: &dyn Disk,
    dst: &std::path::Path,
    format: OutFormat,
    compress: Option<Compression>,
    threads: usize,
    overwrite: bool,
    show_progress: bool,
) -> Result<ConvertStats> {
    let size = disk.size();
    let writer: Box<dyn SeqWriter> = match format {
        OutFormat::Qcow2 => Box::new(Qcow2Writer::create(
            dst,
            size,
            Qcow2Options {
                compression: compress,
                ..Default::default()
            },
            overwrite,
        )?),
        OutFormat::Raw => {
            if compress.is_some() {
                anyhow::bail!("--compress needs -O qcow2");
            }
            Box::new(RawWriter::create(dst, size, overwrite)?)
        }
    };
    let bar = if show_progress {
        let b = indicatif::ProgressBar::new(size);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        b.set_message(
            dst.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        Some(b)
    } else {
        None
    };
    let opts = ConvertOptions {
        threads,
        compression: compress,
    };
    let cb = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done)
        }
    };
    let (_, stats) = vdisk::convert::convert(disk, writer, &opts, &cb)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(stats)
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
