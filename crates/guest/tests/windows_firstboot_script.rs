//! The generated first-boot runner checked as text for every Windows
//! version (pnputil syntax, no PowerShell, no `timeout`, the attempt
//! counter, COM1 lines, every label it calls defined), and the step logic
//! the script mirrors (bounded retries) run as pure functions. The cmd
//! control flow itself cannot run here: there is no Windows (and no cmd
//! interpreter) on the test machine.

use guest::drivers::Arch;
use guest::inspect::{ControlSets, Firmware, ForeignTool, WindowsInstall, WindowsNic};
use guest::plan::{Action, FileSource, HiveRef, RegData, VolumeRef};
use guest::windows::firstboot::network::{self, Match};
use guest::windows::firstboot::steps::{
    decide, record, simulate_boot, Decision, Phase, PnpUtil, Status, Step, StepState,
};
use guest::windows::firstboot::{
    plan_firstboot, uninstall_command, FirstBootOptions, FirstBootPlan, Launch, StagedDriver,
};
use guest::windows::storage::{FinalBus, StoragePlan};
use regf::{Hive, Value};
use std::collections::BTreeSet;

fn vol() -> VolumeRef {
    VolumeRef {
        disk: 0,
        partition: Some(2),
    }
}

fn install(os: &str, major: u32, minor: u32, build: u32, server: bool) -> WindowsInstall {
    let hive = |p: &str| HiveRef {
        volume: vol(),
        path: p.into(),
    };
    WindowsInstall {
        system: vol(),
        systemroot: "Windows".into(),
        boot_volume: None,
        bcd: vec![],
        firmware: Firmware::Bios,
        system_hive: hive("Windows/System32/config/SYSTEM"),
        software_hive: hive("Windows/System32/config/SOFTWARE"),
        product_name: format!("Phony {os}"),
        os_id: os.into(),
        major,
        minor,
        build,
        installation_type: Some(if server { "Server" } else { "Client" }.into()),
        edition_id: None,
        arch: Arch::Amd64,
        hostname: None,
        control_sets: ControlSets {
            current: 1,
            default: 1,
            last_known_good: 2,
            in_use: vec!["ControlSet001".into(), "ControlSet002".into()],
        },
        storage_drivers: vec![],
        boot_storage: vec![],
        virtio_ready: false,
        nics: vec![
            WindowsNic {
                guid: "{11111111-2222-3333-4444-555555555555}".into(),
                connection_name: Some("Local Area Connection".into()),
                driver: Some("vmxnet3ndis6".into()),
                mac: Some("00:50:56:01:02:03".into()),
                dhcp: false,
                addresses: vec![
                    "192.0.2.10/255.255.255.0".into(),
                    "192.0.2.11/255.255.255.0".into(),
                ],
                gateways: vec!["192.0.2.1".into()],
                dns: vec!["192.0.2.53".into(), "198.51.100.53".into()],
            },
            WindowsNic {
                guid: "{66666666-2222-3333-4444-555555555555}".into(),
                connection_name: Some("Backup LAN".into()),
                driver: Some("e1g60".into()),
                mac: None,
                dhcp: false,
                addresses: vec!["10.0.0.5/255.0.0.0".into()],
                gateways: vec![],
                dns: vec![],
            },
            WindowsNic {
                guid: "{77777777-2222-3333-4444-555555555555}".into(),
                connection_name: Some("DHCP LAN".into()),
                dhcp: true,
                ..Default::default()
            },
        ],
        foreign_tools: vec![ForeignTool {
            vendor: "vmware".into(),
            kind: "uninstall".into(),
            name: "VMware Tools".into(),
            location: "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{A}".into(),
            uninstall: Some("MsiExec.exe /I{0AAB7D0C-9F1B-4A2B-8C1D-123456789ABC}".into()),
        }],
        blockers: vec![],
        facts: vec![],
    }
}

/// A small SYSTEM hive: two control sets, a free Setup key.
fn system_hive() -> Hive {
    let mut h = Hive::new_empty("SYSTEM").unwrap();
    h.create_key("Select").unwrap();
    h.create_key("Setup").unwrap();
    for (n, v) in [("Current", 1), ("Default", 1), ("LastKnownGood", 2)] {
        h.set_value("Select", n, &Value::Dword(v)).unwrap();
    }
    for cs in ["ControlSet001", "ControlSet002"] {
        h.create_key(&format!(r"{cs}\Services\partmgr\Parameters"))
            .unwrap();
    }
    h.set_value("Setup", "SetupType", &Value::Dword(0)).unwrap();
    h.set_value("Setup", "CmdLine", &Value::String(String::new()))
        .unwrap();
    h
}

fn software_hive() -> Hive {
    let mut h = Hive::new_empty("SOFTWARE").unwrap();
    h.create_key(r"Microsoft\Windows\CurrentVersion").unwrap();
    h
}

fn opts() -> FirstBootOptions {
    let d = |name: &str, inf: &str, required: bool| StagedDriver {
        name: name.into(),
        inf: inf.into(),
        required,
    };
    FirstBootOptions {
        drivers: vec![
            d("viostor", "viostor.inf", true),
            d("NetKVM", "netkvm.inf", false),
            d("Balloon", "balloon.inf", false),
        ],
        storage_service: Some("viostor".into()),
        temporary_keys: vec![
            r"SYSTEM\DriverDatabase\DriverPackages\viostor.inf_amd64_0011223344556677".into(),
        ],
        temporary_values: vec![
            r"SYSTEM\DriverDatabase\DeviceIds\PCI\VEN_1AF4&DEV_1001|viostor.inf".into(),
        ],
        nic_macs: vec![],
    }
}

/// Every version the runner supports: id, NT version, build, server.
const VERSIONS: &[(&str, u32, u32, u32, bool)] = &[
    ("winxp", 5, 1, 2600, false),
    ("win2k3", 5, 2, 3790, true),
    ("win7", 6, 1, 7601, false),
    ("win2k8r2", 6, 1, 7601, true),
    ("win8.1", 6, 3, 9600, false),
    ("win10", 10, 0, 19045, false),
    ("win2k16", 10, 0, 14393, true),
    ("win2k19", 10, 0, 17763, true),
    ("win2k22", 10, 0, 20348, true),
    ("win11", 10, 0, 22631, false),
    ("win2k25", 10, 0, 26100, true),
];

const PNPUTIL: &str = r#""%SystemRoot%\System32\pnputil.exe""#;

/// Labels defined (`:name` at the start of a line, lower case).
fn labels(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .map(|l| l.trim().to_ascii_lowercase())
        .collect()
}

/// Structural checks a cmd interpreter would trip over.
fn check_structure(script: &str, os: &str) {
    assert!(script.is_ascii(), "{os}: the runner must be ASCII");
    assert!(
        script.split("\r\n").all(|l| !l.contains('\n')),
        "{os}: CRLF line ends only"
    );
    let defined = labels(script);
    let set: BTreeSet<&String> = defined.iter().collect();
    assert_eq!(set.len(), defined.len(), "{os}: duplicate labels");
    for l in script.lines() {
        let t = l.trim();
        for kw in ["call :", "goto :"] {
            for part in t.split(kw).skip(1) {
                let target = part
                    .split(|c: char| c.is_whitespace() || c == ')')
                    .next()
                    .unwrap()
                    .to_ascii_lowercase();
                if target == "eof" || target.starts_with('%') {
                    continue;
                }
                assert!(
                    set.contains(&target),
                    "{os}: {kw}{target} has no label (line {t:?})"
                );
            }
        }
        // %ERRORLEVEL% is expanded when a block is parsed: never inside one.
        if t.contains('(') && !t.starts_with("rem") && !t.starts_with("for ") {
            assert!(!t.contains("%ERRORLEVEL%"), "{os}: {t:?}");
        }
        assert_eq!(
            t.matches('(').count(),
            t.matches(')').count(),
            "{os}: unbalanced parentheses in {t:?}"
        );
    }
    // every step label called by :run exists
    for l in script.lines().filter(|l| l.starts_with("call :run ")) {
        let label = l.split_whitespace().nth(5).unwrap().to_ascii_lowercase();
        assert!(set.contains(&label), "{os}: step label {label}");
    }
}

/// One version's plan, for the checks below.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    plan: &'a FirstBootPlan,
    s: &'a str,
    lower: &'a str,
    os: &'a str,
    major: u32,
    minor: u32,
    server: bool,
}

fn check_com1_lines(c: &Ctx) {
    let Ctx { s, os, .. } = *c;
    // COM1: set up first, then one line per step and the done lines
    let mode = s.find("mode COM1:").expect("mode COM1");
    let first_say = s.find("call :say").unwrap();
    assert!(mode < first_say, "{os}: mode COM1 before the first line");
    assert!(s.contains(">COM1 2>nul echo hyper2kvm-firstboot: %*"));
    assert!(s.contains("call :say %H2K_PH% %H2K_ID% ok"));
    assert!(
        s.contains("call :say %H2K_PH% %H2K_ID% failed attempt %H2K_N%/%H2K_MAX% exit %H2K_RC%")
    );
    assert!(
        s.contains("call :say %H2K_PH% %H2K_ID% failed gave-up %H2K_KIND% after %H2K_N% attempts")
    );
    assert!(s.contains("(call :say final done)"));
    assert!(s.contains("(call :say bootstrap done)"));
    // the reboot happens only when a step asked for it, with shutdown
    assert!(s.contains("if not \"%H2K_REBOOT%\"==\"1\" goto :selfdelete\r\ncall :say final reboot\r\nshutdown /r /t 5"));
    assert_eq!(s.matches("shutdown ").count(), 1, "{os}");
}

fn check_pnputil_lines(c: &Ctx) {
    let Ctx {
        plan,
        s,
        lower,
        os,
        major,
        minor,
        ..
    } = *c;
    // pnputil syntax per version
    let net_inf = r#""%SystemRoot%\Drivers\VirtIO\NetKVM\netkvm.inf""#;
    let legacy = format!("{PNPUTIL} -i -a {net_inf}");
    let modern = format!("{PNPUTIL} /add-driver {net_inf} /install");
    match (major, minor) {
        (5, _) => {
            assert!(!lower.contains("pnputil"), "{os}: XP/2003 have no pnputil");
            assert!(
                plan.warnings.iter().any(|w| w.contains("DevicePath")),
                "{os}"
            );
        }
        (6, _) => {
            assert!(s.contains(&legacy), "{os}: {legacy}");
            assert!(!s.contains("/add-driver"), "{os}");
            assert_eq!(s.matches("pnputil.exe\" -i -a").count(), 3, "{os}");
        }
        _ => {
            assert!(s.contains(&modern), "{os}: {modern}");
            assert!(!s.contains(" -i -a "), "{os}");
            assert!(
                s.contains(r#"call :run install-netkvm 0 3 s_install_netkvm "0 259" "3010 1641""#),
                "{os}"
            );
        }
    }
}

fn check_phases(c: &Ctx) {
    let Ctx { s, os, major, .. } = *c;
    // the storage package is required, the others optional
    if major >= 6 {
        assert!(
            s.contains("call :run install-viostor 1 3 s_install_viostor"),
            "{os}"
        );
    }
    // phases: bootstrap steps before final ones; the final phase only
    // on virtio
    let pb = s.find(":phase_bootstrap").unwrap();
    let pf = s.find(":phase_final").unwrap();
    assert!(pb < pf);
    assert!(
        s[pf..].find("call :run check-storage 1 3").is_some(),
        "{os}"
    );
    assert!(s.contains("sc query viostor | find \"RUNNING\" >nul"));
}

fn check_uninstaller(c: &Ctx) {
    let Ctx { s, .. } = *c;
    // uninstaller: MSI, quiet, no restart, logged, bounded to 2 tries
    assert!(s.contains(r#""%SystemRoot%\System32\msiexec.exe" /x {0AAB7D0C-9F1B-4A2B-8C1D-123456789ABC} /qn /norestart /l*v "%SystemRoot%\hyper2kvm\uninstall-vmware-0.log""#));
    assert!(
        s.contains(r#"call :run uninstall-vmware-0 0 2 s_uninstall_vmware_0 "0 1605" "3010 1641""#)
    );
}

fn check_network_steps(c: &Ctx) {
    let Ctx {
        s,
        os,
        major,
        minor,
        ..
    } = *c;
    // network: by MAC, then by order; DHCP adapter untouched
    assert!(s.contains("call :nicbymac 00-50-56-01-02-03"));
    assert!(s.contains("call :nicbyorder 2"));
    assert!(!s.contains("DHCP LAN"));
    assert!(s.contains(
        r#"netsh interface ip set address "%H2K_IF%" static 192.0.2.10 255.255.255.0 192.0.2.1 1"#
    ));
    assert!(s.contains(r#"netsh interface ip add address "%H2K_IF%" 192.0.2.11 255.255.255.0"#));
    assert!(
        s.contains(r#"netsh interface ip set address "%H2K_IF%" static 10.0.0.5 255.0.0.0 none"#)
    );
    let v = if (major, minor) >= (6, 1) {
        " validate=no"
    } else {
        ""
    };
    assert!(
        s.contains(&format!(
            r#"netsh interface ip set dns "%H2K_IF%" static 192.0.2.53 primary{v}"#
        )),
        "{os}"
    );
    assert!(
        s.contains(&format!(
            r#"netsh interface ip add dns "%H2K_IF%" 198.51.100.53 index=2{v}"#
        )),
        "{os}"
    );
    assert!(s.contains(r#"call :rename "Local Area Connection""#));
}

fn check_temporaries(c: &Ctx) {
    let Ctx { s, major, .. } = *c;
    // temporaries removed only after the storage package installed
    if major >= 6 {
        let t = s.find(":s_remove_temporary").unwrap();
        let body = &s[t..t + s[t..].find("\r\nexit /b %ERRORLEVEL%\r\n").unwrap()];
        assert!(body.contains(r#"call :getsz "%H2K_KEY%\Steps\install-viostor" State H2K_X"#));
        assert!(body.contains(r#"call :regdel "HKLM\SYSTEM\DriverDatabase\DriverPackages\viostor.inf_amd64_0011223344556677""#));
        assert!(body.contains(r#"call :regdelv "HKLM\SYSTEM\DriverDatabase\DeviceIds\PCI\VEN_1AF4&DEV_1001" "viostor.inf""#));
    } else {
        assert!(!s.contains(":s_remove_temporary"));
    }
}

fn check_launch_and_cleanup(c: &Ctx) {
    let Ctx { plan, s, .. } = *c;
    // launch: Setup keys, reset when done; the runner deletes itself
    assert_eq!(plan.launch, Launch::SetupCmdLine);
    assert!(s.contains(r#"reg add "HKLM\SYSTEM\Setup" /v SetupType /t REG_DWORD /d 0 /f"#));
    assert!(s.contains(r#"reg add "HKLM\SYSTEM\Setup" /v CmdLine /t REG_SZ /d "" /f"#));
    assert!(s.contains(r#"(goto) 2>nul & del "%~f0""#));
}

fn check_relaxed_and_restored(c: &Ctx) {
    let Ctx {
        s,
        os,
        major,
        minor,
        server,
        ..
    } = *c;
    // relaxed for the first boot, restored by the final phase
    let restore = s.find(":s_restore_policies");
    match (major, minor) {
        (5, 1) => assert!(s[restore.unwrap()..].contains(
            r#"call :regdelv "HKLM\SOFTWARE\Policies\Microsoft\Windows\DeviceInstall\Settings" "SuppressNewHWUI""#
        )),
        (5, 2) => assert!(s[restore.unwrap()..].contains(
            r#"call :regdelv "HKLM\SYSTEM\ControlSet002\Services\PlugPlay\Parameters" "SuppressUI""#
        )),
        // servers: SanPolicy absent means OfflineShared
        _ if server => assert!(s[restore.unwrap()..].contains(
            r#"call :regdelv "HKLM\SYSTEM\ControlSet001\Services\partmgr\Parameters" "SanPolicy""#
        )),
        _ => assert!(restore.is_none(), "{os}: nothing relaxed on a client"),
    }
}

fn check_runner_file(c: &Ctx) {
    let Ctx { plan, s, .. } = *c;
    // the PutFile carries exactly the script, hashed
    let put = plan
        .actions
        .iter()
        .find_map(|a| match &a.action {
            Action::PutFile {
                path,
                source: FileSource::Inline { bytes },
                size,
                sha256,
                ..
            } => Some((path.clone(), bytes.clone(), *size, sha256.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(put.0, "Windows/hyper2kvm/firstboot.cmd");
    assert_eq!(put.1, s.as_bytes());
    assert_eq!(put.2, s.len() as u64);
    assert_eq!(put.3, testkit::sha256_hex(s.as_bytes()));
    // the steps are in the plan as data too
    let fb: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::FirstBoot { step } => Some(step.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        fb,
        plan.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>()
    );
    assert!(plan.actions.iter().all(|a| a.fixer == "windows-firstboot"));
}

#[test]
fn runner_text_for_every_version() {
    let sys = system_hive();
    let soft = software_hive();
    for &(os, major, minor, build, server) in VERSIONS {
        let inst = install(os, major, minor, build, server);
        let plan = plan_firstboot(&inst, &sys, &soft, &opts()).unwrap();
        let s = &plan.script;
        if let Some(d) = std::env::var_os("H2K_DUMP_RUNNER") {
            std::fs::write(std::path::Path::new(&d).join(format!("{os}.cmd")), s).unwrap();
        }
        check_structure(s, os);
        let lower = s.to_ascii_lowercase();
        assert!(!lower.contains("powershell"), "{os}: PowerShell");
        assert!(!lower.contains("timeout "), "{os}: timeout");
        assert!(!lower.contains("sysnative"), "{os}: Sysnative");
        assert!(
            lower.contains("ping -n 21 127.0.0.1 >nul"),
            "{os}: ping wait"
        );
        // the attempt counter: read, compared, incremented, persisted
        for needle in [
            r#"call :getdword "%H2K_KEY%\Steps\%H2K_ID%" Attempts H2K_N"#,
            "if %H2K_N% GEQ %H2K_MAX% goto :run_giveup",
            "set /a H2K_N+=1",
            r#"reg add "%H2K_KEY%\Steps\%H2K_ID%" /v Attempts /t REG_DWORD /d %H2K_N% /f >nul"#,
            r#"reg add "%H2K_KEY%\Steps\%H2K_ID%" /v State /t REG_SZ /d gaveup /f >nul"#,
            r#"set "H2K_KEY=HKLM\SOFTWARE\hyper2kvm\FirstBoot""#,
            r#"set "H2K_LOG=%SystemRoot%\hyper2kvm\firstboot.log""#,
        ] {
            assert!(s.contains(needle), "{os}: missing {needle:?}");
        }
        let c = Ctx {
            plan: &plan,
            s,
            lower: &lower,
            os,
            major,
            minor,
            server,
        };
        check_com1_lines(&c);
        check_pnputil_lines(&c);
        check_phases(&c);
        check_uninstaller(&c);
        check_network_steps(&c);
        check_temporaries(&c);
        check_launch_and_cleanup(&c);
        check_relaxed_and_restored(&c);
        check_runner_file(&c);
        // deterministic
        let again = plan_firstboot(&inst, &sys, &soft, &opts()).unwrap();
        assert_eq!(again.script, plan.script);
    }
}

#[test]
fn pnputil_syntax_follows_the_build() {
    let legacy = |b| PnpUtil::of(&install("win10", 10, 0, b, false));
    assert_eq!(legacy(10240), PnpUtil::Legacy);
    assert_eq!(legacy(14393), PnpUtil::AddDriver);
    assert_eq!(
        PnpUtil::of(&install("win8", 6, 2, 9200, false)),
        PnpUtil::Legacy
    );
    assert_eq!(
        PnpUtil::of(&install("winvista", 6, 0, 6002, false)),
        PnpUtil::Legacy
    );
    assert_eq!(
        PnpUtil::of(&install("winxp", 5, 1, 2600, false)),
        PnpUtil::None
    );
    assert_eq!(
        PnpUtil::AddDriver.command(r"C:\x.inf").unwrap(),
        r#""%SystemRoot%\System32\pnputil.exe" /add-driver "C:\x.inf" /install"#
    );
}

fn step(max: u32) -> Step {
    let mut s = Step::new(
        "install-x",
        Phase::Bootstrap,
        false,
        "x",
        vec!["exit /b 1".into()],
    );
    s.max_attempts = max;
    s
}

#[test]
fn a_failing_step_runs_at_most_max_attempts_then_is_skipped() {
    let st = step(3);
    // fails every time: three attempts in the first boot, then given up
    let (s1, used) = simulate_boot(&st, StepState::default(), &mut std::iter::repeat(1));
    assert_eq!(used, vec![1, 1, 1]);
    assert_eq!(
        s1,
        StepState {
            attempts: 3,
            status: Status::GaveUp
        }
    );
    // later boots never run it again
    let (s2, used) = simulate_boot(&st, s1, &mut std::iter::repeat(1));
    assert!(used.is_empty());
    assert_eq!(s2, s1);
    assert_eq!(decide(&st, s1), Decision::Skip);
    // a boot lost during attempt 1 (power off) still counts it
    let (s, used) = simulate_boot(&st, StepState::default(), &mut std::iter::empty());
    assert!(used.is_empty());
    assert_eq!(
        s,
        StepState {
            attempts: 1,
            status: Status::Pending
        }
    );
    let (s, used) = simulate_boot(&st, s, &mut std::iter::repeat(5));
    assert_eq!(used.len(), 2, "3 attempts across boots, not 3 more");
    assert_eq!(s.status, Status::GaveUp);
    // success on the second attempt; reboot codes are successes
    let (s, used) = simulate_boot(&st, StepState::default(), &mut [1, 0, 1].into_iter());
    assert_eq!(used, vec![1, 0]);
    assert_eq!(
        s,
        StepState {
            attempts: 2,
            status: Status::Ok
        }
    );
    assert_eq!(record(&st, StepState::default(), 3010).status, Status::Ok);
    assert_eq!(
        record(&st, StepState::default(), -536870389).status,
        Status::Pending
    );
    assert_eq!(
        decide(
            &st,
            StepState {
                attempts: 3,
                status: Status::Pending
            }
        ),
        Decision::GiveUp
    );
    assert_eq!(
        decide(
            &st,
            StepState {
                attempts: 1,
                status: Status::Pending
            }
        ),
        Decision::Run(2)
    );
    // max 0 behaves as 1, never as "forever"
    let (s, used) = simulate_boot(&step(0), StepState::default(), &mut std::iter::repeat(1));
    assert_eq!((used.len(), s.status), (1, Status::GaveUp));
    // an optional failure never stops later steps: each step is decided
    // on its own state only
    let later = step(3);
    assert_eq!(decide(&later, StepState::default()), Decision::Run(1));
}

#[test]
fn the_script_passes_each_steps_rule_data_to_run() {
    let inst = install("win2k19", 10, 0, 17763, true);
    let plan = plan_firstboot(&inst, &system_hive(), &software_hive(), &opts()).unwrap();
    for st in &plan.steps {
        let codes = |c: &[i32]| {
            c.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let call = format!(
            r#"call :run {} {} {} {} "{}" "{}""#,
            st.id,
            u8::from(st.required),
            st.max_attempts,
            st.label(),
            codes(&st.ok_codes),
            codes(&st.reboot_codes)
        );
        assert_eq!(plan.script.matches(&call).count(), 1, "{call}");
        let body = format!(":{}\r\nrem ", st.label());
        let at = plan.script.find(&body).unwrap();
        let tail = &plan.script[at..];
        let end = tail.find("\r\nexit /b %ERRORLEVEL%\r\n").unwrap();
        for c in &st.commands {
            assert!(tail[..end].contains(c.as_str()), "{}: {c}", st.id);
        }
    }
}

#[test]
fn mac_table_rows_and_steps() {
    let inst = install("win7", 6, 1, 7601, false);
    let mut w = Vec::new();
    let t = network::table(&inst.nics, &[], &mut w);
    assert_eq!(t.len(), 2, "the DHCP adapter stays DHCP");
    assert_eq!(t[0].matcher, Match::Mac("00-50-56-01-02-03".into()));
    assert_eq!(t[1].matcher, Match::Order(2));
    assert_eq!(t[0].gateways.len(), 1);
    assert_eq!(t[0].dns.len(), 2);
    // MACs from the VM metadata fill in when the counts agree
    let macs = vec![
        "00:50:56:aa:bb:01".into(),
        "00:50:56:AA:BB:02".into(),
        "00:50:56:aa:bb:03".into(),
    ];
    let t = network::table(&inst.nics, &macs, &mut w);
    assert_eq!(
        t[0].matcher,
        Match::Mac("00-50-56-01-02-03".into()),
        "the hive's MAC wins"
    );
    assert_eq!(t[1].matcher, Match::Mac("00-50-56-AA-BB-02".into()));
    // names cmd cannot carry are not renamed; bad addresses are dropped
    let mut nics = inst.nics.clone();
    nics[0].connection_name = Some("50% \"LAN\"".into());
    nics[1].addresses = vec!["fe80::1/64".into()];
    let mut w = Vec::new();
    let t = network::table(&nics, &[], &mut w);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, None);
    assert_eq!(w.len(), 2, "{w:?}");
    let s = network::step(&t[0], 0, 5, 1);
    assert_eq!(s.id, "net-00");
    assert_eq!(s.phase, Phase::Final);
    assert!(!s.required);
    assert_eq!(s.commands[0], "call :nicbymac 00-50-56-01-02-03");
    assert!(!s.commands.iter().any(|c| c.contains("rename")));
    assert!(
        !s.commands.iter().any(|c| c.contains("validate")),
        "XP netsh has no validate="
    );
}

#[test]
fn uninstall_strings() {
    assert_eq!(
        uninstall_command("MsiExec.exe /X{0AAB7D0C-9F1B-4A2B-8C1D-123456789ABC}", "u").unwrap(),
        r#""%SystemRoot%\System32\msiexec.exe" /x {0AAB7D0C-9F1B-4A2B-8C1D-123456789ABC} /qn /norestart /l*v "%SystemRoot%\hyper2kvm\u.log""#
    );
    assert_eq!(
        uninstall_command(
            r#""C:\Program Files\Oracle\VirtualBox Guest Additions\uninst.exe""#,
            "u"
        )
        .unwrap(),
        r#""C:\Program Files\Oracle\VirtualBox Guest Additions\uninst.exe" /S"#
    );
    assert!(uninstall_command("MsiExec.exe /X{not-a-guid}", "u").is_none());
    assert!(uninstall_command(r"C:\tools\setup.exe /remove", "u").is_none());
    assert!(uninstall_command(r"C:\x&calc\uninst.exe", "u").is_none());
    // an uninstaller that cannot run unattended is a manual action
    let mut inst = install("win10", 10, 0, 19045, false);
    inst.foreign_tools[0].uninstall = Some(r"C:\tools\setup.exe /remove".into());
    let plan = plan_firstboot(&inst, &system_hive(), &software_hive(), &opts()).unwrap();
    assert!(plan
        .actions
        .iter()
        .any(|a| matches!(&a.action, Action::Manual { text } if text.contains("VMware Tools"))));
    assert!(!plan.script.contains("msiexec"));
}

#[test]
fn busy_setup_key_falls_back_to_a_service_in_every_control_set() {
    let mut sys = system_hive();
    sys.set_value("Setup", "OOBEInProgress", &Value::Dword(1))
        .unwrap();
    let inst = install("win10", 10, 0, 19045, false);
    let plan = plan_firstboot(&inst, &sys, &software_hive(), &opts()).unwrap();
    assert_eq!(plan.launch, Launch::Service);
    for cs in ["ControlSet001", "ControlSet002"] {
        let key = format!(r"{cs}\Services\hyper2kvm-firstboot");
        let get = |n: &str| {
            plan.actions.iter().find_map(|a| match &a.action {
                Action::SetValue {
                    key: k, name, data, ..
                } if *k == key && name == n => Some(data.clone()),
                _ => None,
            })
        };
        assert_eq!(get("Type"), Some(RegData::Dword(0x10)));
        assert_eq!(get("Start"), Some(RegData::Dword(2)));
        assert_eq!(get("ObjectName"), Some(RegData::Sz("LocalSystem".into())));
        assert_eq!(
            get("ImagePath"),
            Some(RegData::ExpandSz(r#"%SystemRoot%\System32\cmd.exe /c start "" cmd.exe /c "%SystemRoot%\hyper2kvm\firstboot.cmd""#.into()))
        );
        assert!(plan
            .script
            .contains(&format!(r#"call :regdel "HKLM\SYSTEM\{key}""#)));
    }
    assert!(plan.script.contains("sc delete hyper2kvm-firstboot"));
    assert!(!plan
        .actions
        .iter()
        .any(|a| matches!(&a.action, Action::SetValue { key, .. } if key == "Setup")));
}

#[test]
fn options_from_a_storage_plan() {
    let inst = install("win10", 10, 0, 19045, false);
    let put = |p: &str| {
        guest::plan::PlannedAction::new(
            "windows-storage",
            "x",
            Action::PutFile {
                volume: vol(),
                path: p.into(),
                source: FileSource::Inline { bytes: vec![] },
                size: 0,
                sha256: String::new(),
            },
        )
    };
    let plan = StoragePlan {
        actions: vec![
            put("Windows/System32/drivers/viostor.sys"),
            put("Windows/Drivers/VirtIO/viostor/viostor.inf"),
            put("Windows/Drivers/VirtIO/viostor/viostor.sys"),
            put("Windows/Drivers/VirtIO/NetKVM/netkvm.inf"),
            put("Windows/Drivers/VirtIO/NetKVM/netkvm.cat"),
            guest::plan::PlannedAction::new(
                "windows-storage",
                "x",
                Action::SetValue {
                    hive: inst.software_hive.clone(),
                    key: r"hyper2kvm\Temporary".into(),
                    name: "Keys".into(),
                    data: RegData::MultiSz(vec![r"SYSTEM\DriverDatabase\DriverPackages\p".into()]),
                },
            ),
        ],
        warnings: vec![],
    };
    let o = FirstBootOptions::from_storage_plan(&inst, &plan, FinalBus::VirtioScsi);
    assert_eq!(o.storage_service.as_deref(), Some("vioscsi"));
    assert_eq!(
        o.drivers,
        vec![
            StagedDriver {
                name: "viostor".into(),
                inf: "viostor.inf".into(),
                required: false
            },
            StagedDriver {
                name: "NetKVM".into(),
                inf: "netkvm.inf".into(),
                required: false
            },
        ]
    );
    assert_eq!(
        o.temporary_keys,
        vec![r"SYSTEM\DriverDatabase\DriverPackages\p".to_string()]
    );
    let o = FirstBootOptions::from_storage_plan(&inst, &plan, FinalBus::VirtioBlk);
    assert!(o.drivers[0].required);
}

#[test]
fn refusals() {
    let mut inst = install("win2k", 5, 0, 2195, false);
    let e = plan_firstboot(&inst, &system_hive(), &software_hive(), &opts()).unwrap_err();
    assert!(e.to_string().contains("NT 5.0"), "{e}");
    inst = install("win10", 10, 0, 19045, false);
    let mut o = opts();
    o.drivers[1].name = "Net&KVM".into();
    let e = plan_firstboot(&inst, &system_hive(), &software_hive(), &o).unwrap_err();
    assert!(e.to_string().contains("Net&KVM"), "{e}");
    inst.blockers.push(guest::inspect::Blocker {
        id: "hibernated".into(),
        refuse: true,
        message: "hibernated".into(),
    });
    assert!(plan_firstboot(&inst, &system_hive(), &software_hive(), &opts()).is_err());
}
