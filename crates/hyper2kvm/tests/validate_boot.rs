//! Validation by booting, against the real QEMU/SeaBIOS under TCG:
//! tiny boot sectors (checked byte for byte against nasm) for success,
//! named failures on serial, screen and firmware consoles, a pvpanic guest
//! panic, a guest that writes its disk (given as `-drive` or `-blockdev`:
//! the throw-away overlays must protect it, and be gone afterwards),
//! argvs whose disks cannot be protected, QEMU failing to start, the KVM probe, and the `hyper2kvm validate DIR`
//! file contract. The real Debian guest is in `validate_linux.rs`.

use hyper2kvm::validate::bootsector::{Action, BootSector, Output};
use hyper2kvm::validate::{
    boot, Accel, BootOutcome, BootReport, BootSpec, CustomMarker, MarkerKind, Source,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::{need, sha256};

/// A 1 MiB raw disk whose first sector is `sector` (or empty).
fn disk(dir: &Path, name: &str, sector: Option<[u8; 512]>) -> PathBuf {
    let p = dir.join(name);
    let mut img = vec![0u8; 1 << 20];
    if let Some(s) = sector {
        img[..512].copy_from_slice(&s);
    }
    std::fs::write(&p, img).unwrap();
    p
}

fn argv(disk: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["qemu-system-x86_64", "-machine", "pc", "-m", "64", "-drive"]
        .map(String::from)
        .to_vec();
    v.push(format!("file={},format=raw,if=ide", disk.display()));
    // No option ROM to wait for: SeaBIOS gets to its verdict sooner.
    v.extend(["-nic".to_string(), "none".to_string()]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn spec(argv: Vec<String>, out: &Path, phase: &str) -> BootSpec {
    let mut s = BootSpec::new(argv, phase, out);
    s.accel = Accel::Tcg;
    s.timeout = Duration::from_secs(120);
    s.markers = vec![CustomMarker {
        kind: MarkerKind::Success,
        text: "BOOT OK".into(),
    }];
    s
}

/// No process may still have our output directory on its command line.
fn assert_no_qemu_left(out: &Path) {
    let needle = out.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !(cmd.contains("qemu-system") && cmd.contains(&needle)),
            "QEMU left running: {cmd}"
        );
    }
}

fn run(spec: &BootSpec) -> BootReport {
    need("qemu-system-x86_64");
    let r = boot(spec).expect("boot");
    assert_no_qemu_left(&spec.out_dir);
    // The report is valid JSON with the documented fields.
    let v = serde_json::to_value(&r).unwrap();
    for k in [
        "ok",
        "outcome",
        "reason",
        "seconds",
        "last_serial_lines",
        "events",
        "screenshot",
    ] {
        assert!(v.get(k).is_some(), "report lacks {k}: {v}");
    }
    eprintln!("{}: {} in {:.1} s", spec.phase, r.reason, r.seconds);
    r
}

fn nasm(src: &str, dir: &Path) -> Vec<u8> {
    need("nasm");
    let asm = dir.join("s.asm");
    let bin = dir.join("s.bin");
    std::fs::write(&asm, src).unwrap();
    let out = Command::new("nasm")
        .args(["-f", "bin", "-o"])
        .arg(&bin)
        .arg(&asm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nasm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(bin).unwrap()
}

#[test]
fn boot_sectors_match_nasm() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            BootSector::serial("BOOT OK\r\n", Action::Halt),
            "",
            "mov dx, 0x3f8",
            "out dx, al",
            "",
        ),
        (
            BootSector::serial("H2K", Action::DebugExit(0x10)),
            "",
            "mov dx, 0x3f8",
            "out dx, al",
            "mov al, 0x10\nout 0xf4, al",
        ),
        (
            BootSector {
                message: "PANIC".into(),
                output: Output::Serial,
                write_self: true,
                action: Action::Pvpanic,
            },
            "mov es, ax\nmov bx, 0x7c00\nmov ax, 0x0301\nmov cx, 0x0002\nmov dx, 0x0080\nint 0x13",
            "mov dx, 0x3f8",
            "out dx, al",
            "mov dx, 0x505\nmov al, 1\nout dx, al",
        ),
        (
            BootSector {
                message: "NTLDR is missing".into(),
                output: Output::Screen,
                write_self: false,
                action: Action::Halt,
            },
            "",
            "",
            "mov ah, 0x0e\nmov bx, 7\nint 0x10",
            "",
        ),
    ];
    let triple = BootSector::serial("bye", Action::TripleFault);
    let chain = BootSector::serial("again", Action::ChainReboot);
    let cases = cases.into_iter().chain([
        (
            triple,
            "",
            "mov dx, 0x3f8",
            "out dx, al",
            "lidt [idt0]\nint3",
        ),
        (
            chain,
            "",
            "mov dx, 0x3f8",
            "out dx, al",
            "xor ax, ax\nmov es, ax\nmov ax, 0x0201\nmov bx, 0x8000\nmov cx, 0x0002\n\
             mov dx, 0x0080\nint 0x13\nmov ax, 0x0301\nmov bx, 0x8000\nmov cx, 0x0001\n\
             mov dx, 0x0080\nint 0x13\nmov al, 0xfe\nout 0x64, al",
        ),
    ]);
    for (bs, write, setup, body, action) in cases {
        let idt = if bs.action == Action::TripleFault {
            "idt0: times 6 db 0"
        } else {
            ""
        };
        let src = format!(
            "bits 16\norg 0x7c00\ncld\nxor ax, ax\nmov ds, ax\n{write}\nmov si, msg\n{setup}\n\
             next: lodsb\ntest al, al\njz done\n{body}\njmp short next\n\
             done:\n{action}\nhang: hlt\njmp short hang\n{idt}\nmsg: db {}, 0\n\
             times 510-($-$$) db 0\ndw 0xaa55\n",
            bs.message
                .bytes()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let want = nasm(&src, dir.path());
        assert_eq!(bs.assemble().unwrap().to_vec(), want, "{bs:?}\n{src}");
    }
}

#[test]
fn success_marker_from_boot_sector() {
    let dir = tempfile::tempdir().unwrap();
    let d = disk(
        dir.path(),
        "ok.raw",
        Some(
            BootSector::serial("BOOT OK\r\n", Action::Halt)
                .assemble()
                .unwrap(),
        ),
    );
    let out = dir.path().join("out");
    let r = run(&spec(argv(&d, &[]), &out, "final"));
    assert!(r.ok, "{r:#?}");
    assert!(matches!(r.outcome, BootOutcome::Success { ref marker, .. } if marker == "marker"));
    assert_eq!(r.accel, "tcg");
    assert!(
        r.last_serial_lines.iter().any(|l| l == "BOOT OK"),
        "{:?}",
        r.last_serial_lines
    );
    // SeaBIOS's own log was captured from port 0x402.
    assert!(
        r.last_firmware_lines
            .iter()
            .any(|l| l.contains("Booting from Hard Disk")),
        "{:?}",
        r.last_firmware_lines
    );
    assert!(
        r.progress.contains(&"firmware".to_string()),
        "{:?}",
        r.progress
    );
    // A PNG screendump.
    let png = std::fs::read(r.screenshot.as_ref().expect("screenshot")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        std::fs::read_to_string(out.join("final-serial.log")).unwrap(),
        "BOOT OK\r\n"
    );
}

#[test]
fn disk_writes_never_reach_the_image() {
    // The guest copies its boot sector to LBA 1. QEMU run directly, that
    // changes the image; under validation (overlays) it must not.
    need("qemu-system-x86_64");
    let dir = tempfile::tempdir().unwrap();
    let bs = BootSector {
        message: "BOOT OK\r\n".into(),
        output: Output::Serial,
        write_self: true,
        action: Action::DebugExit(0),
    };
    let sector = bs.assemble().unwrap();
    let direct = disk(dir.path(), "direct.raw", Some(sector));
    let status = Command::new("timeout")
        .arg("60")
        .args(argv(
            &direct,
            &[
                "-accel",
                "tcg",
                "-display",
                "none",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ],
        ))
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "isa-debug-exit(0) makes QEMU exit 1"
    );
    let after = std::fs::read(&direct).unwrap();
    assert_eq!(
        &after[512..1024],
        &sector[..],
        "the guest really writes LBA 1"
    );

    let d = disk(dir.path(), "validated.raw", Some(sector));
    let before = sha256(&d);
    let out = dir.path().join("out");
    let r = run(&spec(
        argv(&d, &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]),
        &out,
        "final",
    ));
    assert!(r.ok, "{r:#?}");
    assert_eq!(sha256(&d), before, "validation changed the disk");
    assert_overlays_gone(&r, &out, 1);
    let drive = r.argv.iter().find(|a| a.contains("ovl-0.qcow2")).unwrap();
    assert!(drive.contains("format=qcow2,if=ide"), "{drive}");
}

#[test]
fn named_failure_on_serial() {
    let dir = tempfile::tempdir().unwrap();
    let d = disk(
        dir.path(),
        "err.raw",
        Some(
            BootSector::serial(
                "A disk read error occurred\r\nPress Ctrl+Alt+Del to restart\r\n",
                Action::Halt,
            )
            .assemble()
            .unwrap(),
        ),
    );
    let r = run(&spec(argv(&d, &[]), &dir.path().join("out"), "final"));
    assert!(!r.ok);
    assert!(
        matches!(r.outcome, BootOutcome::Failure { ref id, source: Source::Serial, .. } if id == "disk_read_error"),
        "{r:#?}"
    );
    assert!(r.reason.contains("disk_read_error"), "{}", r.reason);
}

#[test]
fn named_failure_on_screen_only() {
    // Real boot sectors print through the BIOS onto the screen, not COM1:
    // the VGA text buffer is read through QMP.
    let dir = tempfile::tempdir().unwrap();
    let bs = BootSector {
        message: "BOOTMGR is missing\r\nPress Ctrl+Alt+Del to restart\r\n".into(),
        output: Output::Screen,
        write_self: false,
        action: Action::Halt,
    };
    let d = disk(dir.path(), "bootmgr.raw", Some(bs.assemble().unwrap()));
    let r = run(&spec(argv(&d, &[]), &dir.path().join("out"), "bootstrap"));
    assert!(
        matches!(r.outcome, BootOutcome::Failure { ref id, source: Source::Screen, .. } if id == "bootmgr_missing"),
        "{r:#?}"
    );
    assert!(
        r.screen_text
            .iter()
            .any(|l| l.contains("BOOTMGR is missing")),
        "{:?}",
        r.screen_text
    );
    assert!(r.last_serial_lines.is_empty(), "{:?}", r.last_serial_lines);
}

#[test]
fn empty_disk_is_no_bootable_device() {
    let dir = tempfile::tempdir().unwrap();
    let d = disk(dir.path(), "empty.raw", None);
    let r = run(&spec(argv(&d, &[]), &dir.path().join("out"), "final"));
    match &r.outcome {
        BootOutcome::Failure { id, .. } => assert_eq!(id, "no_bootable_device", "{r:#?}"),
        o => panic!("{o:?}: {r:#?}"),
    }
    // SeaBIOS said why, on its debug port.
    assert!(
        r.reason.contains("Boot failed: not a bootable disk"),
        "{}",
        r.reason
    );
    assert!(
        r.last_firmware_lines
            .iter()
            .any(|l| l.contains("No bootable device")),
        "{:?}",
        r.last_firmware_lines
    );
}

#[test]
fn pvpanic_is_a_guest_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = disk(
        dir.path(),
        "panic.raw",
        Some(
            BootSector::serial("about to panic\r\n", Action::Pvpanic)
                .assemble()
                .unwrap(),
        ),
    );
    let r = run(&spec(
        argv(&d, &["-device", "pvpanic"]),
        &dir.path().join("out"),
        "final",
    ));
    match &r.outcome {
        BootOutcome::GuestPanic { panic } => {
            assert_eq!(panic.kind, "pvpanic");
            assert!(panic.bugcheck.is_none());
        }
        o => panic!("{o:?}: {r:#?}"),
    }
    assert!(
        r.events.iter().any(|e| e.name == "GUEST_PANICKED"),
        "{:?}",
        r.events
    );
    // panic=pause kept the VM for a last screenshot.
    assert!(r.screenshot.is_some(), "{:?}", r.notes);
}

#[test]
fn triple_fault_is_a_guest_reset() {
    let dir = tempfile::tempdir().unwrap();
    let sector = BootSector::serial("crashing\r\n", Action::TripleFault)
        .assemble()
        .unwrap();
    let d = disk(dir.path(), "tf.raw", Some(sector));
    let r = run(&spec(argv(&d, &[]), &dir.path().join("out"), "final"));
    assert_eq!(r.outcome, BootOutcome::GuestReset, "{r:#?}");
    assert!(
        r.events
            .iter()
            .any(|e| e.name == "SHUTDOWN" && e.data["reason"] == "guest-reset"),
        "{:?}",
        r.events
    );
    // reboot=shutdown,shutdown=pause: the VM waited for its screenshot.
    assert!(r.screenshot.is_some(), "{:?}", r.notes);
    assert_eq!(r.last_serial_lines, vec!["crashing".to_string()]);
}

#[test]
fn qemu_that_cannot_start_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist.raw");
    let r = run(&spec(argv(&missing, &[]), &dir.path().join("out"), "final"));
    match &r.outcome {
        BootOutcome::QemuExited { status, stderr } => {
            assert_eq!(*status, Some(1));
            assert!(stderr.contains("does-not-exist.raw"), "{stderr}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn disks_that_cannot_be_protected_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = disk(dir.path(), "x.raw", None);
    let xs = x.display().to_string();
    let out = dir.path().join("out");
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            v(&["-drive", &format!("file={xs},if=ide")]),
            "no format= given",
        ),
        (v(&["-hda", &xs]), "gives no format"),
        (
            v(&["-drive", &format!("file={xs},format=raw,offset=512")]),
            "\"offset\"",
        ),
        (
            v(&["-drive", "file=nbd:localhost:10809,format=raw"]),
            "not a host file",
        ),
        (
            v(&[
                "-blockdev",
                r#"{"node-name":"n","driver":"raw","file":{"driver":"nbd","server":{"type":"inet","host":"localhost","port":"10809"}}}"#,
            ]),
            "not a host file",
        ),
        (
            v(&[
                "-blockdev",
                "driver=nbd,node-name=n,server.type=inet,server.host=h,server.port=1",
            ]),
            "not backed by a host file",
        ),
        (
            v(&[
                "-blockdev",
                &format!(
                    r#"{{"node-name":"n","driver":"raw","offset":512,"file":{{"driver":"file","filename":"{xs}"}}}}"#
                ),
            ]),
            "\"offset\"",
        ),
        (
            v(&["-drive", &format!("file={xs},format=qcow2")]),
            "its contents are raw",
        ),
        (v(&["-blockdev", "{\"driver\":"]), "not valid JSON"),
        (v(&["-daemonize"]), "-daemonize"),
    ];
    for (extra, want) in cases {
        let mut a: Vec<String> = ["qemu-system-x86_64", "-machine", "pc"]
            .map(String::from)
            .to_vec();
        a.extend(extra.iter().cloned());
        let err = boot(&spec(a, &out, "final")).unwrap_err().to_string();
        assert!(err.contains(want), "{extra:?}: {err}");
        // Nothing made for a refused argv stays behind.
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // Read-only disks need no overlay, so these pass the check (QEMU then
    // fails on the missing NBD server).
    let ro = [
        "-drive",
        "file=nbd:localhost:1,format=raw,readonly=on,if=none,id=d",
    ];
    let mut a: Vec<String> = ["qemu-system-x86_64", "-machine", "pc"]
        .map(String::from)
        .to_vec();
    a.extend(ro.iter().map(|s| s.to_string()));
    let r = run(&spec(a, &out, "final"));
    assert!(
        matches!(r.outcome, BootOutcome::QemuExited { .. }),
        "{r:#?}"
    );
    let err = boot(&spec(argv(&x, &[]), &out, "a/b")).unwrap_err();
    assert!(err.to_string().contains("phase name"), "{err}");
}

/// The overlays a report says it booted from: each was in the argv run,
/// and none (nor its directory) exists any more.
fn assert_overlays_gone(r: &BootReport, out: &Path, expected: usize) {
    let ovls: Vec<PathBuf> = r
        .notes
        .iter()
        .filter_map(|n| n.split_once("throw-away overlay ").map(|(_, p)| p.into()))
        .collect();
    assert_eq!(ovls.len(), expected, "{:?}", r.notes);
    for p in &ovls {
        let s = p.display().to_string();
        assert!(
            r.argv.iter().any(|a| a.contains(&s)),
            "{s} not in {:?}",
            r.argv
        );
        assert!(p.starts_with(out.canonicalize().unwrap()), "{s}");
        assert!(!p.exists(), "{s} left behind");
        assert!(!p.parent().unwrap().exists(), "{s}: directory left behind");
    }
    let left: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("overlays"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn guest_writes_never_reach_blockdev_disks() {
    // The guest writes LBA 1 through INT 13h. Each argv below, run by QEMU
    // directly, changes the disk; under validation it must not, whichever
    // way the disk is given.
    need("qemu-system-x86_64");
    need("qemu-img");
    let dir = tempfile::tempdir().unwrap();
    let bs = BootSector {
        message: "BOOT OK\r\n".into(),
        output: Output::Serial,
        write_self: true,
        action: Action::DebugExit(0),
    };
    let sector = bs.assemble().unwrap();
    let raw = disk(dir.path(), "guest.raw", Some(sector));
    let qcow = dir.path().join("guest.qcow2");
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow)
        .status()
        .unwrap();
    assert!(st.success());
    let dev = ["-device", "ide-hd,drive=d0,bus=ide.0"];
    type Case = (
        &'static str,
        &'static str,
        Box<dyn Fn(&Path) -> Vec<String>>,
        usize,
    );
    let cases: Vec<Case> = vec![
        (
            "json-raw",
            "raw",
            Box::new(|p: &Path| {
                vec![
                    "-blockdev".into(),
                    format!(
                        r#"{{"node-name":"d0","driver":"raw","discard":"unmap","file":{{"driver":"file","filename":{},"discard":"unmap"}}}}"#,
                        serde_json::to_string(&p.display().to_string()).unwrap()
                    ),
                ]
            }),
            1,
        ),
        (
            "json-qcow2",
            "qcow2",
            Box::new(|p: &Path| {
                vec![
                    "-blockdev".into(),
                    format!(
                        r#"{{"node-name":"d0","driver":"qcow2","file":{{"driver":"file","filename":{}}}}}"#,
                        serde_json::to_string(&p.display().to_string()).unwrap()
                    ),
                ]
            }),
            1,
        ),
        (
            // Protocol node referenced by a format node, key=value form.
            "keyval-ref",
            "raw",
            Box::new(|p: &Path| {
                vec![
                    "-blockdev".into(),
                    format!("driver=file,node-name=f0,filename={}", p.display()),
                    "-blockdev".into(),
                    "driver=raw,node-name=d0,file=f0".into(),
                ]
            }),
            1,
        ),
        (
            // A protocol node used directly as the disk.
            "keyval-protocol",
            "raw",
            Box::new(|p: &Path| {
                vec![
                    "-blockdev".into(),
                    format!("driver=file,node-name=d0,filename={}", p.display()),
                ]
            }),
            1,
        ),
    ];
    for (name, fmt, blockdev, n_ovl) in cases {
        let base = if fmt == "raw" { &raw } else { &qcow };
        let run_argv = |p: &Path, extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = ["qemu-system-x86_64", "-machine", "pc", "-m", "64"]
                .map(String::from)
                .to_vec();
            v.extend(blockdev(p));
            v.extend(dev.map(String::from));
            v.extend(
                [
                    "-nic",
                    "none",
                    "-device",
                    "isa-debug-exit,iobase=0xf4,iosize=0x04",
                ]
                .map(String::from),
            );
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        // Direct QEMU: the write lands.
        let direct = dir.path().join(format!("{name}-direct.img"));
        std::fs::copy(base, &direct).unwrap();
        let before = sha256(&direct);
        let a = run_argv(&direct, &["-accel", "tcg", "-display", "none"]);
        let status = Command::new("timeout").arg("60").args(&a).status().unwrap();
        assert_eq!(status.code(), Some(1), "{name}: {a:?}");
        assert_ne!(sha256(&direct), before, "{name}: the guest did not write");

        // Validation: it does not.
        let d = dir.path().join(format!("{name}.img"));
        std::fs::copy(base, &d).unwrap();
        let before = sha256(&d);
        let out = dir.path().join(format!("out-{name}"));
        let r = run(&spec(run_argv(&d, &[]), &out, "final"));
        assert!(r.ok, "{name}: {r:#?}");
        assert!(
            r.last_serial_lines.iter().any(|l| l == "BOOT OK"),
            "{name}: {:?}",
            r.last_serial_lines
        );
        assert_eq!(sha256(&d), before, "{name}: validation changed the disk");
        assert_overlays_gone(&r, &out, n_ovl);
        assert!(!r.argv.iter().any(|a| a == "-snapshot"), "{:?}", r.argv);
    }
}

#[test]
fn kvm_probe_reaches_a_verdict() {
    // KVM may work, be absent, or be a nested hypervisor that crashes
    // guests: any of these must end in a decision, never a hang or a
    // leftover process.
    need("qemu-system-x86_64");
    let (accel, why) = hyper2kvm::validate::probe_kvm();
    eprintln!("probe: {accel:?}: {why}");
    assert!(why.contains(accel.name()), "{why}");
}

#[test]
fn cli_validates_a_directory() {
    need("qemu-system-x86_64");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // final boots (custom marker from validate.json), bootstrap fails.
    let good = BootSector::serial("H2K SELFTEST PASSED\r\n", Action::Halt)
        .assemble()
        .unwrap();
    let bad = BootSector::serial("Missing operating system\r\n", Action::Halt)
        .assemble()
        .unwrap();
    disk(d, "good.raw", Some(good));
    disk(d, "bad.raw", Some(bad));
    let rel = |name: &str| -> Vec<String> {
        // Relative disk path: QEMU runs in DIR.
        let mut v = argv(Path::new(name), &[]);
        v.extend(["-cpu".into(), "host".into()]); // becomes max under TCG
        v
    };
    std::fs::write(
        d.join("vm1-final.argv.json"),
        serde_json::to_string(&rel("good.raw")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("vm1-bootstrap.argv.json"),
        serde_json::to_string(&rel("bad.raw")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("validate.json"),
        r#"{"success_markers": ["SELFTEST PASSED"], "timeout_seconds": 120}"#,
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_hyper2kvm");
    let out = Command::new(exe)
        .args(["validate", "--accel", "tcg", "--phase", "final"])
        .arg(d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("vm1 final: BOOTED"), "{stdout}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("validation-final.json")).unwrap())
            .unwrap();
    assert_eq!(rep["ok"], true);
    assert_eq!(rep["outcome"]["kind"], "success");
    assert_eq!(rep["outcome"]["line"], "H2K SELFTEST PASSED");
    assert!(
        rep["notes"].to_string().contains("-cpu max"),
        "{}",
        rep["notes"]
    );
    assert!(d.join("validation/final-serial.log").exists());
    assert!(d.join("validation/final-screen.png").exists());

    let out = Command::new(exe)
        .args(["validate", "--accel", "tcg", "--json"])
        .arg(d)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "bootstrap failed, so must the command"
    );
    let reps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reps[0]["phase"], "bootstrap");
    assert_eq!(reps[0]["outcome"]["kind"], "failure");
    assert_eq!(reps[0]["outcome"]["id"], "missing_os");
    assert_eq!(reps[1]["phase"], "final");
    assert_eq!(reps[1]["ok"], true);
    let rep: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("validation-bootstrap.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rep["outcome"]["id"], "missing_os");
    assert!(String::from_utf8_lossy(&out.stderr).contains("validation failed: bootstrap"));
    assert_no_qemu_left(d);

    // Not a migration directory.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(exe)
        .args(["validate"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("argv.json"));
}

#[test]
fn uefi_with_nothing_bootable_lands_in_the_shell() {
    // OVMF with an empty disk: every boot option fails and the firmware
    // starts its shell. The writable VARS pflash boots from an overlay
    // like any -drive.
    let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let vars_src = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    assert!(
        code.exists() && vars_src.exists(),
        "this test needs OVMF (package ovmf)"
    );
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("vars.fd");
    std::fs::copy(vars_src, &vars).unwrap();
    let before = sha256(&vars);
    let d = disk(dir.path(), "empty.raw", None);
    let argv: Vec<String> = vec![
        "qemu-system-x86_64".into(),
        "-machine".into(),
        "q35".into(),
        "-m".into(),
        "256".into(),
        "-drive".into(),
        format!("if=pflash,format=raw,readonly=on,file={}", code.display()),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
        "-drive".into(),
        format!("file={},format=raw,if=virtio", d.display()),
        "-nic".into(),
        "none".into(),
    ];
    let r = run(&spec(argv, &dir.path().join("out"), "final"));
    match &r.outcome {
        BootOutcome::Failure { id, source, .. } => {
            assert_eq!(
                (id.as_str(), *source),
                ("uefi_shell", Source::Serial),
                "{r:#?}"
            )
        }
        o => panic!("{o:?}: {r:#?}"),
    }
    assert!(r.reason.contains("BdsDxe: failed to load"), "{}", r.reason);
    assert_eq!(
        sha256(&vars),
        before,
        "validation changed the UEFI variable store"
    );
}
