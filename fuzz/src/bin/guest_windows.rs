#![no_main]
//! Windows inspection's parsers of untrusted bytes: the PE header
//! (`ntoskrnl.exe`), `boot.ini`, the `hiberfil.sys` header, and every fact
//! reader over a SYSTEM/SOFTWARE/BCD hive (control sets, storage drivers,
//! NICs, foreign tools, blockers, version): errors and absent facts are
//! fine, panics and unbounded work are not.
use guest::windows::{blockers, boot, bootdrivers, controlset, letters, nics, pe, tools, version};
use libfuzzer_sys::fuzz_target;
use regf::{Hive, ReplayPolicy, Value};

/// A small hive with the keys the readers look at, whose cells the fuzzer
/// can overwrite directly.
fn sample() -> Vec<u8> {
    static CACHE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    CACHE.get_or_init(build).clone()
}

fn build() -> Vec<u8> {
    let mut h = Hive::new_empty("ROOT").unwrap();
    let s = |h: &mut Hive, k: &str, n: &str, v: Value| {
        h.create_key(k).unwrap();
        h.set_value(k, n, &v).unwrap();
    };
    s(&mut h, "Select", "Current", Value::Dword(1));
    s(&mut h, "Select", "LastKnownGood", Value::Dword(2));
    s(
        &mut h,
        "MountedDevices",
        "\\DosDevices\\C:",
        Value::Binary(vec![0x3e, 0xa0, 0xbe, 0x5c, 0, 0, 0x10, 0, 0, 0, 0, 0]),
    );
    s(&mut h, "ControlSet002", "x", Value::Dword(0));
    let cs = "ControlSet001";
    s(
        &mut h,
        &format!("{cs}\\Services\\viostor"),
        "Start",
        Value::Dword(0),
    );
    s(
        &mut h,
        &format!("{cs}\\Services\\viostor\\StartOverride"),
        "0",
        Value::Dword(3),
    );
    s(
        &mut h,
        &format!("{cs}\\Services\\vmci"),
        "ImagePath",
        Value::ExpandString("\\??\\C:\\x.sys".into()),
    );
    let net = format!("{cs}\\Control\\Class\\{}\\0000", nics::NET_CLASS);
    s(
        &mut h,
        &net,
        "NetCfgInstanceId",
        Value::String("{G}".into()),
    );
    s(&mut h, &net, "Characteristics", Value::Dword(4));
    s(
        &mut h,
        &net,
        "NetworkAddress",
        Value::String("005056010203".into()),
    );
    s(
        &mut h,
        &net,
        "DeviceInstanceID",
        Value::String("PCI\\V\\1".into()),
    );
    s(
        &mut h,
        &format!("{cs}\\Enum\\PCI\\V\\1"),
        "Service",
        Value::String("viostor".into()),
    );
    s(
        &mut h,
        &format!("{cs}\\Enum\\ACPI\\PNP0F13\\1"),
        "UpperFilters",
        Value::MultiString(vec!["VMMouse".into()]),
    );
    let tcp = format!("{cs}\\Services\\Tcpip\\Parameters\\Interfaces\\{{G}}");
    s(
        &mut h,
        &tcp,
        "IPAddress",
        Value::MultiString(vec!["192.0.2.1".into()]),
    );
    s(
        &mut h,
        &tcp,
        "NameServer",
        Value::String("192.0.2.9,192.0.2.8".into()),
    );
    s(
        &mut h,
        &format!("{cs}\\Control\\Session Manager"),
        "PendingFileRenameOperations",
        Value::MultiString(vec!["a".into(), "b".into()]),
    );
    s(
        &mut h,
        &format!("{cs}\\Control\\CriticalDeviceDatabase\\pci#ven_1af4&dev_1001"),
        "Service",
        Value::String("viostor".into()),
    );
    s(
        &mut h,
        "Microsoft\\Windows NT\\CurrentVersion",
        "CurrentVersion",
        Value::String("6.1".into()),
    );
    s(
        &mut h,
        "Microsoft\\Windows\\CurrentVersion\\Uninstall\\X",
        "DisplayName",
        Value::String("VMware Tools".into()),
    );
    s(
        &mut h,
        &format!("Objects\\{}\\Elements\\23000003", boot::BOOTMGR),
        "Element",
        Value::String("{L}".into()),
    );
    s(
        &mut h,
        "Objects\\{L}\\Elements\\22000002",
        "Element",
        Value::String("\\Windows".into()),
    );
    h.commit()
}

fuzz_target!(|data: &[u8]| {
    let _ = pe::machine(data);
    let _ = boot::boot_ini_roots(data);
    let _ = blockers::hiber_state(data);
    let bytes = if data.starts_with(b"regf") || data.len() < 2 {
        data.to_vec()
    } else {
        let mut b = sample();
        let at = 4096 + (u16::from_le_bytes([data[0], data[1]]) as usize * 8) % (b.len() - 4096);
        for (i, &x) in data[2..].iter().enumerate() {
            if let Some(t) = b.get_mut(at + i) {
                *t = x;
            }
        }
        b
    };
    let Ok((h, _)) = Hive::open_with_logs(bytes, &[], ReplayPolicy::IgnoreLogs) else {
        return;
    };
    let ccs = controlset::read(&h)
        .map(|c| c.in_use[0].clone())
        .unwrap_or_else(|| "ControlSet001".into());
    let _ = controlset::hostname(&h, &ccs);
    let _ = controlset::env_arch(&h, &ccs);
    let drv: Vec<_> = bootdrivers::STORAGE_DRIVERS
        .iter()
        .filter_map(|n| bootdrivers::service_state(&h, &ccs, n, "Windows", &|p| p.len() % 2 == 0))
        .collect();
    let inst = bootdrivers::enum_instances(&h, &ccs);
    let bound = bootdrivers::bound_services(&inst);
    let _ = bootdrivers::boot_storage(&drv, &bound);
    let _ = bootdrivers::virtio_ready(&h, &ccs, &drv, &bound);
    let _ = nics::read(&h, &ccs);
    let _ = tools::read(&h, Some(&h), &ccs);
    let _ = blockers::from_hives(&h, Some(&h), &ccs);
    let _ = blockers::facts(&h, &ccs);
    if let Some(v) = version::read(&h) {
        let _ = v.os_id();
    }
    let _ = boot::bcd_roots(&h);
    let _ = letters::parse_mounted(data);
    let layout = letters::Layout {
        volume: guest::plan::VolumeRef {
            disk: 0,
            partition: Some(1),
        },
        mbr_signature: Some(0x5cbea03e),
        start: 1 << 20,
        gpt_guid: Some("12345678-1234-5678-9ABC-DEF012345678".into()),
    };
    let _ = letters::drive_letters(&h, &[layout]);
});
