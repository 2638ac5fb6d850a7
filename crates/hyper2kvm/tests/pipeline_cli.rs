//! `hyper2kvm migrate` as a user runs it: the boot disk is chosen from
//! what is on the disks and every disk gets a boot order (issue 10 item
//! 4), UEFI guests get no CHS pin (item 10), a failure names a report only
//! when this run wrote it and a dry run's folder can be reused (item 15),
//! the plan is printed before converting and the run ends with the next
//! steps (item 16), one line per geometry finding (item 17).

use guest::testdisk::BootDisk;
use hyper2kvm::fixtures::{make_demo_vm, Seed};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{bin, dir_sums, json, migrate, need};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The demo VM (bootable disk on scsi0:0) plus an empty data disk on
/// ide0:0, which sorts first among the VMX's disks.
fn demo_with_empty_ide_disk(dir: &Path) -> PathBuf {
    need("qemu-img");
    let vmx = make_demo_vm(dir, Seed::Heads255).expect("demo VM (nasm, syslinux)");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "vmdk"])
        .arg(dir.join("data.vmdk"))
        .arg("16M")
        .status()
        .unwrap();
    assert!(st.success());
    let mut v = std::fs::read_to_string(&vmx).unwrap();
    v.push_str(
        "ide0:0.present = \"TRUE\"\nide0:0.fileName = \"data.vmdk\"\nide0:0.deviceType = \"ata-hardDisk\"\n",
    );
    std::fs::write(&vmx, v).unwrap();
    vmx
}

#[test]
fn boot_disk_comes_from_the_disks_every_disk_has_a_boot_order_and_the_output_says_what_next() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let vmx = demo_with_empty_ide_disk(&src);
    let before = dir_sums(&src);
    let out = t.path().join("out");
    let o = migrate(&[
        vmx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    assert_eq!(before, dir_sums(&src), "source changed");

    let plan = json(&out.join("plan.json"));
    let disks = plan["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 2);
    let demo = disks
        .iter()
        .find(|d| d["source"].as_str().unwrap().contains("demo-xp.vmdk"))
        .unwrap();
    let data = disks
        .iter()
        .find(|d| d["source"].as_str().unwrap().contains("data.vmdk"))
        .unwrap();
    assert_eq!(demo["boot"], true, "{plan}");
    assert_eq!(demo["boot_order"], 1);
    assert_eq!(data["boot"], false);
    assert_eq!(data["boot_order"], 2);
    assert_eq!(plan["boot_choice"]["guess"], false);
    assert!(
        plan["warnings"].to_string().contains("boot disk"),
        "overriding the metadata's order is a warning: {}",
        plan["warnings"]
    );
    // Both domains: a boot order on every disk, 1 on the demo disk.
    let demo_out = demo["output"].as_str().unwrap();
    let data_out = data["output"].as_str().unwrap();
    for phase in ["bootstrap", "final"] {
        let xml = std::fs::read_to_string(out.join(format!("demo-xp-{phase}.xml"))).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let order_of = |file: &str| {
            doc.descendants()
                .filter(|n| n.has_tag_name("disk") && n.attribute("device") == Some("disk"))
                .find(|n| {
                    n.children()
                        .any(|c| c.has_tag_name("source") && c.attribute("file") == Some(file))
                })
                .and_then(|n| n.children().find(|c| c.has_tag_name("boot")))
                .and_then(|b| b.attribute("order").map(str::to_string))
        };
        assert_eq!(order_of(demo_out).as_deref(), Some("1"), "{phase}: {xml}");
        assert_eq!(order_of(data_out).as_deref(), Some("2"), "{phase}: {xml}");
        let argv = std::fs::read_to_string(out.join(format!("demo-xp-{phase}.argv.json"))).unwrap();
        assert_eq!(argv.matches("bootindex=").count(), 2, "{phase}: {argv}");
    }

    // The plan is printed before the conversion's result, one line per
    // geometry finding (not one per bus, not again in the fix line).
    let plan_at = stdout.find("== plan").expect("plan printed");
    let result_at = stdout.find("== result").expect("result printed");
    assert!(plan_at < result_at, "{stdout}");
    let bpb_lines: Vec<&str> = stdout.lines().filter(|l| l.contains("BPB says")).collect();
    assert_eq!(bpb_lines.len(), 1, "{stdout}");
    assert!(bpb_lines[0].contains("[ide, virtio-blk]"), "{stdout}");
    let fix = stdout
        .lines()
        .find(|l| l.starts_with("fix  geometry"))
        .expect("the geometry fix line");
    assert!(!fix.contains("BPB says"), "{fix}");
    // Next steps: the files written and what to run, bootstrap first for
    // a Windows guest without VirtIO drivers.
    let next = &stdout[stdout.find("== next steps").expect("next steps")..];
    assert!(next.contains("boot the bootstrap domain first"), "{next}");
    let define = format!(
        "virsh define {} && virsh start demo-xp",
        out.join("demo-xp-bootstrap.xml").display()
    );
    assert!(next.contains(&define), "{next}");
    assert!(
        next.contains(&out.join("demo-xp-bootstrap.sh").display().to_string()),
        "{next}"
    );
    let written = &stdout[stdout.find("== files written").unwrap()..];
    for f in names(&out) {
        assert!(written.contains(&f), "{f} not listed: {written}");
    }
}

fn seed_disk(dir: &Path) -> PathBuf {
    let p = dir.join("seed.raw");
    BootDisk::vmware_255_heads().write_raw(&p).unwrap();
    p
}

fn bare(disk: &Path, out: &Path, firmware: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        disk.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--firmware",
        firmware,
        "--os",
        "winxp",
        "--memory",
        "256",
        "--vcpus",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    migrate(&args)
}

#[test]
fn uefi_guests_get_no_chs_pin() {
    let t = tempfile::tempdir().unwrap();
    let disk = seed_disk(t.path());
    let geometry_actions = |plan: &serde_json::Value| {
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["fixer"] == "geometry")
            .count()
    };
    // BIOS: the 255-head seed gets a pin.
    let out = t.path().join("bios");
    let o = bare(&disk, &out, "bios", &["--dry-run"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let plan = json(&out.join("plan.json"));
    assert_eq!(plan["disks"][0]["geometry"]["mode"], "pin");
    assert_eq!(geometry_actions(&plan), 1, "{}", plan["actions"]);
    // UEFI: no geometry audit, no pin, nothing in the domains.
    let out = t.path().join("uefi");
    let o = bare(&disk, &out, "uefi", &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    let plan = json(&out.join("plan.json"));
    assert!(
        plan["disks"][0]["geometry"].is_null(),
        "{}",
        plan["disks"][0]
    );
    assert_eq!(plan["disks"][0]["geometry_findings"], serde_json::json!([]));
    assert_eq!(geometry_actions(&plan), 0, "{}", plan["actions"]);
    for phase in ["bootstrap", "final"] {
        let argv = std::fs::read_to_string(out.join(format!("seed-{phase}.argv.json"))).unwrap();
        assert!(!argv.contains("lheads"), "{phase}: {argv}");
        let xml = std::fs::read_to_string(out.join(format!("seed-{phase}.xml"))).unwrap();
        assert!(!xml.contains("lheads"), "{phase}");
    }
}

#[test]
fn a_failure_names_a_report_only_when_this_run_wrote_one() {
    let t = tempfile::tempdir().unwrap();
    let disk = seed_disk(t.path());
    // A folder with an old report and another file: refused, and the old
    // report is not this run's.
    let out = t.path().join("busy");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("report.json"), "{\"success\": false}").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = bare(&disk, &out, "bios", &[]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("--force"), "{err}");
    assert!(!err.contains("report.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        "{\"success\": false}"
    );
    // A run that fails after it started writes its report and says so.
    let out = t.path().join("fails");
    let missing = t.path().join("missing.raw");
    let o = bare(&missing, &out, "bios", &[]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    let see = format!("see {}", out.join("report.json").display());
    assert!(err.contains(&see), "{err}");
    assert_eq!(json(&out.join("report.json"))["success"], false);
    assert_eq!(names(&out), ["report.json"]);
}

#[test]
fn a_dry_runs_folder_is_reused_without_force_but_a_real_output_is_not() {
    let t = tempfile::tempdir().unwrap();
    let disk = seed_disk(t.path());
    let out = t.path().join("out");
    let o = bare(&disk, &out, "bios", &["--dry-run"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(names(&out), ["plan.json", "report.json"]);
    assert_eq!(json(&out.join("report.json"))["dry_run"], true);
    let o = bare(&disk, &out, "bios", &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    let r = json(&out.join("report.json"));
    assert_eq!(
        (r["success"].clone(), r["dry_run"].clone()),
        (true.into(), false.into())
    );
    assert!(names(&out).contains(&"seed-disk0.qcow2".to_string()));
    let o = bare(&disk, &out, "bios", &[]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--force"));
}

#[test]
fn inspect_reports_the_disks_as_one_vm_and_a_corrupt_table_as_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let seed = seed_disk(t.path());
    // A GPT disk (sfdisk) whose primary and backup headers are destroyed.
    let gpt = t.path().join("gpt.raw");
    testkit::sparse_file(&gpt, 8 << 20);
    testkit::sfdisk(&gpt, "label: gpt\nstart=2048, size=4096, type=L\n");
    testkit::patch(&gpt, 512, &[0u8; 92]);
    testkit::patch(&gpt, (8 << 20) - 512, &[0u8; 92]);
    let o = Command::new(bin())
        .args(["inspect", "--json"])
        .arg(&seed)
        .arg(&gpt)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Per disk as before, plus the VM-wide inspection.
    assert_eq!(v[0]["audit"]["table"]["kind"], "mbr");
    let vm = &v[0]["vm"];
    assert_eq!(vm, &v[1]["vm"]);
    assert_eq!(vm["disks"].as_array().unwrap().len(), 2);
    assert_eq!(vm["disks"][0]["table"], "mbr");
    assert_eq!(vm["disks"][0]["boot_code"], true);
    assert_eq!(vm["disks"][0]["volumes"][0]["fs"], "ntfs");
    assert_eq!(vm["disks"][0]["volumes"][0]["boot_flag"], true);
    assert_eq!(vm["disks"][1]["table"], "none");
    assert!(
        vm["warnings"]
            .to_string()
            .contains("disk 1: partition table"),
        "{}",
        vm["warnings"]
    );
    let o = Command::new(bin())
        .arg("inspect")
        .arg(&seed)
        .arg(&gpt)
        .output()
        .unwrap();
    let (stdout, _) = text(&o);
    assert!(stdout.contains("VM (all 2 disk(s) together):"), "{stdout}");
    assert!(
        stdout.contains("warning: disk 1: partition table"),
        "{stdout}"
    );
}

#[test]
fn a_corrupt_partition_table_is_a_plan_warning() {
    let t = tempfile::tempdir().unwrap();
    let seed = seed_disk(t.path());
    let gpt = t.path().join("gpt.raw");
    testkit::sparse_file(&gpt, 8 << 20);
    testkit::sfdisk(&gpt, "label: gpt\nstart=2048, size=4096, type=L\n");
    testkit::patch(&gpt, 512, &[0u8; 92]);
    testkit::patch(&gpt, (8 << 20) - 512, &[0u8; 92]);
    let out = t.path().join("out");
    let o = migrate(&[
        seed.to_str().unwrap(),
        gpt.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--os",
        "winxp",
        "--firmware",
        "bios",
        "--dry-run",
        "--quiet",
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let plan = json(&out.join("plan.json"));
    let w = plan["warnings"].to_string();
    assert!(w.contains("disk 1: partition table unreadable"), "{w}");
    assert!(w.contains("no valid GPT"), "{w}");
    // The good disk is still audited and fixed.
    assert_eq!(plan["disks"][0]["geometry"]["mode"], "pin");
    assert!(plan["disks"][1]["geometry"].is_null());
}

#[test]
fn the_plan_is_printed_before_converting_even_when_the_conversion_fails() {
    need("qemu-img");
    need("qemu-io");
    let t = tempfile::tempdir().unwrap();
    // A qcow2 whose only data cluster (the last one of the file) is cut
    // off: opening and inspecting work, converting fails.
    let src = t.path().join("src.qcow2");
    testkit::qemu::qemu_img_create(&src, "qcow2", "64M");
    let st = Command::new("qemu-io")
        .args(["-c", "write -P 0x11 32M 64k"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(st.status.success());
    let len = std::fs::metadata(&src).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .unwrap()
        .set_len(len - 65536)
        .unwrap();
    let out = t.path().join("out");
    let o = migrate(&[
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--os",
        "linux",
        "--firmware",
        "bios",
        "--quiet",
    ]);
    let (stdout, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(stderr.contains("converting disk 0"), "{stderr}");
    assert!(stdout.contains("== plan for VM"), "{stdout}");
    assert!(stdout.contains("disk 0 (boot)"), "{stdout}");
    assert!(!stdout.contains("== next steps"), "{stdout}");
    assert_eq!(names(&out), ["report.json"]);
}
