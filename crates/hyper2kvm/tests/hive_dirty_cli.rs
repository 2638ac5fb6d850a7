//! `hyper2kvm hive` on hives captured from running systems: a dirty hive
//! without its logs is exported as it is with a one-line warning (same keys
//! as hivex, which reads dirty hives as they are) and refused for editing;
//! `hive replay --json` reports the rule that applied.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::{need as require, testdata as shared};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hyper2kvm"))
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn unxz(dir: &Path, name: &str) -> PathBuf {
    require("xz");
    let o = Command::new("xz")
        .arg("-dc")
        .arg(shared(&format!("hives/{name}.xz")))
        .output()
        .unwrap();
    assert!(o.status.success(), "xz -dc {name}");
    let p = dir.join(name);
    std::fs::write(&p, o.stdout).unwrap();
    p
}

/// The key headers of .reg text, case-folded (hivex prints names stored
/// one byte per character as raw bytes: compare what both print as UTF-8).
fn keys(reg: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(reg)
        .lines()
        .filter(|l| l.starts_with("[\\"))
        .map(|l| l.to_lowercase())
        .collect();
    v.sort();
    v
}

#[test]
fn dirty_hive_without_logs_is_read_as_is_and_not_edited() {
    require("hivexregedit");
    let d = tempfile::tempdir().unwrap();
    // The real dirty NTUSER.DAT, its logs left behind.
    let p = unxz(d.path(), "dirty-NTUSER.DAT");
    let o = bin().args(["hive", "export"]).arg(&p).output().unwrap();
    let ours = ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    let warn: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warn.len(), 1, "{err}");
    assert!(warn[0].contains(&p.display().to_string()), "{err}");
    assert!(warn[0].contains("567 != 566"), "{err}");
    assert!(warn[0].contains("no transaction log"), "{err}");
    let theirs = Command::new("hivexregedit")
        .arg("--export")
        .arg(&p)
        .arg("\\")
        .output()
        .unwrap();
    assert!(theirs.status.success());
    let (a, b) = (keys(ours.as_bytes()), keys(&theirs.stdout));
    assert!(a.len() > 100, "{}", a.len());
    assert_eq!(a, b);
    // Editing is refused with the reason; the file is untouched.
    let before = std::fs::read(&p).unwrap();
    let reg = d.path().join("x.reg");
    std::fs::write(
        &reg,
        "Windows Registry Editor Version 5.00\n\n[\\Software\\H2K]\n\"x\"=dword:00000001\n",
    )
    .unwrap();
    let o = bin()
        .args(["hive", "import"])
        .arg(&p)
        .arg(&reg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no transaction log was found"), "{err}");
    assert!(err.contains("--ignore-logs"), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), before);
    // With --ignore-logs it is edited (the explicit choice).
    ok(&bin()
        .args(["hive", "import", "--ignore-logs"])
        .arg(&p)
        .arg(&reg)
        .output()
        .unwrap());
    let v = Command::new("hivexget")
        .arg(&p)
        .arg("\\Software\\H2K")
        .arg("x")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "1");
}

#[test]
fn replay_json_reports_the_rule() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "dirty-NTUSER.DAT");
    unxz(d.path(), "dirty-NTUSER.DAT.LOG1");
    unxz(d.path(), "dirty-NTUSER.DAT.LOG2");
    let out = d.path().join("clean");
    let o = bin()
        .args(["hive", "replay", "--json"])
        .arg(&p)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(j["rule"]["rule"], "continuous", "{j}");
    assert_eq!(j["rule"]["first"], 566);
    assert_eq!(j["rule"]["last"], 588);
    assert_eq!(j["applied"].as_array().unwrap().len(), 23);
    assert_eq!(j["was_dirty"], true);
    // The written hive is clean: exporting it needs no warning.
    let o = bin().args(["hive", "export"]).arg(&out).output().unwrap();
    ok(&o);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
}
