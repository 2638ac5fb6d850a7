//! `migrate` of a VMware VM (VMX + a monolithicFlat VMDK over a phony
//! Windows 7 x86 BIOS disk, see `winimg`) with `--virtio-win`: the plan
//! holds the windows-storage actions and no STOP 0x7B line, the converted
//! output's SYSTEM hive (read back with ntfscat + hivexget) has viostor at
//! boot start in both control sets, and the bootstrap domain puts the
//! disk on SATA (AHCI, which the fix enabled). Without media the plan says
//! STOP 0x7B loudly.

mod support;
mod winimg;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{bin, fake_virtio_win};
use winimg::*;

/// A VMX whose only disk is a monolithicFlat VMDK over `raw`.
fn vmx(dir: &Path, raw: &Path) -> PathBuf {
    support::win7_vmware_vm(dir, raw, 1024, "")
}

fn migrate(vmx: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let t = std::time::Instant::now();
    let o = Command::new(bin())
        .arg("migrate")
        .arg(vmx)
        .arg("--out")
        .arg(out)
        .args(["-O", "raw", "--quiet"])
        .args(extra)
        .output()
        .unwrap();
    eprintln!("migrate {extra:?}: {:?}", t.elapsed());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap()
}

fn manual_texts(plan: &serde_json::Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["text"].as_str().map(String::from))
        .collect()
}

#[test]
fn migrate_fixes_the_windows_7_guest_it_finds() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (raw, _) = win7_disk(dir, false);
    let src = vmx(dir, &raw);
    let tree = fake_virtio_win(&dir.join("vw"), "iso-list.txt", &[]).join("cd");

    // No media: the plan says STOP 0x7B, and why.
    let plan = migrate(&src, &dir.join("dry"), &["--dry-run"]);
    assert!(
        manual_texts(&plan).iter().any(|t| t.contains("STOP 0x7B")),
        "{}",
        plan["actions"]
    );
    assert!(plan["actions"]
        .to_string()
        .contains("no --virtio-win media was given"));
    // Nothing retires VMware Tools or carries the network over: the plan
    // says so.
    let todo = manual_texts(&plan);
    assert!(
        todo.iter().any(|t| t.contains("VMware Tools"))
            && todo.iter().any(|t| t.contains("static IP")),
        "{todo:?}"
    );

    let out = dir.join("out");
    let plan = migrate(&src, &out, &["--virtio-win", tree.to_str().unwrap()]);
    let actions = plan["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .filter(|a| a["fixer"] == "windows-storage")
            .count()
            > 20,
        "{}",
        plan["actions"]
    );
    assert!(
        !manual_texts(&plan).iter().any(|t| t.contains("0x7B")),
        "{:?}",
        manual_texts(&plan)
    );
    // The first-boot runner retires the old tools and carries the network
    // over: no TODO says they are left.
    assert!(
        actions.iter().any(|a| a["action"] == "first_boot"),
        "{}",
        plan["actions"]
    );
    assert!(
        !manual_texts(&plan)
            .iter()
            .any(|t| t.contains("VMware Tools") || t.contains("static IP")),
        "{:?}",
        manual_texts(&plan)
    );
    let disk = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("-disk0.raw"))
        .expect("converted disk");
    let p2 = extract(&disk, W7_P2.0, W7_P2.1, &dir.join("p2.img"));
    std::fs::write(
        dir.join("SYSTEM.out"),
        ntfscat(&p2, "Windows/System32/config/SYSTEM"),
    )
    .unwrap();
    for cs in ["ControlSet001", "ControlSet002"] {
        assert_eq!(
            hivexget(
                &dir.join("SYSTEM.out"),
                &format!("\\{cs}\\Services\\viostor"),
                "Start"
            ),
            "0"
        );
        assert_eq!(
            hivexget(
                &dir.join("SYSTEM.out"),
                &format!("\\{cs}\\Services\\msahci"),
                "Start"
            ),
            "0"
        );
    }
    assert_eq!(
        ntfscat(&p2, "Windows/System32/drivers/viostor.sys"),
        std::fs::read(tree.join("viostor/w7/x86/viostor.sys")).unwrap()
    );
    let xml = std::fs::read_to_string(out.join("Win7-bootstrap.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let buses: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("disk") && n.attribute("device") == Some("disk"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("target")))
        .filter_map(|t| t.attribute("bus"))
        .collect();
    assert_eq!(buses, ["sata"]);
    // The source was never written.
    assert!(!std::fs::read_dir(dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".hyper2kvm-backup")));
}

#[test]
fn migrate_refuses_a_hibernated_windows_before_writing_anything() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (raw, _) = win7_disk(dir, true);
    let src = vmx(dir, &raw);
    let tree = fake_virtio_win(&dir.join("vw"), "iso-list.txt", &[]).join("cd");
    let before = support::sha(&raw);
    let out = dir.join("out");
    let o = Command::new(bin())
        .arg("migrate")
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .arg("--virtio-win")
        .arg(&tree)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("[hibernated]"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.json"]);
    assert_eq!(support::sha(&raw), before);
}
