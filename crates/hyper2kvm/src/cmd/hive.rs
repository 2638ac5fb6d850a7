//! `hyper2kvm hive`: registry hive tools (export, import, replay, check, new).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use regf::{Hive, ReplayPolicy};

/// Arguments of `hyper2kvm hive`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: HiveCmd,
}

#[derive(clap::Subcommand)]
enum HiveCmd {
    /// Print a key and its subtree as .reg text (or JSON) on stdout.
    Export {
        /// Hive file (logs next to it are replayed in memory; a dirty hive
        /// whose logs are missing or unusable is read as it is, with a
        /// warning).
        hive: PathBuf,
        /// Key path below the root (default: the root).
        key: Option<String>,
        /// JSON instead of .reg text.
        #[arg(long)]
        json: bool,
        /// Prefix for key headers, e.g. 'HKEY_LOCAL_MACHINE\SYSTEM'
        /// (default: hivexregedit style '[\path]').
        #[arg(long, default_value = "")]
        prefix: String,
        /// Use the primary file as it is even if dirty (do not replay logs).
        #[arg(long)]
        ignore_logs: bool,
    },
    /// Merge a .reg file into HIVE in place (written via temp file + rename).
    Import {
        /// Hive file to modify.
        hive: PathBuf,
        /// .reg file (UTF-8 or UTF-16LE with BOM).
        file: PathBuf,
        /// Prefix to strip from key paths (default: a leading '\' or a root
        /// such as 'HKEY_LOCAL_MACHINE\SYSTEM').
        #[arg(long)]
        prefix: Option<String>,
        /// Use the primary file as it is even if dirty (do not replay logs).
        #[arg(long)]
        ignore_logs: bool,
        /// Truncate HIVE.LOG/.LOG1/.LOG2 to zero bytes after writing.
        #[arg(long)]
        reset_logs: bool,
    },
    /// Apply the transaction logs next to HIVE and write a clean hive.
    Replay {
        /// Dirty (or clean) hive; HIVE.LOG, .LOG1, .LOG2 (any case) are used.
        hive: PathBuf,
        /// Where to write the clean hive (must differ from HIVE).
        #[arg(long, short)]
        output: PathBuf,
        /// Print the replay report (rule applied, entries, notes) as JSON
        /// on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check every structural invariant; exit non-zero if any problem.
    Check {
        /// Hive file.
        hive: PathBuf,
    },
    /// Create a new empty hive.
    New {
        /// File to create (refused if it exists).
        file: PathBuf,
        /// Name of the root key.
        #[arg(long, default_value = "ROOT")]
        root_name: String,
    },
}

/// Open a hive: with `--ignore-logs` the primary as it is; for reading,
/// logs replayed when usable and the primary as it is otherwise (with a
/// warning); for editing, logs replayed or refused with the reason.
fn open(path: &Path, ignore_logs: bool, for_editing: bool) -> anyhow::Result<Hive> {
    let policy = match (ignore_logs, for_editing) {
        (true, _) => ReplayPolicy::IgnoreLogs,
        (false, true) => ReplayPolicy::Strict,
        (false, false) => ReplayPolicy::ReadOnlyBestEffort,
    };
    let (h, rep) = regf::open_file_with_logs(path, policy).with_context(|| {
        format!(
            "opening hive {}{}",
            path.display(),
            if for_editing { " for editing" } else { "" }
        )
    })?;
    report(path, &rep);
    Ok(h)
}

/// Notes, the dirty-hive warning and the count of replayed entries, on
/// stderr.
fn report(path: &Path, rep: &regf::ReplayReport) {
    for n in &rep.notes {
        eprintln!("hyper2kvm: note: {n}");
    }
    if let Some(w) = rep.warning() {
        eprintln!("hyper2kvm: warning: {}: {w}", path.display());
    }
    if !rep.applied.is_empty() {
        eprintln!(
            "hyper2kvm: replayed {} log entries into {}",
            rep.applied.len(),
            path.display()
        );
    }
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        HiveCmd::Export {
            hive,
            key,
            json,
            prefix,
            ignore_logs,
        } => {
            let h = open(&hive, ignore_logs, false)?;
            let key = key.unwrap_or_default();
            let mut out = std::io::stdout().lock();
            if json {
                let v = h.export_json(&key)?;
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            } else {
                out.write_all(h.export_reg(&key, &prefix)?.as_bytes())?;
            }
            Ok(())
        }
        HiveCmd::Import {
            hive,
            file,
            prefix,
            ignore_logs,
            reset_logs,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let text =
                regf::decode_reg_bytes(&bytes).with_context(|| file.display().to_string())?;
            let mut h = open(&hive, ignore_logs, true)?;
            let st = h
                .import_reg(&text, prefix.as_deref())
                .with_context(|| format!("importing {}", file.display()))?;
            let problems = h.check_errors();
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("{p}");
                }
                bail!("hive fails its invariants after the import; not written");
            }
            h.write_to(&hive)?;
            eprintln!(
                "hyper2kvm: {}: {} keys, {} values set, {} keys and {} values deleted",
                hive.display(),
                st.keys,
                st.values,
                st.keys_deleted,
                st.values_deleted
            );
            if reset_logs {
                for l in regf::reset_logs(&hive)? {
                    eprintln!("hyper2kvm: truncated {}", l.display());
                }
            } else {
                let logs = regf::log_files(&hive)?;
                if !logs.is_empty() {
                    eprintln!(
                        "hyper2kvm: note: the written hive is clean with a sequence number above every log entry, so Windows will not replay {}; use --reset-logs to truncate them",
                        logs.iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            Ok(())
        }
        HiveCmd::Replay { hive, output, json } => {
            if same_file(&hive, &output) {
                bail!("--output must differ from the hive itself");
            }
            let (mut h, rep) = regf::open_file_with_logs(&hive, ReplayPolicy::Strict)
                .with_context(|| format!("replaying the logs of {}", hive.display()))?;
            for n in &rep.notes {
                eprintln!("hyper2kvm: note: {n}");
            }
            for (log, seq, pages) in &rep.applied {
                eprintln!("hyper2kvm: applied {log} entry {seq} ({pages} pages)");
            }
            if !rep.was_dirty {
                eprintln!("hyper2kvm: {} was clean; nothing to replay", hive.display());
            }
            h.write_to(&output)?;
            if json {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer_pretty(&mut out, &rep)?;
                writeln!(out)?;
            }
            Ok(())
        }
        HiveCmd::Check { hive } => {
            let bytes =
                std::fs::read(&hive).with_context(|| format!("reading {}", hive.display()))?;
            let problems = regf::check_bytes(&bytes);
            for p in &problems {
                println!("{p}");
            }
            if !problems.is_empty() {
                bail!("{}: {} problems", hive.display(), problems.len());
            }
            println!("{}: ok", hive.display());
            Ok(())
        }
        HiveCmd::New { file, root_name } => {
            if file.exists() {
                bail!("{} already exists", file.display());
            }
            let mut h = Hive::new_empty(&root_name)?;
            h.write_to(&file)?;
            Ok(())
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
