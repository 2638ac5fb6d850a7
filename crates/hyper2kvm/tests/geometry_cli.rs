//! `hyper2kvm inspect` and `fix-geometry` on the seed disks, with the
//! result booted under QEMU + SeaBIOS.

use guest::geometry::{Bus, Chs};
use guest::testdisk::{boot, write_flat_vmdk, BootDisk, QemuBoot};
use std::path::Path;
use std::process::Command;
use testkit::sha256 as sha;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hyper2kvm")
}

fn h2k(args: &[&str], img: &Path) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).arg(img).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_reports_seed1_mismatch_and_pin() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("seed1.img");
    BootDisk::vmware_255_heads().write_raw(&img).unwrap();
    let (_, text, err) = h2k(&["inspect"], &img);
    assert!(
        text.contains("boot code will read C/H/S 0/16/1 for LBA 1008"),
        "{text}{err}"
    );
    assert!(text.contains("lcyls=25,lheads=255,lsecs=63"), "{text}");
    let (_, json, err) = h2k(&["inspect", "--json"], &img);
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}{err}"));
    let r = &v[0];
    assert_eq!(r["audit"]["table"]["kind"], "mbr");
    assert_eq!(r["audit"]["volumes"][0]["fs"], "ntfs");
    assert_eq!(r["audit"]["volumes"][0]["bpb"]["heads"], 255);
    let ide = r["audit"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["bus"] == "ide")
        .unwrap();
    assert_eq!(ide["logical"]["heads"], 16);
    assert_eq!(r["plan"]["mode"], "pin");
    assert_eq!(r["plan"]["pin"]["cylinders"], 25);
    assert_eq!(r["plan"]["pin"]["heads"], 255);
}

#[test]
fn fix_geometry_rewrite_makes_seed1_boot() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("seed1.img");
    BootDisk::vmware_255_heads().write_raw(&img).unwrap();
    let before = boot(&QemuBoot::new(&img, "raw", Bus::VirtioBlk)).unwrap();
    assert!(before.disk_error(), "{}", before.serial);
    let (ok, out, err) = h2k(
        &[
            "fix-geometry",
            "--mode",
            "rewrite",
            "--bus",
            "sata",
            "--bus",
            "virtio",
        ],
        &img,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("heads 255 -> 16"), "{out}");
    assert!(out.contains("MBR entry 1: C/H/S"), "{out}");
    for bus in [Bus::Sata, Bus::VirtioBlk] {
        let after = boot(&QemuBoot::new(&img, "raw", bus)).unwrap();
        assert!(after.booted(), "{bus:?}: {}", after.serial);
    }
    // Nothing left to fix.
    let (_, json, _) = h2k(&["fix-geometry", "--json"], &img);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["plan"]["mode"].is_null(), "{json}");
    assert_eq!(v["changes"].as_array().unwrap().len(), 0);
}

#[test]
fn fix_geometry_pin_on_vmdk_changes_nothing_and_prints_snippets() {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("nt4-flat.vmdk");
    let desc = dir.path().join("nt4.vmdk");
    let spec = BootDisk::nt4_750m();
    spec.write_raw(&flat).unwrap();
    let c = |c, h, s| Chs {
        cylinders: c,
        heads: h,
        sectors: s,
    };
    write_flat_vmdk(
        &desc,
        &flat,
        spec.size / 512,
        c(1523, 16, 63),
        c(761, 32, 63),
    )
    .unwrap();
    let sums = (sha(&desc), sha(&flat));
    let (ok, json, err) = h2k(&["fix-geometry", "--json"], &desc);
    assert!(ok, "{json}{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["plan"]["mode"], "pin");
    assert_eq!(
        v["plan"]["qemu_device_props"],
        "lcyls=1523,lheads=16,lsecs=63"
    );
    let x = v["plan"]["libvirt_override"].as_str().unwrap();
    assert!(
        x.contains("<qemu:property name='lheads' type='unsigned' value='16'/>"),
        "{x}"
    );
    assert_eq!(sums, (sha(&desc), sha(&flat)));
    let (ok, out, err) = h2k(&["fix-geometry", "--mode", "rewrite"], &desc);
    assert!(!ok);
    assert!(err.contains("cannot be written in place"), "{out}{err}");
    assert_eq!(sums, (sha(&desc), sha(&flat)));
}

#[test]
fn fix_geometry_rewrite_works_in_place_on_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("seed3.img");
    let q = dir.path().join("seed3.qcow2");
    BootDisk::hidden_mismatch().write_raw(&raw).unwrap();
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&q)
        .status()
        .expect("qemu-img is required");
    assert!(st.success());
    let before = boot(&QemuBoot::new(&q, "qcow2", Bus::VirtioBlk)).unwrap();
    assert!(before.disk_error(), "{}", before.serial);
    let (ok, out, err) = h2k(&["fix-geometry"], &q);
    assert!(ok, "{out}{err}");
    assert!(out.contains("hidden sectors 63 -> 2048"), "{out}");
    let after = boot(&QemuBoot::new(&q, "qcow2", Bus::VirtioBlk)).unwrap();
    assert!(after.booted(), "{}", after.serial);
    let check = Command::new("qemu-img")
        .arg("check")
        .arg(&q)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&check.stdout).contains("No errors were found"));
}
