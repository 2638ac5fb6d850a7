//! Boot classification without booting: every marker rule on
//! captured-looking console text, the outcome precedence, and the decoding
//! of QEMU `GUEST_PANICKED` events (Hyper-V crash parameters).

use hyper2kvm::validate::bugcheck::{bugcheck_name, decode_panic, BUGCHECKS};
use hyper2kvm::validate::classify::{classify, Observations};
use hyper2kvm::validate::markers::{match_line, CustomMarker, Hit, MarkerKind, Source, MARKERS};
use hyper2kvm::validate::qmp::Event;
use hyper2kvm::validate::{vga_text_lines, BootOutcome};
use serde_json::json;

#[rustfmt::skip]
/// Console text as it appears (escape sequences, CRs) and the rule it must
/// trigger.
const CASES: &[(&str, Source, &str, MarkerKind)] = &[
    ("\r\nDebian GNU/Linux 12 h2k-guest ttyS0\r\n\r\nh2k-guest login: ", Source::Serial, "login_prompt", MarkerKind::Success),
    // The kernel printed after the prompt, on its line, before it was read
    // (seen: a dracut guest's final boot ran into its 900 s limit).
    ("h2k-guest login: [   26.842611] kvm: Nested Virtualization enabled\r\n", Source::Serial, "login_prompt", MarkerKind::Success),
    ("No bootable device.  Retrying in 60 seconds.", Source::Screen, "no_bootable_device", MarkerKind::Failure),
    ("No bootable device.\n", Source::Firmware, "no_bootable_device", MarkerKind::Failure),
    ("Boot failed: could not read the boot disk\n", Source::Firmware, "boot_disk_unreadable", MarkerKind::Hint),
    ("Boot failed: not a bootable disk\n", Source::Firmware, "not_bootable_disk", MarkerKind::Hint),
    ("A disk read error occurred", Source::Screen, "disk_read_error", MarkerKind::Failure),
    ("NTLDR is missing", Source::Screen, "ntldr_missing", MarkerKind::Failure),
    ("BOOTMGR is missing", Source::Screen, "bootmgr_missing", MarkerKind::Failure),
    ("BOOTMGR is compressed", Source::Screen, "bootmgr_compressed", MarkerKind::Failure),
    ("Missing operating system", Source::Screen, "missing_os", MarkerKind::Failure),
    ("Invalid partition table", Source::Screen, "invalid_partition_table", MarkerKind::Failure),
    ("Error loading operating system", Source::Screen, "error_loading_os", MarkerKind::Failure),
    ("Windows failed to start. A recent hardware or software change might be the cause.", Source::Screen, "windows_boot_failed", MarkerKind::Failure),
    ("grub rescue> ", Source::Serial, "grub_rescue", MarkerKind::Failure),
    ("error: no such device: 1c2b6f6e-0d4c-4a57-9f6e-3b1de6e6c0a1.", Source::Serial, "grub_error", MarkerKind::Hint),
    ("BdsDxe: No bootable option or device was found.", Source::Serial, "uefi_no_bootable_device", MarkerKind::Failure),
    ("\x1b[10;01H\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m\x1b[37m\x1b[40m", Source::Serial, "uefi_shell", MarkerKind::Failure),
    ("BdsDxe: failed to load Boot0004 \"Windows Boot Manager\" from HD(1,GPT,...)/\\EFI\\Microsoft\\Boot\\bootmgfw.efi: Access Denied", Source::Serial, "uefi_secure_boot_denied", MarkerKind::Hint),
    ("BdsDxe: failed to load Boot0001 \"UEFI QEMU DVD-ROM QM00005 \" from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x2,0xFFFF,0x0): Not Found", Source::Serial, "uefi_boot_failed", MarkerKind::Hint),
    ("BdsDxe: starting Boot0003 \"EFI Internal Shell\" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)", Source::Serial, "boot_disk", MarkerKind::Progress),
    ("[    2.112233] VFS: Unable to mount root fs on unknown-block(0,0)", Source::Serial, "root_mount_failed", MarkerKind::Failure),
    ("[    2.112240] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", Source::Serial, "kernel_panic", MarkerKind::Failure),
    ("Gave up waiting for root file system device.  Common problems:", Source::Serial, "root_wait_timeout", MarkerKind::Failure),
    ("ALERT!  UUID=9f1c6c34-6a43-4a8e-bb43-1e0c6f0d2a77 does not exist.  Dropping to a shell!", Source::Serial, "root_device_missing", MarkerKind::Failure),
    ("(initramfs) ", Source::Serial, "initramfs_shell", MarkerKind::Failure),
    ("[  187.449114] dracut-initqueue[297]: Warning: dracut-initqueue: timeout, still waiting for following initqueue hooks:", Source::Serial, "dracut_timeout", MarkerKind::Failure),
    ("[  OK  ] Stopped dracut pre-mount hook.\r\n[  191.2] systemd[1]: Entering emergency mode. Exit the shell to continue.", Source::Serial, "dracut_emergency", MarkerKind::Failure),
    ("dracut:/# ", Source::Serial, "dracut_shell", MarkerKind::Failure),
    ("You are in emergency mode. After logging in, type \"journalctl -xb\" to view", Source::Serial, "emergency_mode", MarkerKind::Failure),
    ("[FAILED] Failed to mount /sysroot.", Source::Serial, "sysroot_mount_failed", MarkerKind::Hint),
    ("/dev/sda1: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.", Source::Serial, "fsck_failed", MarkerKind::Hint),
    ("SeaBIOS (version 1.16.3-debian-1.16.3-2)", Source::Firmware, "firmware", MarkerKind::Progress),
    ("Booting from Hard Disk...", Source::Screen, "boot_disk", MarkerKind::Progress),
    ("Welcome to GRUB!", Source::Serial, "bootloader", MarkerKind::Progress),
    ("Loading Linux 6.1.0-50-amd64 ...", Source::Serial, "bootloader", MarkerKind::Progress),
    ("[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org)", Source::Serial, "kernel", MarkerKind::Progress),
    ("Loading, please wait...", Source::Serial, "initramfs", MarkerKind::Progress),
    ("Begin: Loading essential drivers ... done.", Source::Serial, "initramfs", MarkerKind::Progress),
    ("[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mgetty.target\x1b[0m - Login Prompts.", Source::Serial, "userspace", MarkerKind::Progress),
    ("Welcome to \x1b[1mDebian GNU/Linux 12 (bookworm)\x1b[0m!", Source::Serial, "userspace", MarkerKind::Progress),
    // Windows first-boot runner lines as cmd writes them to COM1 (CRLF);
    // more transcripts in firstboot_markers.rs
    ("hyper2kvm-firstboot: final done\r\n", Source::Serial, "windows_firstboot_done", MarkerKind::Success),
    ("hyper2kvm-firstboot: final remove-temporary failed gave-up required after 3 attempts\r\n", Source::Serial, "firstboot_required_failed", MarkerKind::Failure),
    ("hyper2kvm-firstboot: bootstrap install-balloon failed gave-up optional after 3 attempts\r\n", Source::Serial, "firstboot_step_failed", MarkerKind::Hint),
    ("hyper2kvm-firstboot: bootstrap install-balloon failed attempt 1/3 exit -536870389\r\n", Source::Serial, "firstboot_attempt_failed", MarkerKind::Hint),
    ("hyper2kvm-firstboot: runner start run 1\r\n", Source::Serial, "firstboot", MarkerKind::Progress),
    ("hyper2kvm-firstboot: bootstrap install-netkvm ok\r\n", Source::Serial, "firstboot_step", MarkerKind::Progress),
    ("hyper2kvm-firstboot: bootstrap done\r\n", Source::Serial, "firstboot_bootstrap_done", MarkerKind::Progress),
];

fn hits_of(text: &str, source: Source) -> Vec<Hit> {
    text.split('\n')
        .flat_map(|l| match_line(l, source, &[]))
        .collect()
}

#[test]
fn every_rule_matches_its_captured_text() {
    for (text, source, id, kind) in CASES {
        let hits = hits_of(text, *source);
        assert!(
            hits.iter().any(|h| h.id == *id && h.kind == *kind),
            "{text:?} should trigger {id} ({kind:?}), got {hits:?}"
        );
    }
    // And the table has no rule without a case.
    for mk in MARKERS {
        assert!(
            CASES.iter().any(|c| c.2 == mk.id),
            "marker {} has no test case",
            mk.id
        );
    }
}

#[test]
fn ordinary_lines_do_not_match() {
    for line in [
        "Last login: Sat Nov 22 18:30:01 UTC 2026 on ttyS0",
        "Last login: [   26.842611] kvm: x",
        "pam_unix(login:session): session opened for user root",
        "ssh login: [not a timestamp] x",
        "[    1.234] virtio_blk virtio1: [vda] 4194304 512-byte logical blocks",
        "Booting `Debian GNU/Linux'",
        "[  OK  ] Started systemd-journald.service - Journal Service.",
        "",
        "\x1b[2J\x1b[H",
    ] {
        let hits: Vec<Hit> = match_line(line, Source::Serial, &[])
            .into_iter()
            .filter(|h| h.kind != MarkerKind::Progress)
            .collect();
        assert!(hits.is_empty(), "{line:?} matched {hits:?}");
    }
}

#[test]
fn custom_markers_match() {
    let custom = [
        CustomMarker {
            kind: MarkerKind::Success,
            text: "BOOT OK".into(),
        },
        CustomMarker {
            kind: MarkerKind::Failure,
            text: "SELFTEST FAILED".into(),
        },
    ];
    let h = match_line("BOOT OK\r", Source::Serial, &custom);
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].id.as_str(), h[0].kind),
        ("marker", MarkerKind::Success)
    );
    let h = match_line("x SELFTEST FAILED x", Source::Serial, &custom);
    assert_eq!(h[0].kind, MarkerKind::Failure);
}

fn obs_from(text: &str) -> Observations {
    Observations {
        hits: hits_of(text, Source::Serial),
        timeout_secs: 100.0,
        ..Default::default()
    }
}

#[test]
fn initramfs_failure_names_the_missing_uuid() {
    // Captured-looking tail of a Debian guest without virtio_blk.
    let text = "Begin: Running /scripts/local-block ... done.\n\
        done.\n\
        Gave up waiting for root file system device.  Common problems:\n\
         - Boot args (cat /proc/cmdline)\n\
           - Check rootdelay= (did the system wait long enough?)\n\
         - Missing modules (cat /proc/modules; ls /dev)\n\
        ALERT!  UUID=9f1c6c34-6a43-4a8e-bb43-1e0c6f0d2a77 does not exist.  Dropping to a shell!\n\
        \n\
        \n\
        BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) built-in shell (ash)\n\
        (initramfs) ";
    let (outcome, reason) = classify(&obs_from(text));
    match outcome {
        BootOutcome::Failure { id, line, source } => {
            assert_eq!(id, "root_device_missing");
            assert!(line.contains("UUID=9f1c6c34"), "{line}");
            assert_eq!(source, Source::Serial);
        }
        o => panic!("{o:?}"),
    }
    assert!(reason.contains("does not exist"), "{reason}");
}

#[test]
fn vfs_panic_beats_generic_kernel_panic() {
    let text = "VFS: Cannot open root device \"sda1\" or unknown-block(0,0): error -6\n\
        Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
    let (o, _) = classify(&obs_from(text));
    assert!(
        matches!(o, BootOutcome::Failure { ref id, .. } if id == "root_mount_failed"),
        "{o:?}"
    );
    let (o, _) = classify(&obs_from(
        "Kernel panic - not syncing: Attempted to kill init!\n",
    ));
    assert!(
        matches!(o, BootOutcome::Failure { ref id, .. } if id == "kernel_panic"),
        "{o:?}"
    );
}

#[test]
fn success_first_wins_but_only_if_first() {
    let (o, _) = classify(&obs_from("Reached target Basic System\nh2k-guest login: "));
    assert!(o.is_success(), "{o:?}");
    // A failure before any success is the verdict.
    let (o, _) = classify(&obs_from("Kernel panic - not syncing: x\nlogin:"));
    assert!(!o.is_success(), "{o:?}");
}

#[test]
fn seabios_hints_are_reported_with_no_bootable_device() {
    let mut obs = Observations {
        timeout_secs: 60.0,
        ..Default::default()
    };
    obs.hits.extend(hits_of(
        "Booting from Hard Disk...\nBoot failed: not a bootable disk\n\nBooting from Floppy...\nBoot failed: could not read the boot disk\n\nNo bootable device.\n",
        Source::Firmware,
    ));
    let (o, reason) = classify(&obs);
    assert!(
        matches!(o, BootOutcome::Failure { ref id, source: Source::Firmware, .. } if id == "no_bootable_device"),
        "{o:?}"
    );
    assert!(reason.contains("not a bootable disk"), "{reason}");
    assert!(reason.contains("could not read the boot disk"), "{reason}");
}

#[test]
fn timeouts_distinguish_silence_from_a_stall() {
    let obs = Observations {
        timed_out: true,
        timeout_secs: 60.0,
        last_firmware_line: Some("Booting from Hard Disk...".into()),
        ..Default::default()
    };
    let (o, reason) = classify(&obs);
    assert!(
        matches!(
            o,
            BootOutcome::Timeout {
                last_serial_line: None,
                ..
            }
        ),
        "{o:?}"
    );
    assert!(reason.contains("no output at all"), "{reason}");
    assert!(reason.contains("Booting from Hard Disk"), "{reason}");

    let mut obs = obs_from("Loading Linux 6.1.0-50-amd64 ...\nLoading initial ramdisk ...\n");
    obs.timed_out = true;
    obs.last_serial_line = Some("Loading initial ramdisk ...".into());
    obs.serial_quiet_secs = Some(40.0);
    let (o, reason) = classify(&obs);
    assert!(
        matches!(
            o,
            BootOutcome::Timeout {
                still_printing: false,
                ..
            }
        ),
        "{o:?}"
    );
    assert!(
        reason.contains("stopped at \"Loading initial ramdisk ...\""),
        "{reason}"
    );
    assert!(reason.contains("got as far as: bootloader"), "{reason}");

    obs.serial_quiet_secs = Some(0.5);
    let (o, reason) = classify(&obs);
    assert!(
        matches!(
            o,
            BootOutcome::Timeout {
                still_printing: true,
                ..
            }
        ),
        "{o:?}"
    );
    assert!(reason.contains("still printing"), "{reason}");
}

fn event(name: &str, data: serde_json::Value) -> Event {
    Event {
        name: name.into(),
        seconds: 1.0,
        data,
    }
}

/// What QEMU sends for a Windows guest with `hv-crash` that hit 0x7B.
const HYPERV_7B: &str = r#"{"timestamp": {"seconds": 1732290000, "microseconds": 1234},
  "event": "GUEST_PANICKED",
  "data": {"action": "pause", "info": {"type": "hyper-v", "arg1": 123,
    "arg2": 18446708889337462488, "arg3": 18446744072635809792, "arg4": 0, "arg5": 0}}}"#;

#[test]
fn hyperv_crash_parameters_are_decoded() {
    let v: serde_json::Value = serde_json::from_str(HYPERV_7B).unwrap();
    let p = decode_panic(&v["data"]);
    assert_eq!(p.kind, "hyper-v");
    assert_eq!(p.action.as_deref(), Some("pause"));
    let b = p.bugcheck.clone().unwrap();
    assert_eq!(b.code, 0x7B);
    assert_eq!(b.code_hex, "0x0000007B");
    assert_eq!(b.name.as_deref(), Some("INACCESSIBLE_BOOT_DEVICE"));
    assert_eq!(
        b.params,
        [0xFFFF_DFFF_FFFF_FED8, 0xFFFF_FFFF_C000_0000, 0, 0]
    );
    assert!(p.describe().contains("INACCESSIBLE_BOOT_DEVICE"));
    assert!(p.describe().contains("storage driver"), "{}", p.describe());

    // Precedence: a Hyper-V bugcheck beats console text.
    let mut obs = obs_from("Kernel panic - not syncing: x\n");
    obs.events.push(event("GUEST_PANICKED", v["data"].clone()));
    let (o, reason) = classify(&obs);
    assert!(matches!(o, BootOutcome::GuestPanic { .. }), "{o:?}");
    assert!(
        reason.contains("0x0000007B INACCESSIBLE_BOOT_DEVICE"),
        "{reason}"
    );
}

#[test]
fn ntstatus_parameters_and_large_codes() {
    let p = decode_panic(&json!({"action": "pause", "info": {"type": "hyper-v",
        "arg1": 0x7Bu64, "arg2": 0u64, "arg3": 0xC0000034u64, "arg4": 0u64, "arg5": 0u64}}));
    let b = p.bugcheck.unwrap();
    assert_eq!(
        b.statuses,
        vec!["0xC0000034 STATUS_OBJECT_NAME_NOT_FOUND".to_string()]
    );
    let p = decode_panic(&json!({"info": {"type": "hyper-v", "arg1": 0xC000021Au64}}));
    assert_eq!(
        p.bugcheck.unwrap().name.as_deref(),
        Some("STATUS_SYSTEM_PROCESS_TERMINATED")
    );
    let p = decode_panic(&json!({"info": {"type": "hyper-v", "arg1": 0x1234u64}}));
    let b = p.bugcheck.unwrap();
    assert_eq!(b.name, None);
    assert_eq!(b.code_hex, "0x00001234");
}

#[test]
fn required_bugchecks_are_named() {
    for (code, name) in [
        (0x7B, "INACCESSIBLE_BOOT_DEVICE"),
        (0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"),
        (0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL"),
        (0x50, "PAGE_FAULT_IN_NONPAGED_AREA"),
        (0xC000021A, "STATUS_SYSTEM_PROCESS_TERMINATED"),
        (0xEF, "CRITICAL_PROCESS_DIED"),
        (0x1E, "KMODE_EXCEPTION_NOT_HANDLED"),
        (0x3B, "SYSTEM_SERVICE_EXCEPTION"),
        (0x0A, "IRQL_NOT_LESS_OR_EQUAL"),
        (0x24, "NTFS_FILE_SYSTEM"),
        (0x7F, "UNEXPECTED_KERNEL_MODE_TRAP"),
        (0xF4, "CRITICAL_OBJECT_TERMINATION"),
        (0x135, "REGISTRY_FILTER_DRIVER_EXCEPTION"),
        (0x139, "KERNEL_SECURITY_CHECK_FAILURE"),
    ] {
        assert_eq!(bugcheck_name(code), Some(name), "{code:#x}");
    }
    let mut codes: Vec<u64> = BUGCHECKS.iter().map(|b| b.0).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), BUGCHECKS.len(), "duplicate bugcheck code");
}

#[test]
fn pvpanic_reset_shutdown_and_qemu_exit() {
    let mut obs = obs_from("");
    obs.events
        .push(event("GUEST_PANICKED", json!({"action": "pause"})));
    let (o, _) = classify(&obs);
    assert!(
        matches!(o, BootOutcome::GuestPanic { ref panic } if panic.kind == "pvpanic"),
        "{o:?}"
    );

    let mut obs = obs_from("");
    obs.events.push(event(
        "SHUTDOWN",
        json!({"guest": true, "reason": "guest-reset"}),
    ));
    assert_eq!(classify(&obs).0, BootOutcome::GuestReset);

    let mut obs = obs_from("");
    obs.events.push(event(
        "SHUTDOWN",
        json!({"guest": true, "reason": "guest-shutdown"}),
    ));
    assert_eq!(classify(&obs).0, BootOutcome::GuestShutdown);

    let mut obs = obs_from("");
    obs.exited = Some(Some(1));
    obs.stderr_tail = "qemu-system-x86_64: -drive file=nope.raw: Could not open 'nope.raw'".into();
    let (o, reason) = classify(&obs);
    assert!(
        matches!(
            o,
            BootOutcome::QemuExited {
                status: Some(1),
                ..
            }
        ),
        "{o:?}"
    );
    assert!(reason.contains("Could not open"), "{reason}");
}

#[test]
fn vga_text_buffer_decoding() {
    let mut mem = vec![0u8; 4000];
    for (i, c) in b"BOOTMGR is missing".iter().enumerate() {
        mem[80 * 2 * 3 + i * 2] = *c;
        mem[80 * 2 * 3 + i * 2 + 1] = 0x07;
    }
    for (i, c) in b"Press Ctrl+Alt+Del to restart".iter().enumerate() {
        mem[80 * 2 * 4 + i * 2] = *c;
    }
    assert_eq!(
        vga_text_lines(&mem),
        vec![
            "BOOTMGR is missing".to_string(),
            "Press Ctrl+Alt+Del to restart".to_string()
        ]
    );
    // Graphics-mode garbage is not text.
    let noise: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(vga_text_lines(&noise).is_empty());
}

proptest::proptest! {
    /// Guest-controlled console text and event JSON never panic the
    /// classifier, and what it reports stays bounded.
    #[test]
    fn arbitrary_console_text_is_handled(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
        arg1 in proptest::num::u64::ANY,
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let mut hits = Vec::new();
        for line in text.split('\n') {
            for h in match_line(line, Source::Serial, &[]) {
                proptest::prop_assert!(h.line.chars().count() <= 201);
                hits.push(h);
            }
        }
        let obs = Observations { hits, timed_out: true, timeout_secs: 1.0, ..Default::default() };
        let (_, reason) = classify(&obs);
        proptest::prop_assert!(!reason.is_empty());
        let _ = vga_text_lines(&bytes);
        let p = decode_panic(&json!({"info": {"type": "hyper-v", "arg1": arg1, "arg2": -1}}));
        proptest::prop_assert_eq!(p.bugcheck.unwrap().code, arg1);
    }
}
