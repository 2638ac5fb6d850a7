//! `migrate --first-boot` end to end: a phony Windows 7 guest with VMware
//! Tools (`phony::build`) behind a VMX + monolithicFlat VMDK, whose MBR
//! boot code (bytes 0..440 of sector 0; partition table and signature
//! kept) is a tiny BIOS program (`validate::bootsector`) printing what the
//! first-boot runner would print on COM1. The bootstrap domain is booted
//! by real QEMU (TCG) from the converted disk: success (`bootstrap done`),
//! a required step that gave up, silence until the time limit. Checked:
//! exit status and message, `report.json`'s `first_boot` (outcome and the
//! runner's lines as QEMU's serial file captured them), that no QEMU is
//! left running, and the outputs of the success case. Also: `--first-boot`
//! without a Windows install to fix is refused before converting, and a
//! dry run boots nothing.

mod support;

use hyper2kvm::validate::bootsector::{serial_boot_sector, Action};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::{bin, fake_virtio_win};

/// The phony guest (built once) and the virtio-win tree.
struct Fixture {
    _dir: tempfile::TempDir,
    raw: PathBuf,
    tree: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        testkit::need("qemu-system-x86_64");
        let dir = tempfile::tempdir().unwrap();
        let mut o = phony::Options::new(phony::Version::Win7);
        o.hypervisor = phony::Hypervisor::Vmware;
        o.size = phony::min_size(&o);
        let raw = dir.path().join("win7.img");
        phony::build(&o, &testkit::testdata(""), &raw).unwrap();
        let tree = fake_virtio_win(&dir.path().join("vw"), "iso-list.txt", &[]).join("cd");
        Fixture {
            _dir: dir,
            raw,
            tree,
        }
    })
}

/// Boot code printing `message` on COM1, then `action`.
fn code(message: &str, action: Action) -> [u8; 512] {
    let code = serial_boot_sector(message, action).unwrap();
    assert!(
        code[440..510].iter().all(|b| *b == 0),
        "boot code longer than 440 bytes"
    );
    code
}

/// A copy of the phony guest in `dir` whose MBR boot code prints
/// `message` on COM1 and halts, behind a VMX; returns the VMX.
fn guest(dir: &Path, message: &str) -> PathBuf {
    guest_with(dir, code(message, Action::Halt), None)
}

/// A copy of the phony guest in `dir` with `boot` as the MBR's boot code
/// and, when given, `lba1`'s boot code in sector 1 (both with the
/// guest's partition table), behind a VMX; returns the VMX.
fn guest_with(dir: &Path, boot: [u8; 512], lba1: Option<[u8; 512]>) -> PathBuf {
    let f = fixture();
    let raw = dir.join("win7-flat.img");
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(&f.raw)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    let mut head = vec![0u8; 1024];
    {
        use std::io::Read;
        std::fs::File::open(&raw)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
    }
    assert_eq!(&head[510..512], &[0x55, 0xAA]);
    assert!(
        head[512..].iter().all(|b| *b == 0),
        "sector 1 of the phony guest is in use"
    );
    let table = head[440..512].to_vec();
    head[..440].copy_from_slice(&boot[..440]);
    if let Some(l) = lba1 {
        head[512..952].copy_from_slice(&l[..440]);
        head[952..1024].copy_from_slice(&table);
    }
    use std::io::{Seek, Write};
    let mut h = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
    h.seek(std::io::SeekFrom::Start(0)).unwrap();
    h.write_all(&head).unwrap();
    drop(h);
    support::win7_vmware_vm(
        dir,
        &raw,
        256,
        "ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"vmxnet3\"\n\
         ethernet0.addressType = \"static\"\nethernet0.address = \"00:50:56:01:02:03\"\n",
    )
}

fn migrate(vmx: &Path, out: &Path, extra: &[&str]) -> Output {
    let t = std::time::Instant::now();
    let o = Command::new(bin())
        .arg("migrate")
        .arg(vmx)
        .arg("--out")
        .arg(out)
        .args(["-O", "raw", "--quiet", "--accel", "tcg"])
        .args(extra)
        .output()
        .unwrap();
    eprintln!("migrate {extra:?}: {:?}", t.elapsed());
    o
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// No process whose command line names `out` (QEMU was given the disk,
/// serial log and QMP socket paths under it or the staging directory).
fn assert_no_qemu_left(out: &Path) {
    let needle = out.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        assert!(
            !(cmd.contains("qemu-system") && cmd.contains(&needle)),
            "QEMU left running: {cmd}"
        );
    }
}

const START: &str = "hyper2kvm-firstboot: runner start run 1";
const VIOSTOR_OK: &str = "hyper2kvm-firstboot: bootstrap install-viostor ok";
const DONE: &str = "hyper2kvm-firstboot: bootstrap done";
const VIOSTOR_GAVE_UP: &str =
    "hyper2kvm-firstboot: bootstrap install-viostor failed gave-up required after 3 attempts";

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn args<'a>(f: &'a Fixture, timeout: &'a str) -> Vec<&'a str> {
    vec![
        "--virtio-win",
        f.tree.to_str().unwrap(),
        "--first-boot",
        "--first-boot-timeout",
        timeout,
        "--first-boot-grace",
        "2",
    ]
}

#[test]
fn first_boot_runs_the_bootstrap_domain_until_the_runner_is_done() {
    let d = tempfile::tempdir().unwrap();
    let vmx = guest(d.path(), &format!("{START}\r\n{VIOSTOR_OK}\r\n{DONE}\r\n"));
    let out = d.path().join("out");
    let o = migrate(&vmx, &out, &args(fixture(), "120"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stderr}");
    // Progress lines echoed as they arrived.
    assert!(stderr.contains(VIOSTOR_OK), "{stderr}");
    assert!(stdout.contains("start the final domain"), "{stdout}");
    assert!(!stdout.contains("boot the bootstrap domain"), "{stdout}");
    let r = report(&out);
    let fb = &r["first_boot"];
    assert_eq!(r["success"], true);
    assert_eq!(fb["ok"], true, "{fb}");
    assert_eq!(fb["outcome"], "done");
    assert_eq!(fb["phase"], "bootstrap");
    assert_eq!(fb["accel"], "tcg");
    assert_eq!(strs(&fb["lines"]), [START, VIOSTOR_OK, DONE]);
    // The boot sector ignores the ACPI power button: QEMU was told to quit
    // after the grace period.
    assert!(
        fb["shutdown"]
            .as_str()
            .unwrap()
            .contains("did not power off within 2 s"),
        "{fb}"
    );
    let serial = PathBuf::from(fb["serial_log"].as_str().unwrap());
    assert_eq!(serial, out.join("first-boot/bootstrap-serial.log"));
    assert!(std::fs::read_to_string(&serial).unwrap().contains(DONE));
    assert_no_qemu_left(&out);
    // The outputs are complete and the boot ran on them: the disk is
    // there with the program in its MBR, every domain file, the plan.
    let written: Vec<String> = strs(&r["written"]);
    for f in [
        "Win7-disk0.raw",
        "Win7-bootstrap.xml",
        "Win7-bootstrap.sh",
        "Win7-bootstrap.argv.json",
        "Win7-final.xml",
        "Win7-final.sh",
        "Win7-final.argv.json",
        "plan.json",
    ] {
        let p = out.join(f);
        assert!(p.is_file(), "{f} missing");
        assert!(
            written.contains(&p.display().to_string()),
            "{f} not in {written:?}"
        );
    }
    let disk = std::fs::read(out.join("Win7-disk0.raw")).unwrap();
    let code = serial_boot_sector(
        &format!("{START}\r\n{VIOSTOR_OK}\r\n{DONE}\r\n"),
        Action::Halt,
    )
    .unwrap();
    assert_eq!(&disk[..440], &code[..440]);
    // No overlay directory was made or left.
    let left: Vec<String> = std::fs::read_dir(out.join("first-boot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn first_boot_fails_on_a_required_step_that_gave_up() {
    let d = tempfile::tempdir().unwrap();
    let vmx = guest(d.path(), &format!("{START}\r\n{VIOSTOR_GAVE_UP}\r\n"));
    let out = d.path().join("out");
    let o = migrate(&vmx, &out, &args(fixture(), "120"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("first boot of the bootstrap domain failed (step-failed)"),
        "{stderr}"
    );
    assert!(stderr.contains("install-viostor"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "serial log: {}",
            out.join("first-boot/bootstrap-serial.log").display()
        )),
        "{stderr}"
    );
    let r = report(&out);
    let fb = &r["first_boot"];
    assert_eq!(r["success"], false);
    assert_eq!(fb["ok"], false);
    assert_eq!(fb["outcome"], "step-failed");
    assert_eq!(fb["boot"]["kind"], "failure");
    assert_eq!(fb["boot"]["id"], "firstboot_required_failed");
    assert_eq!(strs(&fb["lines"]), [START, VIOSTOR_GAVE_UP]);
    assert!(r["error"].as_str().unwrap().contains("step-failed"), "{r}");
    assert_no_qemu_left(&out);
}

#[test]
fn first_boot_times_out_on_a_silent_guest() {
    let d = tempfile::tempdir().unwrap();
    let vmx = guest(d.path(), "");
    let out = d.path().join("out");
    let o = migrate(&vmx, &out, &args(fixture(), "8"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("first boot of the bootstrap domain failed (timeout)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no output at all on the serial console"),
        "{stderr}"
    );
    let r = report(&out);
    let fb = &r["first_boot"];
    assert_eq!(fb["outcome"], "timeout");
    assert_eq!(fb["boot"]["kind"], "timeout");
    assert!(strs(&fb["lines"]).is_empty());
    assert!(fb["seconds"].as_f64().unwrap() >= 8.0, "{fb}");
    assert_no_qemu_left(&out);
}

#[test]
fn first_boot_without_a_fixed_windows_is_refused_before_converting() {
    let d = tempfile::tempdir().unwrap();
    let vmx = guest(d.path(), "x");
    let out = d.path().join("out");
    // No --virtio-win: no Windows fix, so no runner.
    let o = migrate(&vmx, &out, &["--first-boot"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("--first-boot: no Windows first-boot runner is planned"),
        "{stderr}"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.json"]);
    assert!(report(&out)["conversions"].as_array().unwrap().is_empty());

    // A dry run with the runner planned boots nothing.
    let out = d.path().join("dry");
    let o = migrate(
        &vmx,
        &out,
        &[
            "--virtio-win",
            fixture().tree.to_str().unwrap(),
            "--first-boot",
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("first-boot").exists());
    assert!(report(&out)["first_boot"].is_null());
}

#[test]
fn first_boot_follows_a_reboot_and_keeps_the_guest_writes() {
    // Boot 1 prints its step, puts the sector at LBA 1 in the MBR and
    // resets; boot 2 (that sector) prints the second run and `done`.
    const START2: &str = "hyper2kvm-firstboot: runner start run 2";
    let d = tempfile::tempdir().unwrap();
    let second = code(&format!("{START2}\r\n{DONE}\r\n"), Action::Halt);
    let vmx = guest_with(
        d.path(),
        code(&format!("{START}\r\n{VIOSTOR_OK}\r\n"), Action::ChainReboot),
        Some(second),
    );
    let out = d.path().join("out");
    let o = migrate(&vmx, &out, &args(fixture(), "120"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let fb = &report(&out)["first_boot"];
    assert_eq!(fb["outcome"], "done", "{fb}");
    assert_eq!(strs(&fb["lines"]), [START, VIOSTOR_OK, START2, DONE]);
    // The boot ran on the output disk itself: boot 1's write is there.
    let disk = std::fs::read(out.join("Win7-disk0.raw")).unwrap();
    assert_eq!(&disk[..440], &second[..440]);
    assert_no_qemu_left(&out);
}

#[test]
fn first_boot_stops_a_reboot_loop() {
    // The sector copies itself over itself and resets, forever.
    let d = tempfile::tempdir().unwrap();
    let looping = code(&format!("{START}\r\n"), Action::ChainReboot);
    let vmx = guest_with(d.path(), looping, Some(looping));
    let out = d.path().join("out");
    let o = migrate(&vmx, &out, &args(fixture(), "120"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("first boot of the bootstrap domain failed (failed)")
            && stderr.contains("guest reset itself"),
        "{stderr}"
    );
    let fb = &report(&out)["first_boot"];
    assert_eq!(fb["boot"]["kind"], "guest_reset", "{fb}");
    // One line per boot: the watch followed the allowed resets first
    // (and the guest went on during the settle and grace periods).
    let lines = strs(&fb["lines"]);
    assert!(
        lines.len() > hyper2kvm::validate::MAX_FOLLOWED_RESETS + 1,
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l == START), "{lines:?}");
    assert_no_qemu_left(&out);
}

#[test]
fn first_boot_time_limits_out_of_range_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (opt, v) in [
        ("--first-boot-timeout", "0"),
        ("--first-boot-timeout", "18446744073709551615"),
        ("--first-boot-grace", "3601"),
    ] {
        let o = Command::new(bin())
            .args(["migrate", "x.vmx", "--out"])
            .arg(d.path().join("out"))
            .args(["--first-boot", opt, v])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains(&format!("invalid value '{v}' for '{opt}")),
            "{err}"
        );
    }
    assert!(!d.path().join("out").exists());
}
