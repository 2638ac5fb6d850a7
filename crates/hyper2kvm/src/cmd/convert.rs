//! `hyper2kvm convert SRC DST [-O qcow2|raw] [--compress zlib|zstd]`.

use anyhow::{bail, Context, Result};
use hyper2kvm::diskconv::{convert_disk, Compress, OutFormat};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
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

/// Refuse a destination that is one of the files the source reads (a
/// layer of its chain or an extent file, compared by inode, so hard and
/// symbolic links count), whatever the flags: the source is never written.
fn refuse_overwriting_source(disk: &dyn vdisk::Disk, dst: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(d) = std::fs::metadata(dst) else {
        return Ok(());
    };
    for (i, layer) in vdisk::disk::chain(disk).iter().enumerate() {
        let files = std::iter::once((&layer.path, "image file"))
            .chain(layer.extra_files.iter().map(|f| (f, "extent file")));
        for (f, what) in files {
            let Ok(m) = std::fs::metadata(f) else {
                continue;
            };
            if (m.dev(), m.ino()) == (d.dev(), d.ino()) {
                bail!(
                    "{}: refused: the destination is the {what} {} of layer {i} of the source; \
                     the source is never written, not even with --force: choose another destination",
                    dst.display(),
                    f.display()
                );
            }
        }
    }
    Ok(())
}

/// Run `convert`.
pub fn run(mut a: Args) -> Result<()> {
    a.src = super::absolute(&a.src)?;
    a.dst = super::absolute(&a.dst)?;
    let opts = OpenOptions {
        allow_outside: a.allow_outside_paths,
        ..Default::default()
    };
    let disk = super::open_image(&a.src, opts)?;
    refuse_overwriting_source(disk.as_ref(), &a.dst)?;
    hyper2kvm::cleanup::remove_stale_temps(&a.dst);
    let _interrupt = hyper2kvm::cleanup::register_temp_of(&a.dst);
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
