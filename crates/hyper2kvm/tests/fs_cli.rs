//! `hyper2kvm fs` end to end on images made by mkntfs / mkfs.vfat, checked
//! with ntfs-3g and mtools.

use std::path::Path;
use std::process::Command;
use testkit::{need, run_tool as tool};

fn h2k(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hyper2kvm"))
        .arg("fs")
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let o = h2k(args);
    assert!(
        o.status.success(),
        "hyper2kvm fs {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn mkntfs(p: &Path, mib: u64) {
    std::fs::File::create(p)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    tool("mkntfs", &["-F", "-q", p.to_str().unwrap()]);
}

#[test]
fn ntfs_put_ls_cat_mkdir_rm_check() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("v.img");
    mkntfs(&img, 24);
    let i = img.to_str().unwrap();
    let local = t.path().join("viostor.sys");
    let data: Vec<u8> = (0..300 * 1024u32).map(|x| (x * 31 % 256) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    ok(&[
        "put",
        "-p",
        i,
        local.to_str().unwrap(),
        "/Windows/System32/drivers/viostor.sys",
    ]);
    ok(&["mkdir", i, "/Drivers"]);
    assert_eq!(
        ok(&["cat", i, "\\WINDOWS\\system32\\drivers\\VIOSTOR.SYS"]),
        data
    );
    assert_eq!(
        tool("ntfscat", &[i, "/Windows/System32/drivers/viostor.sys"]),
        data
    );
    let ls = String::from_utf8(ok(&["ls", i, "/"])).unwrap();
    assert!(
        ls.lines().any(|l| l == "Windows") && ls.lines().any(|l| l == "Drivers"),
        "{ls}"
    );
    let long = String::from_utf8(ok(&["ls", "-l", i, "/Windows/System32/drivers"])).unwrap();
    assert!(
        long.contains(&format!("{}", 300 * 1024)) && long.contains("viostor.sys"),
        "{long}"
    );
    let js: serde_json::Value =
        serde_json::from_slice(&ok(&["ls", "--json", i, "/Windows/System32/drivers"])).unwrap();
    assert_eq!(js[0]["name"], "viostor.sys");
    assert_eq!(js[0]["size"], 300 * 1024);
    ok(&["rm", i, "/Drivers"]);
    let ls = String::from_utf8(tool("ntfsls", &["-p", "/", i])).unwrap();
    assert!(!ls.contains("Drivers") && ls.contains("Windows"), "{ls}");
    let chk = String::from_utf8(ok(&["check", i])).unwrap();
    assert!(chk.contains("0 errors"), "{chk}");
    let fix = String::from_utf8(tool("ntfsfix", &["-n", i])).unwrap();
    assert!(fix.contains("processed successfully"), "{fix}");
    // errors are clear and nonzero
    let o = h2k(&["cat", i, "/nope.txt"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not found"));
}

#[test]
fn ntfs_in_qcow2_partition_and_vmdk_refused() {
    need("qemu-img");
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("d.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(40 << 20)
        .unwrap();
    testkit::sfdisk(&raw, "label: dos\nstart=2048, size=61440, type=7\n");
    let p = t.path().join("p.img");
    mkntfs(&p, 30);
    let mut d = std::fs::read(&raw).unwrap();
    d[1 << 20..31 << 20].copy_from_slice(&std::fs::read(&p).unwrap());
    std::fs::write(&raw, &d).unwrap();
    let q = t.path().join("d.qcow2");
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            q.to_str().unwrap(),
        ],
    );
    let target = format!("{}:1", q.display());
    let local = t.path().join("f.txt");
    std::fs::write(&local, b"into qcow2").unwrap();
    ok(&["put", &target, local.to_str().unwrap(), "/f.txt"]);
    assert_eq!(ok(&["cat", &target, "/F.TXT"]), b"into qcow2");
    // qemu-img agrees the image is consistent; ntfs-3g reads the file
    tool("qemu-img", &["check", q.to_str().unwrap()]);
    let back = t.path().join("back.raw");
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            q.to_str().unwrap(),
            back.to_str().unwrap(),
        ],
    );
    let b = std::fs::read(&back).unwrap();
    assert_eq!(&b[..1 << 20], &d[..1 << 20], "MBR area changed");
    std::fs::write(&p, &b[1 << 20..31 << 20]).unwrap();
    assert_eq!(
        tool("ntfscat", &[p.to_str().unwrap(), "/f.txt"]),
        b"into qcow2"
    );
    // formats we cannot write are refused before anything is touched
    let vmdk = t.path().join("d.vmdk");
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "vmdk",
            raw.to_str().unwrap(),
            vmdk.to_str().unwrap(),
        ],
    );
    let o = h2k(&[
        "put",
        &format!("{}:1", vmdk.display()),
        local.to_str().unwrap(),
        "/g.txt",
    ]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not supported"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // but any format is readable
    let ls = String::from_utf8(ok(&["ls", &format!("{}:1", vmdk.display()), "/"])).unwrap();
    assert!(ls.contains("$MFT") || ls.lines().count() > 0, "{ls}");
}

#[test]
fn fat_via_cli() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("esp.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(40 << 20)
        .unwrap();
    tool("mkfs.vfat", &["-F", "32", img.to_str().unwrap()]);
    let local = t.path().join("x.efi");
    std::fs::write(&local, b"EFI app").unwrap();
    ok(&[
        "put",
        "-p",
        img.to_str().unwrap(),
        local.to_str().unwrap(),
        "/EFI/Boot/bootx64.efi",
    ]);
    assert_eq!(
        tool(
            "mtype",
            &["-i", img.to_str().unwrap(), "::/EFI/Boot/bootx64.efi"]
        ),
        b"EFI app"
    );
    let o = Command::new("fsck.fat")
        .args(["-n", img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}
