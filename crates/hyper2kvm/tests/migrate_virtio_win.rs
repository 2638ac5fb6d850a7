//! `migrate --virtio-win`: a virtio-win directory tree becomes a driver CD
//! with just the guest's drivers (read back with isoinfo), a virtio-win ISO
//! (made by genisoimage) is attached as given, and media without a storage
//! driver for the guest is a plan warning naming STOP 0x7B, not a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{bin, fake_virtio_win, run, tool};

/// A fake virtio-win ISO tree (the listing's `cd/` root).
fn fake_tree(dir: &Path, extra: &[&str]) -> PathBuf {
    fake_virtio_win(dir, "iso-list.txt", extra).join("cd")
}

/// A VMware VM: `guest_os` hint, one empty VMDK on `bus` (ide or sata).
fn vmx(dir: &Path, guest_os: &str, bus: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    run(tool("qemu-img")
        .args(["create", "-q", "-f", "vmdk"])
        .arg(dir.join("disk.vmdk"))
        .arg("64M"));
    let p = dir.join("vm.vmx");
    std::fs::write(
        &p,
        format!(
            "config.version = \"8\"\nvirtualHW.version = \"14\"\ndisplayName = \"WinVM\"\n\
             guestOS = \"{guest_os}\"\nmemsize = \"1024\"\nnumvcpus = \"1\"\n\
             {bus}0.present = \"TRUE\"\n{bus}0:0.present = \"TRUE\"\n\
             {bus}0:0.fileName = \"disk.vmdk\"\n"
        ),
    )
    .unwrap();
    p
}

fn migrate(src: &Path, out: &Path, media: &Path) -> serde_json::Value {
    let o = Command::new(bin())
        .arg("migrate")
        .arg(src)
        .arg("--out")
        .arg(out)
        .arg("--virtio-win")
        .arg(media)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap()
}

/// The `<source file=…>` of the bootstrap domain's CD-ROM, if any.
fn cdrom_source(xml: &Path) -> Option<String> {
    let text = std::fs::read_to_string(xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .find(|n| n.has_tag_name("disk") && n.attribute("device") == Some("cdrom"))
        .and_then(|d| d.children().find(|c| c.has_tag_name("source")))
        .and_then(|s| s.attribute("file").map(String::from))
}

#[test]
fn xp_guest_gets_a_built_driver_cd_with_txtsetup_oem() {
    let t = tempfile::tempdir().unwrap();
    let media = fake_tree(
        &t.path().join("vw"),
        &[
            "cd/viostor/xp/x86/viostor.inf",
            "cd/viostor/xp/x86/viostor.sys",
            "cd/viostor/xp/x86/viostor.cat",
            "cd/NetKVM/xp/x86/netkvm.inf",
            "cd/NetKVM/xp/x86/netkvm.sys",
            "cd/NetKVM/xp/x86/netkvm.cat",
        ],
    );
    let src = vmx(&t.path().join("src"), "winxppro", "ide");
    let out = t.path().join("out");
    let plan = migrate(&src, &out, &media);
    let vw = &plan["virtio_win"];
    assert_eq!(vw["os_id"], "xp", "{vw}");
    assert_eq!(vw["built"], true);
    let dirs: Vec<&str> = vw["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_dir"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["viostor/xp/x86", "NetKVM/xp/x86"]);
    let iso = out.join("virtio-win-xp-x86.iso");
    assert_eq!(vw["attach"].as_str().map(PathBuf::from), Some(iso.clone()));
    // isoinfo reads what we wrote: txtsetup.oem at the root for F6, the
    // storage driver beside it, NetKVM in its own directory.
    let listing = run(tool("isoinfo").arg("-i").arg(&iso).args(["-J", "-f"]));
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/DRIVERS.TXT",
            "/NetKVM",
            "/NetKVM/netkvm.cat",
            "/NetKVM/netkvm.inf",
            "/NetKVM/netkvm.sys",
            "/txtsetup.oem",
            "/viostor.cat",
            "/viostor.inf",
            "/viostor.sys",
            "/virtio.tag",
        ]
    );
    let sys = tool("isoinfo")
        .arg("-i")
        .arg(&iso)
        .args(["-J", "-x", "/viostor.sys"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(
        sys,
        std::fs::read(media.join("viostor/xp/x86/viostor.sys")).unwrap()
    );
    // The bootstrap domain carries it; the final one has no CD.
    assert_eq!(
        cdrom_source(&out.join("WinVM-bootstrap.xml")).map(PathBuf::from),
        Some(iso)
    );
    assert_eq!(cdrom_source(&out.join("WinVM-final.xml")), None);
}

#[test]
fn virtio_win_iso_is_attached_as_given_and_checked_for_the_guest() {
    let t = tempfile::tempdir().unwrap();
    let tree = fake_tree(&t.path().join("vw"), &[]);
    let iso = t.path().join("virtio-win-0.1.999.iso");
    run(tool("genisoimage")
        .args(["-quiet", "-J", "-R", "-V", "virtio-win", "-o"])
        .arg(&iso)
        .arg(&tree));
    let src = vmx(&t.path().join("src"), "windows2019srv-64", "sata");
    let out = t.path().join("out");
    let plan = migrate(&src, &out, &iso);
    let vw = &plan["virtio_win"];
    assert_eq!(vw["os_id"], "2k19");
    assert_eq!(vw["built"], false);
    assert_eq!(vw["drivers"][0]["source_dir"], "viostor/2k19/amd64");
    assert_eq!(vw["drivers"][0]["service"], "viostor");
    assert_eq!(
        cdrom_source(&out.join("WinVM-bootstrap.xml")).map(PathBuf::from),
        Some(iso)
    );
    // Nothing but the ISO given is used: no driver CD was built.
    assert!(std::fs::read_dir(&out).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".iso")));
}

#[test]
fn media_without_the_storage_driver_is_a_plan_warning() {
    let t = tempfile::tempdir().unwrap();
    // The current virtio-win has no XP drivers.
    let media = fake_tree(&t.path().join("vw"), &[]);
    let src = vmx(&t.path().join("src"), "winxppro", "ide");
    let out = t.path().join("out");
    let plan = migrate(&src, &out, &media);
    let w = plan["warnings"].to_string();
    assert!(
        w.contains("no viostor driver for xp/x86") && w.contains("0x7B"),
        "{w}"
    );
    assert_eq!(plan["virtio_win"]["attach"], serde_json::Value::Null);
    assert_eq!(cdrom_source(&out.join("WinVM-bootstrap.xml")), None);
}
