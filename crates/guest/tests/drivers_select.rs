//! Driver selection on fake virtio-win trees built from the real ISO and
//! package listings (shared testdata), txtsetup.oem for XP, and DirMedia
//! checked against find(1) and mtools.

use guest::drivers::catalog::Catalog;
use guest::drivers::fixture::build_fake_virtio_win;
use guest::drivers::media::{DirMedia, DriverMedia};
use guest::drivers::select::{select, DriverSet};
use guest::drivers::txtsetup::{txtsetup_oem, DiskData};
use guest::drivers::{Arch, Error, Role};
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::{need, testdata as shared};

const XP_2K3: [&str; 12] = [
    "cd/viostor/xp/x86/viostor.inf",
    "cd/viostor/xp/x86/viostor.sys",
    "cd/viostor/xp/x86/viostor.cat",
    "cd/viostor/xp/x86/viostor.pdb",
    "cd/viostor/2k3/x86/viostor.inf",
    "cd/viostor/2k3/x86/viostor.sys",
    "cd/viostor/2k3/x86/viostor.cat",
    "cd/viostor/2k3/x86/viostor.pdb",
    "cd/viostor/2k3/amd64/viostor.inf",
    "cd/viostor/2k3/amd64/viostor.sys",
    "cd/viostor/2k3/amd64/viostor.cat",
    "cd/viostor/2k3/amd64/viostor.pdb",
];

/// A fake tree from `list` (+ extras) under a temp dir; returns (guard, media root).
fn tree(list: &str, extra: &[&str], sub: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let written = build_fake_virtio_win(
        &shared(&format!("virtio-win-layout/{list}")),
        &shared("virtio-win-inx"),
        dir.path(),
        extra,
    )
    .unwrap();
    let listed = std::fs::read_to_string(shared(&format!("virtio-win-layout/{list}"))).unwrap();
    assert_eq!(
        written.len(),
        listed.lines().filter(|l| !l.trim().is_empty()).count() + extra.len()
    );
    let root = dir.path().join(sub);
    (dir, root)
}

fn iso(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    tree("iso-list.txt", extra, "cd")
}

fn pick(root: &Path, os: &str, arch: Arch, roles: &[Role]) -> Result<DriverSet, Error> {
    let media = DirMedia::new(root).unwrap();
    select(&media, &Catalog::builtin(), os, arch, roles)
}

fn files(set: &DriverSet, i: usize) -> Vec<String> {
    set.drivers[i]
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect()
}

fn storage_files(dir: &str, name: &str) -> Vec<String> {
    ["inf", "cat", "sys"]
        .iter()
        .map(|e| format!("{dir}/{name}.{e}"))
        .collect()
}

#[test]
fn iso_layout_selection() {
    let (_g, root) = iso(&[]);
    for (os, arch, dir) in [
        ("w10", Arch::Amd64, "viostor/w10/amd64"),
        ("win7", Arch::X86, "viostor/w7/x86"),
        ("2k8R2", Arch::Amd64, "viostor/2k8R2/amd64"),
        ("windows11-64", Arch::Amd64, "viostor/w11/amd64"),
        ("2k25", Arch::Amd64, "viostor/2k25/amd64"),
    ] {
        let set = pick(&root, os, arch, &[Role::StorageBlk]).unwrap();
        let d = &set.drivers[0];
        assert_eq!(
            (d.dir.as_str(), d.layout.as_str()),
            (dir, "iso-by-driver"),
            "{os}"
        );
        assert_eq!(files(&set, 0), storage_files(dir, "viostor"), "{os}");
        assert!(set.warnings.is_empty(), "{os}: {:?}", set.warnings);
        assert_eq!(
            d.summary.main_service().unwrap().add_service.name,
            "viostor"
        );
        assert_eq!(d.summary.decorations, [format!("NT{}", arch.inf_name())]);
        let sys = DirMedia::new(&root)
            .unwrap()
            .read(&d.files[2].path, 1 << 20)
            .unwrap();
        assert_eq!(
            sys,
            format!("fake virtio-win file cd/{dir}/viostor.sys\n").into_bytes()
        );
    }
    let set = pick(
        &root,
        "w10",
        Arch::Amd64,
        &[Role::StorageBlk, Role::StorageScsi, Role::Net],
    )
    .unwrap();
    let dirs: Vec<&str> = set.drivers.iter().map(|d| d.dir.as_str()).collect();
    assert_eq!(
        dirs,
        ["viostor/w10/amd64", "vioscsi/w10/amd64", "NetKVM/w10/amd64"]
    );
    assert_eq!(
        files(&set, 1),
        storage_files("vioscsi/w10/amd64", "vioscsi")
    );
    assert_eq!(files(&set, 2), storage_files("NetKVM/w10/amd64", "netkvm"));
    assert_eq!(set.drivers[2].summary.version.class.as_deref(), Some("Net"));
    let set = pick(&root, "w10", Arch::Amd64, &[Role::Rng, Role::Input]).unwrap();
    assert_eq!(
        files(&set, 0),
        [
            "viorng/w10/amd64/viorng.inf",
            "viorng/w10/amd64/viorng.cat",
            "viorng/w10/amd64/viorng.sys",
            "viorng/w10/amd64/viorngum.dll"
        ]
    );
    assert_eq!(files(&set, 1)[3], "vioinput/w10/amd64/viohidkmdf.sys");
}

#[test]
fn rpm_tree_selection() {
    let (_g, root) = tree("rpm-tree-list.txt", &[], "");
    for (os, arch, dir) in [
        ("w10", Arch::Amd64, "drivers/by-driver/viostor/w10/amd64"),
        ("w7", Arch::X86, "drivers/by-driver/viostor/w7/x86"),
        (
            "2k8R2",
            Arch::Amd64,
            "drivers/by-driver/viostor/2k8R2/amd64",
        ),
        ("w11", Arch::Amd64, "drivers/by-driver/viostor/w11/amd64"),
        ("2k25", Arch::Amd64, "drivers/by-driver/viostor/2k25/amd64"),
    ] {
        let set = pick(&root, os, arch, &[Role::StorageBlk]).unwrap();
        assert_eq!(
            (set.drivers[0].dir.as_str(), set.drivers[0].layout.as_str()),
            (dir, "rpm-by-driver")
        );
        assert_eq!(files(&set, 0), storage_files(dir, "viostor"));
        assert!(set.warnings.is_empty());
    }
}

#[test]
fn by_arch_and_legacy_layouts() {
    // Only the per-architecture storage dirs of the ISO (as on a slimmed copy).
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    let all = std::fs::read_to_string(shared("virtio-win-layout/iso-list.txt")).unwrap();
    let some: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("cd/amd64/") || l.starts_with("cd/i386/"))
        .collect();
    std::fs::write(&list, some.join("\n")).unwrap();
    let out = dir.path().join("t");
    let legacy = [
        "cd/WNET/AMD64/viostor.inf",
        "cd/WNET/AMD64/viostor.sys",
        "cd/WNET/AMD64/viostor.cat",
    ];
    build_fake_virtio_win(&list, &shared("virtio-win-inx"), &out, &legacy).unwrap();
    let root = out.join("cd");
    let set = pick(&root, "w10", Arch::X86, &[Role::StorageScsi]).unwrap();
    assert_eq!(
        (set.drivers[0].dir.as_str(), set.drivers[0].layout.as_str()),
        ("i386/w10", "iso-by-arch")
    );
    assert_eq!(files(&set, 0), storage_files("i386/w10", "vioscsi"));
    let set = pick(
        &root,
        "winNetEnterprise-64",
        Arch::Amd64,
        &[Role::StorageBlk],
    )
    .unwrap();
    assert_eq!(
        (set.drivers[0].dir.as_str(), set.drivers[0].layout.as_str()),
        ("WNET/AMD64", "legacy-by-os")
    );
    assert_eq!(
        set.drivers[0].summary.hardware_ids,
        [r"PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00"]
    );
}

#[test]
fn xp_and_2k3_from_extra_paths() {
    let (_g, root) = iso(&XP_2K3);
    let set = pick(&root, "winxp", Arch::X86, &[Role::StorageBlk]).unwrap();
    assert_eq!(set.drivers[0].dir, "viostor/xp/x86");
    assert_eq!(files(&set, 0), storage_files("viostor/xp/x86", "viostor"));
    assert!(set.text_mode_setup && set.warnings.is_empty());
    assert_eq!(
        set.drivers[0].summary.hardware_ids,
        [r"PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00"]
    );
    let set = pick(&root, "2k3", Arch::Amd64, &[Role::StorageBlk]).unwrap();
    assert_eq!(set.drivers[0].dir, "viostor/2k3/amd64");
    assert_eq!(
        files(&set, 0),
        storage_files("viostor/2k3/amd64", "viostor")
    );
    // XP x64 has no directory of its own: the 2003 x64 driver, with a warning.
    let set = pick(&root, "winXPPro-64", Arch::Amd64, &[Role::StorageBlk]).unwrap();
    assert_eq!(
        (set.drivers[0].dir.as_str(), set.drivers[0].from_os.as_str()),
        ("viostor/2k3/amd64", "2k3")
    );
    assert_eq!(set.warnings.len(), 1);
    assert!(
        set.warnings[0].contains("Windows XP") && set.warnings[0].contains("NT 5.2"),
        "{:?}",
        set.warnings
    );
}

#[test]
fn fallback_is_reported() {
    let (_g, root) = iso(&[]);
    std::fs::remove_dir_all(root.join("viostor/2k8R2")).unwrap();
    let set = pick(&root, "win2008r2", Arch::Amd64, &[Role::StorageBlk]).unwrap();
    assert_eq!(
        (set.drivers[0].dir.as_str(), set.drivers[0].from_os.as_str()),
        ("viostor/w7/amd64", "w7")
    );
    assert_eq!(
        set.warnings,
        ["no viostor driver for Windows Server 2008 R2 (2k8R2) on the media; using the w7 one from viostor/w7/amd64: Windows Server 2008 R2 and Windows 7 share the NT 6.1 kernel"]
    );
}

#[test]
fn selection_errors_are_clear() {
    let (_g, root) = iso(&[]);
    let e = pick(&root, "w11", Arch::X86, &[Role::StorageBlk])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "Windows 11 (w11) has no x86 edition (supported: amd64)");
    let e = pick(&root, "os2warp", Arch::X86, &[Role::StorageBlk])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("unknown Windows version 'os2warp'; known ids: xp, 2k3,")
            && e.contains("2k25"),
        "{e}"
    );
    // Vista (and its 2008 fallback) are not on a current ISO.
    let e = pick(&root, "vista", Arch::Amd64, &[Role::StorageBlk])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "no viostor driver for vista/amd64 on the media (looked in: viostor/vista/amd64,"
        ),
        "{e}"
    );
    assert!(
        e.contains("viostor is on the media in: amd64/2k16, amd64/2k19,")
            && e.contains("viostor/w7/x86"),
        "{e}"
    );
    // A missing .sys is named with its expected place.
    std::fs::remove_file(root.join("viostor/w10/amd64/viostor.sys")).unwrap();
    let e = pick(&root, "w10", Arch::Amd64, &[Role::StorageBlk])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "viostor/w10/amd64/viostor.inf: names source file (SourceDisksFiles/CopyFiles) 'viostor.sys' but viostor/w10/amd64/viostor.sys is not on the media"
    );
    std::fs::remove_file(root.join("vioscsi/w10/amd64/vioscsi.cat")).unwrap();
    let e = pick(&root, "w10", Arch::Amd64, &[Role::StorageScsi])
        .unwrap_err()
        .to_string();
    assert!(e.contains("names CatalogFile 'vioscsi.cat'"), "{e}");
    // An x86 INF in an amd64 directory.
    let x86 = std::fs::read(root.join("viostor/w10/x86/viostor.inf")).unwrap();
    std::fs::write(root.join("viostor/w11/amd64/viostor.inf"), x86).unwrap();
    let e = pick(&root, "w11", Arch::Amd64, &[Role::StorageBlk])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "viostor/w11/amd64/viostor.inf: no [Manufacturer] models for amd64 (decorations present: NTx86)");
}

#[test]
fn txtsetup_oem_for_xp() {
    let (_g, root) = iso(&XP_2K3);
    let set = pick(&root, "xp", Arch::X86, &[Role::StorageBlk]).unwrap();
    let disk = txtsetup_oem(&set).unwrap();
    let lines: Vec<&str> = disk.text.split("\r\n").collect();
    let want = [
        "; txtsetup.oem for Windows XP (xp) x86, written by hyper2kvm from viostor/xp/x86/viostor.inf",
        "",
        "[Disks]",
        r#"d1 = "VirtIO storage drivers for Windows XP x86", \virtio.tag, \"#,
        "",
        "[Defaults]",
        "scsi = viostor",
        "",
        "[scsi]",
        r#"viostor = "Red Hat VirtIO SCSI controller""#,
        "",
        "[Files.scsi.viostor]",
        "driver = d1, viostor.sys, viostor",
        "inf = d1, viostor.inf",
        "catalog = d1, viostor.cat",
        "",
        "[HardwareIds.scsi.viostor]",
        r#"id = "PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00", "viostor""#,
        "",
        "[Config.viostor]",
        r#"value = "", Tag, REG_DWORD, 1"#,
        r#"value = "Parameters\PnpInterface", "5", REG_DWORD, 1"#,
        r#"value = "Parameters", "BusType", REG_DWORD, 1"#,
        "",
    ];
    assert_eq!(lines, want);
    let names: Vec<&str> = disk.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "txtsetup.oem",
            "virtio.tag",
            "viostor.inf",
            "viostor.cat",
            "viostor.sys"
        ]
    );
    assert_eq!(
        disk.files[4].data,
        DiskData::Media("viostor/xp/x86/viostor.sys".into())
    );

    // Written to a floppy with our FAT writer, read back with mtools.
    need("mtype");
    let media = DirMedia::new(&root).unwrap();
    let contents: Vec<(String, Vec<u8>)> = disk
        .files
        .iter()
        .map(|f| {
            let b = match &f.data {
                DiskData::Bytes(b) => b.clone(),
                DiskData::Media(p) => media.read(p, 1 << 20).unwrap(),
            };
            (f.name.clone(), b)
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let img = tempfile::NamedTempFile::new().unwrap();
    guest::fs::make_floppy(img.path(), "VIRTIO", &refs).unwrap();
    for (n, b) in &contents {
        let out = Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-i"])
            .arg(img.path())
            .arg(format!("::{n}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mtype {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&out.stdout, b, "{n}");
    }

    // Two storage drivers on one disk (2003 x64 has vioscsi? no: only viostor here).
    let set = pick(
        &root,
        "w10",
        Arch::Amd64,
        &[Role::StorageBlk, Role::StorageScsi, Role::Net],
    )
    .unwrap();
    let disk = txtsetup_oem(&set).unwrap();
    assert!(disk.text.contains("\r\n[scsi]\r\nviostor = \"Red Hat VirtIO SCSI controller\"\r\nvioscsi = \"Red Hat VirtIO SCSI pass-through controller\"\r\n"));
    assert!(disk.text.contains("[Config.vioscsi]\r\nvalue = \"\", Tag, REG_DWORD, 2\r\nvalue = \"Parameters\\PnpInterface\", \"5\", REG_DWORD, 1\r\nvalue = \"Parameters\", \"BusType\", REG_DWORD, a\r\n"));
    assert!(!disk.files.iter().any(|f| f.name == "netkvm.sys"));
    let set = pick(&root, "w10", Arch::Amd64, &[Role::Net]).unwrap();
    assert!(txtsetup_oem(&set)
        .unwrap_err()
        .to_string()
        .contains("no storage driver"));
}

#[test]
fn dir_media_matches_find_and_stays_inside() {
    need("find");
    let (g, root) = iso(&[]);
    let media = DirMedia::new(&root).unwrap();
    let ours: Vec<String> = media.list().unwrap().into_iter().map(|f| f.path).collect();
    let out = Command::new("find")
        .arg(&root)
        .args(["-type", "f", "-printf", "%P\\n"])
        .output()
        .unwrap();
    let mut theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 1129);
    // Case-insensitive reads.
    let a = media
        .read("VIOSTOR/W10/AMD64/VIOSTOR.INF", 1 << 20)
        .unwrap();
    let b = std::fs::read(root.join("viostor/w10/amd64/viostor.inf")).unwrap();
    assert_eq!(a, b);
    assert!(media
        .read("viostor/w10/amd64/viostor.inf", 10)
        .unwrap_err()
        .to_string()
        .contains("limit"));
    assert!(media.read("../iso-outside", 10).is_err());
    assert!(media
        .read("viostor", 10)
        .unwrap_err()
        .to_string()
        .contains("not a regular file"));
    // Symlinks out of the root are neither listed nor read; inside ones are.
    std::fs::write(g.path().join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(g.path().join("secret.txt"), root.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(g.path(), root.join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(root.join("viostor"), root.join("alias")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("viostor/loop")).unwrap();
    let media = DirMedia::new(&root).unwrap();
    let listed: Vec<String> = media.list().unwrap().into_iter().map(|f| f.path).collect();
    assert!(!listed.iter().any(|p| p.starts_with("escape")));
    assert!(listed.contains(&"alias/w10/amd64/viostor.sys".to_string()));
    assert!(media
        .read("escape.txt", 100)
        .unwrap_err()
        .to_string()
        .contains("outside"));
    assert!(media.read("escape-dir/secret.txt", 100).is_err());
    // Walk limits.
    let small = DirMedia::new(&root).unwrap().with_limits(50, 24);
    assert!(small
        .list()
        .unwrap_err()
        .to_string()
        .contains("more than 50 entries"));
    let shallow = DirMedia::new(&root).unwrap().with_limits(100_000, 2);
    assert!(shallow
        .list()
        .unwrap_err()
        .to_string()
        .contains("deeper than 2"));
}

#[test]
fn fixture_fills_templates_per_arch() {
    let (_g, root) = iso(&XP_2K3);
    let amd = std::fs::read_to_string(root.join("viostor/w10/amd64/viostor.inf")).unwrap();
    let x86 = std::fs::read_to_string(root.join("i386/w10/viostor.inf")).unwrap();
    let xp = std::fs::read_to_string(root.join("viostor/xp/x86/viostor.inf")).unwrap();
    assert!(amd.contains("[VioStor.NTamd64]") && amd.contains("SUBSYS_00021AF4&REV_00"));
    assert!(x86.contains("[VioStor.NTx86]"));
    assert!(xp.contains("[RHEL.NTx86]") && xp.contains("DriverVer=05/03/2010"));
    let stub = std::fs::read_to_string(root.join("viofs/w10/amd64/viofs.inf")).unwrap();
    assert!(stub.starts_with("; fake INF for cd/viofs/w10/amd64/viofs.inf"));
    let bad = tempfile::tempdir().unwrap();
    let e = build_fake_virtio_win(
        &shared("virtio-win-layout/iso-list.txt"),
        &shared("virtio-win-inx"),
        bad.path(),
        &["../up"],
    )
    .unwrap_err();
    assert!(e.to_string().contains("'../up'"), "{e}");
}

#[test]
fn user_catalog_replaces_builtin() {
    let (_g, root) = iso(&[]);
    // A user catalog that knows one more alias and prefers the by-arch layout.
    let mut v: serde_json::Value = serde_json::from_str(Catalog::builtin_json()).unwrap();
    let w10 = v["os"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["id"] == "w10")
        .unwrap();
    w10["aliases"]
        .as_array_mut()
        .unwrap()
        .push("corp-desktop".into());
    let layouts = v["layouts"].as_array_mut().unwrap();
    let by_arch = layouts.remove(2);
    layouts.insert(0, by_arch);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.json");
    std::fs::write(&file, v.to_string()).unwrap();
    let cat = Catalog::load(&file).unwrap();
    let media = DirMedia::new(&root).unwrap();
    let set = select(&media, &cat, "corp-desktop", Arch::X86, &[Role::StorageBlk]).unwrap();
    assert_eq!(
        (set.drivers[0].dir.as_str(), set.drivers[0].layout.as_str()),
        ("i386/w10", "iso-by-arch")
    );
    assert!(select(
        &media,
        &Catalog::builtin(),
        "corp-desktop",
        Arch::X86,
        &[Role::StorageBlk]
    )
    .is_err());
    std::fs::write(&file, b"{\"layouts\": 3}").unwrap();
    let e = Catalog::load(&file).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("driver catalog {}:", file.display())),
        "{e}"
    );
}
