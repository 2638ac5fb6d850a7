//! `hyper2kvm fix-windows` on phony Windows disks built with the oracle
//! tools (see `winimg`): a Windows 7 x86 BIOS guest (real win7 SYSTEM
//! hive, CriticalDeviceDatabase path, two control sets) and a Windows 10
//! x64 UEFI guest (real win10-1709 SYSTEM hive, DriverDatabase path), with
//! a fake virtio-win tree built from the real INF templates, as a
//! directory and as an ISO made by genisoimage. Read back with tools no
//! one here wrote: hivexget/hivexregedit for the hives, ntfscat for files,
//! `ntfsfix -n` for the volume, mtools for the ESP, sha256 of the raw
//! image for "nothing written" and "second run changes nothing".

mod support;
mod winimg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{bin, fake_virtio_win, need, sha};
use winimg::*;

const XP_EXTRA: [&str; 3] = [
    "cd/viostor/xp/x86/viostor.inf",
    "cd/viostor/xp/x86/viostor.sys",
    "cd/viostor/xp/x86/viostor.cat",
];

/// The fake virtio-win ISO tree (its `cd/` root).
fn media(dir: &Path) -> PathBuf {
    fake_virtio_win(&dir.join("vw"), "iso-list.txt", &XP_EXTRA).join("cd")
}

/// The same tree as an ISO (Joliet + Rock Ridge), by genisoimage.
fn media_iso(dir: &Path, tree: &Path) -> PathBuf {
    need("genisoimage");
    let iso = dir.join("virtio-win.iso");
    run_tool(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-R",
            "-V",
            "virtio-win",
            "-o",
            iso.to_str().unwrap(),
            tree.to_str().unwrap(),
        ],
    );
    iso
}

fn fix(images: &[&Path], media: &Path, extra: &[&str]) -> Output {
    let t = std::time::Instant::now();
    let o = Command::new(bin())
        .arg("fix-windows")
        .args(images)
        .arg("--virtio-win")
        .arg(media)
        .args(extra)
        .output()
        .unwrap();
    eprintln!(
        "fix-windows {extra:?}: {:?}\n{}{}",
        t.elapsed(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Keys of a `hivexregedit --export`, lower-case, without brackets.
fn keys(export: &str) -> Vec<String> {
    export
        .lines()
        .filter_map(|l| l.strip_prefix("[\\").and_then(|l| l.strip_suffix(']')))
        .map(|k| k.to_lowercase())
        .collect()
}

/// `ntfsfix -n` (no change) on a partition image: the oracle's verdict.
fn ntfsfix_clean(part: &Path) {
    need("ntfsfix");
    let o = Command::new("ntfsfix")
        .arg("-n")
        .arg(part)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("processed successfully"),
        "ntfsfix -n {}: {text}{}",
        part.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A hive read out of an NTFS partition image with ntfscat.
fn hive_of(part: &Path, path: &str, out: &Path) -> PathBuf {
    std::fs::write(out, ntfscat(part, path)).unwrap();
    out.to_path_buf()
}

/// A file of a FAT partition inside `disk` at sector `start`, by mtools.
fn fat_file(disk: &Path, start: u64, path: &str, dir: &Path) -> Vec<u8> {
    need("mcopy");
    let out = dir.join("fat-file");
    let _ = std::fs::remove_file(&out);
    run_tool(
        "mcopy",
        &[
            "-n",
            "-i",
            &format!("{}@@{}", disk.display(), start * 512),
            &format!("::{path}"),
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

#[test]
fn win7_bios_virtio_blk_from_a_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (disk, bcd) = win7_disk(dir, false);
    let tree = media(dir);
    let sys_before = hive_of(
        &extract(&disk, W7_P2.0, W7_P2.1, &dir.join("p2-before.img")),
        "Windows/System32/config/SYSTEM",
        &dir.join("SYSTEM.before"),
    );
    let pristine = sha(&disk);

    // A dry run lists every action with its reason and writes nothing.
    let out = ok(&fix(&[&disk], &tree, &["--dry-run"]));
    assert!(
        out.contains("found Windows 7 Professional (win7, X86)"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(
            "fix  windows-storage: disk 0 Windows/System32/config/SYSTEM: set ControlSet002\\Services\\viostor\\Start: "
        )),
        "{out}"
    );
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(sha(&disk), pristine, "--dry-run changed the image");

    let out = ok(&fix(&[&disk], &tree, &[]));
    assert!(out.contains("done windows-storage: "), "{out}");
    let once = sha(&disk);
    assert_ne!(once, pristine);

    let p2 = extract(&disk, W7_P2.0, W7_P2.1, &dir.join("p2.img"));
    let p1 = extract(&disk, W7_P1.0, W7_P1.1, &dir.join("p1.img"));
    ntfsfix_clean(&p1);
    ntfsfix_clean(&p2);
    let system = hive_of(
        &p2,
        "Windows/System32/config/SYSTEM",
        &dir.join("SYSTEM.after"),
    );
    let software = hive_of(
        &p2,
        "Windows/System32/config/SOFTWARE",
        &dir.join("SOFTWARE.after"),
    );
    // The first-boot runner (issue 14) is on the volume and Winlogon
    // starts it: Setup\CmdLine names it, SetupType=2.
    let runner = String::from_utf8(ntfscat(&p2, "Windows/hyper2kvm/firstboot.cmd")).unwrap();
    assert!(
        runner.contains(r#"pnputil.exe" -i -a "%SystemRoot%\Drivers\VirtIO\viostor\viostor.inf""#),
        "{runner}"
    );
    assert!(runner.contains("hyper2kvm-firstboot"), "{runner}");
    assert!(!runner.to_lowercase().contains("powershell"));
    assert_eq!(hivexget(&system, "\\Setup", "SetupType"), "2");
    assert!(
        hivexget(&system, "\\Setup", "CmdLine").contains("firstboot.cmd"),
        "Setup\\CmdLine does not start the runner"
    );
    // Select references two control sets (LastKnownGood=2): both fixed.
    for cs in ["ControlSet001", "ControlSet002"] {
        let svc = format!("\\{cs}\\Services\\viostor");
        assert_eq!(hivexget(&system, &svc, "Start"), "0");
        assert_eq!(hivexget(&system, &svc, "Type"), "1");
        assert_eq!(hivexget(&system, &svc, "Group"), "SCSI miniport");
        assert_eq!(
            hivexget(&system, &svc, "ImagePath").to_lowercase(),
            "system32\\drivers\\viostor.sys"
        );
        assert_eq!(
            hivexget(&system, &format!("{svc}\\Parameters"), "BusType"),
            "1"
        );
        // The bootstrap controller (Q35 AHCI) binds msahci at boot.
        assert_eq!(
            hivexget(&system, &format!("\\{cs}\\Services\\msahci"), "Start"),
            "0"
        );
        assert_eq!(
            hivexget(
                &system,
                &format!("\\{cs}\\Control\\CrashControl"),
                "AutoReboot"
            ),
            "0"
        );
        // CDD entries for the INF's hardware IDs (transitional and modern).
        let cdd = export(&system, &format!("\\{cs}\\Control\\CriticalDeviceDatabase"));
        let inf = std::fs::read_to_string(tree.join("viostor/w7/x86/viostor.inf"))
            .unwrap()
            .to_lowercase();
        let ours: Vec<String> = keys(&cdd)
            .into_iter()
            .filter_map(|k| k.rsplit('\\').next().map(String::from))
            .filter(|k| k.starts_with("pci#ven_1af4"))
            .collect();
        for dev in ["dev_1001", "dev_1042"] {
            assert!(
                ours.iter().any(|k| k.contains(dev)),
                "{dev} not in {ours:?}"
            );
        }
        for k in &ours {
            assert!(
                inf.contains(&k.replace('#', "\\")),
                "{k} is not an ID of the INF"
            );
            let key = format!("\\{cs}\\Control\\CriticalDeviceDatabase\\{k}");
            assert_eq!(hivexget(&system, &key, "Service"), "viostor");
            assert_eq!(
                hivexget(&system, &key, "ClassGUID").to_uppercase(),
                "{4D36E97B-E325-11CE-BFC1-08002BE10318}"
            );
        }
    }
    // Nothing but the planned keys is new.
    let before = keys(&export(&sys_before, "\\"));
    for k in keys(&export(&system, "\\")) {
        if before.contains(&k) {
            continue;
        }
        assert!(
            k.contains("\\services\\viostor")
                || k.contains("\\services\\eventlog\\system\\viostor")
                || k.contains("\\criticaldevicedatabase\\pci#ven_1af4"),
            "unexpected new key {k}"
        );
    }
    assert!(hivexget(
        &software,
        "\\Microsoft\\Windows\\CurrentVersion",
        "DevicePath"
    )
    .contains("%SystemRoot%\\Drivers\\VirtIO"));
    // Staged files byte-identical to the media.
    assert_eq!(
        ntfscat(&p2, "Windows/System32/drivers/viostor.sys"),
        std::fs::read(tree.join("viostor/w7/x86/viostor.sys")).unwrap()
    );
    assert_eq!(
        ntfscat(&p2, "Windows/Drivers/VirtIO/NetKVM/netkvm.inf"),
        std::fs::read(tree.join("NetKVM/w7/x86/netkvm.inf")).unwrap()
    );
    assert_eq!(ntfscat(&p1, "Boot/BCD.hyper2kvm-backup"), bcd);
    assert_eq!(ntfscat(&p1, "Boot/BCD"), bcd);

    // Second run: nothing to do, the image is byte-identical.
    let out = ok(&fix(&[&disk], &tree, &[]));
    assert!(out.contains("0 action(s) changed the image(s)"), "{out}");
    assert_eq!(sha(&disk), once, "the second run changed the image");
}

#[test]
fn win10_uefi_virtio_scsi_from_an_iso_with_json() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (disk, bootmgfw) = win10_disk(dir);
    let tree = media(dir);
    let iso = media_iso(dir, &tree);
    let o = fix(&[&disk], &iso, &["--block", "virtio-scsi", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(j["bus"], "virtio-scsi");
    let actions = j["actions"].as_array().unwrap();
    assert!(actions
        .iter()
        .all(|a| !a["reason"].as_str().unwrap().is_empty()));
    assert!(j["report"]["changed"].as_u64().unwrap() > 0, "{j}");
    let once = sha(&disk);

    let p = extract(&disk, W10_SYS.0, W10_SYS.1, &dir.join("sys.img"));
    ntfsfix_clean(&p);
    let system = hive_of(
        &p,
        "Windows/System32/config/SYSTEM",
        &dir.join("SYSTEM.after"),
    );
    let cs = "\\ControlSet001";
    assert_eq!(
        hivexget(&system, &format!("{cs}\\Services\\vioscsi"), "Start"),
        "0"
    );
    assert_eq!(
        hivexget(&system, &format!("{cs}\\Services\\storahci"), "Start"),
        "0"
    );
    assert!(
        !keys(&export(&system, &format!("{cs}\\Services\\storahci")))
            .iter()
            .any(|k| k.ends_with("startoverride")),
        "storahci keeps a StartOverride"
    );
    assert_eq!(
        hivexget(
            &system,
            &format!("{cs}\\Control\\CrashControl"),
            "AutoReboot"
        ),
        "0"
    );
    // DriverDatabase: the INF's hardware IDs point at vioscsi.inf, the
    // package is registered under a real-looking label.
    let inf = std::fs::read_to_string(tree.join("vioscsi/w10/amd64/vioscsi.inf"))
        .unwrap()
        .to_lowercase();
    let ids = export(&system, "\\DriverDatabase\\DeviceIds\\PCI");
    let ours: Vec<String> = keys(&ids)
        .into_iter()
        .filter(|k| k.contains("ven_1af4&dev_1004") || k.contains("ven_1af4&dev_1048"))
        .collect();
    assert!(ours.iter().any(|k| k.contains("dev_1004")), "{ids}");
    assert!(ours.iter().any(|k| k.contains("dev_1048")), "{ids}");
    for k in &ours {
        let id = k.trim_start_matches("driverdatabase\\deviceids\\");
        assert!(
            inf.contains(&id.to_string()),
            "{id} is not an ID of the INF"
        );
    }
    assert!(ids.to_lowercase().contains("\"vioscsi.inf\"="), "{ids}");
    let pkgs = keys(&export(&system, "\\DriverDatabase\\DriverPackages"));
    assert!(
        pkgs.iter()
            .any(|k| k.starts_with("driverdatabase\\driverpackages\\vioscsi.inf_amd64_")),
        "{pkgs:?}"
    );
    assert_eq!(
        ntfscat(&p, "Windows/System32/drivers/vioscsi.sys"),
        std::fs::read(tree.join("vioscsi/w10/amd64/vioscsi.sys")).unwrap()
    );
    // UEFI: the removable-media loader exists, the BCD store is backed up.
    assert_eq!(
        fat_file(&disk, W10_ESP.0, "EFI/BOOT/BOOTX64.EFI", dir),
        bootmgfw
    );
    assert_eq!(
        fat_file(
            &disk,
            W10_ESP.0,
            "EFI/Microsoft/Boot/BCD.hyper2kvm-backup",
            dir
        ),
        std::fs::read(dir.join("BCD")).unwrap()
    );

    let j: serde_json::Value = serde_json::from_str(&ok(&fix(
        &[&disk],
        &iso,
        &["--block", "virtio-scsi", "--json"],
    )))
    .unwrap();
    assert_eq!(j["report"]["changed"], 0, "{}", j["report"]);
    assert_eq!(sha(&disk), once, "the second run changed the image");
}

#[test]
fn a_hibernated_guest_is_refused_and_left_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (disk, _) = win7_disk(dir, true);
    let tree = media(dir);
    let before = sha(&disk);
    let o = fix(&[&disk], &tree, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[hibernated]") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("done "));
    assert_eq!(sha(&disk), before);
}

#[test]
fn other_formats_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let vmdk = d.path().join("x.vmdk");
    run_tool(
        "qemu-img",
        &["create", "-q", "-f", "vmdk", vmdk.to_str().unwrap(), "16M"],
    );
    let o = fix(&[&vmdk], d.path(), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("never a source"));
}

#[test]
fn win7_on_a_qcow2_output_is_fixed_in_place() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (raw, _) = win7_disk(dir, false);
    let tree = media(dir);
    let q = dir.join("win7.qcow2");
    testkit::qemu::qemu_convert(&raw, "raw", "qcow2", &[], &q);
    ok(&fix(&[&q], &tree, &[]));
    let check = testkit::qemu::qemu_check(&q);
    assert_eq!(check["corruptions"].as_u64().unwrap_or(0), 0, "{check}");
    assert_eq!(check["leaks"].as_u64().unwrap_or(0), 0, "{check}");
    let once = sha(&q);
    let back = dir.join("back.raw");
    testkit::qemu::qemu_convert(&q, "qcow2", "raw", &[], &back);
    let p2 = extract(&back, W7_P2.0, W7_P2.1, &dir.join("p2.img"));
    ntfsfix_clean(&p2);
    let system = hive_of(&p2, "Windows/System32/config/SYSTEM", &dir.join("SYSTEM"));
    assert_eq!(
        hivexget(&system, "\\ControlSet001\\Services\\viostor", "Start"),
        "0"
    );
    let out = ok(&fix(&[&q], &tree, &[]));
    assert!(out.contains("0 action(s) changed the image(s)"), "{out}");
    assert_eq!(sha(&q), once, "the second run changed the qcow2");
}
