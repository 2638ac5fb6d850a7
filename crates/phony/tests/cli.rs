//! The `phony-windows` binary as bench scripts call it: a sparse qcow2 of
//! the requested virtual size (qemu-img reads it) and the facts as JSON.

use std::process::Command;
use testkit::{need, run};

#[test]
fn phony_windows_writes_a_qcow2_and_prints_its_facts() {
    need("qemu-img");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("w.qcow2");
    let o = Command::new(env!("CARGO_BIN_EXE_phony-windows"))
        .args(["--version", "win10", "--variant", "vmware,static-ip"])
        .args([
            "--size",
            "2G",
            "--format",
            "qcow2",
            "--hostname",
            "BENCH-10",
        ])
        .arg("--testdata")
        .arg(testkit::testdata(""))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["os_id"], "win10");
    assert_eq!(e["hostname"], "BENCH-10");
    assert_eq!(e["size"], 2u64 << 30);
    assert_eq!(e["nics"][0]["dhcp"], false);
    assert_eq!(e["boot_storage"][0], "LSI_SAS");
    let info = testkit::qemu::qemu_info(&out);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 2u64 << 30);
    // sparse: metadata and small files only
    assert!(info["actual-size"].as_u64().unwrap() < 64 << 20, "{info}");
    let chk = run(Command::new("qemu-img")
        .args(["check", "--output=json"])
        .arg(&out));
    assert!(chk.contains("\"check-errors\": 0"), "{chk}");
    // bad input is a clear error, not a panic, and leaves nothing behind
    let bad = Command::new(env!("CARGO_BIN_EXE_phony-windows"))
        .args(["--version", "win11", "--firmware", "bios", "--size", "1G"])
        .arg(t.path().join("bad.img"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not built for Bios firmware"), "{err}");
    assert!(!t.path().join("bad.img").exists());
    assert!(!t.path().join("bad.img.partial").exists());
}
