//! The Linux bootstrap boot on a real Debian guest with a host-only
//! initramfs (built by `tests/fixtures/linux-guest.sh --host-only-initramfs`,
//! debootstrap + GRUB, cached): before, the guest's own kernel and initrd
//! do not find the root on virtio-blk; the bootstrap boot (the guest's
//! kernel, initrd + our archive, its own `update-initramfs` in a chroot)
//! rebuilds the initramfs and rewrites a `/dev/sda1` fstab to `UUID=`;
//! after, the guest boots through its own GRUB on virtio-blk to `login:`.
//! Oracles: debugfs (file contents), blkid (UUID), e2fsck -fn, the
//! initramfs-tools-built initrd itself, and the guest's console.

use guest::inspect::LinuxMount;
use guest::linux::bootcfg::default_boot;
use guest::linux::fstab::{rewrite, TabKind};
use guest::linux::initrd::{Initrd, Presence};
use guest::linux::kconfig::{bzimage_release, KernelConfig, State};
use hyper2kvm::linuxfix::{
    choose_controller, fix_script, run_bootstrap, Bootstrap, FileEdit, LinkPin,
};
use hyper2kvm::validate::{boot, Accel, BootOutcome, BootSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::need;

const PART: &str = "offset=1048576";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(out: &Path) {
    let res = Command::new("bash")
        .arg(repo_root().join("tests/fixtures/linux-guest.sh"))
        .arg(out)
        .arg("--host-only-initramfs")
        .output()
        .expect("running tests/fixtures/linux-guest.sh");
    assert!(
        res.status.success(),
        "tests/fixtures/linux-guest.sh failed (needs root, debootstrap, loop devices):\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

fn fs(img: &Path) -> String {
    format!("{}?{PART}", img.display())
}

/// `debugfs -R 'dump PATH OUT'`: the file's bytes, None when absent.
fn dump(img: &Path, path: &str, tmp: &Path) -> Option<Vec<u8>> {
    let out = tmp.join("dump.bin");
    let _ = std::fs::remove_file(&out);
    let r = Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump {path} {}", out.display()))
        .arg(fs(img))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stat = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(fs(img))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&stat.stderr);
    if err.contains("File not found") {
        return None;
    }
    Some(std::fs::read(&out).unwrap())
}

fn debugfs_w(img: &Path, cmds: &[String]) {
    for c in cmds {
        let r = Command::new("debugfs")
            .args(["-w", "-R", c])
            .arg(fs(img))
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

fn names(i: &Initrd) -> Vec<String> {
    i.entries.iter().map(|e| e.name.clone()).collect()
}

/// initramfs-tools' own lister (the oracle for the reader).
fn lsinitramfs(initrd: &[u8], tmp: &Path) -> Vec<String> {
    let p = tmp.join("lsinitramfs.img");
    std::fs::write(&p, initrd).unwrap();
    let out = Command::new("lsinitramfs").arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn spec(argv: Vec<String>, phase: &str, out: &Path) -> BootSpec {
    let mut s = BootSpec::new(argv, phase, out);
    s.accel = Accel::Tcg;
    // Minutes under TCG on a loaded host; not a timing assertion.
    s.timeout = Duration::from_secs(900);
    s
}

fn virtio_disk(img: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},format=raw,if=virtio", img.display()),
    ]
}

#[test]
fn host_only_guest_fixes_itself_and_boots_on_virtio() {
    for t in [
        "debugfs",
        "e2fsck",
        "blkid",
        "lsinitramfs",
        "qemu-system-x86_64",
    ] {
        need(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    let img = tmp.join("guest.raw");
    fixture(&img);

    // --- inspection: /boot through debugfs, parsed by guest::linux -------
    let cfg = String::from_utf8(dump(&img, "/boot/grub/grub.cfg", tmp).unwrap()).unwrap();
    let env =
        dump(&img, "/boot/grub/grubenv", tmp).map(|b| String::from_utf8_lossy(&b).into_owned());
    let entry = default_boot(Some(&cfg), env.as_deref(), &[]).unwrap();
    let uuid = String::from_utf8(
        Command::new("blkid")
            .args(["-p", "-O", "1048576", "-s", "UUID", "-o", "value"])
            .arg(&img)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert!(
        entry.cmdline.contains(&format!("root=UUID={uuid}")),
        "{entry:?}"
    );
    let kernel = dump(&img, &entry.kernel, tmp).unwrap();
    let kver = bzimage_release(&kernel).unwrap();
    assert_eq!(entry.kernel, format!("/boot/vmlinuz-{kver}"));
    assert_eq!(entry.initrd, vec![format!("/boot/initrd.img-{kver}")]);
    let initrd_path = entry.initrd[0].clone();
    let old_initrd = dump(&img, &initrd_path, tmp).unwrap();
    let parsed = Initrd::parse(&old_initrd).unwrap();
    assert_eq!(
        names(&parsed),
        lsinitramfs(&old_initrd, tmp),
        "listing vs lsinitramfs"
    );
    let report = parsed.report();
    let kconfig = KernelConfig::parse(&String::from_utf8_lossy(
        &dump(&img, &format!("/boot/config-{kver}"), tmp).unwrap(),
    ));
    assert_eq!(kconfig.module_state("virtio_blk"), State::Module);
    assert_eq!(report.presence("virtio_blk"), Presence::Absent);
    assert!(
        report.storage_drivers.contains(&"ata_piix".to_string()),
        "{report:?}"
    );
    assert!(!report.drives_virtio_blk(Some(&kconfig)));
    let controller = choose_controller(&report, Some(&kconfig));

    // A bus-specific fstab, as on a guest installed on SCSI/IDE.
    let fstab_old = b"# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/sda1  /  ext4  errors=remount-ro  0  1\n".to_vec();
    std::fs::write(tmp.join("fstab"), &fstab_old).unwrap();
    debugfs_w(
        &img,
        &[
            "rm /etc/fstab".into(),
            format!("write {} /etc/fstab", tmp.join("fstab").display()),
        ],
    );
    let map = BTreeMap::from([("/dev/sda1".to_string(), uuid.clone())]);
    let plan = rewrite(
        std::str::from_utf8(&fstab_old).unwrap(),
        TabKind::Fstab,
        &map,
    );
    assert!(plan.changed() && plan.unresolved().is_empty());

    // --- before: the guest's own kernel + initrd on virtio-blk -----------
    let k = tmp.join("vmlinuz");
    let i = tmp.join("initrd");
    std::fs::write(&k, &kernel).unwrap();
    std::fs::write(&i, &old_initrd).unwrap();
    let mut argv: Vec<String> = ["qemu-system-x86_64", "-machine", "pc", "-m", "512"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend([
        "-kernel".into(),
        k.display().to_string(),
        "-initrd".into(),
        i.display().to_string(),
        "-append".into(),
        format!("{} rootdelay=5", entry.cmdline),
    ]);
    argv.extend(virtio_disk(&img));
    let before = boot(&spec(argv, "before", &tmp.join("out"))).unwrap();
    eprintln!("before: {} in {:.1} s", before.reason, before.seconds);
    assert!(
        matches!(&before.outcome, BootOutcome::Failure { id, .. } if id == "root_device_missing"),
        "{before:#?}"
    );

    // --- the bootstrap boot ----------------------------------------------
    let b = Bootstrap {
        disks: vec![(img.clone(), "raw".into())],
        kernel: kernel.clone(),
        initrd: old_initrd.clone(),
        cmdline: entry.cmdline.clone(),
        initrd_path: initrd_path.clone(),
        kernel_version: kver.clone(),
        controller,
        edits: vec![FileEdit {
            path: "/etc/fstab".into(),
            old: fstab_old.clone(),
            new: plan.text.clone().into_bytes(),
        }],
        links: vec![LinkPin {
            mac: "52:54:00:12:34:56".into(),
            name: "ens192".into(),
        }],
        mounts: vec![],
        uninstallers: vec![],
        work_dir: tmp.join("bootstrap"),
        timeout: Duration::from_secs(1800),
        memory_mib: 1024,
        accel: "tcg".into(),
    };
    let r = run_bootstrap(&b).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "bootstrap boot on {:?}: {:.1} s, steps {:?}",
        r.controller,
        r.seconds,
        r.steps.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(r
        .steps
        .iter()
        .any(|s| s.name == "rebuild-initramfs" && s.rc == 0));

    // --- the result, read back with debugfs / e2fsck ---------------------
    let backup =
        dump(&img, &format!("{initrd_path}.hyper2kvm-backup"), tmp).expect("backup initrd");
    assert_eq!(
        backup, old_initrd,
        "the backup is the old initrd byte for byte"
    );
    let new_initrd = dump(&img, &initrd_path, tmp).expect("new initrd");
    let new_parsed = Initrd::parse(&new_initrd).unwrap();
    assert_eq!(
        names(&new_parsed),
        lsinitramfs(&new_initrd, tmp),
        "listing vs lsinitramfs"
    );
    let new_report = new_parsed.report();
    for m in ["virtio_blk", "virtio_scsi", "virtio_pci", "virtio_net"] {
        assert_ne!(
            new_report.presence(m),
            Presence::Absent,
            "{m} missing from the new initrd"
        );
    }
    assert_eq!(
        Initrd::parse(&backup)
            .unwrap()
            .report()
            .presence("virtio_blk"),
        Presence::Absent
    );
    let fstab_new = String::from_utf8(dump(&img, "/etc/fstab", tmp).unwrap()).unwrap();
    assert_eq!(fstab_new, plan.text);
    assert!(
        fstab_new.contains(&format!("UUID={uuid}  /  ext4")),
        "{fstab_new}"
    );
    assert_eq!(
        dump(&img, "/etc/fstab.hyper2kvm-backup", tmp).unwrap(),
        fstab_old
    );
    let link = String::from_utf8(
        dump(&img, "/etc/systemd/network/10-hyper2kvm-ens192.link", tmp).unwrap(),
    )
    .unwrap();
    assert!(
        link.contains("MACAddress=52:54:00:12:34:56") && link.contains("Name=ens192"),
        "{link}"
    );
    let modules =
        String::from_utf8(dump(&img, "/etc/initramfs-tools/modules", tmp).unwrap()).unwrap();
    assert!(modules.lines().any(|l| l == "virtio_blk"), "{modules}");
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(fs(&img))
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck -fn: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );

    // --- after: the guest's own GRUB, kernel and new initrd on virtio ----
    let mut argv: Vec<String> = ["qemu-system-x86_64", "-machine", "pc", "-m", "512"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(virtio_disk(&img));
    let after = boot(&spec(argv, "after", &tmp.join("out"))).unwrap();
    eprintln!("after: {} in {:.1} s", after.reason, after.seconds);
    assert!(
        matches!(&after.outcome, BootOutcome::Success { marker, .. } if marker == "login_prompt"),
        "{after:#?}"
    );
}

/// The extra archive (read back by GNU cpio and by our initrd reader after
/// a gzip initrd), the command line, and the result log parser.
#[test]
fn extra_archive_cmdline_and_result_log() {
    use guest::linux::cpio;
    use hyper2kvm::linuxfix::{
        bootstrap_cmdline, bootstrap_initrd, extra_cpio, parse_result, Controller,
    };
    need("cpio");
    let b = Bootstrap {
        disks: vec![(PathBuf::from("/nonexistent.raw"), "raw".into())],
        kernel: vec![],
        initrd: vec![],
        cmdline: "BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet splash".into(),
        initrd_path: "/boot/initrd.img-6.1.0-50-amd64".into(),
        kernel_version: "6.1.0-50-amd64".into(),
        controller: Controller::Ide,
        edits: vec![FileEdit {
            path: "/etc/fstab".into(),
            old: b"/dev/sda1 / ext4 defaults 0 1\n".to_vec(),
            new: b"UUID=1 / ext4 defaults 0 1\n".to_vec(),
        }],
        links: vec![LinkPin {
            mac: "00:50:56:3F:12:34".into(),
            name: "ens192".into(),
        }],
        mounts: vec![LinuxMount {
            path: "/boot".into(),
            fs: "xfs".into(),
            uuid: "4c9f0a6e-2f7b-4f0e-9a51-0d6c8b1e2a33".into(),
        }],
        uninstallers: vec!["/usr/bin/vmware-uninstall-tools.pl".into()],
        work_dir: PathBuf::from("/nonexistent"),
        timeout: Duration::from_secs(1),
        memory_mib: 512,
        accel: "tcg".into(),
    };
    let extra = extra_cpio(&b, "n0nce").unwrap();
    let t = tempfile::tempdir().unwrap();
    let ar = t.path().join("extra.cpio");
    std::fs::write(&ar, &extra).unwrap();
    let listed = Command::new("sh")
        .arg("-c")
        .arg(format!("cpio -t --quiet < {}", ar.display()))
        .output()
        .unwrap();
    let names = String::from_utf8(listed.stdout).unwrap();
    let names: Vec<&str> = names.lines().collect();
    assert!(
        names.contains(&"h2k-init") && names.contains(&"h2k/fix.sh"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| *n == "bin" || *n == "lib" || n.starts_with("bin/") || n.starts_with("lib/")),
        "the archive must not replace the initrd's merged-/usr symlinks: {names:?}"
    );
    let entries = cpio::list(&extra).unwrap();
    assert_eq!(entries.len(), names.len());
    let fix = Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && cpio -id --quiet < extra.cpio && sh -n h2k/fix.sh && sh -n h2k/hook && sh -n h2k-init && cat h2k/ens192", t.path().display()))
        .output()
        .unwrap();
    assert!(
        fix.status.success(),
        "{}",
        String::from_utf8_lossy(&fix.stderr)
    );
    let link = String::from_utf8(fix.stdout).unwrap();
    assert!(
        link.contains("MACAddress=00:50:56:3f:12:34\n") && link.contains("Name=ens192\n"),
        "{link}"
    );
    // Appended to a 3-byte "initrd": padded to 4 first.
    let joined = bootstrap_initrd(b"abc", &extra);
    assert_eq!(&joined[..4], b"abc\0");
    assert_eq!(&joined[4..], &extra[..]);
    let cl = bootstrap_cmdline(&b.cmdline);
    assert_eq!(
        cl,
        "BOOT_IMAGE=/vmlinuz root=UUID=1 ro console=ttyS0,115200n8 rdinit=/h2k-init panic=1 rd.shell=0 rd.emergency=poweroff"
    );
    // Values that would break out of the script are refused.
    let mut bad = b.clone();
    bad.kernel_version = "6.1'; reboot; '".into();
    assert!(extra_cpio(&bad, "n").is_err());
    let mut bad = b.clone();
    bad.links[0].name = "../../x".into();
    assert!(extra_cpio(&bad, "n").is_err());
    let mut bad = b.clone();
    bad.mounts[0].uuid = "x; reboot".into();
    assert!(extra_cpio(&bad, "n").is_err());
    let mut bad = b.clone();
    bad.uninstallers[0] = "/usr/bin/x $(reboot)".into();
    assert!(extra_cpio(&bad, "n").is_err());
    // The /boot volume is mounted by type and UUID before any step
    // touches it, and unmounted before the power-off.
    let script = fix_script(&b, "n");
    assert!(
        script.contains("MOUNTS='/boot|xfs|4c9f0a6e-2f7b-4f0e-9a51-0d6c8b1e2a33'\n"),
        "{script}"
    );
    assert!(
        script.contains("UNINST='/usr/bin/vmware-uninstall-tools.pl'\n"),
        "{script}"
    );
    let order: Vec<usize> = [
        "step remount-rw",
        "step mount-boot",
        "step edit-files",
        "step backup-initrd",
        "step remove-foreign-tools",
        "step rebuild-initramfs",
    ]
    .iter()
    .map(|s| script.find(s).unwrap_or_else(|| panic!("{s} missing")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    let log = "H2K-STEP remount-rw\nH2K-RC remount-rw 0\nH2K-STEP rebuild-initramfs\nupdate-initramfs: Generating /boot/initrd.img-6.1.0-50-amd64\nE: something broke\nH2K-RC rebuild-initramfs 1\nH2K-END rc=1\n";
    let (steps, end) = parse_result(log);
    assert_eq!(end, Some(1));
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[1].rc, 1);
    assert!(steps[1].output.contains("E: something broke"));
    let (steps, end) = parse_result("H2K-STEP rebuild-initramfs\npartial\n");
    assert_eq!(end, None);
    assert_eq!(steps[0].rc, -1);
}
