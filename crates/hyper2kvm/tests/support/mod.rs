//! Helpers shared by the CLI integration tests: the binary under test, the
//! oracle tools (which must be installed: a missing one fails the test) and
//! checksums of source directories.
#![allow(dead_code, unused_imports)]

use std::path::Path;

/// The `hyper2kvm` binary built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hyper2kvm")
}

pub use testkit::{dir_sums, need, run, tool};

/// SHA-256 of a file.
pub fn sha(p: &Path) -> Vec<u8> {
    testkit::sha256(p)
}

/// A fake virtio-win tree under `dir`: every path of `list` (a listing in
/// the shared testdata's `virtio-win-layout/`, e.g. `iso-list.txt`, whose
/// ISO root is `cd/`) plus `extra`, INF files from the shared virtio-win
/// INF templates. Returns `dir`.
pub fn fake_virtio_win(dir: &Path, list: &str, extra: &[&str]) -> std::path::PathBuf {
    guest::drivers::fixture::build_fake_virtio_win(
        &testkit::testdata("virtio-win-layout").join(list),
        &testkit::testdata("virtio-win-inx"),
        dir,
        extra,
    )
    .unwrap();
    dir.to_path_buf()
}

/// A VMware VM "Win7" over the raw disk `raw` (which must sit in `dir`):
/// `win7.vmdk`, a monolithicFlat descriptor naming it, and `win7.vmx`
/// (guest OS windows7, `memsize` MiB, the disk on an LSI SAS controller)
/// with the `extra` VMX lines appended. Returns the VMX path.
pub fn win7_vmware_vm(dir: &Path, raw: &Path, memsize: u32, extra: &str) -> std::path::PathBuf {
    let sectors = std::fs::metadata(raw).unwrap().len() / 512;
    std::fs::write(
        dir.join("win7.vmdk"),
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
             createType=\"monolithicFlat\"\n\nRW {sectors} FLAT \"{}\" 0\n",
            raw.file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let p = dir.join("win7.vmx");
    std::fs::write(
        &p,
        format!(
            "config.version = \"8\"\nvirtualHW.version = \"14\"\ndisplayName = \"Win7\"\n\
             guestOS = \"windows7\"\nmemsize = \"{memsize}\"\nnumvcpus = \"1\"\n\
             scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"lsisas1068\"\n\
             scsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"win7.vmdk\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// `hyper2kvm migrate ARGS...`, its output captured.
pub fn migrate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin())
        .arg("migrate")
        .args(args)
        .output()
        .unwrap()
}

/// A JSON file (report.json, plan.json), parsed; the path in the panic.
pub fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}
