//! Converting one open disk to an output file, with a progress bar: shared
//! by `convert` and `migrate`.

use anyhow::Result;
use vdisk::convert::{ConvertOptions, ConvertStats};
use vdisk::writer::{Compression, Qcow2Options, Qcow2Writer, RawWriter, SeqWriter};
use vdisk::Disk;

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

impl OutFormat {
    /// `qcow2` or `raw`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutFormat::Qcow2 => "qcow2",
            OutFormat::Raw => "raw",
        }
    }
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
