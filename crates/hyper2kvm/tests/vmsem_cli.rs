//! What admins feed `migrate`: out-of-range `--memory`/`--vcpus`, VMX
//! files copied from ESXi (datastore paths for disks and ISOs), CD-ROM
//! images, and more NICs than one PCI bus holds. Oracles: the libvirt
//! schema (virt-xml-validate), xorriso and qemu-img for the inputs.

use hyper2kvm::migrate::source::{check_domains, load, Overrides};
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use support::{dir_sums, json, migrate, need, run as sh};

fn warnings(v: &serde_json::Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings in {v}"))
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

/// A VM folder copied off ESXi: `disk.vmdk` (8 MiB, qemu-img), `tools.iso`
/// (xorriso), a VMX naming both by datastore paths, a CD-ROM whose ISO was
/// not copied, and `nics` adapters.
fn esxi_copy(dir: &Path, nics: usize) -> PathBuf {
    need("qemu-img");
    need("xorriso");
    let vm = dir.join("vm");
    std::fs::create_dir_all(vm.join("isosrc")).unwrap();
    sh(Command::new("qemu-img")
        .args(["create", "-q", "-f", "vmdk"])
        .arg(vm.join("disk.vmdk"))
        .arg("8M"));
    std::fs::write(vm.join("isosrc/README.TXT"), b"tools\n").unwrap();
    sh(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "TOOLS", "-o"])
        .arg(vm.join("tools.iso"))
        .arg(vm.join("isosrc")));
    let mut vmx = String::from(
        "config.version = \"8\"\nvirtualHW.version = \"19\"\ndisplayName = \"esxi copy\"\n\
         guestOS = \"ubuntu-64\"\nmemsize = \"256\"\n\
         scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"pvscsi\"\nscsi0:0.present = \"TRUE\"\n\
         scsi0:0.fileName = \"/vmfs/volumes/5f1e2d3c-aabbccdd/esxi copy/disk.vmdk\"\n\
         sata0.present = \"TRUE\"\nsata0:1.present = \"TRUE\"\nsata0:1.deviceType = \"cdrom-image\"\n\
         sata0:1.fileName = \"/vmfs/volumes/datastore1/ISO/tools.iso\"\n\
         ide1:0.present = \"TRUE\"\nide1:0.deviceType = \"cdrom-image\"\nide1:0.fileName = \"not-copied.iso\"\n",
    );
    for n in 0..nics {
        vmx.push_str(&format!(
            "ethernet{n}.present = \"TRUE\"\nethernet{n}.virtualDev = \"vmxnet3\"\nethernet{n}.addressType = \"static\"\nethernet{n}.address = \"00:50:56:00:{:02x}:{:02x}\"\n",
            n >> 8,
            n & 0xff
        ));
    }
    let p = vm.join("esxi.vmx");
    std::fs::write(&p, vmx).unwrap();
    p
}

#[test]
fn esxi_copy_with_datastore_paths_migrates_and_keeps_its_cdrom() {
    need("virt-xml-validate");
    let t = tempfile::tempdir().unwrap();
    let vmx = esxi_copy(t.path(), 1);
    let vm = vmx.parent().unwrap().to_path_buf();
    let before = dir_sums(&vm);
    let out = t.path().join("out");
    let o = migrate(&[
        vmx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(before, dir_sums(&vm), "source changed");

    // The plan says where the files were found, and what is missing.
    let plan = json(&out.join("plan.json"));
    let w = warnings(&plan);
    for (key, file) in [
        ("scsi0:0.fileName", "disk.vmdk"),
        ("sata0:1.fileName", "tools.iso"),
    ] {
        assert!(
            w.iter().any(|x| x.contains(key)
                && x.contains("does not exist on this host")
                && x.contains(&format!("\"{file}\""))),
            "{key}: {w:?}"
        );
    }
    assert!(
        w.iter().any(|x| x.contains("ide1:0")
            && x.contains("not-copied.iso")
            && x.contains("not found")),
        "{w:?}"
    );
    assert_eq!(
        plan["disks"][0]["chain"][0].as_str().unwrap(),
        vm.join("disk.vmdk").to_str().unwrap()
    );
    let paths: Vec<Option<&str>> = plan["vm"]["cdroms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str())
        .collect();
    // Sorted by bus: ide1:0 (not copied), then sata0:1.
    assert_eq!(paths, vec![None, vm.join("tools.iso").to_str()]);
    let report = json(&out.join("report.json"));
    assert!(
        warnings(&report["plan"])
            .iter()
            .any(|x| x.contains("tools.iso") && x.contains("attached to the bootstrap domain")),
        "{report}"
    );

    // Bootstrap domain: the ISO as a read-only CD-ROM; final: none.
    let iso = vm.join("tools.iso").display().to_string();
    for (phase, want) in [("bootstrap", true), ("final", false)] {
        let xml_path = out.join(format!("esxi_copy-{phase}.xml"));
        let v = Command::new("virt-xml-validate")
            .arg(&xml_path)
            .arg("domain")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        assert!(said.contains("validates"), "{phase}: {said}");
        let xml = std::fs::read_to_string(&xml_path).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let cds: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("disk") && n.attribute("device") == Some("cdrom"))
            .filter(|n| n.children().any(|c| c.has_tag_name("readonly")))
            .filter_map(|n| {
                n.children()
                    .find(|c| c.has_tag_name("source"))?
                    .attribute("file")
                    .map(String::from)
            })
            .collect();
        assert_eq!(cds.contains(&iso), want, "{phase}: {cds:?}");
        let argv: Vec<String> =
            serde_json::from_value(json(&out.join(format!("esxi_copy-{phase}.argv.json"))))
                .unwrap();
        let blockdev = argv.iter().any(|a| {
            a.starts_with('{')
                && a.contains(&format!("\"filename\":\"{iso}\""))
                && a.contains("\"read-only\":true")
        });
        assert_eq!(blockdev, want, "{phase}: {argv:?}");
    }
}

fn assert_cli_refuses(args: &[&str], out: &Path, needle: &str) {
    let o = migrate(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn memory_and_vcpus_are_range_checked_like_vmx_values() {
    let t = tempfile::tempdir().unwrap();
    let vmx = esxi_copy(t.path(), 1);
    let raw = t.path().join("disk.raw");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    let out = t.path().join("out");
    let o = out.to_str().unwrap();
    for src in [vmx.to_str().unwrap(), raw.to_str().unwrap()] {
        for (flag, value, needle) in [
            ("--memory", "0", "0 is not in 1..=67108864"),
            ("--memory", "67108865", "67108865 is not in 1..=67108864"),
            ("--vcpus", "0", "0 is not in 1..=1024"),
            ("--vcpus", "100000", "100000 is not in 1..=1024"),
        ] {
            assert_cli_refuses(
                &[src, "--out", o, "--dry-run", flag, value],
                &out,
                &format!("'{flag} <"),
            );
            assert_cli_refuses(&[src, "--out", o, "--dry-run", flag, value], &out, needle);
        }
    }
    // The library entry point checks the same ranges.
    for (ov, needle) in [
        (
            Overrides {
                memory_mib: Some(0),
                ..Default::default()
            },
            "memory 0 MiB is out of range",
        ),
        (
            Overrides {
                vcpus: Some(100_000),
                ..Default::default()
            },
            "100000 vCPUs is out of range",
        ),
        (
            Overrides {
                vcpus: Some(0),
                ..Default::default()
            },
            "0 vCPUs is out of range",
        ),
    ] {
        let e = load(std::slice::from_ref(&raw), &ov, false)
            .err()
            .expect("refused");
        assert!(format!("{e:#}").contains(needle), "{e:#}");
    }
    // The limits themselves are fine.
    let o2 = migrate(&[
        raw.to_str().unwrap(),
        "--out",
        o,
        "--dry-run",
        "--vcpus",
        "1024",
        "--memory",
        "1",
    ]);
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    assert_eq!(json(&out.join("plan.json"))["vm"]["cpu"]["vcpus"], 1024);
}

fn planned_disks(out: &Path, n: usize) -> Vec<domain::writer::OutputDisk> {
    (0..n)
        .map(|i| domain::writer::OutputDisk {
            path: out.join(format!("vm-disk{i}.qcow2")),
            format: domain::writer::OutputFormat::Qcow2,
            bios_geometry: None,
        })
        .collect()
}

#[test]
fn too_many_nics_are_refused_while_planning_and_dropped_ones_warned() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    for (nics, read) in [(30usize, 30usize), (5000, 100)] {
        let dir = t.path().join(format!("n{nics}"));
        let vmx = esxi_copy(&dir, nics);
        let src = load(&[vmx], &Overrides::default(), false).unwrap();
        assert_eq!(src.model.nics.len(), read);
        let dropped = src
            .model
            .warnings
            .iter()
            .any(|w| w.contains(&format!("{} network adapter(s)", nics - read)));
        assert_eq!(dropped, nics > read, "{:?}", src.model.warnings);
        for block in [
            domain::writer::BlockBus::VirtioBlk,
            domain::writer::BlockBus::VirtioScsi,
        ] {
            let e = check_domains(&src.model, &planned_disks(&out, 1), block, None, None)
                .expect_err("30 NICs cannot fit");
            assert!(e.to_string().contains("no free PCI slot"), "{e}");
        }
    }
    // Ten NICs fit, and the warnings of both domains come back once each.
    let vmx = esxi_copy(&t.path().join("n10"), 10);
    let src = load(&[vmx], &Overrides::default(), false).unwrap();
    let iso = t.path().join("virtio-win.iso");
    let w = check_domains(
        &src.model,
        &planned_disks(&out, 1),
        domain::writer::BlockBus::VirtioBlk,
        Some(&iso),
        None,
    )
    .unwrap();
    assert_eq!(
        w.iter()
            .filter(|x| x.contains("tools.iso") && x.contains("bootstrap"))
            .count(),
        2,
        "{w:?}"
    );
}

#[test]
fn dry_run_refuses_what_the_real_run_would_and_converts_nothing() {
    let t = tempfile::tempdir().unwrap();
    let vmx = esxi_copy(t.path(), 30);
    let out = t.path().join("out");
    let o = migrate(&[
        vmx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--dry-run",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "dry run passed with 30 NICs");
    assert!(err.contains("no free PCI slot"), "{err}");
    let o = migrate(&[
        vmx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--force",
        "--quiet",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no free PCI slot"));
    let written: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        written,
        vec!["report.json".to_string()],
        "converted before refusing"
    );
}
