//! `hyper2kvm migrate` on real Debian guests (built by
//! `tests/fixtures/linux-guest.sh`, debootstrap + GRUB, cached): the Linux
//! fix is planned from the inspection and run by `migrate` itself in a
//! bootstrap boot of the guest's own kernel and tools.
//!
//! - A host-only guest made VMware-style (streamOptimized VMDK on PVSCSI,
//!   `/dev/sda1` in fstab, a static MAC, a network config naming
//!   `ens192`) migrates, fixes itself and boots on virtio-blk to `login:`
//!   with its NIC still `ens192` and holding its address; read back with
//!   debugfs and lsinitramfs.
//! - `--no-bootstrap-boot` plans the TODO line instead of the steps.
//! - Opt-in (`HYPER2KVM_SLOW=1`): the dracut host-only guest likewise;
//!   a host-only UEFI guest (GPT, ESP at /boot/efi, GRUB x86_64-efi) with
//!   `firmware = "efi"` boots its final domain with OVMF.
//! - A guest whose initrd already has virtio plans no bootstrap boot.
//! - A guest whose own `update-initramfs` fails: the migration fails with
//!   its text and leaves only `report.json`.
//!
//! Oracles: debugfs (file contents), blkid (UUID), lsinitramfs
//! (initramfs-tools' own lister), e2fsck -fn, mtools (the ESP), the
//! guest's console, sha256.

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use support::{bin, json, migrate, need, run as sh};

const PART: &str = "offset=1048576";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(out: &Path, variant: &[&str]) {
    let res = Command::new("bash")
        .arg(repo_root().join("tests/fixtures/linux-guest.sh"))
        .arg(out)
        .args(variant)
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
    dump_at(img, PART, path, tmp)
}

/// [`dump`] from the ext4 at `part` (`offset=BYTES`).
fn dump_at(img: &Path, part: &str, path: &str, tmp: &Path) -> Option<Vec<u8>> {
    let fs = |img: &Path| format!("{}?{part}", img.display());
    let out = tmp.join("dump.bin");
    let _ = std::fs::remove_file(&out);
    let stat = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(fs(img))
        .output()
        .unwrap();
    if String::from_utf8_lossy(&stat.stderr).contains("File not found") {
        return None;
    }
    let r = Command::new("debugfs")
        .arg("-R")
        .arg(format!("dump {path} {}", out.display()))
        .arg(fs(img))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    Some(std::fs::read(&out).unwrap())
}

/// Replace (or create) `path` in the guest with `data` via `debugfs -w`.
fn put(img: &Path, path: &str, data: &[u8], mode: &str, tmp: &Path) {
    let local = tmp.join("put.bin");
    std::fs::write(&local, data).unwrap();
    for c in [
        format!("rm {path}"),
        format!("write {} {path}", local.display()),
        format!("sif {path} mode {mode}"),
    ] {
        let r = Command::new("debugfs")
            .args(["-w", "-R", &c])
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

/// The kernel version of the grub.cfg's first `initrd` line.
fn grub_kver(cfg: &[u8]) -> String {
    String::from_utf8_lossy(cfg)
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("initrd")?;
            // `/boot/initrd.img-V`, or `/initrd.img-V` from a separate
            // /boot, or `/@/boot/initrd.img-V` in a btrfs subvolume.
            let (_, v) = l.split_once("/initrd.img-")?;
            Some(v.to_string())
        })
        .expect("initrd line in grub.cfg")
}

/// initramfs-tools' own lister.
fn lsinitramfs(initrd: &[u8], tmp: &Path) -> String {
    let p = tmp.join("lsinitramfs.img");
    std::fs::write(&p, initrd).unwrap();
    let out = Command::new("lsinitramfs").arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn uuid(img: &Path) -> String {
    String::from_utf8(
        Command::new("blkid")
            .args(["-p", "-O", "1048576", "-s", "UUID", "-o", "value"])
            .arg(img)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string()
}

fn steps(plan: &serde_json::Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "linux_bootstrap")
        .filter_map(|a| a["step"].as_str())
        .map(str::to_string)
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const VMX: &str = r#"config.version = "8"
virtualHW.version = "19"
displayName = "deb-hostonly"
guestOS = "debian12-64"
memsize = "1024"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "deb-hostonly.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.addressType = "static"
ethernet0.address = "00:50:56:12:34:56"
"#;

#[test]
fn host_only_guest_on_pvscsi_vmdk_fixes_itself_in_migrate_and_boots_on_virtio() {
    host_only_on_pvscsi(&[], "12");
}

/// The same with Debian 11 (kernel 5.10, initramfs-tools 0.140; opt-in
/// `HYPER2KVM_SLOW=1`: one more debootstrap and two more TCG boots).
#[test]
fn bullseye_host_only_guest_on_pvscsi_fixes_itself_and_boots_on_virtio() {
    if std::env::var("HYPER2KVM_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set HYPER2KVM_SLOW=1 (a bullseye debootstrap and two TCG boots)");
        return;
    }
    host_only_on_pvscsi(&["--suite", "bullseye"], "11");
}

/// Stands in for VMware Tools' `vmware-uninstall-tools.pl` (run by the
/// bootstrap boot as the real one is: directly, no arguments).
const PHONY_UNINSTALLER: &str = "#!/bin/sh\n# hyper2kvm test: a phony VMware Tools uninstaller\nrm -rf /etc/vmware-tools\necho 'phony VMware Tools uninstalled' > /var/lib/h2k-vmware-uninstalled\nrm -f \"$0\"\n";

/// A host-only guest (`fixture_args` added to the fixture's) made
/// VMware-style migrates, fixes itself and boots on virtio; its
/// os-release says `version`.
fn host_only_on_pvscsi(fixture_args: &[&str], version: &str) {
    for t in [
        "debugfs",
        "e2fsck",
        "blkid",
        "lsinitramfs",
        "qemu-img",
        "qemu-system-x86_64",
    ] {
        need(t);
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let raw = d.join("guest.raw");
    let mut args = vec!["--host-only-initramfs", "--netname"];
    args.extend(fixture_args);
    fixture(&raw, &args);
    let uuid = uuid(&raw);
    // A guest installed on SCSI names its root /dev/sda1.
    let fstab_old = "# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/sda1  /  ext4  errors=remount-ro  0  1\n";
    put(&raw, "/etc/fstab", fstab_old.as_bytes(), "0100644", d);
    // A VMware Tools tarball install (its database and its own
    // uninstaller; this one only removes the database and says so).
    sh(Command::new("debugfs")
        .args(["-w", "-R", "mkdir /etc/vmware-tools"])
        .arg(fs(&raw)));
    put(
        &raw,
        "/etc/vmware-tools/locations",
        b"file /etc/vmware-tools/locations\n",
        "0100644",
        d,
    );
    put(
        &raw,
        "/usr/bin/vmware-uninstall-tools.pl",
        PHONY_UNINSTALLER.as_bytes(),
        "0100755",
        d,
    );
    let kver = String::from_utf8(dump(&raw, "/boot/grub/grub.cfg", d).unwrap())
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("initrd\t/boot/initrd.img-")
                .or_else(|| l.trim().strip_prefix("initrd /boot/initrd.img-"))
                .map(str::to_string)
        })
        .expect("initrd line in grub.cfg");
    let initrd_path = format!("/boot/initrd.img-{kver}");
    let old_initrd = dump(&raw, &initrd_path, d).unwrap();
    assert!(!lsinitramfs(&old_initrd, d).contains("virtio_blk.ko"));
    let vmdk = src.join("deb-hostonly.vmdk");
    sh(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk", "-o"])
        .arg("subformat=streamOptimized,adapter_type=lsilogic")
        .arg(&raw)
        .arg(&vmdk));
    std::fs::remove_file(&raw).unwrap();
    let vmx = src.join("deb-hostonly.vmx");
    std::fs::write(&vmx, VMX).unwrap();
    let before = testkit::sha256(&vmdk);

    let out = d.join("out");
    let (o, report) = migrate_validated(&vmx, &out, "900");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(testkit::sha256(&vmdk), before, "the source VMDK changed");

    // The plan: the steps, with reasons.
    let plan = json(&out.join("plan.json"));
    assert_eq!(
        plan["inspection"]["linux"][0]["version"], version,
        "{}",
        plan["inspection"]["linux"][0]
    );
    let s = steps(&plan);
    assert_eq!(s[0], "rebuild-initramfs", "{s:?}");
    assert!(s.contains(&"edit-/etc/fstab".to_string()), "{s:?}");
    assert!(s.contains(&"remove-vmware-tools".to_string()), "{s:?}");
    // ens192 (a networkd config without a MAC) pinned to the VMX's NIC.
    let link = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "linux_bootstrap" && a["step"] == "link-ens192")
        .unwrap_or_else(|| panic!("no link-ens192 step: {s:?}"));
    assert!(
        link["detail"]
            .as_str()
            .unwrap()
            .ends_with("00:50:56:12:34:56 -> ens192"),
        "{link}"
    );
    let rebuild = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "linux_bootstrap" && a["step"] == "rebuild-initramfs")
        .unwrap();
    assert!(
        rebuild["reason"]
            .as_str()
            .unwrap()
            .contains("lacks virtio_blk"),
        "{rebuild}"
    );
    assert!(
        stdout.contains("bootstrap boot: rebuild-initramfs"),
        "{stdout}"
    );

    // The bootstrap boot's report.
    let b = &report["bootstrap"];
    let names: Vec<&str> = b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"rebuild-initramfs") && names.contains(&"edit-files"),
        "{b}"
    );
    for st in b["steps"].as_array().unwrap() {
        assert_eq!(st["rc"], 0, "{st}");
    }
    let serial = PathBuf::from(b["serial_log"].as_str().unwrap());
    assert!(serial.starts_with(&out), "{}", serial.display());
    let console = std::fs::read_to_string(&serial).unwrap();
    assert!(
        console.contains("h2k: step rebuild-initramfs rc=0"),
        "{console}"
    );
    eprintln!("bootstrap boot: {} s on {}", b["seconds"], b["controller"]);

    // The final domain: disk on virtio, the source MAC kept.
    let fin = std::fs::read_to_string(out.join("deb-hostonly-final.xml")).unwrap();
    let doc = roxmltree::Document::parse(&fin).unwrap();
    let disk_bus = doc
        .descendants()
        .find(|n| n.has_tag_name("disk") && n.attribute("device") == Some("disk"))
        .and_then(|n| n.children().find(|c| c.has_tag_name("target")))
        .and_then(|t| t.attribute("bus"));
    assert_eq!(disk_bus, Some("virtio"), "{fin}");
    let mac = doc
        .descendants()
        .find(|n| n.has_tag_name("mac"))
        .and_then(|n| n.attribute("address"));
    assert_eq!(mac, Some("00:50:56:12:34:56"));
    let v = json(&out.join("validation-final.json"));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["hits"].to_string().contains("login"), "{v}");
    // The NIC kept its VMware name on virtio-net, with its address.
    let serial = PathBuf::from(v["serial_log"].as_str().expect("serial_log"));
    let console = String::from_utf8_lossy(&std::fs::read(&serial).unwrap()).into_owned();
    let net = console
        .lines()
        .find(|l| l.contains("H2K-NET"))
        .unwrap_or_else(|| panic!("no H2K-NET line on the console:\n{console}"));
    assert!(net.contains("H2K-NET ens192 192.0.2.10 "), "{net}");

    // The output disk, read back.
    let img = out.join("deb-hostonly-disk0.raw");
    let new_initrd = dump(&img, &initrd_path, d).unwrap();
    let list = lsinitramfs(&new_initrd, d);
    for m in ["virtio_blk.ko", "virtio_pci", "virtio_scsi.ko"] {
        assert!(list.contains(m), "{m} missing from the new initrd");
    }
    assert_eq!(
        dump(&img, &format!("{initrd_path}.hyper2kvm-backup"), d).unwrap(),
        old_initrd,
        "the backup is the source's initrd byte for byte"
    );
    let fstab = String::from_utf8(dump(&img, "/etc/fstab", d).unwrap()).unwrap();
    assert!(
        fstab.contains(&format!("UUID={uuid}")) && !fstab.contains("/dev/sda1"),
        "{fstab}"
    );
    // The tools' own uninstaller ran in the guest.
    let removed = b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "remove-foreign-tools")
        .expect("remove-foreign-tools step");
    assert!(
        removed["output"]
            .as_str()
            .unwrap()
            .contains("/usr/bin/vmware-uninstall-tools.pl: done"),
        "{removed}"
    );
    assert_eq!(dump(&img, "/etc/vmware-tools/locations", d), None);
    assert_eq!(
        dump(&img, "/var/lib/h2k-vmware-uninstalled", d).as_deref(),
        Some(&b"phony VMware Tools uninstalled\n"[..])
    );
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(fs(&img))
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck -fn: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn initrd_with_virtio_plans_no_bootstrap_boot() {
    need("qemu-img");
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("guest.raw");
    fixture(&raw, &[]);
    let out = t.path().join("out");
    let o = migrate(&[
        raw.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--os",
        "debian12-64",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = json(&out.join("plan.json"));
    assert_eq!(
        plan["inspection"]["linux"].as_array().unwrap().len(),
        1,
        "{}",
        plan["inspection"]
    );
    assert!(steps(&plan).is_empty(), "{}", plan["actions"]);
    let actions = plan["actions"].to_string();
    assert!(!actions.contains("initramfs not checked"), "{actions}");
    let notes = plan["warnings"].to_string();
    assert!(
        notes.contains("no bootstrap boot needed: the initrd drives virtio-blk and nothing bus-specific was found"),
        "{notes}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("no bootstrap boot needed"), "{stdout}");
    assert_eq!(listing(&out), ["plan.json", "report.json"]);
}

#[test]
fn failing_guest_tool_fails_the_migration_with_its_text_and_leaves_only_the_report() {
    for t in ["debugfs", "qemu-system-x86_64"] {
        need(t);
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let raw = d.join("guest.raw");
    fixture(&raw, &["--host-only-initramfs"]);
    // The guest's own update-initramfs fails (as a broken hook would).
    put(
        &raw,
        "/usr/sbin/update-initramfs",
        b"#!/bin/sh\necho \"update-initramfs: hook zz-test failed: broken on purpose ($*)\" >&2\nexit 3\n",
        "0100755",
        d,
    );
    let before = testkit::sha256(&raw);
    let out = d.join("out");
    let o = migrate(&[
        raw.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--os",
        "debian12-64",
        "--accel",
        "tcg",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("bootstrap step rebuild-initramfs failed in the guest (exit 3)")
            && err.contains("hook zz-test failed: broken on purpose (-u -k"),
        "{err}"
    );
    assert_eq!(listing(&out), ["report.json"]);
    let report = json(&out.join("report.json"));
    assert_eq!(report["success"], false);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("broken on purpose"),
        "{report}"
    );
    assert_eq!(testkit::sha256(&raw), before, "the source changed");
}

/// The RPM-family stand-in: Debian's dracut in host-only mode. Opt-in
/// (`HYPER2KVM_SLOW=1`): dracut's rebuild under TCG takes minutes.
#[test]
fn dracut_host_only_guest_fixes_itself_and_boots_on_virtio() {
    if std::env::var("HYPER2KVM_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set HYPER2KVM_SLOW=1 (a dracut rebuild under TCG takes minutes)");
        return;
    }
    for t in ["debugfs", "qemu-system-x86_64"] {
        need(t);
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let raw = d.join("guest.raw");
    fixture(&raw, &["--dracut-host-only"]);
    let before = testkit::sha256(&raw);
    let out = d.join("out");
    let o = migrate(&[
        raw.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--os",
        "debian12-64",
        "-O",
        "raw",
        "--accel",
        "tcg",
        "--quiet",
    ]);
    let report = json(&out.join("report.json"));
    assert!(
        o.status.success(),
        "{}\n{report}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(testkit::sha256(&raw), before, "the source changed");
    let plan = json(&out.join("plan.json"));
    assert_eq!(
        plan["inspection"]["linux"][0]["initramfs_tool"], "dracut",
        "{}",
        plan["inspection"]["linux"]
    );
    assert_eq!(steps(&plan)[0], "rebuild-initramfs");
    let b = &report["bootstrap"];
    for st in b["steps"].as_array().unwrap() {
        assert_eq!(st["rc"], 0, "{st}");
    }
    let rebuild = b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "verify-initramfs")
        .expect("verify-initramfs step");
    assert!(
        rebuild["output"]
            .as_str()
            .unwrap()
            .contains("carries virtio_blk"),
        "{rebuild}"
    );
    eprintln!(
        "dracut bootstrap boot: {} s on {}",
        b["seconds"], b["controller"]
    );
    // The guest's own dracut config now adds the drivers.
    let img = out.join("guest-disk0.raw");
    let conf = dump(&img, "/etc/dracut.conf.d/90-hyper2kvm-virtio.conf", d)
        .expect("dracut drop-in written by the fix");
    assert!(String::from_utf8_lossy(&conf).contains("virtio_blk"));
    // The final domain boots on virtio.
    let v = Command::new(bin())
        .args(["validate"])
        .arg(&out)
        .args(["--phase", "final", "--accel", "tcg", "--timeout", "900"])
        .output()
        .unwrap();
    let fin = json(&out.join("validation-final.json"));
    assert!(
        v.status.success() && fin["ok"] == true,
        "{}\n{fin}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(fin["hits"].to_string().contains("login"), "{fin}");
}

#[test]
fn no_bootstrap_boot_flag_plans_the_todo_instead_of_the_steps() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("guest.raw");
    fixture(&raw, &["--host-only-initramfs"]);
    let plan_of = |extra: &[&str]| {
        let out = t.path().join(format!("out{}", extra.len()));
        let mut args = vec![
            raw.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--os",
            "debian12-64",
            "--dry-run",
        ];
        args.extend(extra);
        let o = migrate(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        json(&out.join("plan.json"))
    };
    let with = plan_of(&[]);
    assert_eq!(steps(&with)[0], "rebuild-initramfs", "{}", with["actions"]);
    let without = plan_of(&["--no-bootstrap-boot"]);
    assert!(steps(&without).is_empty(), "{}", without["actions"]);
    let todo = without["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "manual" && a["fixer"] == "linux")
        .unwrap_or_else(|| panic!("no manual line: {}", without["actions"]));
    assert!(
        todo["reason"]
            .as_str()
            .unwrap()
            .contains("--no-bootstrap-boot")
            && todo["reason"]
                .as_str()
                .unwrap()
                .contains("lacks virtio_blk"),
        "{todo}"
    );
    assert!(todo["text"]
        .as_str()
        .unwrap()
        .contains("initramfs not checked"));
}

/// The UEFI guest's root: partition 2 of the GPT, after the 64 MiB ESP at
/// 1 MiB (tests/fixtures/linux-guest.sh --uefi).
const UEFI_ROOT: &str = "offset=68157440";
/// Its ESP, as mtools names it.
const UEFI_ESP: &str = "@@1048576";

const VMX_UEFI: &str = r#"config.version = "8"
virtualHW.version = "19"
displayName = "deb-uefi"
guestOS = "debian12-64"
firmware = "efi"
memsize = "1024"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "deb-uefi.vmdk"
"#;

/// A host-only UEFI guest (GPT, FAT ESP mounted at /boot/efi, GRUB
/// x86_64-efi at `\EFI\BOOT\BOOTX64.EFI`) from VMware: the bootstrap boot
/// rebuilds its initramfs, the final domain boots it with OVMF on
/// virtio-blk to `login:` (so systemd mounted the ESP too). Opt-in
/// (`HYPER2KVM_SLOW=1`): OVMF under TCG is slow.
#[test]
fn uefi_host_only_guest_fixes_itself_and_boots_with_ovmf_on_virtio() {
    if std::env::var("HYPER2KVM_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set HYPER2KVM_SLOW=1 (an OVMF boot under TCG takes minutes)");
        return;
    }
    for t in [
        "debugfs",
        "lsinitramfs",
        "mdir",
        "qemu-img",
        "qemu-system-x86_64",
    ] {
        need(t);
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let raw = d.join("guest.raw");
    fixture(&raw, &["--host-only-initramfs", "--uefi"]);
    let cfg = dump_at(&raw, UEFI_ROOT, "/boot/grub/grub.cfg", d).unwrap();
    let initrd_path = format!("/boot/initrd.img-{}", grub_kver(&cfg));
    let old_initrd = dump_at(&raw, UEFI_ROOT, &initrd_path, d).unwrap();
    assert!(!lsinitramfs(&old_initrd, d).contains("virtio_blk.ko"));
    let fstab = String::from_utf8(dump_at(&raw, UEFI_ROOT, "/etc/fstab", d).unwrap()).unwrap();
    assert!(
        fstab
            .lines()
            .any(|l| l.starts_with("UUID=") && l.contains(" /boot/efi vfat ")),
        "{fstab}"
    );
    let vmdk = src.join("deb-uefi.vmdk");
    sh(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk", "-o"])
        .arg("subformat=streamOptimized,adapter_type=lsilogic")
        .arg(&raw)
        .arg(&vmdk));
    std::fs::remove_file(&raw).unwrap();
    let vmx = src.join("deb-uefi.vmx");
    std::fs::write(&vmx, VMX_UEFI).unwrap();
    let before = testkit::sha256(&vmdk);

    let out = d.join("out");
    let (_, report) = migrate_validated(&vmx, &out, "1500");
    assert_eq!(testkit::sha256(&vmdk), before, "the source VMDK changed");
    let plan = json(&out.join("plan.json"));
    assert_eq!(steps(&plan)[0], "rebuild-initramfs", "{}", plan["actions"]);
    let b = &report["bootstrap"];
    for st in b["steps"].as_array().unwrap() {
        assert_eq!(st["rc"], 0, "{st}");
    }
    eprintln!(
        "UEFI bootstrap boot: {} s on {}",
        b["seconds"], b["controller"]
    );

    // The final domain: OVMF (no Secure Boot), disk on virtio.
    let fin = std::fs::read_to_string(out.join("deb-uefi-final.xml")).unwrap();
    let doc = roxmltree::Document::parse(&fin).unwrap();
    let loader = doc
        .descendants()
        .find(|n| n.has_tag_name("os"))
        .and_then(|os| os.children().find(|c| c.has_tag_name("loader")))
        .unwrap_or_else(|| panic!("no <os><loader> in the final domain:\n{fin}"));
    assert_eq!(loader.attribute("type"), Some("pflash"), "{fin}");
    assert_eq!(loader.attribute("secure"), Some("no"), "{fin}");
    assert!(loader.text().is_some_and(|p| p.contains("OVMF")), "{fin}");
    let disk_bus = doc
        .descendants()
        .find(|n| n.has_tag_name("disk") && n.attribute("device") == Some("disk"))
        .and_then(|n| n.children().find(|c| c.has_tag_name("target")))
        .and_then(|t| t.attribute("bus"));
    assert_eq!(disk_bus, Some("virtio"), "{fin}");
    let v = json(&out.join("validation-final.json"));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["hits"].to_string().contains("login"), "{v}");
    // Booted by OVMF through the ESP's loader, and systemd mounted the ESP.
    let serial = PathBuf::from(v["serial_log"].as_str().expect("serial_log"));
    let console = String::from_utf8_lossy(&std::fs::read(&serial).unwrap()).into_owned();
    assert!(
        console.contains("BdsDxe: starting Boot"),
        "no OVMF boot line on the console:\n{console}"
    );
    assert!(
        console
            .lines()
            .any(|l| l.contains("Mounted") && l.contains("boot-efi.mount")) // (ANSI colours between)
            && !console.contains("Failed to mount"),
        "/boot/efi not mounted:\n{console}"
    );

    // The output disk, read back: the new initrd, the ESP's loader.
    let img = out.join("deb-uefi-disk0.raw");
    let new_initrd = dump_at(&img, UEFI_ROOT, &initrd_path, d).unwrap();
    assert!(lsinitramfs(&new_initrd, d).contains("virtio_blk.ko"));
    let esp = Command::new("mdir")
        .arg("-i")
        .arg(format!("{}{UEFI_ESP}", img.display()))
        .arg("::/EFI/BOOT")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&esp.stdout);
    assert!(
        esp.status.success() && listing.contains("BOOTX64  EFI"),
        "{listing}{}",
        String::from_utf8_lossy(&esp.stderr)
    );
}

/// `migrate VMX --out OUT -O raw --validate` under TCG with a boot time
/// limit of `timeout` seconds, which must succeed; its output and
/// report.json.
fn migrate_validated(
    vmx: &Path,
    out: &Path,
    timeout: &str,
) -> (std::process::Output, serde_json::Value) {
    let o = migrate(&[
        vmx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-O",
        "raw",
        "--validate",
        "--accel",
        "tcg",
        "--timeout",
        timeout,
        "--quiet",
    ]);
    let report = json(&out.join("report.json"));
    assert!(
        o.status.success(),
        "{}\n{}\n{report}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    (o, report)
}

/// A VMX for `name`.vmdk on controller `bus` (`lsisas1068`, `sata`), with
/// a static vmxnet3 MAC.
fn vmx_for(name: &str, bus: &str, mac: &str) -> String {
    let disk = if bus == "sata" {
        format!("sata0.present = \"TRUE\"\nsata0:0.present = \"TRUE\"\nsata0:0.fileName = \"{name}.vmdk\"\n")
    } else {
        format!("scsi0.present = \"TRUE\"\nscsi0.virtualDev = \"{bus}\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"{name}.vmdk\"\n")
    };
    format!(
        "config.version = \"8\"\nvirtualHW.version = \"19\"\ndisplayName = \"{name}\"\nguestOS = \"debian12-64\"\nmemsize = \"1024\"\nnumvcpus = \"1\"\n{disk}ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"vmxnet3\"\nethernet0.addressType = \"static\"\nethernet0.address = \"{mac}\"\n"
    )
}

/// Convert the fixture `raw` to `src/<name>.vmdk` (monolithicSparse) and
/// write its VMX; returns the VMX path and the VMDK's sha256.
fn vmware_source(raw: &Path, src: &Path, name: &str, bus: &str) -> (PathBuf, Vec<u8>) {
    std::fs::create_dir_all(src).unwrap();
    let vmdk = src.join(format!("{name}.vmdk"));
    sh(Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "adapter_type=lsilogic",
        ])
        .arg(raw)
        .arg(&vmdk));
    let vmx = src.join(format!("{name}.vmx"));
    std::fs::write(&vmx, vmx_for(name, bus, "00:50:56:12:34:58")).unwrap();
    let sum = testkit::sha256(&vmdk);
    (vmx, sum)
}

/// The bootstrap boot's steps from report.json, each checked rc 0;
/// (name, output).
fn bootstrap_steps(report: &serde_json::Value) -> Vec<(String, String)> {
    let b = &report["bootstrap"];
    let steps = b["steps"].as_array().unwrap_or_else(|| panic!("{b}"));
    for st in steps {
        assert_eq!(st["rc"], 0, "{st}");
    }
    eprintln!("bootstrap boot: {} s on {}", b["seconds"], b["controller"]);
    steps
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["output"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The final domain's validation reached `login:`.
fn assert_final_login(out: &Path) {
    let v = json(&out.join("validation-final.json"));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["hits"].to_string().contains("login"), "{v}");
}

/// A filesystem image mounted read-only by the host kernel (the test
/// oracle for XFS and btrfs contents); unmounted on drop.
struct RoMount(PathBuf);

impl RoMount {
    fn new(image: &Path, opts: &str, at: &Path) -> RoMount {
        std::fs::create_dir_all(at).unwrap();
        sh(Command::new("mount")
            .args(["-o", &format!("ro,loop{opts}")])
            .arg(image)
            .arg(at));
        RoMount(at.to_path_buf())
    }
    fn read(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.0.join(path.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `dd` `count` sectors at sector `skip` of `img` into `out` (sparse).
fn extract(img: &Path, skip: u64, count: u64, out: &Path) {
    sh(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", out.display()))
        .args(["bs=512", "conv=sparse", "status=none"])
        .arg(format!("skip={skip}"))
        .arg(format!("count={count}")));
}

/// The LVM guest's /boot: XFS partition 1 (512 MiB at sector 2048).
const LVM_BOOT: (u64, u64) = (2048, 1048576);
/// Its root LV's ext4: partition 2 at sector 1050624, first extent 1 MiB
/// into the PV (LVM's default pe_start).
const LVM_ROOT: &str = "offset=538968064";

/// RHEL's layout: `/boot` on XFS (partition 1, named `/dev/sda1` in
/// fstab), root ext4 on the LVM2 LV `h2kvg/root`, a host-only initrd, the
/// VM on LSI SAS. The bootstrap boot mounts the XFS `/boot` by UUID,
/// rebuilds the initrd there and rewrites fstab; the final domain boots
/// on virtio-blk to `login:` (with `/dev/sda1` left in fstab systemd
/// would stop in emergency mode). Read back with the host kernel's XFS
/// (mount -o ro), xfs_repair -n, debugfs through the LV's offset,
/// lsinitramfs and blkid.
#[test]
fn lvm_root_with_xfs_boot_on_lsi_sas_fixes_itself_and_boots_on_virtio() {
    for t in [
        "debugfs",
        "blkid",
        "lsinitramfs",
        "xfs_repair",
        "mount",
        "qemu-img",
        "qemu-system-x86_64",
    ] {
        need(t);
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let raw = d.join("guest.raw");
    fixture(&raw, &["--host-only-initramfs", "--lvm-xfs-boot"]);
    let boot_src = d.join("boot-src.xfs");
    extract(&raw, LVM_BOOT.0, LVM_BOOT.1, &boot_src);
    let boot_uuid = String::from_utf8(
        Command::new("blkid")
            .args(["-p", "-s", "UUID", "-o", "value"])
            .arg(&boot_src)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert_eq!(boot_uuid.len(), 36, "{boot_uuid:?}");
    let (kver, old_initrd) = {
        let m = RoMount::new(&boot_src, "", &d.join("mnt-src"));
        let kver = grub_kver(&m.read("/grub/grub.cfg"));
        let initrd = m.read(&format!("/initrd.img-{kver}"));
        (kver, initrd)
    };
    std::fs::remove_file(&boot_src).unwrap();
    let old_list = lsinitramfs(&old_initrd, d);
    assert!(!old_list.contains("virtio_blk.ko") && old_list.contains("dm-mod.ko"));
    let fstab_old = String::from_utf8(dump_at(&raw, LVM_ROOT, "/etc/fstab", d).unwrap()).unwrap();
    assert!(fstab_old.contains("/dev/sda1 /boot xfs"), "{fstab_old}");
    let (vmx, before) = vmware_source(&raw, &d.join("src"), "deb-lvm", "lsisas1068");
    std::fs::remove_file(&raw).unwrap();

    let out = d.join("out");
    let (_, report) = migrate_validated(&vmx, &out, "900");
    assert_eq!(
        testkit::sha256(&d.join("src/deb-lvm.vmdk")),
        before,
        "the source VMDK changed"
    );

    // Inspection: root on the LV, /boot the XFS partition, mounted by UUID.
    let plan = json(&out.join("plan.json"));
    let li = &plan["inspection"]["linux"][0];
    assert_eq!(li["root_lv"], "h2kvg/root", "{li}");
    assert_eq!(li["boot"]["partition"], 1, "{li}");
    assert_eq!(
        li["boot_mounts"],
        serde_json::json!([{"path": "/boot", "fs": "xfs", "uuid": boot_uuid}]),
        "{li}"
    );
    let s = steps(&plan);
    assert!(
        s.contains(&"rebuild-initramfs".to_string()) && s.contains(&"edit-/etc/fstab".to_string()),
        "{s:?}"
    );

    // The bootstrap boot mounted /boot, rebuilt there.
    let st = bootstrap_steps(&report);
    let mount = st
        .iter()
        .find(|s| s.0 == "mount-boot")
        .expect("mount-boot step");
    assert!(
        mount
            .1
            .contains(&format!("mounted /boot (xfs, UUID={boot_uuid})")),
        "{mount:?}"
    );
    assert_final_login(&out);

    // Read back: fstab on the LV, the initrds on the XFS /boot.
    let img = out.join("deb-lvm-disk0.raw");
    let fstab = String::from_utf8(dump_at(&img, LVM_ROOT, "/etc/fstab", d).unwrap()).unwrap();
    assert!(
        fstab.contains(&format!("UUID={boot_uuid} /boot xfs"))
            && fstab.contains("/dev/mapper/h2kvg-root / ext4")
            && !fstab.contains("/dev/sda1"),
        "{fstab}"
    );
    let boot = d.join("boot-out.xfs");
    extract(&img, LVM_BOOT.0, LVM_BOOT.1, &boot);
    let repair = Command::new("xfs_repair")
        .args(["-n", "-f"])
        .arg(&boot)
        .output()
        .unwrap();
    assert!(
        repair.status.success(),
        "xfs_repair -n (the guest must unmount /boot): {}{}",
        String::from_utf8_lossy(&repair.stdout),
        String::from_utf8_lossy(&repair.stderr)
    );
    let m = RoMount::new(&boot, "", &d.join("mnt-out"));
    let list = lsinitramfs(&m.read(&format!("/initrd.img-{kver}")), d);
    for mo in ["virtio_blk.ko", "virtio_scsi.ko", "dm-mod.ko"] {
        assert!(list.contains(mo), "{mo} missing from the new initrd");
    }
    assert_eq!(
        m.read(&format!("/initrd.img-{kver}.hyper2kvm-backup")),
        old_initrd,
        "the backup is the source's initrd byte for byte"
    );
}

/// Debian's btrfs layout (opt-in `HYPER2KVM_SLOW=1`): root in the
/// subvolume `@` (`subvol=@` in fstab, `rootflags=subvol=@` on the
/// kernel command line), `/boot` inside it, a host-only initrd, the VM on
/// SATA. Inspection finds the root in `@`; the bootstrap boot rebuilds
/// the initrd; the final domain boots on virtio-blk to `login:`. Read
/// back with the host kernel's btrfs (mount -o ro,subvol=@).
#[test]
fn btrfs_subvolume_root_guest_fixes_itself_and_boots_on_virtio() {
    if std::env::var("HYPER2KVM_SLOW").as_deref() != Ok("1") {
        eprintln!("skipped: set HYPER2KVM_SLOW=1 (two TCG boots)");
        return;
    }
    for t in ["lsinitramfs", "mount", "qemu-img", "qemu-system-x86_64"] {
        need(t);
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let raw = d.join("guest.raw");
    fixture(&raw, &["--host-only-initramfs", "--btrfs"]);
    let part = d.join("part.btrfs");
    extract(&raw, 2048, 4192256, &part);
    let (kver, old_initrd) = {
        let m = RoMount::new(&part, ",subvol=@", &d.join("mnt-src"));
        let kver = grub_kver(&m.read("/boot/grub/grub.cfg"));
        let initrd = m.read(&format!("/boot/initrd.img-{kver}"));
        (kver, initrd)
    };
    std::fs::remove_file(&part).unwrap();
    let (vmx, before) = vmware_source(&raw, &d.join("src"), "deb-btrfs", "sata");
    std::fs::remove_file(&raw).unwrap();

    let out = d.join("out");
    let (_, report) = migrate_validated(&vmx, &out, "900");
    assert_eq!(testkit::sha256(&d.join("src/deb-btrfs.vmdk")), before);
    let plan = json(&out.join("plan.json"));
    let li = &plan["inspection"]["linux"][0];
    assert_eq!(li["root_subvol"], "@", "{li}");
    assert_eq!(li["root_fs"], "btrfs", "{li}");
    assert!(
        li["default_boot"]["cmdline"]
            .as_str()
            .unwrap()
            .contains("rootflags=subvol=@"),
        "{li}"
    );
    assert_eq!(steps(&plan)[0], "rebuild-initramfs");
    bootstrap_steps(&report);
    assert_final_login(&out);

    let img = out.join("deb-btrfs-disk0.raw");
    extract(&img, 2048, 4192256, &part);
    let m = RoMount::new(&part, ",subvol=@", &d.join("mnt-out"));
    let list = lsinitramfs(&m.read(&format!("/boot/initrd.img-{kver}")), d);
    assert!(list.contains("virtio_blk.ko") && list.contains("btrfs.ko"));
    assert_eq!(
        m.read(&format!("/boot/initrd.img-{kver}.hyper2kvm-backup")),
        old_initrd
    );
}
