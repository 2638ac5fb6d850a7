//! Helpers shared by the CLI integration tests: the binary under test, the
//! oracle tools (which must be installed: a missing one fails the test) and
//! checksums of source directories.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

/// The `hyper2kvm` binary built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hyper2kvm")
}

/// Fail clearly when an oracle tool is missing.
pub fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{tool} not found: run scripts/install-deps.sh");
}

/// A command for an oracle tool that must be installed.
pub fn tool(name: &str) -> Command {
    need(name);
    Command::new(name)
}

/// Run a command that must succeed; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// SHA-256 of a file.
pub fn sha(p: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

/// (file name, SHA-256) of every file in `dir`, sorted: a source VM's files
/// before and after a command must be equal.
pub fn dir_sums(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sha(&p),
            )
        })
        .collect();
    v.sort();
    v
}
