//! `--accel auto` on nested KVM: the probe boots the machine type and CPU
//! model of the boot it vouches for, and a boot that dies under KVM before
//! the guest printed anything is retried once under TCG. The decision is
//! tested on captured QEMU exits; the probe itself boots under TCG.

use domain::writer::{libvirt_xml, qemu_command, DomainOptions, OutputDisk, OutputFormat, Phase};
use domain::{Firmware, VmModel};
use hyper2kvm::validate::accel::{
    probe_argv, retry_under_tcg, run_probe, ConcreteAccel, ProbeTarget,
};
use hyper2kvm::validate::BootOutcome;
use std::path::{Path, PathBuf};

/// The validation argv `migrate` writes for a Windows 10 guest.
fn windows_argv(dir: &Path, fw: Firmware, os: &str, phase: Phase) -> Vec<String> {
    let m = VmModel::from_disks(&[PathBuf::from("src.vhdx")], 512, 2, fw, os);
    let mut o = DomainOptions::new(
        phase,
        vec![OutputDisk {
            path: dir.join("d.qcow2"),
            format: OutputFormat::Qcow2,
            bios_geometry: None,
        }],
    );
    o.nvram = Some(dir.join("VARS.fd"));
    libvirt_xml(&m, &o).unwrap();
    let q = domain::writer::QemuOptions::new(dir, &m);
    hyper2kvm::migrate::validation_argv(&qemu_command(&m, &o, &q).unwrap().argv)
}

fn exited(status: Option<i32>, stderr: &str) -> BootOutcome {
    BootOutcome::QemuExited {
        status,
        stderr: stderr.into(),
    }
}

#[test]
fn probe_target_is_the_boots_machine_and_cpu() {
    let t = tempfile::tempdir().unwrap();
    let argv = windows_argv(t.path(), Firmware::UEFI, "win10", Phase::Bootstrap);
    let target = ProbeTarget::from_argv(&argv);
    assert_eq!(target.machine, "q35,hpet=off,vmport=off");
    let cpu = target.cpu.clone().unwrap();
    assert!(
        cpu.starts_with("max,hv_relaxed") && cpu.contains("hv_vpindex") && cpu.contains("hv_crash"),
        "{cpu}"
    );
    let mut secure = Firmware::UEFI;
    secure.secure_boot = true;
    let argv = windows_argv(t.path(), secure, "win10", Phase::Final);
    assert_eq!(
        ProbeTarget::from_argv(&argv).machine,
        "q35,smm=on,hpet=off,vmport=off"
    );
    let argv = windows_argv(t.path(), Firmware::BIOS, "winxppro", Phase::Bootstrap);
    let xp = ProbeTarget::from_argv(&argv);
    assert_eq!(xp.machine, "pc,hpet=off,vmport=off");
    assert_eq!(xp.cpu.as_deref(), Some("max"));

    let p = probe_argv(&target, Path::new("/tmp/probe.raw"));
    let after = |opt: &str| p[p.iter().position(|a| a == opt).unwrap() + 1].clone();
    assert_eq!(after("-machine"), target.machine);
    assert_eq!(after("-cpu"), cpu);
    // No argv names nothing: the old probe's plain `pc`.
    assert_eq!(
        ProbeTarget::from_argv(&["qemu-system-x86_64".into()]),
        ProbeTarget {
            machine: "pc".into(),
            cpu: None
        }
    );
}

#[test]
fn the_probe_boots_on_the_real_machine_types_and_cpu_models() {
    // Under TCG, so it runs anywhere: a probe that could not boot on q35
    // with the Hyper-V CPU would send every `auto` boot to TCG.
    testkit::need("qemu-system-x86_64");
    let t = tempfile::tempdir().unwrap();
    for (fw, os) in [(Firmware::UEFI, "win10"), (Firmware::BIOS, "winxppro")] {
        let target = ProbeTarget::from_argv(&windows_argv(t.path(), fw, os, Phase::Final));
        let (accel, why) = run_probe(&target, ConcreteAccel::Tcg);
        assert_eq!(accel, ConcreteAccel::Tcg, "{why}");
        assert!(
            why.contains("succeeded") && why.contains(&format!("machine {}", target.machine)),
            "{why}"
        );
    }
}

#[test]
fn kvm_probe_of_a_hyperv_cpu_reaches_a_verdict_naming_it() {
    // Where KVM is nested (this project's CI), a Hyper-V CPU model makes
    // QEMU exit at once ("kernel doesn't allow setting HyperV VP_INDEX")
    // while the plain `pc` probe passes: the probe must try the real one.
    testkit::need("qemu-system-x86_64");
    let t = tempfile::tempdir().unwrap();
    let target = ProbeTarget::from_argv(&windows_argv(
        t.path(),
        Firmware::UEFI,
        "win10",
        Phase::Bootstrap,
    ));
    let (accel, why) = hyper2kvm::validate::probe_kvm_for(&target);
    eprintln!("probe: {accel:?}: {why}");
    assert!(why.contains(accel.name()), "{why}");
    if !why.starts_with("/dev/kvm unusable") {
        assert!(
            why.contains("machine q35") && why.contains("hv_vpindex"),
            "{why}"
        );
    }
}

#[test]
fn retry_under_tcg_only_when_qemu_dies_before_any_guest_output() {
    // Captured from nested KVM hosts.
    let assertion = "qemu-system-x86_64: ../target/i386/kvm/kvm.c:3462: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n";
    let vp_index = "qemu-system-x86_64: kernel doesn't allow setting HyperV VP_INDEX\n";
    let why = retry_under_tcg(&exited(None, assertion), false).unwrap();
    assert!(
        why.starts_with("killed by a signal") && why.contains("kvm_buf_set_msrs"),
        "{why}"
    );
    let why = retry_under_tcg(&exited(Some(1), vp_index), false).unwrap();
    assert_eq!(
        why,
        "exit status 1: qemu-system-x86_64: kernel doesn't allow setting HyperV VP_INDEX"
    );
    assert_eq!(
        retry_under_tcg(&exited(Some(-1), ""), false).as_deref(),
        Some("exit status -1")
    );
    // The guest had printed: a verdict on the guest.
    assert_eq!(retry_under_tcg(&exited(None, assertion), true), None);
    // QEMU exited cleanly, or the guest failed / reset / timed out.
    assert_eq!(retry_under_tcg(&exited(Some(0), ""), false), None);
    assert_eq!(retry_under_tcg(&BootOutcome::GuestReset, false), None);
    assert_eq!(retry_under_tcg(&BootOutcome::GuestShutdown, false), None);
    let timeout = BootOutcome::Timeout {
        last_serial_line: None,
        last_firmware_line: None,
        still_printing: false,
    };
    assert_eq!(retry_under_tcg(&timeout, false), None);
    let failure = BootOutcome::Failure {
        id: "no_bootable_device".into(),
        line: "No bootable device.".into(),
        source: hyper2kvm::validate::Source::Firmware,
    };
    assert_eq!(retry_under_tcg(&failure, false), None);
}

#[test]
fn auto_boot_that_dies_under_kvm_before_output_is_retried_under_tcg() {
    // `maxcpus=1025` passes QEMU's q35 limit (4096) but not KVM's (1024
    // on this project's hosts); the probe (no -smp) passes under KVM. So
    // where KVM works, the first boot dies before any guest output and the
    // retry under TCG boots. Where KVM is unusable, the probe picks TCG.
    use hyper2kvm::validate::bootsector::{Action, BootSector};
    use hyper2kvm::validate::{boot, Accel, BootSpec, CustomMarker, MarkerKind};
    testkit::need("qemu-system-x86_64");
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("boot.raw");
    let sector = BootSector::serial("BOOT OK\r\n", Action::Halt)
        .assemble()
        .unwrap();
    std::fs::write(&disk, sector).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let argv: Vec<String> = [
        "qemu-system-x86_64",
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-m",
        "128", // SeaBIOS's AHCI fails in 32 MiB with 1025 possible CPUs
        "-smp",
        "1,maxcpus=1025",
        "-nic",
        "none",
        "-drive",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("file={},format=raw,if=ide", disk.display())])
    .collect();
    let mut spec = BootSpec::new(argv, "retry", &t.path().join("out"));
    spec.timeout = std::time::Duration::from_secs(60);
    spec.accel = Accel::Auto;
    spec.markers = vec![CustomMarker {
        kind: MarkerKind::Success,
        text: "BOOT OK".into(),
    }];
    let r = boot(&spec).unwrap();
    eprintln!("{}: {} {:.1}s {:?}", r.accel, r.reason, r.seconds, r.notes);
    assert!(r.ok, "{}: {:?}", r.reason, r.notes);
    assert_eq!(r.accel, "tcg", "{:?}", r.notes);
    let kvm_log = t.path().join("out/retry-qemu-kvm.log");
    if r.notes.iter().any(|n| n.contains("using kvm")) {
        let note = r
            .notes
            .iter()
            .find(|n| n.contains("QEMU died under KVM before the guest printed anything"))
            .unwrap_or_else(|| panic!("{:?}", r.notes));
        assert!(
            note.contains("exit status 1")
                && note.contains("maximum cpus supported by KVM")
                && note.contains("retried once under TCG"),
            "{note}"
        );
        let log = std::fs::read_to_string(&kvm_log).unwrap();
        assert!(log.contains("maximum cpus supported by KVM"), "{log}");
        // The next boot of the same target goes straight to TCG.
        let (a, why) = hyper2kvm::validate::resolve_accel(Accel::Auto, &spec.argv);
        assert_eq!(a, ConcreteAccel::Tcg);
        assert!(why[0].contains("died under KVM"), "{why:?}");
    } else {
        assert!(!kvm_log.exists());
    }
}
