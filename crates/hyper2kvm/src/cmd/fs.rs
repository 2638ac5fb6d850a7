//! `hyper2kvm fs`: list, read and edit files inside a guest filesystem
//! (NTFS or FAT) of a disk image, in place, without root or mounting.
//!
//! Targets are `IMAGE[:PARTNO]`. Reads open any image format; writes go
//! straight into raw or qcow2 images the user names.

use anyhow::{bail, Context};
use guest::fs::{open_image, open_image_rw, parse_target, Entry};
use std::io::Write;

/// Arguments of `hyper2kvm fs`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// List a directory.
    Ls {
        /// IMAGE[:PARTNO]
        target: String,
        /// Directory path inside the filesystem ('/' or '\' separators).
        #[arg(default_value = "/")]
        path: String,
        /// Long listing (type, size, modification time, inode).
        #[arg(short = 'l')]
        long: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Print a file to standard output.
    Cat {
        /// IMAGE[:PARTNO]
        target: String,
        /// File path.
        path: String,
    },
    /// Copy a local file into the filesystem (creates or replaces).
    Put {
        /// IMAGE[:PARTNO] (raw or qcow2; modified in place).
        target: String,
        /// Local file.
        local: std::path::PathBuf,
        /// Destination path inside the filesystem.
        path: String,
        /// Create missing parent directories.
        #[arg(short = 'p', long)]
        parents: bool,
        /// Write even if the volume is dirty, hibernated or its journal is unclean.
        #[arg(long)]
        force: bool,
    },
    /// Create a directory.
    Mkdir {
        /// IMAGE[:PARTNO]
        target: String,
        /// Directory path.
        path: String,
        /// Create missing parents too.
        #[arg(short = 'p', long)]
        parents: bool,
        /// Write despite failed safety checks.
        #[arg(long)]
        force: bool,
    },
    /// Remove a file or an empty directory.
    Rm {
        /// IMAGE[:PARTNO]
        target: String,
        /// Path.
        path: String,
        /// Write despite failed safety checks.
        #[arg(long)]
        force: bool,
    },
    /// Rename or move a file or directory.
    Mv {
        /// IMAGE[:PARTNO]
        target: String,
        /// Existing path.
        from: String,
        /// New path (must not exist).
        to: String,
        /// Write despite failed safety checks.
        #[arg(long)]
        force: bool,
    },
    /// Check filesystem consistency (read-only); exit status 1 on errors.
    Check {
        /// IMAGE[:PARTNO]
        target: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn fmt_time(t: Option<i64>) -> String {
    let Some(t) = t else { return "-".into() };
    let days = t.div_euclid(86400);
    let s = t.rem_euclid(86400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn print_ls(entries: &[Entry], long: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in entries {
        if long {
            writeln!(
                out,
                "{} {:>12} {} {:>8} {}{}",
                if e.is_dir { 'd' } else { '-' },
                e.size,
                fmt_time(e.mtime),
                e.inode.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                e.name,
                if e.is_dir { "/" } else { "" }
            )?;
        } else {
            writeln!(out, "{}", e.name)?;
        }
    }
    Ok(())
}

/// Run `hyper2kvm fs`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match run_inner(args) {
        // `hyper2kvm fs ls ... | head` is not an error
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn run_inner(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Sub::Ls {
            target,
            path,
            long,
            json,
        } => {
            let (img, part) = parse_target(&target);
            let fs = open_image(&img, part).with_context(|| format!("opening {target}"))?;
            let mut entries = fs.list(&path).with_context(|| format!("listing {path}"))?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print_ls(&entries, long)?;
            }
        }
        Sub::Cat { target, path } => {
            let (img, part) = parse_target(&target);
            let fs = open_image(&img, part).with_context(|| format!("opening {target}"))?;
            let data = fs.read(&path).with_context(|| format!("reading {path}"))?;
            std::io::stdout().lock().write_all(&data)?;
        }
        Sub::Put {
            target,
            local,
            path,
            parents,
            force,
        } => {
            let data =
                std::fs::read(&local).with_context(|| format!("reading {}", local.display()))?;
            let (img, part) = parse_target(&target);
            let mut fs = open_image_rw(&img, part, force)
                .with_context(|| format!("opening {target} for writing"))?;
            if parents {
                let parts: Vec<&str> = path.split(['/', '\\']).filter(|s| !s.is_empty()).collect();
                if parts.len() > 1 {
                    fs.mkdir_p(&parts[..parts.len() - 1].join("/"))?;
                }
            }
            fs.write(&path, &data)
                .with_context(|| format!("writing {path}"))?;
            fs.flush()?;
        }
        Sub::Mkdir {
            target,
            path,
            parents,
            force,
        } => {
            let (img, part) = parse_target(&target);
            let mut fs = open_image_rw(&img, part, force)
                .with_context(|| format!("opening {target} for writing"))?;
            if parents {
                fs.mkdir_p(&path)?;
            } else {
                fs.mkdir(&path)
                    .with_context(|| format!("creating {path}"))?;
            }
            fs.flush()?;
        }
        Sub::Rm {
            target,
            path,
            force,
        } => {
            let (img, part) = parse_target(&target);
            let mut fs = open_image_rw(&img, part, force)
                .with_context(|| format!("opening {target} for writing"))?;
            fs.remove(&path)
                .with_context(|| format!("removing {path}"))?;
            fs.flush()?;
        }
        Sub::Mv {
            target,
            from,
            to,
            force,
        } => {
            let (img, part) = parse_target(&target);
            let mut fs = open_image_rw(&img, part, force)
                .with_context(|| format!("opening {target} for writing"))?;
            fs.rename(&from, &to)
                .with_context(|| format!("renaming {from} to {to}"))?;
            fs.flush()?;
        }
        Sub::Check { target, json } => {
            let (img, part) = parse_target(&target);
            let fs = open_image(&img, part).with_context(|| format!("opening {target}"))?;
            let r = fs.check()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                // The report lists the errors: no second JSON document.
                hyper2kvm::errors::mark_json_error_printed();
            } else {
                println!("{}", r.summary);
                for e in &r.errors {
                    println!("error: {e}");
                }
                for w in &r.warnings {
                    println!("warning: {w}");
                }
            }
            if !r.errors.is_empty() {
                bail!("{} consistency errors", r.errors.len());
            }
        }
    }
    Ok(())
}
