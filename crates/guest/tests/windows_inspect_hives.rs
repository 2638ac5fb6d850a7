//! The Windows fact readers on real hives (`../shared/testdata/hives`),
//! with values cross-checked against hivex (`hivexget`).

use guest::drivers::Arch;
use guest::inspect::{ControlSets, ServiceState, WindowsNic};
use guest::windows::{blockers, bootdrivers, controlset, hives, nics, tools};
use regf::Hive;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unxz(dir: &Path, name: &str) -> PathBuf {
    testkit::need("xz");
    let out = testkit::run_bytes(
        Command::new("xz")
            .arg("-dc")
            .arg(testkit::testdata(&format!("hives/{name}.xz"))),
    );
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

/// Open a real hive the way inspection does (no logs beside it).
fn open(dir: &Path, name: &str) -> (Hive, Option<guest::inspect::Blocker>, PathBuf) {
    let p = unxz(dir, name);
    let o = hives::open_bytes(std::fs::read(&p).unwrap(), &[], name).unwrap();
    (o.hive, o.blocker, p)
}

fn hivexget(hive: &Path, key: &str, value: &str) -> String {
    testkit::need("hivexget");
    testkit::run(Command::new("hivexget").arg(hive).arg(key).arg(value))
        .trim_end()
        .to_string()
}

fn storage(h: &Hive, ccs: &str) -> Vec<ServiceState> {
    bootdrivers::STORAGE_DRIVERS
        .iter()
        .filter_map(|n| bootdrivers::service_state(h, ccs, n, "Windows", &|_| true))
        .collect()
}

fn tool_set(t: &[guest::inspect::ForeignTool]) -> Vec<String> {
    let mut v: Vec<String> = t
        .iter()
        .map(|t| format!("{} {} {}", t.vendor, t.kind, t.name))
        .collect();
    v.sort();
    v
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn win7_32bit_facts() {
    let d = tempfile::tempdir().unwrap();
    let (h, dirty, p) = open(d.path(), "SYSTEM-win7");
    assert!(dirty.is_none(), "{dirty:?}");
    let cs = controlset::read(&h).unwrap();
    assert_eq!(
        cs,
        ControlSets {
            current: 1,
            default: 1,
            last_known_good: 2,
            in_use: strs(&["ControlSet001", "ControlSet002"]),
        }
    );
    assert_eq!(hivexget(&p, "Select", "LastKnownGood"), "2");
    let ccs = "ControlSet001";
    assert_eq!(
        controlset::hostname(&h, ccs).as_deref(),
        Some("WKS-WIN732BITA")
    );
    assert_eq!(
        hivexget(
            &p,
            "ControlSet001\\Control\\ComputerName\\ComputerName",
            "ComputerName"
        ),
        "WKS-WIN732BITA"
    );
    assert_eq!(controlset::env_arch(&h, ccs), Some(Arch::X86));

    let drv = storage(&h, ccs);
    let names: Vec<&str> = drv.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "atapi", "intelide", "pciide", "msahci", "iaStorV", "amdsata", "nvstor", "LSI_SAS",
            "LSI_SAS2", "LSI_SCSI", "LSI_FC", "megasas", "MegaSR", "aic78xx", "arcsas", "storvsc"
        ]
    );
    for d in &drv {
        let key = format!("ControlSet001\\Services\\{}", d.name);
        assert_eq!(
            d.start.unwrap().to_string(),
            hivexget(&p, &key, "Start"),
            "{key}"
        );
        assert!(
            d.start_override.is_empty(),
            "no StartOverride before Windows 8"
        );
    }
    let msahci = drv.iter().find(|d| d.name == "msahci").unwrap();
    assert_eq!(msahci.start, Some(3));
    assert_eq!(msahci.group.as_deref(), Some("SCSI Miniport"));
    assert_eq!(
        msahci.image_path.as_deref(),
        Some("\\SystemRoot\\system32\\drivers\\msahci.sys")
    );
    let inst = bootdrivers::enum_instances(&h, ccs);
    let bound = bootdrivers::bound_services(&inst);
    assert_eq!(
        bootdrivers::boot_storage(&drv, &bound),
        strs(&["atapi", "intelide", "LSI_SAS"])
    );
    assert!(!bootdrivers::virtio_ready(&h, ccs, &drv, &bound));

    let n = nics::read(&h, ccs);
    assert_eq!(
        n,
        vec![
            WindowsNic {
                guid: "{6AAFC9A9-0542-4DB2-8760-CCFFA953737C}".into(),
                connection_name: Some("Local Area Connection".into()),
                driver: Some("E1G60".into()),
                mac: None,
                dhcp: false,
                addresses: strs(&["192.168.1.123/255.255.255.0"]),
                gateways: strs(&["192.168.1.1"]),
                dns: strs(&["192.168.1.112"]),
            },
            WindowsNic {
                guid: "{698E50A9-4F58-4D86-B61D-F42E58DCACF6}".into(),
                connection_name: Some("Local Area Connection 2".into()),
                driver: Some("E1G60".into()),
                mac: None,
                dhcp: false,
                addresses: strs(&["10.3.58.5/255.255.255.0"]),
                gateways: strs(&["10.3.58.1"]),
                dns: strs(&["10.3.58.4"]),
            },
        ]
    );
    let tcpip = "ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces\\{6AAFC9A9-0542-4DB2-8760-CCFFA953737C}";
    assert_eq!(hivexget(&p, tcpip, "NameServer"), "192.168.1.112");

    let t = tools::read(&h, None, ccs);
    assert_eq!(
        tool_set(&t),
        strs(&[
            "vmware filter VMMouse",
            "vmware service VMMEMCTL",
            "vmware service VMTools",
            "vmware service VMUpgradeHelper",
            "vmware service vm3dmp",
            "vmware service vmci",
            "vmware service vmmouse",
            "vmware service vmrawdsk",
            "vmware winsock-provider VMCI sockets DGRAM",
            "vmware winsock-provider VMCI sockets STREAM",
        ])
    );
    let w = t.iter().find(|t| t.kind == "winsock-provider").unwrap();
    assert_eq!(
        w.location,
        "ControlSet001\\Services\\WinSock2\\Parameters\\Protocol_Catalog9\\Catalog_Entries\\000000000023"
    );
    let f = t.iter().find(|t| t.kind == "filter").unwrap();
    assert_eq!(
        f.location,
        "ControlSet001\\Enum\\ACPI\\PNP0F13\\4&25ee97c0&0\\UpperFilters"
    );
    assert_eq!(
        hivexget(
            &p,
            "ControlSet001\\Enum\\ACPI\\PNP0F13\\4&25ee97c0&0",
            "UpperFilters"
        ),
        "VMMouse"
    );
    assert!(blockers::from_hives(&h, None, ccs).is_empty());
    assert_eq!(
        blockers::facts(&h, ccs),
        vec![
            ("SanPolicy".to_string(), "1".to_string()),
            ("CrashControl.AutoReboot".into(), "1".into()),
            ("Setup.SetupType".into(), "0".into()),
            ("Setup.SystemSetupInProgress".into(), "0".into()),
            ("Setup.OOBEInProgress".into(), "0".into()),
            ("Setup.CmdLine".into(), "".into()),
            ("TimeZone".into(), "Eastern Standard Time".into()),
        ]
    );
}

#[test]
fn win10_1709_vmware_guest_facts() {
    let d = tempfile::tempdir().unwrap();
    let (h, dirty, p) = open(d.path(), "SYSTEM-win10-1709");
    // the corpus file is dirty (sequence numbers differ) and has no logs
    let dirty = dirty.expect("dirty hive reported");
    assert_eq!(dirty.id, "dirty-hive");
    assert!(dirty.refuse);
    let ccs = "ControlSet001";
    assert_eq!(
        controlset::read(&h).unwrap(),
        ControlSets {
            current: 1,
            default: 1,
            last_known_good: 1,
            in_use: strs(&["ControlSet001"]),
        }
    );
    assert_eq!(
        controlset::hostname(&h, ccs).as_deref(),
        Some("DESKTOP-2KGM189")
    );
    assert_eq!(controlset::env_arch(&h, ccs), Some(Arch::Amd64));

    let drv = storage(&h, ccs);
    let nvme = drv.iter().find(|d| d.name == "stornvme").unwrap();
    assert_eq!(nvme.start, Some(0));
    assert_eq!(nvme.start_override, vec![("0".to_string(), 3)]);
    assert_eq!(
        hivexget(&p, "ControlSet001\\Services\\stornvme\\StartOverride", "0"),
        "3"
    );
    let pvscsi = drv.iter().find(|d| d.name == "pvscsi").unwrap();
    assert_eq!(
        pvscsi.start, None,
        "the 1709 hive keeps only a pvscsi leftover"
    );
    for d in drv.iter().filter(|d| d.start.is_some()) {
        let key = format!("ControlSet001\\Services\\{}", d.name);
        assert_eq!(
            d.start.unwrap().to_string(),
            hivexget(&p, &key, "Start"),
            "{key}"
        );
    }
    let inst = bootdrivers::enum_instances(&h, ccs);
    let bound = bootdrivers::bound_services(&inst);
    assert_eq!(
        bootdrivers::boot_storage(&drv, &bound),
        strs(&["atapi", "intelide", "storahci", "LSI_SAS"])
    );
    assert!(!bootdrivers::virtio_ready(&h, ccs, &drv, &bound));

    assert_eq!(
        nics::read(&h, ccs),
        vec![WindowsNic {
            guid: "{5F3F359E-9D52-4566-9BEC-37EFDFB25ABE}".into(),
            connection_name: Some("Ethernet0".into()),
            driver: Some("e1i65x64".into()),
            mac: None,
            dhcp: true,
            addresses: vec![],
            gateways: strs(&["192.168.146.2"]),
            dns: vec![],
        }]
    );

    let t = tools::read(&h, None, ccs);
    let set = tool_set(&t);
    for want in [
        "vmware service pvscsi",
        "vmware service vmci",
        "vmware service vmmouse",
        "vmware service vsock",
        "vmware service vmhgfs",
        "vmware filter VMMouse",
        "vmware filter VMUsbMouse",
        "vmware network-provider vmhgfs",
        "vmware winsock-provider vSockets DGRAM",
        "vmware winsock-provider vSockets STREAM",
    ] {
        assert!(
            set.contains(&want.to_string()),
            "{want} missing from {set:?}"
        );
    }
    assert!(
        !set.iter().any(|s| s.starts_with("hyperv")),
        "inbox Hyper-V drivers of a guest that never ran on Hyper-V are not foreign tools: {set:?}"
    );
    // 22 + vsock's two providers in each of the two protocol catalogs
    assert_eq!(set.len(), 26, "{set:?}");
    assert_eq!(
        hivexget(
            &p,
            "ControlSet001\\Control\\NetworkProvider\\Order",
            "ProviderOrder"
        ),
        "P9NP,vmhgfs,RDPNP,LanmanWorkstation,webclient"
    );

    let b = blockers::from_hives(&h, None, ccs);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].id, "pending-rename");
    assert!(!b[0].refuse);
    // hivexsh prints each string of the pair list on its own line (empty
    // targets as empty lines), then one more newline
    testkit::need("hivexsh");
    let mut child = Command::new("hivexsh")
        .arg(&p)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"cd ControlSet001\\Control\\Session Manager\nlsval PendingFileRenameOperations\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = String::from_utf8(out.stdout).unwrap().lines().count();
    assert_eq!((lines - 1) / 2, 101);
    assert!(
        b[0].message
            .starts_with("101 file rename/delete operation(s)"),
        "{}",
        b[0].message
    );
    assert_eq!(blockers::hiberboot(&h, ccs), Some(1));
    assert_eq!(
        blockers::facts(&h, ccs),
        vec![
            ("HiberbootEnabled".to_string(), "1".to_string()),
            ("SanPolicy".into(), "1".into()),
            ("CrashControl.AutoReboot".into(), "1".into()),
            ("Setup.SetupType".into(), "0".into()),
            ("Setup.SystemSetupInProgress".into(), "0".into()),
            ("Setup.OOBEInProgress".into(), "0".into()),
            ("Setup.CmdLine".into(), "".into()),
            ("TimeZone".into(), "Pacific Standard Time".into()),
        ]
    );
}

#[test]
fn dirty_hive_with_usable_logs_is_replayed_and_only_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let primary = std::fs::read(unxz(d.path(), "dirty-NTUSER.DAT")).unwrap();
    let logs: Vec<regf::LogFile> = ["dirty-NTUSER.DAT.LOG1", "dirty-NTUSER.DAT.LOG2"]
        .iter()
        .map(|n| regf::LogFile {
            name: n.to_string(),
            bytes: std::fs::read(unxz(d.path(), n)).unwrap(),
        })
        .collect();
    let replayed = hives::open_bytes(primary.clone(), &logs, "NTUSER.DAT").unwrap();
    let b = replayed.blocker.expect("a dirty hive is reported");
    assert_eq!((b.id.as_str(), b.refuse), ("dirty-hive", false));
    let as_is = hives::open_bytes(primary, &[], "NTUSER.DAT").unwrap();
    let b = as_is.blocker.expect("a dirty hive is reported");
    assert_eq!((b.id.as_str(), b.refuse), ("dirty-hive", true));
    // the replayed hive carries the logged changes the primary lacks
    let dump = |h: &Hive| h.export_reg("", "HKEY_CURRENT_USER").unwrap();
    assert_ne!(dump(&replayed.hive), dump(&as_is.hive));
}

#[test]
fn inbox_hyper_v_drivers_count_as_foreign_only_once_bound_to_a_vmbus_device() {
    testkit::need("hivexregedit");
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win7");
    let reg = d.path().join("vmbus.reg");
    std::fs::write(
        &reg,
        "Windows Registry Editor Version 5.00\n\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Enum\\VMBUS]\n\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Enum\\VMBUS\\{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}]\n\n\
         [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Enum\\VMBUS\\{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}\\5&1]\n\
         \"Service\"=\"storvsc\"\n\n",
    )
    .unwrap();
    let before = {
        let h = hives::open_bytes(std::fs::read(&p).unwrap(), &[], "SYSTEM")
            .unwrap()
            .hive;
        tool_set(&tools::read(&h, None, "ControlSet001"))
    };
    testkit::run_tool(
        "hivexregedit",
        &[
            "--merge",
            "--prefix",
            "HKEY_LOCAL_MACHINE\\SYSTEM",
            p.to_str().unwrap(),
            reg.to_str().unwrap(),
        ],
    );
    assert_eq!(
        hivexget(
            &p,
            "ControlSet001\\Enum\\VMBUS\\{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}\\5&1",
            "Service"
        ),
        "storvsc"
    );
    let h = hives::open_bytes(std::fs::read(&p).unwrap(), &[], "SYSTEM")
        .unwrap()
        .hive;
    let after = tool_set(&tools::read(&h, None, "ControlSet001"));
    let added: Vec<&String> = after.iter().filter(|t| !before.contains(t)).collect();
    assert_eq!(
        added,
        [
            "hyperv service VMBusHID",
            "hyperv service storflt",
            "hyperv service storvsc",
            "hyperv service vmbus",
        ]
    );
    assert!(!before.iter().any(|t| t.starts_with("hyperv")));
}
