//! `validate` on the Windows first-boot runner's COM1 report: captured-
//! looking transcripts (CRLF, as cmd writes them) classified as success,
//! a failed step (named), no output + timeout, and a bugcheck; and every
//! line template of the generated runner (`call :say …`) recognised by the
//! marker table, so the script and the table cannot drift apart.

use guest::drivers::Arch;
use guest::inspect::{ControlSets, Firmware, WindowsInstall};
use guest::plan::{HiveRef, VolumeRef};
use guest::windows::firstboot::{plan_firstboot, FirstBootOptions, StagedDriver};
use hyper2kvm::validate::classify::{classify, decisive, findings, Observations};
use hyper2kvm::validate::markers::{match_line, Hit, MarkerKind, Source};
use hyper2kvm::validate::qmp::Event;
use hyper2kvm::validate::BootOutcome;
use regf::{Hive, Value};
use serde_json::json;

/// Hits of a transcript, cut where the watch loop would stop (the first
/// decisive hit; the settle period adds nothing in these transcripts).
fn observe(text: &str) -> Observations {
    let mut obs = Observations {
        timeout_secs: 600.0,
        ..Default::default()
    };
    for l in text.split('\n') {
        obs.hits.extend(match_line(l, Source::Serial, &[]));
        let t = l.trim();
        if !t.is_empty() {
            obs.last_serial_line = Some(t.to_string());
        }
        if decisive(&obs) {
            break;
        }
    }
    obs
}

const SUCCESS: &str = "hyper2kvm-firstboot: runner start run 2\r\n\
hyper2kvm-firstboot: bootstrap done\r\n\
hyper2kvm-firstboot: final check-storage ok\r\n\
hyper2kvm-firstboot: final net-00 failed attempt 1/3 exit 2\r\n\
hyper2kvm-firstboot: final net-00 ok\r\n\
hyper2kvm-firstboot: final check-net-00 ok\r\n\
hyper2kvm-firstboot: final remove-temporary ok\r\n\
hyper2kvm-firstboot: final restore-policies ok\r\n\
hyper2kvm-firstboot: final done\r\n";

#[test]
fn success_transcript() {
    let obs = observe(SUCCESS);
    let (o, reason) = classify(&obs);
    assert_eq!(
        o,
        BootOutcome::Success {
            marker: "windows_firstboot_done".into(),
            line: "hyper2kvm-firstboot: final done".into()
        }
    );
    assert!(
        !reason.contains("findings"),
        "a retried attempt that succeeded is no finding: {reason}"
    );
    let progress: Vec<&str> = obs
        .hits
        .iter()
        .filter(|h| h.kind == MarkerKind::Progress)
        .map(|h| h.id.as_str())
        .collect();
    assert_eq!(
        progress[..3],
        ["firstboot", "firstboot_bootstrap_done", "firstboot_step"]
    );
}

#[test]
fn optional_step_that_gave_up_is_a_named_finding_of_a_success() {
    let text = "hyper2kvm-firstboot: runner start run 1\r\n\
hyper2kvm-firstboot: bootstrap install-viostor ok\r\n\
hyper2kvm-firstboot: bootstrap install-balloon failed attempt 1/3 exit -536870389\r\n\
hyper2kvm-firstboot: bootstrap install-balloon failed attempt 2/3 exit -536870389\r\n\
hyper2kvm-firstboot: bootstrap install-balloon failed attempt 3/3 exit -536870389\r\n\
hyper2kvm-firstboot: bootstrap install-balloon failed gave-up optional after 3 attempts\r\n\
hyper2kvm-firstboot: bootstrap uninstall-vmware-0 failed attempt 1/2 exit 1603\r\n\
hyper2kvm-firstboot: bootstrap uninstall-vmware-0 failed attempt 2/2 exit 1603\r\n\
hyper2kvm-firstboot: bootstrap uninstall-vmware-0 failed gave-up optional after 2 attempts\r\n\
hyper2kvm-firstboot: bootstrap done failed: install-balloon uninstall-vmware-0\r\n\
hyper2kvm-firstboot: final check-storage ok\r\n\
hyper2kvm-firstboot: final done\r\n";
    let obs = observe(text);
    let (o, reason) = classify(&obs);
    assert!(o.is_success(), "{o:?}");
    assert_eq!(
        findings(&obs),
        vec![
            "hyper2kvm-firstboot: bootstrap install-balloon failed gave-up optional after 3 attempts".to_string(),
            "hyper2kvm-firstboot: bootstrap uninstall-vmware-0 failed gave-up optional after 2 attempts".to_string(),
        ]
    );
    assert!(
        reason.contains("findings: hyper2kvm-firstboot: bootstrap install-balloon failed gave-up"),
        "{reason}"
    );
    assert!(reason.contains("uninstall-vmware-0"), "{reason}");
}

#[test]
fn required_step_that_gave_up_fails_and_names_the_step() {
    let text = "hyper2kvm-firstboot: runner start run 3\r\n\
hyper2kvm-firstboot: bootstrap done\r\n\
hyper2kvm-firstboot: final check-storage failed attempt 1/3 exit 1\r\n\
hyper2kvm-firstboot: final check-storage failed attempt 2/3 exit 1\r\n\
hyper2kvm-firstboot: final check-storage failed attempt 3/3 exit 1\r\n\
hyper2kvm-firstboot: final check-storage failed gave-up required after 3 attempts\r\n\
hyper2kvm-firstboot: final net-00 ok\r\n\
hyper2kvm-firstboot: final done failed: check-storage\r\n";
    let obs = observe(text);
    let (o, reason) = classify(&obs);
    match o {
        BootOutcome::Failure { id, line, source } => {
            assert_eq!(id, "firstboot_required_failed");
            assert!(line.contains("check-storage"), "{line}");
            assert_eq!(source, Source::Serial);
        }
        o => panic!("{o:?}"),
    }
    assert!(reason.contains("check-storage"), "{reason}");
    // the runner that gave up on itself is a failure too
    let (o, _) = classify(&observe(
        "hyper2kvm-firstboot: runner start run 9\r\nhyper2kvm-firstboot: runner failed gave-up required started 8 times without finishing\r\n",
    ));
    assert!(
        matches!(o, BootOutcome::Failure { ref id, .. } if id == "firstboot_required_failed"),
        "{o:?}"
    );
}

#[test]
fn no_output_and_timeout() {
    let mut obs = observe("");
    obs.timed_out = true;
    let (o, reason) = classify(&obs);
    assert_eq!(
        o,
        BootOutcome::Timeout {
            last_serial_line: None,
            last_firmware_line: None,
            still_printing: false
        }
    );
    assert!(
        reason.contains("no output at all on the serial console"),
        "{reason}"
    );
    // the runner stopped in the middle: says how far it got
    let mut obs = observe("hyper2kvm-firstboot: runner start run 1\r\nhyper2kvm-firstboot: bootstrap install-viostor ok\r\n");
    obs.timed_out = true;
    obs.serial_quiet_secs = Some(500.0);
    let (o, reason) = classify(&obs);
    assert!(matches!(o, BootOutcome::Timeout { .. }), "{o:?}");
    assert!(
        reason.contains("hyper2kvm-firstboot: bootstrap install-viostor ok"),
        "{reason}"
    );
    assert!(reason.contains("got as far as: firstboot_step"), "{reason}");
}

#[test]
fn bugcheck_stays_a_failure() {
    let mut obs = observe("hyper2kvm-firstboot: runner start run 1\r\nhyper2kvm-firstboot: bootstrap install-viostor ok\r\n");
    obs.events.push(Event {
        name: "GUEST_PANICKED".into(),
        seconds: 40.0,
        data: json!({"action": "pause", "info": {"type": "hyper-v", "arg1": 0x7Bu64,
            "arg2": 0u64, "arg3": 0xC0000034u64, "arg4": 0u64, "arg5": 0u64}}),
    });
    assert!(decisive(&obs));
    let (o, reason) = classify(&obs);
    assert!(matches!(o, BootOutcome::GuestPanic { .. }), "{o:?}");
    assert!(reason.contains("INACCESSIBLE_BOOT_DEVICE"), "{reason}");
}

fn install(major: u32, minor: u32, build: u32) -> WindowsInstall {
    let v = VolumeRef {
        disk: 0,
        partition: Some(1),
    };
    let hive = |p: &str| HiveRef {
        volume: v.clone(),
        path: p.into(),
    };
    WindowsInstall {
        system: v.clone(),
        systemroot: "Windows".into(),
        boot_volume: None,
        bcd: vec![],
        firmware: Firmware::Bios,
        system_hive: hive("Windows/System32/config/SYSTEM"),
        software_hive: hive("Windows/System32/config/SOFTWARE"),
        product_name: "Phony".into(),
        os_id: "win10".into(),
        major,
        minor,
        build,
        installation_type: Some("Server".into()),
        edition_id: None,
        arch: Arch::Amd64,
        hostname: None,
        control_sets: ControlSets {
            current: 1,
            default: 1,
            last_known_good: 1,
            in_use: vec!["ControlSet001".into()],
        },
        storage_drivers: vec![],
        boot_storage: vec![],
        virtio_ready: false,
        nics: vec![],
        foreign_tools: vec![],
        blockers: vec![],
        facts: vec![],
    }
}

/// Expand the runner's `call :say` templates with sample values.
fn say_lines(script: &str, kind: &str) -> Vec<String> {
    script
        .lines()
        .flat_map(|l| {
            l.split("call :say ")
                .skip(1)
                .map(|t| t.split(')').next().unwrap().to_string())
        })
        .map(|t| {
            format!("hyper2kvm-firstboot: {t}\r")
                .replace("%H2K_PH%", "final")
                .replace("%H2K_ID%", "install-netkvm")
                .replace("%H2K_KIND%", kind)
                .replace("%H2K_N%", "3")
                .replace("%H2K_MAX%", "3")
                .replace("%H2K_RC%", "1603")
                .replace("%H2K_RUNS%", "1")
                .replace("%H2K_FAILED%", " install-netkvm")
        })
        .collect()
}

#[test]
fn every_line_the_runner_writes_is_recognised() {
    let mut sys = Hive::new_empty("SYSTEM").unwrap();
    sys.create_key("Select").unwrap();
    sys.set_value("Select", "Current", &Value::Dword(1))
        .unwrap();
    sys.create_key(r"ControlSet001\Services").unwrap();
    let soft = Hive::new_empty("SOFTWARE").unwrap();
    let opts = FirstBootOptions {
        drivers: vec![StagedDriver {
            name: "NetKVM".into(),
            inf: "netkvm.inf".into(),
            required: false,
        }],
        storage_service: Some("viostor".into()),
        ..Default::default()
    };
    let plan = plan_firstboot(&install(10, 0, 20348), &sys, &soft, &opts).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for kind in ["required", "optional"] {
        for line in say_lines(&plan.script, kind) {
            let hits: Vec<Hit> = match_line(&line, Source::Serial, &[]);
            let want = if line.contains("final done") {
                "windows_firstboot_done"
            } else if line.contains("bootstrap done") {
                "firstboot_bootstrap_done"
            } else if line.contains("failed gave-up required") {
                "firstboot_required_failed"
            } else if line.contains("failed gave-up optional") {
                "firstboot_step_failed"
            } else if line.contains("failed attempt") {
                "firstboot_attempt_failed"
            } else if line.contains("runner start") {
                "firstboot"
            } else if line.ends_with(" ok\r") {
                "firstboot_step"
            } else {
                // progress without a rule of its own (reboot, waiting)
                assert!(
                    hits.iter()
                        .all(|h| h.kind == MarkerKind::Progress || h.kind == MarkerKind::Hint),
                    "{line:?}: {hits:?}"
                );
                continue;
            };
            assert!(
                hits.iter().any(|h| h.id == want),
                "{line:?} should be {want}: {hits:?}"
            );
            let decisive: Vec<&Hit> = hits
                .iter()
                .filter(|h| matches!(h.kind, MarkerKind::Success | MarkerKind::Failure))
                .collect();
            assert!(decisive.len() <= 1, "{line:?}: {hits:?}");
            seen.insert(want);
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
}
