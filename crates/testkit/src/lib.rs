//! Test-only support shared by the integration tests of the workspace.
//!
//! The tests use real external tools as oracles. Every helper here fails the
//! test loudly (panics with the command, its output and a pointer to
//! `scripts/install-deps.sh`) instead of skipping when a tool is missing or
//! misbehaves: an oracle test must never pass silently.
//!
//! This crate is only ever a `[dev-dependencies]` entry.
#![forbid(unsafe_code)]

pub mod lvm;
pub mod qemu;
pub mod winimg;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use qemu::*;

/// Panic unless `tool` is an executable file on `PATH`, naming the script
/// that installs every oracle.
pub fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "test oracle `{tool}` is not installed (run scripts/install-deps.sh)"
    );
}

/// A [`Command`] for an oracle tool that must be installed (see [`need`]).
pub fn tool(name: &str) -> Command {
    need(name);
    Command::new(name)
}

/// Run `cmd` and return its raw output; panics if it cannot be started.
pub fn output_of(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/install-deps.sh)"))
}

/// Run `cmd`, which must succeed (the panic message holds its stdout and
/// stderr), and return its stdout as bytes.
pub fn run_bytes(cmd: &mut Command) -> Vec<u8> {
    let o = output_of(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Like [`run_bytes`], stdout as (lossy) text.
pub fn run(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_bytes(cmd)).into_owned()
}

/// Run `cmd`, which must succeed, and return stdout followed by stderr.
pub fn run_all(cmd: &mut Command) -> String {
    let o = output_of(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed ({}): {text}", o.status);
    text
}

/// Run `cmd` whatever its exit status (for tools whose failure is the
/// expected answer) and return stdout followed by stderr.
pub fn output(cmd: &mut Command) -> String {
    let o = output_of(cmd);
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Run the installed oracle `prog` with `args` (must succeed); stdout bytes.
pub fn run_tool(prog: &str, args: &[&str]) -> Vec<u8> {
    run_bytes(tool(prog).args(args))
}

/// SHA-256 of a byte slice.
pub fn sha256_bytes(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// SHA-256 of a byte slice as lower-case hex.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// SHA-256 of a file's contents.
pub fn sha256(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("cannot read {} to hash it: {e}", path.display()));
    sha256_bytes(&data)
}

/// (file name, SHA-256) of every regular file directly in `dir`, sorted:
/// a source's files before and after a command must be equal.
pub fn dir_sums(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sha256(&p),
            )
        })
        .collect();
    v.sort();
    v
}

/// The shared real test data (`<workspace root>/../shared/testdata`),
/// joined with `rel` (which may be empty).
pub fn testdata(rel: &str) -> PathBuf {
    let base = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata"
    ));
    if rel.is_empty() {
        base
    } else {
        base.join(rel)
    }
}

/// Create (or truncate) `path` as a sparse file of `len` bytes.
pub fn sparse_file(path: &Path, len: u64) {
    std::fs::File::create(path)
        .and_then(|f| f.set_len(len))
        .unwrap_or_else(|e| panic!("cannot create {} ({len} bytes): {e}", path.display()));
}

/// Partition `img` with `sfdisk -q`, feeding it `script` (sfdisk's input
/// format) on stdin; sfdisk must succeed.
pub fn sfdisk(img: &Path, script: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = tool("sfdisk");
    cmd.arg("-q")
        .arg(img)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/install-deps.sh)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap_or_else(|e| panic!("cannot feed sfdisk: {e}"));
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "sfdisk failed on {script:?} for {}:\n{}{}",
        img.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Overwrite `bytes` at `off` in the file at `path` (for corrupting images).
pub fn patch(path: &Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {} to patch it: {e}", path.display()));
    f.write_all_at(bytes, off)
        .unwrap_or_else(|e| panic!("cannot patch {} at {off:#x}: {e}", path.display()));
}

/// `path` as `&str` (test paths are always UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("test path {} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_and_checks_status() {
        assert_eq!(run(tool("sh").args(["-c", "printf 'a\\nb'"])), "a\nb");
        assert_eq!(
            run_all(tool("sh").args(["-c", "printf x; printf y >&2"])),
            "xy"
        );
        assert_eq!(
            output(tool("sh").args(["-c", "printf o; printf e >&2; exit 3"])),
            "oe"
        );
        let r = std::panic::catch_unwind(|| run(tool("sh").args(["-c", "echo boom >&2; exit 1"])));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn missing_tool_names_install_script() {
        let r = std::panic::catch_unwind(|| need("no-such-oracle-tool-xyz"));
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("no-such-oracle-tool-xyz") && msg.contains("scripts/install-deps.sh"));
    }

    #[test]
    fn sfdisk_writes_the_table_sfdisk_reads_back() {
        let d = std::env::temp_dir().join(format!("testkit-sfdisk-{}", std::process::id()));
        sparse_file(&d, 8 << 20);
        sfdisk(&d, "label: dos\nstart=2048, size=4096, type=7\n");
        let b = std::fs::read(&d).unwrap();
        assert_eq!(&b[510..512], &[0x55, 0xaa]);
        assert_eq!(b[446 + 4], 7, "partition type");
        assert_eq!(
            u32::from_le_bytes(b[446 + 8..446 + 12].try_into().unwrap()),
            2048
        );
        assert_eq!(
            u32::from_le_bytes(b[446 + 12..446 + 16].try_into().unwrap()),
            4096
        );
        std::fs::remove_file(&d).unwrap();
        let r =
            std::panic::catch_unwind(|| sfdisk(Path::new("/nonexistent/x.img"), "label: dos\n"));
        assert!(r.is_err());
    }

    #[test]
    fn sha256_matches_sha256sum() {
        let d = std::env::temp_dir().join(format!("testkit-sha-{}", std::process::id()));
        std::fs::write(&d, b"abc").unwrap();
        let theirs = run(tool("sha256sum").arg(&d));
        let ours = sha256_hex(b"abc");
        assert_eq!(theirs.split_whitespace().next().unwrap(), ours);
        assert_eq!(sha256(&d), sha256_bytes(b"abc"));
        std::fs::remove_file(&d).unwrap();
    }
}
