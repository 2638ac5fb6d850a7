//! Interrupted runs leave nothing behind, or at worst what the next run
//! removes.
//!
//! Long-running commands register what they are writing: `convert` its
//! destination (whose data goes to the temporary `.<name>.tmp-<pid>` of
//! [`vdisk::writer::TempOutput`] until the rename), `migrate` its
//! `.staging-<pid>/` folder; a QEMU it runs (validation, the Linux
//! bootstrap boot, the Windows first boot) registers its process. On
//! SIGINT or SIGTERM ([`install_signal_handlers`]) the registered QEMUs
//! are killed (else they would run on, orphaned, writing staged disks or
//! waiting at a login prompt forever), the registered files removed, and
//! the process then dies by the same signal, so shells and `timeout` see what
//! happened. `kill -9` cannot be caught: the files stay, named with the
//! dead process's id, and the next run into the same place removes them
//! ([`remove_stale_temps`], [`remove_stale_staging`]) and says so.
//!
//! A name's process counts as gone when no process has that id, or when the
//! process holding the id now runs another program (a reused id); one of
//! our own id is from an earlier process too, since this run has not
//! created its own yet. Without `/proc` nothing is treated as stale.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Something to remove if the process is stopped.
#[derive(Debug)]
enum Entry {
    /// A folder, removed with its contents.
    Dir(PathBuf),
    /// The temporary file this process writes for an output path.
    TempOf(PathBuf),
    /// A child process (QEMU), killed.
    Child(u32),
}

static REGISTRY: Mutex<Vec<(u64, Entry)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registration: dropping it (when the work finished or failed and its
/// own error path cleaned up) unregisters the entry.
#[must_use = "the entry is unregistered when this guard is dropped"]
#[derive(Debug)]
pub struct Registered {
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry().retain(|(id, _)| *id != self.id);
    }
}

fn registry() -> std::sync::MutexGuard<'static, Vec<(u64, Entry)>> {
    // A panic while holding the lock leaves a usable list.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn register(e: Entry) -> Registered {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    registry().push((id, e));
    Registered { id }
}

/// Remove `dir` (a staging folder) if the process is stopped.
pub fn register_dir(dir: &Path) -> Registered {
    register(Entry::Dir(dir.to_path_buf()))
}

/// Remove this process's temporary file for `final_path` (see
/// [`temp_path`]) if the process is stopped.
pub fn register_temp_of(final_path: &Path) -> Registered {
    register(Entry::TempOf(final_path.to_path_buf()))
}

/// Kill child process `pid` (a QEMU) if the process is stopped. Drop the
/// guard once the child has been waited for: its id may be reused.
pub fn register_child(pid: u32) -> Registered {
    register(Entry::Child(pid))
}

/// Kill every registered child (SIGKILL); returns their ids.
pub fn kill_registered_children() -> Vec<u32> {
    let mut reg = registry();
    let mut killed = Vec::new();
    reg.retain(|(_, e)| match e {
        Entry::Child(pid) => {
            let ok = i32::try_from(*pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
                .is_some_and(|p| {
                    rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok()
                });
            if ok {
                killed.push(*pid);
            }
            false
        }
        _ => true,
    });
    killed
}

/// The temporary name [`vdisk::writer::TempOutput`] writes `final_path`
/// under for process `pid`: `.<name>.tmp-<pid>` beside it.
pub fn temp_path(final_path: &Path, pid: u32) -> Option<PathBuf> {
    let name = final_path.file_name()?.to_string_lossy();
    Some(parent_dir(final_path).join(format!(".{name}.tmp-{pid}")))
}

/// The staging folder `migrate` fills for process `pid` inside `out`.
pub fn staging_path(out: &Path, pid: u32) -> PathBuf {
    out.join(format!(".staging-{pid}"))
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn remove_dir(dir: &Path) -> bool {
    // Another thread may be creating files in it: retry a few times.
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    false
}

/// Remove everything registered now; returns what was removed.
pub fn remove_registered() -> Vec<PathBuf> {
    let entries: Vec<Entry> = registry().drain(..).map(|(_, e)| e).collect();
    let mut removed = Vec::new();
    for e in entries {
        match e {
            Entry::Dir(d) => {
                if remove_dir(&d) {
                    removed.push(d);
                }
            }
            Entry::TempOf(f) => {
                if let Some(t) = temp_path(&f, std::process::id()) {
                    if std::fs::remove_file(&t).is_ok() {
                        removed.push(t);
                    }
                }
            }
            Entry::Child(_) => {}
        }
    }
    removed
}

/// A line on stderr that never fails (stderr may be a closed pipe too).
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "hyper2kvm: {msg}");
}

/// Watch SIGINT and SIGTERM on a background thread: on the first one,
/// remove what is registered, say so, and die by that signal. (SIGHUP is
/// left alone: under `nohup` it is ignored, and must stay so.)
pub fn install_signal_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                terminate(sig);
            }
        })?;
    Ok(())
}

/// Remove what is registered, then end the process the way `sig` does by
/// default (exit status 128 + `sig` if that fails).
pub fn terminate(sig: i32) -> ! {
    let name = signal_hook::low_level::signal_name(sig).unwrap_or("signal");
    for pid in kill_registered_children() {
        say(&format!("{name}: stopped QEMU (process {pid})"));
    }
    for p in remove_registered() {
        say(&format!("{name}: removed {}", p.display()));
    }
    if sig != signal_hook::consts::SIGPIPE {
        say(&format!("stopped by {name}"));
    }
    let _ = signal_hook::low_level::emulate_default_handler(sig);
    std::process::exit(128 + sig)
}

/// Whether the process that named a file with `pid` has gone.
fn is_stale(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(own) = std::fs::read_to_string("/proc/self/comm") else {
        return false;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm != own,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn pid_after(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Entries of `dir` named `<prefix><pid>` whose process has gone.
fn stale_entries(dir: &Path, prefix: &str) -> Vec<(PathBuf, u32)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        if let Some(pid) = pid_after(&name.to_string_lossy(), prefix) {
            if is_stale(pid) {
                out.push((e.path(), pid));
            }
        }
    }
    out.sort();
    out
}

/// Remove temporary files of `final_path` left by interrupted runs
/// (`.<name>.tmp-<pid>` of processes that have gone), saying so on stderr.
/// Returns the files removed.
pub fn remove_stale_temps(final_path: &Path) -> Vec<PathBuf> {
    let Some(name) = final_path.file_name() else {
        return Vec::new();
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let mut removed = Vec::new();
    for (p, pid) in stale_entries(parent_dir(final_path), &prefix) {
        let meta = std::fs::symlink_metadata(&p);
        if !meta.is_ok_and(|m| m.is_file()) {
            continue;
        }
        match std::fs::remove_file(&p) {
            Ok(()) => {
                say(&format!(
                    "removed {}, left by an interrupted run (process {pid}, no longer running)",
                    p.display()
                ));
                removed.push(p);
            }
            Err(e) => say(&format!(
                "cannot remove {}, left by an interrupted run (process {pid}): {e}",
                p.display()
            )),
        }
    }
    removed
}

/// Remove `migrate` staging folders in `out` left by interrupted runs
/// (`.staging-<pid>/` of processes that have gone), saying so on stderr.
/// Returns the folders removed.
pub fn remove_stale_staging(out: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for (p, pid) in stale_entries(out, ".staging-") {
        let meta = std::fs::symlink_metadata(&p);
        if !meta.is_ok_and(|m| m.is_dir()) {
            continue;
        }
        match std::fs::remove_dir_all(&p) {
            Ok(()) => {
                say(&format!(
                    "removed {}, left by an interrupted run (process {pid}, no longer running)",
                    p.display()
                ));
                removed.push(p);
            }
            Err(e) => say(&format!(
                "cannot remove {}, left by an interrupted run (process {pid}): {e}",
                p.display()
            )),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_path_matches_the_writers_temporary_name() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("disk.qcow2");
        let out = vdisk::writer::TempOutput::create(&dst, false).unwrap();
        assert_eq!(
            temp_path(&dst, std::process::id()).as_deref(),
            Some(out.tmp_path())
        );
        assert_eq!(
            pid_after(
                &out.tmp_path().file_name().unwrap().to_string_lossy(),
                ".disk.qcow2.tmp-"
            ),
            Some(std::process::id())
        );
    }

    #[test]
    fn names_without_a_pid_are_not_ours() {
        assert_eq!(pid_after(".staging-", ".staging-"), None);
        assert_eq!(pid_after(".staging-12x", ".staging-"), None);
        assert_eq!(pid_after(".staging-+12", ".staging-"), None);
        assert_eq!(pid_after(".staging-77", ".staging-"), Some(77));
    }

    #[test]
    fn ids_of_gone_or_other_programs_are_stale() {
        // Our own id cannot name a file we have not created yet; pid 1
        // runs another program; the last id is not in use.
        assert!(is_stale(std::process::id()));
        assert!(is_stale(1));
        assert!(is_stale(u32::MAX - 1));
    }
}
