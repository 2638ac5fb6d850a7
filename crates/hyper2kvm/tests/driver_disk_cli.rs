//! `hyper2kvm driver-disk`: a virtio-win tree (every path of the real ISO
//! listing, INF files from the virtio-win INF templates) as a directory or
//! as an ISO made by genisoimage goes in; the floppy is read back with
//! mtools and checked by fsck.fat, the ISO by isoinfo and xorriso; every
//! file must equal its source on the virtio-win media.

mod support;

use std::path::Path;
use std::process::Command;
use support::{bin, fake_virtio_win, run, tool};

const XP: &[&str] = &[
    "cd/viostor/xp/x86/viostor.inf",
    "cd/viostor/xp/x86/viostor.sys",
    "cd/viostor/xp/x86/viostor.cat",
];

fn h2k(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = h2k(args);
    assert!(
        o.status.success(),
        "hyper2kvm {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn report(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(&a)).unwrap()
}

/// Bytes of `path` on a FAT floppy image, read by mtools.
fn mtools_read(img: &Path, path: &str) -> Vec<u8> {
    let o = tool("mcopy")
        .args(["-n", "-i"])
        .arg(img)
        .arg(format!("::{path}"))
        .arg("-")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mcopy {path}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Every (path, from) of a driver-disk report.
fn files(rep: &serde_json::Value) -> Vec<(String, String)> {
    rep["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["from"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn floppy_from_genisoimage_iso_w10_amd64() {
    let t = tempfile::tempdir().unwrap();
    let tree = fake_virtio_win(&t.path().join("tree"), "iso-list.txt", &[]);
    let iso = t.path().join("virtio-win.iso");
    run(tool("genisoimage")
        .args(["-quiet", "-J", "-R", "-V", "virtio-win", "-o"])
        .arg(&iso)
        .arg(tree.join("cd")));
    let img = t.path().join("w10.img");
    let rep = report(&[
        "driver-disk",
        "--virtio-win",
        iso.to_str().unwrap(),
        "--os",
        "w10",
        "--arch",
        "amd64",
        "--net",
        "--floppy",
        img.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 1_474_560);
    let dirs: Vec<&str> = rep["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_dir"].as_str().unwrap())
        .collect();
    assert_eq!(
        dirs,
        ["viostor/w10/amd64", "NetKVM/w10/amd64", "vioscsi/w10/amd64"]
    );
    let paths: Vec<(String, String)> = files(&rep);
    let want = [
        ("viostor/viostor.inf", "viostor/w10/amd64/viostor.inf"),
        ("viostor/viostor.cat", "viostor/w10/amd64/viostor.cat"),
        ("viostor/viostor.sys", "viostor/w10/amd64/viostor.sys"),
        ("NetKVM/netkvm.inf", "NetKVM/w10/amd64/netkvm.inf"),
        ("NetKVM/netkvm.cat", "NetKVM/w10/amd64/netkvm.cat"),
        ("NetKVM/netkvm.sys", "NetKVM/w10/amd64/netkvm.sys"),
        ("vioscsi/vioscsi.inf", "vioscsi/w10/amd64/vioscsi.inf"),
        ("vioscsi/vioscsi.cat", "vioscsi/w10/amd64/vioscsi.cat"),
        ("vioscsi/vioscsi.sys", "vioscsi/w10/amd64/vioscsi.sys"),
    ];
    for (p, from) in want {
        assert!(
            paths.contains(&(p.to_string(), from.to_string())),
            "{p} from {from} missing in {paths:?}"
        );
        // mtools reads the same bytes as the virtio-win media holds.
        let src = std::fs::read(tree.join("cd").join(from)).unwrap();
        assert_eq!(mtools_read(&img, p), src, "{p}");
    }
    // Nothing else but the description file; no .pdb, no other OS.
    assert_eq!(paths.len(), want.len() + 1);
    let txt = String::from_utf8(mtools_read(&img, "DRIVERS.TXT")).unwrap();
    assert!(
        txt.contains("viostor (storage-blk): from viostor/w10/amd64"),
        "{txt}"
    );
    // The floppy is a clean FAT12 volume with our label.
    let fsck = run(tool("fsck.fat").arg("-n").arg(&img));
    assert!(fsck.contains(" files, "), "{fsck}");
    let label = run(tool("mlabel").args(["-s", "-i"]).arg(&img).arg("::"));
    assert!(label.contains("VIRTIO W10"), "{label}");
    let info = run(tool("minfo").arg("-i").arg(&img).arg("::"));
    assert!(
        info.contains("sectors per track: 18") && info.contains("heads: 2"),
        "{info}"
    );
}

#[test]
fn iso_from_package_tree_2k19_read_by_isoinfo_and_xorriso() {
    let t = tempfile::tempdir().unwrap();
    let tree = fake_virtio_win(
        &t.path().join("usr-share-virtio-win"),
        "rpm-tree-list.txt",
        &[],
    );
    let out = t.path().join("drivers.iso");
    let rep = report(&[
        "driver-disk",
        "--virtio-win",
        tree.to_str().unwrap(),
        "--os",
        "windows2019srv-64",
        "--arch",
        "x86_64",
        "--role",
        "storage-blk",
        "--role",
        "net",
        "--iso",
        out.to_str().unwrap(),
    ]);
    assert_eq!(rep["os_id"], "2k19");
    let fs = files(&rep);
    assert_eq!(fs.len(), 7, "{fs:?}");
    let listed = run(tool("isoinfo").arg("-i").arg(&out).args(["-J", "-f"]));
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort_unstable();
    let mut want: Vec<String> = fs.iter().map(|(p, _)| format!("/{p}")).collect();
    want.extend(["/NetKVM".to_string(), "/viostor".to_string()]);
    want.sort_unstable();
    assert_eq!(listed, want);
    for (p, from) in &fs {
        if from == "generated" {
            continue;
        }
        assert!(from.starts_with("drivers/"), "{from}");
        let o = tool("isoinfo")
            .arg("-i")
            .arg(&out)
            .args(["-J", "-x", &format!("/{p}")])
            .output()
            .unwrap();
        assert_eq!(o.stdout, std::fs::read(tree.join(from)).unwrap(), "{p}");
    }
    let x = t.path().join("x");
    run(tool("xorriso")
        .arg("-indev")
        .arg(&out)
        .args(["-osirrox", "on", "-extract", "/"])
        .arg(&x));
    let inf = std::fs::read_to_string(x.join("viostor/viostor.inf")).unwrap();
    assert!(inf.contains("PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00"));
    let d = run(tool("isoinfo").arg("-i").arg(&out).arg("-d"));
    assert!(d.contains("Volume id: VIRTIO_2K19_AMD64"), "{d}");
}

#[test]
fn xp_floppy_has_txtsetup_oem_from_the_inf() {
    let t = tempfile::tempdir().unwrap();
    let tree = fake_virtio_win(&t.path().join("tree"), "iso-list.txt", XP);
    let img = t.path().join("xp.img");
    let rep = report(&[
        "driver-disk",
        "--virtio-win",
        tree.join("cd").to_str().unwrap(),
        "--os",
        "winxp",
        "--arch",
        "x86",
        "--floppy",
        img.to_str().unwrap(),
    ]);
    assert_eq!(rep["txtsetup_oem"], true);
    // vioscsi has no XP build: left out with a warning, not an error.
    let w = rep["warnings"].to_string();
    assert!(w.contains("storage-scsi driver left out"), "{w}");
    let oem = String::from_utf8(mtools_read(&img, "txtsetup.oem")).unwrap();
    let lines: Vec<&str> = oem.lines().map(str::trim_end).collect();
    for want in [
        "[Disks]",
        "[Defaults]",
        "scsi = viostor",
        "[HardwareIds.scsi.viostor]",
        "id = \"PCI\\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00\", \"viostor\"",
        "driver = d1, viostor.sys, viostor",
        "inf = d1, viostor.inf",
        "value = \"Parameters\", \"BusType\", REG_DWORD, 1",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{oem}");
    }
    // The [Disks] tag file exists at the root, and so do the driver files.
    let disks = lines
        .iter()
        .find(|l| l.starts_with("d1 = "))
        .expect("disk line");
    assert!(disks.contains("\\virtio.tag, \\"), "{disks}");
    assert!(!mtools_read(&img, "virtio.tag").is_empty());
    for f in ["viostor.sys", "viostor.inf", "viostor.cat"] {
        let src = std::fs::read(tree.join("cd/viostor/xp/x86").join(f)).unwrap();
        assert_eq!(mtools_read(&img, f), src, "{f}");
    }
}

#[test]
fn refusals_leave_no_output() {
    let t = tempfile::tempdir().unwrap();
    let tree = fake_virtio_win(&t.path().join("tree"), "iso-list.txt", &[]);
    let cd = tree.join("cd");
    let outdir = t.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let img = outdir.join("x.img");
    let args = |os: &str, arch: &str| -> Vec<String> {
        vec![
            "driver-disk".into(),
            "--virtio-win".into(),
            cd.display().to_string(),
            "--os".into(),
            os.into(),
            "--arch".into(),
            arch.into(),
            "--floppy".into(),
            img.display().to_string(),
        ]
    };
    let fails = |a: Vec<String>, want: &str| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = h2k(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{a:?}: {err}");
        assert_eq!(
            std::fs::read_dir(&outdir).unwrap().count(),
            0,
            "{a:?} left files"
        );
    };
    fails(
        args("os2warp", "x86"),
        "unknown Windows version 'os2warp'; known ids:",
    );
    fails(args("w11", "x86"), "has no x86 edition");
    // A driver file the INF names is missing from the media.
    std::fs::remove_file(cd.join("viostor/w7/x86/viostor.sys")).unwrap();
    fails(args("w7", "x86"), "viostor.sys");
    // Drivers that do not fit on 1.44 MB: refused before anything is written.
    std::fs::write(cd.join("viostor/w8/x86/viostor.sys"), vec![0x4d; 1_500_000]).unwrap();
    fails(args("w8", "x86"), "a 1.44 MB floppy holds");
    // An existing output is kept unless --force.
    std::fs::write(&img, b"keep").unwrap();
    let a = args("w10", "amd64");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = h2k(&a);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&img).unwrap(), b"keep");
}
