//! The first-boot plan applied to the real SYSTEM hives (win7: x86, two
//! control sets, VMMouse on the PS/2 mouse, two static NICs; win10-1709:
//! a VMware guest with vmci/vsock/vmhgfs, VMMouse/VMUsbMouse filters and
//! vmhgfs in the provider order) and a SOFTWARE hive with device-install
//! restrictions, a VMware Tools uninstall entry and the storage fix's
//! temporary list. The install is described by the real inspection
//! functions; the plan's registry actions are applied with
//! `apply_registry`, the hives written, and hivex (`hivexregedit
//! --export`, `hivexget`) reads them back: launch, filters and services in
//! every control set, provider order, staged network table, SanPolicy and
//! restrictions, the undo list (every changed value's original), and a
//! second plan on the result changes nothing. Also: VMware's vsock Winsock
//! providers (the real win10 hive's catalog entries 15 and 16, and moved
//! into the middle) leave both protocol catalogs, which stay numbered
//! 1..N with their counts; Xen PV drivers (added to the win7 hive with
//! our writer) lose their filters before their services are disabled.

mod support;
use guest::drivers::Arch;
use guest::inspect::{Firmware, WindowsInstall};
use guest::plan::{Action, HiveRef, PlannedAction, VolumeRef};
use guest::windows::firstboot::{
    plan_firstboot, FirstBootOptions, FirstBootPlan, Launch, StagedDriver, CMDLINE,
};
use guest::windows::{blockers, controlset, nics, tools};
use regf::{Hive, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::hives::{apply, export, unxz, val, Export};
use testkit::need;

fn vol() -> VolumeRef {
    VolumeRef {
        disk: 0,
        partition: Some(2),
    }
}

const VMTOOLS_GUID: &str = "{4D6C0B8B-63C0-4A3B-9E1C-6E8B4C3F2A10}";
const TEMP_KEY: &str = r"SYSTEM\DriverDatabase\DriverPackages\viostor.inf_amd64_0011223344556677";

/// A SOFTWARE hive: version, restrictions, VMware Tools, temporaries.
fn software(dir: &Path) -> PathBuf {
    let mut h = Hive::new_empty("SOFTWARE").unwrap();
    let r = r"Policies\Microsoft\Windows\DeviceInstall\Restrictions";
    h.create_key(r).unwrap();
    h.set_value(r, "DenyDeviceIDs", &Value::Dword(1)).unwrap();
    h.set_value(r, "DenyRemovableDevices", &Value::Dword(0))
        .unwrap();
    let u = format!(r"Microsoft\Windows\CurrentVersion\Uninstall\{VMTOOLS_GUID}");
    h.create_key(&u).unwrap();
    h.set_value(&u, "DisplayName", &Value::String("VMware Tools".into()))
        .unwrap();
    h.set_value(
        &u,
        "UninstallString",
        &Value::ExpandString(format!("MsiExec.exe /X{VMTOOLS_GUID}")),
    )
    .unwrap();
    h.create_key(r"hyper2kvm\Temporary").unwrap();
    h.set_value(
        r"hyper2kvm\Temporary",
        "Keys",
        &Value::MultiString(vec![TEMP_KEY.into()]),
    )
    .unwrap();
    let p = dir.join("SOFTWARE");
    h.write_to(&p).unwrap();
    p
}

/// The install as inspection describes it from the hives.
fn inspect(
    sys: &Hive,
    soft: &Hive,
    os: &str,
    major: u32,
    minor: u32,
    build: u32,
) -> WindowsInstall {
    let cs = controlset::read(sys).unwrap();
    let ccs = cs.in_use[0].clone();
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
        product_name: os.into(),
        os_id: os.into(),
        major,
        minor,
        build,
        installation_type: Some("Client".into()),
        edition_id: None,
        arch: controlset::env_arch(sys, &ccs).unwrap_or(Arch::Amd64),
        hostname: controlset::hostname(sys, &ccs),
        nics: nics::read(sys, &ccs),
        foreign_tools: tools::read(sys, Some(soft), &ccs),
        blockers: vec![],
        facts: blockers::facts(sys, &ccs),
        control_sets: cs,
        storage_drivers: vec![],
        boot_storage: vec![],
        virtio_ready: false,
    }
}

fn opts() -> FirstBootOptions {
    FirstBootOptions {
        drivers: vec![
            StagedDriver {
                name: "viostor".into(),
                inf: "viostor.inf".into(),
                required: true,
            },
            StagedDriver {
                name: "NetKVM".into(),
                inf: "netkvm.inf".into(),
                required: false,
            },
        ],
        storage_service: Some("viostor".into()),
        ..Default::default()
    }
}

// ---- hivex read-back --------------------------------------------------

/// The strings of a `hex(7):` (or `hex(1)`) export text.
fn strings(text: &str) -> Vec<String> {
    if let Some(s) = text.strip_prefix('"') {
        return vec![s.trim_end_matches('"').replace("\\\\", "\\")];
    }
    let hex = text.split_once(':').map(|x| x.1).unwrap_or("");
    let b: Vec<u8> = hex
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    let u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    u.split(|&c| c == 0)
        .filter(|p| !p.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

fn hivexget(hive: &Path, key: &str, value: &str) -> Option<String> {
    need("hivexget");
    let o = testkit::output_of(Command::new("hivexget").arg(hive).arg(key).arg(value));
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
}

const RETIRED: &[&str] = &[
    "vmmouse",
    "vmusbmouse",
    "vmci",
    "vsock",
    "vmhgfs",
    "vmmemctl",
    "vm3dmp",
    "pvscsi",
    "vmxnet3ndis6",
    "vboxmouse",
    "vboxsf",
    "prl_strg",
    "xenbus",
    "xenfilt",
    "xeniface",
    "xennet",
    "xenvbd",
    "xenvif",
];

struct Case {
    plan: FirstBootPlan,
    before_sys: Export,
    after_sys: Export,
    before_soft: Export,
    after_soft: Export,
    sys_after: PathBuf,
    soft_after: PathBuf,
    inst: WindowsInstall,
}

fn run(dir: &Path, sys_path: &Path, os: &str, ver: (u32, u32, u32)) -> Case {
    let soft_path = software(dir);
    run_with(dir, sys_path, &soft_path, os, ver)
}

/// [`run`] with a SOFTWARE hive of the caller's.
fn run_with(dir: &Path, sys_path: &Path, soft_path: &Path, os: &str, ver: (u32, u32, u32)) -> Case {
    let soft_path = soft_path.to_path_buf();
    let sys = Hive::from_file(sys_path).unwrap();
    let soft = Hive::from_file(&soft_path).unwrap();
    let inst = inspect(&sys, &soft, os, ver.0, ver.1, ver.2);
    let plan = plan_firstboot(&inst, &sys, &soft, &opts()).unwrap();
    let sys_after = dir.join("SYSTEM.after");
    let soft_after = dir.join("SOFTWARE.after");
    let n = apply(sys_path, &inst.system_hive, &plan.actions, &sys_after)
        + apply(&soft_path, &inst.software_hive, &plan.actions, &soft_after);
    let planned = plan
        .actions
        .iter()
        .filter(|a| a.action.hive().is_some())
        .count();
    assert_eq!(
        n, planned,
        "every planned registry action changes something"
    );
    // Idempotent: inspect the result, plan again, apply: nothing changes,
    // the runner is the same bytes.
    let sys2 = Hive::from_file(&sys_after).unwrap();
    let soft2 = Hive::from_file(&soft_after).unwrap();
    let inst2 = inspect(&sys2, &soft2, os, ver.0, ver.1, ver.2);
    let plan2 = plan_firstboot(&inst2, &sys2, &soft2, &opts()).unwrap();
    let regs: Vec<&PlannedAction> = plan2
        .actions
        .iter()
        .filter(|a| a.action.hive().is_some())
        .collect();
    assert!(
        regs.is_empty(),
        "second plan changes the registry: {regs:#?}"
    );
    assert_eq!(plan2.script, plan.script, "second plan, other runner");
    assert_eq!(plan2.launch, plan.launch);
    Case {
        before_sys: export(sys_path),
        after_sys: export(&sys_after),
        before_soft: export(&soft_path),
        after_soft: export(&soft_after),
        plan,
        sys_after,
        soft_after,
        inst,
    }
}

/// The undo list: every value that changed outside hyper2kvm's own keys
/// has its original recorded (or is listed as absent before).
fn check_undo_list(c: &Case) {
    // The undo list: every value that changed outside hyper2kvm's own
    // keys has its original recorded (or is listed as absent before).
    let backup = c.after_soft.get(r"hyper2kvm\backup").expect("undo list");
    let absent: Vec<String> = backup.get("absent").map(|t| strings(t)).unwrap_or_default();
    let mut checked = 0;
    for (root, before, after) in [
        ("SYSTEM", &c.before_sys, &c.after_sys),
        ("SOFTWARE", &c.before_soft, &c.after_soft),
    ] {
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for k in keys {
            if k.starts_with("hyper2kvm") || k.contains("\\services\\hyper2kvm-firstboot") {
                continue;
            }
            let (b, a) = (before.get(k), after.get(k));
            let names: std::collections::BTreeSet<&String> =
                b.into_iter().chain(a).flat_map(|m| m.keys()).collect();
            for n in names {
                let bv = b.and_then(|m| m.get(n));
                let av = a.and_then(|m| m.get(n));
                if bv == av {
                    continue;
                }
                let entry = format!("{root}\\{k}|{n}").to_lowercase();
                match bv {
                    Some(orig) => assert_eq!(
                        backup.get(&entry),
                        Some(orig),
                        "undo list lacks the original of {entry}"
                    ),
                    None => assert!(
                        absent.iter().any(|x| x.to_lowercase() == entry),
                        "undo list does not say {entry} was absent"
                    ),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 5, "{checked}");
}

/// Common checks on a case.
fn check(c: &Case) {
    let cs_all = &c.inst.control_sets.in_use;
    // Launch: Setup keys (both hives have a free Setup key).
    assert_eq!(c.plan.launch, Launch::SetupCmdLine);
    assert_eq!(
        hivexget(&c.sys_after, "Setup", "SetupType").as_deref(),
        Some("2")
    );
    assert_eq!(
        hivexget(&c.sys_after, "Setup", "CmdLine").as_deref(),
        Some(CMDLINE)
    );
    // No retired filter in any filter list, in any control set; every
    // retired service present is disabled.
    for (k, vals) in &c.after_sys {
        // live lists: class, device, CriticalDeviceDatabase (not the
        // DriverDatabase's package configurations, which the vendor's
        // uninstaller removes with its packages)
        let live = [
            "\\control\\class\\",
            "\\enum\\",
            "\\control\\criticaldevicedatabase\\",
        ];
        let in_cs = cs_all.iter().any(|cs| k.starts_with(&cs.to_lowercase()));
        if !(in_cs && live.iter().any(|l| k.contains(l))) {
            continue;
        }
        for list in ["upperfilters", "lowerfilters"] {
            if let Some(t) = vals.get(list) {
                for f in strings(t) {
                    assert!(
                        !RETIRED.contains(&f.to_ascii_lowercase().as_str()),
                        "{k}\\{list} still lists {f}"
                    );
                }
            }
        }
        for cs in cs_all {
            let svc = format!("{}\\services\\", cs.to_lowercase());
            if let Some(name) = k.strip_prefix(&svc) {
                if !name.contains('\\') && RETIRED.contains(&name) && vals.contains_key("start") {
                    assert_eq!(vals["start"], "dword:00000004", "{k}");
                }
            }
        }
    }
    check_undo_list(c);
    // Restrictions relaxed, restored by the final phase.
    let r = r"Policies\Microsoft\Windows\DeviceInstall\Restrictions";
    assert_eq!(
        val(&c.after_soft, r, "DenyDeviceIDs"),
        Some("dword:00000000")
    );
    assert_eq!(
        val(&c.after_soft, r, "DenyRemovableDevices"),
        Some("dword:00000000")
    );
    assert!(c.plan.script.contains(
        r#"reg add "HKLM\SOFTWARE\Policies\Microsoft\Windows\DeviceInstall\Restrictions" /v "DenyDeviceIDs" /t REG_DWORD /d 1 /f"#
    ));
    assert!(!c.plan.script.contains("DenyRemovableDevices"));
    // The uninstaller and the temporaries from the hive.
    assert!(c
        .plan
        .script
        .contains(&format!("/x {VMTOOLS_GUID} /qn /norestart")));
    assert!(c
        .plan
        .script
        .contains(&format!(r#"call :regdel "HKLM\{TEMP_KEY}""#)));
    // nothing else planned outside the two hives and the runner
    for a in &c.plan.actions {
        assert!(
            a.action.hive().is_some()
                || matches!(a.action, Action::PutFile { .. } | Action::FirstBoot { .. }),
            "{a:?}"
        );
    }
}

#[test]
fn win7_two_control_sets_vmmouse_static_nics_sanpolicy() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz("SYSTEM-win7.xz", d.path());
    // SanPolicy OfflineAll in both control sets, to see it relaxed and restored.
    {
        let mut h = Hive::from_file(&p).unwrap();
        for cs in ["ControlSet001", "ControlSet002"] {
            h.set_value(
                &format!(r"{cs}\Services\partmgr\Parameters"),
                "SanPolicy",
                &Value::Dword(3),
            )
            .unwrap();
        }
        h.write_to(&p).unwrap();
    }
    let c = run(d.path(), &p, "win7", (6, 1, 7601));
    check(&c);
    assert_eq!(
        c.inst.control_sets.in_use,
        vec!["ControlSet001", "ControlSet002"]
    );
    for cs in ["ControlSet001", "ControlSet002"] {
        // VMMouse was the only upper filter of the PS/2 mouse: the list is gone
        let mouse = format!(r"{cs}\Enum\ACPI\PNP0F13\4&25ee97c0&0");
        if cs == "ControlSet001" {
            assert!(c.before_sys.contains_key(&mouse.to_lowercase()));
        }
        if c.before_sys.contains_key(&mouse.to_lowercase()) {
            assert_eq!(
                strings(val(&c.before_sys, &mouse, "UpperFilters").unwrap()),
                vec!["VMMouse"]
            );
            assert_eq!(
                hivexget(&c.sys_after, &mouse, "UpperFilters"),
                None,
                "{mouse}"
            );
            let e = format!(r"SYSTEM\{mouse}|UpperFilters").to_lowercase();
            assert!(c.after_soft[r"hyper2kvm\backup"].contains_key(&e));
        }
        assert_eq!(
            hivexget(&c.sys_after, &format!(r"{cs}\services\vmmouse"), "Start").as_deref(),
            Some("4")
        );
        assert_eq!(
            hivexget(&c.sys_after, &format!(r"{cs}\services\vmci"), "Start").as_deref(),
            Some("4")
        );
        // SanPolicy OnlineAll now; the original is in the undo list
        let k = format!(r"{cs}\Services\partmgr\Parameters");
        assert_eq!(
            hivexget(&c.sys_after, &k, "SanPolicy").as_deref(),
            Some("1")
        );
        assert!(c.plan.script.contains(&format!(
            r#"reg add "HKLM\SYSTEM\{k}" /v "SanPolicy" /t REG_DWORD /d 3 /f"#
        )));
        // the stale bindings: DHCP, no address; the connection name freed
        for (guid, name) in [
            (
                "{6AAFC9A9-0542-4DB2-8760-CCFFA953737C}",
                "Local Area Connection",
            ),
            (
                "{698E50A9-4F58-4D86-B61D-F42E58DCACF6}",
                "Local Area Connection 2",
            ),
        ] {
            let t = format!(r"{cs}\Services\Tcpip\Parameters\Interfaces\{guid}");
            if !c.before_sys.contains_key(&t.to_lowercase()) {
                continue;
            }
            assert_eq!(
                hivexget(&c.sys_after, &t, "EnableDHCP").as_deref(),
                Some("1")
            );
            assert_eq!(hivexget(&c.sys_after, &t, "IPAddress"), None);
            let conn = format!(
                r"{cs}\Control\Network\{{4D36E972-E325-11CE-BFC1-08002BE10318}}\{guid}\Connection"
            );
            assert_eq!(
                hivexget(&c.sys_after, &conn, "Name"),
                Some(format!("{name} (old)"))
            );
        }
    }
    // the network table staged in SOFTWARE, read back by hivex
    let row = |i: usize, n: &str| {
        hivexget(
            &c.soft_after,
            &format!(r"hyper2kvm\FirstBoot\Network\{i:02}"),
            n,
        )
    };
    assert_eq!(
        row(0, "Guid").as_deref(),
        Some("{6AAFC9A9-0542-4DB2-8760-CCFFA953737C}")
    );
    assert_eq!(
        row(0, "Addresses").as_deref(),
        Some("192.168.1.123/255.255.255.0")
    );
    assert_eq!(row(0, "Gateways").as_deref(), Some("192.168.1.1"));
    assert_eq!(row(0, "Dns").as_deref(), Some("192.168.1.112"));
    assert_eq!(row(0, "Name").as_deref(), Some("Local Area Connection"));
    assert_eq!(
        row(0, "Order").as_deref(),
        Some("1"),
        "no MAC recorded: by order"
    );
    assert_eq!(
        row(1, "Addresses").as_deref(),
        Some("10.3.58.5/255.255.255.0")
    );
    assert!(c.plan.script.contains(r#"netsh interface ip set address "%H2K_IF%" static 192.168.1.123 255.255.255.0 192.168.1.1 1"#));
    assert!(c.plan.script.contains(
        r#"netsh interface ip set address "%H2K_IF%" static 10.3.58.5 255.255.255.0 10.3.58.1 1"#
    ));
    assert!(c.plan.script.contains("call :nicbyorder 2"));
    assert!(c
        .plan
        .script
        .contains(r#"call :rename "Local Area Connection 2""#));
    assert!(c
        .plan
        .script
        .contains(r#"-i -a "%SystemRoot%\Drivers\VirtIO\NetKVM\netkvm.inf""#));
}

#[test]
fn win10_vmware_guest_filters_services_providers() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz("SYSTEM-win10-1709.xz", d.path());
    let c = run(d.path(), &p, "win10", (10, 0, 17134));
    check(&c);
    let cs = "ControlSet001";
    for svc in ["vmci", "vsock", "vmhgfs", "vmmouse", "vmusbmouse"] {
        let k = format!(r"{cs}\Services\{svc}");
        if c.before_sys.contains_key(&k.to_lowercase()) && val(&c.before_sys, &k, "Start").is_some()
        {
            assert_eq!(
                hivexget(&c.sys_after, &k, "Start").as_deref(),
                Some("4"),
                "{svc}"
            );
        }
    }
    for order in ["Order", "HwOrder"] {
        let k = format!(r"{cs}\Control\NetworkProvider\{order}");
        assert_eq!(
            hivexget(&c.sys_after, &k, "ProviderOrder").as_deref(),
            Some("P9NP,RDPNP,LanmanWorkstation,webclient")
        );
    }
    // the filters that named VMware drivers still hold their other entries
    let mut seen = 0;
    for (k, vals) in c
        .before_sys
        .iter()
        .filter(|(k, _)| k.starts_with("controlset001\\"))
    {
        for list in ["upperfilters", "lowerfilters"] {
            let Some(t) = vals.get(list) else { continue };
            let before = strings(t);
            if !before
                .iter()
                .any(|f| RETIRED.contains(&f.to_ascii_lowercase().as_str()))
            {
                continue;
            }
            seen += 1;
            let kept: Vec<String> = before
                .iter()
                .filter(|f| !RETIRED.contains(&f.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            let after = c.after_sys[k]
                .get(list)
                .map(|t| strings(t))
                .unwrap_or_default();
            assert_eq!(after, kept, "{k}\\{list}");
        }
    }
    assert!(seen >= 2, "VMMouse and VMUsbMouse filters: {seen}");
    // DHCP only: no network step, no binding touched
    assert!(c.plan.network.is_empty());
    assert!(!c.plan.script.contains("netsh interface ip"));
    assert!(!c.plan.script.contains("call :run net-"));
    // SanPolicy was OnlineAll already: not touched, not restored
    assert!(!c.plan.script.contains("SanPolicy"));
    assert!(c
        .plan
        .script
        .contains(r#"/add-driver "%SystemRoot%\Drivers\VirtIO\viostor\viostor.inf" /install"#));
}

#[test]
fn win7_in_oobe_gets_the_service_in_both_control_sets() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz("SYSTEM-win7.xz", d.path());
    {
        let mut h = Hive::from_file(&p).unwrap();
        h.set_value("Setup", "OOBEInProgress", &Value::Dword(1))
            .unwrap();
        h.write_to(&p).unwrap();
    }
    let soft_path = software(d.path());
    let sys = Hive::from_file(&p).unwrap();
    let soft = Hive::from_file(&soft_path).unwrap();
    let inst = inspect(&sys, &soft, "win7", 6, 1, 7601);
    let plan = plan_firstboot(&inst, &sys, &soft, &opts()).unwrap();
    assert_eq!(plan.launch, Launch::Service);
    let after = d.path().join("SYSTEM.after");
    apply(&p, &inst.system_hive, &plan.actions, &after);
    assert_eq!(hivexget(&after, "Setup", "SetupType").as_deref(), Some("0"));
    assert_eq!(hivexget(&after, "Setup", "CmdLine").as_deref(), Some(""));
    for cs in ["ControlSet001", "ControlSet002"] {
        let k = format!(r"{cs}\Services\hyper2kvm-firstboot");
        assert_eq!(hivexget(&after, &k, "Type").as_deref(), Some("16"));
        assert_eq!(hivexget(&after, &k, "Start").as_deref(), Some("2"));
        assert_eq!(hivexget(&after, &k, "ErrorControl").as_deref(), Some("0"));
        assert_eq!(
            hivexget(&after, &k, "ObjectName").as_deref(),
            Some("LocalSystem")
        );
        assert_eq!(
            hivexget(&after, &k, "ImagePath").as_deref(),
            Some(
                r#"%SystemRoot%\System32\cmd.exe /c start "" cmd.exe /c "%SystemRoot%\hyper2kvm\firstboot.cmd""#
            )
        );
        assert!(plan
            .script
            .contains(&format!(r#"call :regdel "HKLM\SYSTEM\{k}""#)));
    }
    assert!(plan.script.contains("sc delete hyper2kvm-firstboot"));
    assert!(!plan.script.contains(r#"reg add "HKLM\SYSTEM\Setup""#));
    // a second plan keeps the service (the Setup key being free or not)
    let sys2 = Hive::from_file(&after).unwrap();
    let plan2 = plan_firstboot(&inst, &sys2, &soft, &opts()).unwrap();
    assert_eq!(plan2.launch, Launch::Service);
}

// ---- Winsock catalog ----------------------------------------------------

/// The bytes of a `hex(N):` export text.
fn hex_bytes(text: &str) -> Vec<u8> {
    let hex = text.split_once(':').map(|x| x.1).unwrap_or("");
    hex.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| u8::from_str_radix(x.trim(), 16).unwrap())
        .collect()
}

const PC9: &str = r"ControlSet001\Services\WinSock2\Parameters\Protocol_Catalog9";

/// The `PackedCatalogItem`s of a catalog in export order of position
/// (keys `000000000001`…), and the count value.
fn catalog(e: &Export, cat: &str) -> (Vec<Vec<u8>>, Option<String>) {
    let mut items = Vec::new();
    for i in 1.. {
        let k = format!(r"{PC9}\{cat}\{i:012}");
        let Some(v) = val(e, &k, "PackedCatalogItem") else {
            break;
        };
        items.push(hex_bytes(v));
    }
    // nothing beyond the first gap
    let prefix = format!(r"{PC9}\{cat}\").to_lowercase();
    let n = e.keys().filter(|k| k.starts_with(&prefix)).count();
    assert_eq!(n, items.len(), "{cat}: keys not numbered 1..N");
    let count = if cat == "Catalog_Entries" {
        "Num_Catalog_Entries"
    } else {
        "Num_Catalog_Entries64"
    };
    (items, val(e, PC9, count).map(String::from))
}

fn is_vsock(item: &[u8]) -> bool {
    String::from_utf8_lossy(&item[..260])
        .to_ascii_lowercase()
        .contains("vsocklib.dll")
}

fn winsock_tools(inst: &WindowsInstall) -> Vec<(String, String)> {
    inst.foreign_tools
        .iter()
        .filter(|t| t.kind == "winsock-provider")
        .map(|t| (t.vendor.clone(), t.name.clone()))
        .collect()
}

#[test]
fn win10_vsock_winsock_providers_leave_both_catalogs() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz("SYSTEM-win10-1709.xz", d.path());
    let c = run(d.path(), &p, "win10", (10, 0, 17134));
    check(&c);
    // Inspection found them: two providers in each catalog.
    let v = |n: &str| ("vmware".to_string(), n.to_string());
    assert_eq!(
        winsock_tools(&c.inst),
        [
            v("vSockets DGRAM"),
            v("vSockets STREAM"),
            v("vSockets DGRAM"),
            v("vSockets STREAM")
        ]
    );
    for cat in ["Catalog_Entries", "Catalog_Entries64"] {
        let (before, n_before) = catalog(&c.before_sys, cat);
        let (after, n_after) = catalog(&c.after_sys, cat);
        assert_eq!(before.len(), 16);
        assert_eq!(n_before.as_deref(), Some("dword:00000010"));
        assert!(is_vsock(&before[14]) && is_vsock(&before[15]));
        // the last two went; the others are byte for byte as they were
        assert_eq!(after, before[..14].to_vec(), "{cat}");
        assert_eq!(n_after.as_deref(), Some("dword:0000000e"), "{cat}");
    }
    // the id counter is not a count: untouched
    assert_eq!(
        val(&c.after_sys, PC9, "Next_Catalog_Entry_ID"),
        val(&c.before_sys, PC9, "Next_Catalog_Entry_ID")
    );
    // the deleted entries' values are in the undo list
    let backup = c.after_soft.get(r"hyper2kvm\backup").unwrap();
    let e = format!(r"SYSTEM\{PC9}\Catalog_Entries\000000000015|PackedCatalogItem").to_lowercase();
    assert!(is_vsock(&hex_bytes(&backup[&e])));
    // and the result inspects clean
    let sys2 = Hive::from_file(&c.sys_after).unwrap();
    let soft2 = Hive::from_file(&c.soft_after).unwrap();
    let inst2 = inspect(&sys2, &soft2, "win10", 10, 0, 17134);
    assert!(winsock_tools(&inst2).is_empty());
}

#[test]
fn vsock_providers_in_the_middle_are_removed_and_the_rest_renumbered() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz("SYSTEM-win10-1709.xz", d.path());
    let orig = export(&p);
    // Swap entries 2 (AF_UNIX) and 15 (vSockets DGRAM) in Catalog_Entries;
    // in Catalog_Entries64 make entry 1 a layered chain over the vsock
    // provider's id, which makes removing it unsafe.
    let key = |cat: &str, i: u32| format!(r"{PC9}\{cat}\{i:012}");
    let item =
        |cat: &str, i: u32| hex_bytes(val(&orig, &key(cat, i), "PackedCatalogItem").unwrap());
    let (e2, e15) = (item("Catalog_Entries", 2), item("Catalog_Entries", 15));
    let vsock_id = u32::from_le_bytes(item("Catalog_Entries64", 15)[296..300].try_into().unwrap());
    let mut layered = item("Catalog_Entries64", 1);
    layered[300..304].copy_from_slice(&2u32.to_le_bytes());
    layered[308..312].copy_from_slice(&vsock_id.to_le_bytes());
    {
        let mut h = Hive::from_file(&p).unwrap();
        let set = |h: &mut Hive, k: &str, n: &str, b: &[u8]| {
            h.set_value(
                k,
                n,
                &Value::Raw {
                    kind: 3,
                    data: b.to_vec(),
                },
            )
            .unwrap()
        };
        set(
            &mut h,
            &key("Catalog_Entries", 2),
            "PackedCatalogItem",
            &e15,
        );
        set(
            &mut h,
            &key("Catalog_Entries", 15),
            "PackedCatalogItem",
            &e2,
        );
        // ProtocolName moves with the item
        let pn = |i| hex_bytes(val(&orig, &key("Catalog_Entries", i), "ProtocolName").unwrap());
        let (n2, n15) = (pn(2), pn(15));
        h.set_value_raw(&key("Catalog_Entries", 2), "ProtocolName", 1, &n15)
            .unwrap();
        h.set_value_raw(&key("Catalog_Entries", 15), "ProtocolName", 1, &n2)
            .unwrap();
        set(
            &mut h,
            &key("Catalog_Entries64", 1),
            "PackedCatalogItem",
            &layered,
        );
        h.write_to(&p).unwrap();
    }
    let c = run(d.path(), &p, "win10", (10, 0, 17134));
    check(&c);
    let (before, _) = catalog(&c.before_sys, "Catalog_Entries");
    let (after, n) = catalog(&c.after_sys, "Catalog_Entries");
    let want: Vec<Vec<u8>> = before.iter().filter(|i| !is_vsock(i)).cloned().collect();
    assert_eq!(want.len(), 14);
    assert_eq!(after, want);
    assert_eq!(after[13], e2, "AF_UNIX moved from 15 to 14");
    assert_eq!(n.as_deref(), Some("dword:0000000e"));
    // the second value moved with its entry
    assert_eq!(
        val(&c.after_sys, &key("Catalog_Entries", 14), "ProtocolName"),
        val(&orig, &key("Catalog_Entries", 2), "ProtocolName")
    );
    // Catalog_Entries64: left alone, with a warning naming the reason
    let (b64, nb) = catalog(&c.before_sys, "Catalog_Entries64");
    let (a64, na) = catalog(&c.after_sys, "Catalog_Entries64");
    assert_eq!(a64, b64);
    assert_eq!(na, nb);
    assert!(
        c.plan
            .warnings
            .iter()
            .any(|w| w.contains("Catalog_Entries64") && w.contains("layered provider")),
        "{:?}",
        c.plan.warnings
    );
}

// ---- Xen ----------------------------------------------------------------

#[test]
fn xen_pv_drivers_lose_their_filters_before_their_services_are_disabled() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz("SYSTEM-win7.xz", d.path());
    const SYSTEM_CLASS: &str = r"Control\Class\{4d36e97d-e325-11ce-bfc1-08002be10318}";
    const HDC_CLASS: &str = r"Control\Class\{4d36e96a-e325-11ce-bfc1-08002be10318}";
    let citrix = "{A7B2C3D4-1111-2222-3333-444455556666}";
    {
        let mut h = Hive::from_file(&p).unwrap();
        for cs in ["ControlSet001", "ControlSet002"] {
            for (svc, start) in [
                ("xenbus", 0),
                ("xenfilt", 0),
                ("xenvbd", 0),
                ("xenvif", 3),
                ("xennet", 3),
                ("xeniface", 3),
            ] {
                let k = format!(r"{cs}\Services\{svc}");
                h.create_key(&k).unwrap();
                h.set_value(&k, "Start", &Value::Dword(start)).unwrap();
                h.set_value(&k, "Type", &Value::Dword(1)).unwrap();
            }
            for class in [SYSTEM_CLASS, HDC_CLASS] {
                let k = format!(r"{cs}\{class}");
                let cur = h
                    .get_key(&k)
                    .unwrap()
                    .and_then(|k| k.value("UpperFilters").ok().flatten())
                    .and_then(|v| v.data().ok());
                let mut list = match cur {
                    Some(Value::MultiString(l)) => l,
                    _ => vec![],
                };
                list.push("xenfilt".into());
                h.set_value(&k, "UpperFilters", &Value::MultiString(list))
                    .unwrap();
            }
        }
        h.write_to(&p).unwrap();
    }
    let soft = software(d.path());
    {
        let mut h = Hive::from_file(&soft).unwrap();
        let u = format!(r"Microsoft\Windows\CurrentVersion\Uninstall\{citrix}");
        h.create_key(&u).unwrap();
        h.set_value(
            &u,
            "DisplayName",
            &Value::String("Citrix XenServer Windows Management Agent".into()),
        )
        .unwrap();
        h.set_value(
            &u,
            "UninstallString",
            &Value::ExpandString(format!("MsiExec.exe /X{citrix}")),
        )
        .unwrap();
        h.write_to(&soft).unwrap();
    }
    let c = run_with(d.path(), &p, &soft, "win7", (6, 1, 7601));
    // check(): no xen filter in any list, every xen service at Start=4, in
    // both control sets; the undo list complete
    check(&c);
    let xen: Vec<_> = c
        .inst
        .foreign_tools
        .iter()
        .filter(|t| t.vendor == "xen")
        .map(|t| format!("{} {}", t.kind, t.name))
        .collect();
    assert!(xen.contains(&"filter xenfilt".to_string()), "{xen:?}");
    assert!(
        xen.contains(&"uninstall Citrix XenServer Windows Management Agent".to_string()),
        "{xen:?}"
    );
    for cs in ["ControlSet001", "ControlSet002"] {
        for class in [SYSTEM_CLASS, HDC_CLASS] {
            let k = format!(r"{cs}\{class}");
            let before = strings(val(&c.before_sys, &k, "UpperFilters").unwrap());
            let want: Vec<String> = before.into_iter().filter(|f| f != "xenfilt").collect();
            let after = val(&c.after_sys, &k, "UpperFilters")
                .map(strings)
                .unwrap_or_default();
            assert_eq!(after, want, "{k}");
        }
        for svc in [
            "xenbus", "xenfilt", "xenvbd", "xenvif", "xennet", "xeniface",
        ] {
            assert_eq!(
                hivexget(&c.sys_after, &format!(r"{cs}\Services\{svc}"), "Start").as_deref(),
                Some("4"),
                "{cs} {svc}"
            );
        }
    }
    // Order: every filter edit comes before the first Start=4.
    let pos = |pred: &dyn Fn(&Action) -> bool| c.plan.actions.iter().position(|a| pred(&a.action));
    let last_filter = c
        .plan
        .actions
        .iter()
        .rposition(|a| matches!(&a.action, Action::SetValue { name, .. } | Action::DeleteValue { name, .. } if name.ends_with("Filters")))
        .unwrap();
    let first_start =
        pos(&|a| matches!(a, Action::SetValue { name, .. } if name == "Start")).unwrap();
    assert!(last_filter < first_start, "{last_filter} {first_start}");
    // The Citrix uninstaller runs quietly at the first boot.
    assert!(
        c.plan
            .script
            .contains(&format!("/x {citrix} /qn /norestart")),
        "{}",
        c.plan.script
    );
}
