//! `hyper2kvm hive` end to end, checked with hivex (hivexregedit, hivexget)
//! on the written files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::{need as require, testdata as shared};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hyper2kvm"))
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn hivex_export(p: &Path) -> String {
    require("hivexregedit");
    ok(Command::new("hivexregedit")
        .arg("--export")
        .arg(p)
        .arg("\\")
        .output()
        .unwrap())
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

#[test]
fn new_import_export_check() {
    require("hivexget");
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("SYSTEM");
    ok(bin().args(["hive", "new"]).arg(&h).output().unwrap());
    assert!(hivex_export(&h).contains("[\\]"));
    // Refuses to overwrite.
    assert!(!bin()
        .args(["hive", "new"])
        .arg(&h)
        .output()
        .unwrap()
        .status
        .success());
    ok(bin()
        .args(["hive", "import"])
        .arg(&h)
        .arg(shared("phony-windows/windows-system.reg"))
        .args(["--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM"])
        .output()
        .unwrap());
    let get = |k: &str, v: &str| {
        ok(Command::new("hivexget")
            .arg(&h)
            .arg(k)
            .arg(v)
            .output()
            .unwrap())
        .trim()
        .to_string()
    };
    assert_eq!(get("\\Select", "Current"), "1");
    assert_eq!(
        get("\\ControlSet001\\Services\\Tcpip\\Parameters", "Hostname"),
        "windows.invalid"
    );
    let check = ok(bin().args(["hive", "check"]).arg(&h).output().unwrap());
    assert!(check.contains("ok"), "{check}");
    // Our .reg export, merged by hivex into its minimal hive, gives the
    // same tree as hivex reads from our file.
    let ours = ok(bin().args(["hive", "export"]).arg(&h).output().unwrap());
    let reg = d.path().join("ours.reg");
    std::fs::write(&reg, &ours).unwrap();
    let theirs = d.path().join("minimal");
    std::fs::copy(shared("phony-windows/minimal-hive"), &theirs).unwrap();
    ok(Command::new("hivexregedit")
        .arg("--merge")
        .arg("--prefix")
        .arg("\\")
        .arg(&theirs)
        .arg(&reg)
        .output()
        .unwrap());
    assert_eq!(hivex_export(&theirs), hivex_export(&h));
    // Subtree export and JSON.
    let sub = ok(bin()
        .args(["hive", "export"])
        .arg(&h)
        .arg("controlset001\\services")
        .output()
        .unwrap());
    assert!(
        sub.contains("[\\ControlSet001\\Services\\Tcpip\\Parameters]"),
        "{sub}"
    );
    assert!(!sub.contains("Select"));
    let json: serde_json::Value = serde_json::from_str(&ok(bin()
        .args(["hive", "export", "--json"])
        .arg(&h)
        .arg("Select")
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(json["name"], "Select");
    let cur = json["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "Current")
        .unwrap();
    assert_eq!(cur["type"], "REG_DWORD");
    assert_eq!(cur["value"]["data"], 1);
}

#[test]
fn import_errors_leave_the_hive_untouched() {
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("H");
    ok(bin().args(["hive", "new"]).arg(&h).output().unwrap());
    let before = std::fs::read(&h).unwrap();
    let reg = d.path().join("bad.reg");
    std::fs::write(
        &reg,
        "Windows Registry Editor Version 5.00\n\n[\\A]\n\"x\"=dword:zz\n",
    )
    .unwrap();
    let o = bin()
        .args(["hive", "import"])
        .arg(&h)
        .arg(&reg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(std::fs::read(&h).unwrap(), before);
}

#[test]
fn check_reports_corruption() {
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("H");
    ok(bin().args(["hive", "new"]).arg(&h).output().unwrap());
    let mut b = std::fs::read(&h).unwrap();
    b[200] ^= 0x55;
    std::fs::write(&h, b).unwrap();
    let o = bin().args(["hive", "check"]).arg(&h).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("checksum"));
}

#[test]
fn replay_writes_a_clean_hive() {
    require("hivexregedit");
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "dirty-NTUSER.DAT");
    // Logs are found case-insensitively next to the hive.
    let l1 = unxz(d.path(), "dirty-NTUSER.DAT.LOG1");
    std::fs::rename(&l1, d.path().join("dirty-NTUSER.DAT.log1")).unwrap();
    unxz(d.path(), "dirty-NTUSER.DAT.LOG2");
    let clean = d.path().join("clean");
    let o = ok(bin()
        .args(["hive", "replay"])
        .arg(&p)
        .arg("--output")
        .arg(&clean)
        .output()
        .unwrap());
    let _ = o;
    ok(bin().args(["hive", "check"]).arg(&clean).output().unwrap());
    // Export of the dirty hive replays in memory: same as the clean one;
    // with --ignore-logs it is the stale primary.
    let replayed = ok(bin().args(["hive", "export"]).arg(&p).output().unwrap());
    let written = ok(bin().args(["hive", "export"]).arg(&clean).output().unwrap());
    assert_eq!(replayed, written);
    let stale = ok(bin()
        .args(["hive", "export", "--ignore-logs"])
        .arg(&p)
        .output()
        .unwrap());
    assert_ne!(stale, written);
    assert!(hivex_export(&clean).lines().count() > 1000);
    // Replaying onto the input itself is refused.
    assert!(!bin()
        .args(["hive", "replay"])
        .arg(&p)
        .arg("--output")
        .arg(&p)
        .output()
        .unwrap()
        .status
        .success());
    // Import into the dirty hive replays first; --reset-logs empties the logs.
    let reg = d.path().join("x.reg");
    std::fs::write(&reg, "Windows Registry Editor Version 5.00\n\n[\\Software\\hyper2kvm]\n\"Migrated\"=dword:00000001\n").unwrap();
    ok(bin()
        .args(["hive", "import", "--reset-logs"])
        .arg(&p)
        .arg(&reg)
        .output()
        .unwrap());
    assert_eq!(
        std::fs::metadata(d.path().join("dirty-NTUSER.DAT.log1"))
            .unwrap()
            .len(),
        0
    );
    let after = hivex_export(&p);
    assert!(after.contains("[\\Software\\hyper2kvm]"));
    // Everything replayed is still there.
    let written_hivex = hivex_export(&clean);
    for l in written_hivex
        .lines()
        .filter(|l| l.starts_with('['))
        .take(2000)
    {
        assert!(after.contains(l), "lost {l}");
    }
}

#[test]
fn dirty_hive_without_logs_needs_explicit_choice() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win10-1709");
    let o = bin()
        .args(["hive", "export"])
        .arg(&p)
        .arg("Select")
        .output()
        .unwrap();
    // Export only reads: the primary as it is, with a warning naming the
    // state and --ignore-logs (editing is refused: tests/hive_dirty_cli.rs).
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("--ignore-logs"),
        "{err}"
    );
    let s = ok(bin()
        .args(["hive", "export", "--ignore-logs"])
        .arg(&p)
        .arg("Select")
        .output()
        .unwrap());
    assert!(s.contains("\"Current\"=dword:00000001"), "{s}");
}
