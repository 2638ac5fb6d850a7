//! Boot storage drivers: which are installed, how they start, which serve
//! the boot disk today, and whether VirtIO storage is boot-ready.

use super::reg;
use crate::inspect::ServiceState;
use regf::{Hive, Key};
use std::collections::BTreeSet;

/// Storage controller drivers inspection reports (service key names).
pub const STORAGE_DRIVERS: &[&str] = &[
    // IDE / SATA
    "atapi",
    "intelide",
    "pciide",
    "msahci",
    "storahci",
    "iaStorV",
    "iaStorAV",
    "iaStor",
    "iaStorA",
    "amdsata",
    "nvstor",
    // SCSI / SAS / RAID
    "LSI_SAS",
    "LSI_SAS2",
    "LSI_SAS2i",
    "LSI_SAS3",
    "LSI_SAS3i",
    "LSI_SSS",
    "LSI_SCSI",
    // LSI Logic SCSI on NT 5 (VMware's driver disk for XP, inbox on 2003)
    "symmpi",
    "LSI_FC",
    "megasas",
    "megasas2i",
    "megasas35i",
    "megasr",
    "percsas2i",
    "percsas3i",
    "BusLogic",
    "aic78xx",
    "arcsas",
    // hypervisors' paravirtual controllers
    "pvscsi",
    "vmscsi",
    "storvsc",
    "xenvbd",
    "viostor",
    "vioscsi",
    // NVMe
    "stornvme",
];

/// VirtIO storage drivers and the PCI device ids they bind
/// (transitional, modern).
pub const VIRTIO_STORAGE: &[(&str, &[&str])] = &[
    ("viostor", &["VEN_1AF4&DEV_1001", "VEN_1AF4&DEV_1042"]),
    ("vioscsi", &["VEN_1AF4&DEV_1004", "VEN_1AF4&DEV_1048"]),
];

/// The path of a driver's file on the system volume (`/`-separated, from
/// the volume root) from its `ImagePath` (default
/// `System32\drivers\<name>.sys`).
pub fn driver_file(systemroot: &str, name: &str, image_path: Option<&str>) -> String {
    let ip = image_path.unwrap_or("").trim().replace('\\', "/");
    if ip.is_empty() {
        return format!("{systemroot}/System32/drivers/{name}.sys");
    }
    let lower = ip.to_ascii_lowercase();
    for prefix in ["/systemroot/", "%systemroot%/", "%windir%/"] {
        if lower.starts_with(prefix) {
            return format!("{systemroot}/{}", &ip[prefix.len()..]);
        }
    }
    let drive = ip.strip_prefix("/??/").unwrap_or(&ip);
    if drive.len() > 3 && drive.as_bytes()[1] == b':' && drive.as_bytes()[2] == b'/' {
        return drive[3..].to_string();
    }
    format!("{systemroot}/{}", ip.trim_start_matches('/'))
}

/// The state of service `name` in control set `ccs`, `None` when the
/// service key does not exist. `exists` answers whether a volume path
/// exists.
pub fn service_state(
    system: &Hive,
    ccs: &str,
    name: &str,
    systemroot: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Option<ServiceState> {
    let k = reg::key(system, &format!("{ccs}\\Services\\{name}"))?;
    let image_path = reg::string(&k, "ImagePath").filter(|s| !s.is_empty());
    let file = driver_file(systemroot, name, image_path.as_deref());
    Some(ServiceState {
        name: reg::name(&k),
        start: reg::dword(&k, "Start"),
        start_override: reg::sub(&k, "StartOverride")
            .map(|o| reg::dwords(&o))
            .unwrap_or_default(),
        group: reg::string(&k, "Group").filter(|s| !s.is_empty()),
        image_path,
        file_present: exists(&file),
    })
}

/// Every device instance under `Enum` (`Enum\<bus>\<device>\<instance>`)
/// as (instance path, key).
pub fn enum_instances<'h>(system: &'h Hive, ccs: &str) -> Vec<(String, Key<'h>)> {
    let mut out = Vec::new();
    let Some(en) = reg::key(system, &format!("{ccs}\\Enum")) else {
        return out;
    };
    for bus in reg::subkeys(&en) {
        let b = reg::name(&bus);
        for dev in reg::subkeys(&bus) {
            let d = reg::name(&dev);
            for inst in reg::subkeys(&dev) {
                out.push((format!("{b}\\{d}\\{}", reg::name(&inst)), inst));
            }
        }
    }
    out
}

/// Service names bound to a device instance in `Enum` (lower case).
/// `Root\LEGACY_*` instances only record that a legacy service was
/// started, not a device it drives: they do not count.
pub fn bound_services(instances: &[(String, Key<'_>)]) -> BTreeSet<String> {
    instances
        .iter()
        .filter(|(p, _)| !p.to_ascii_uppercase().starts_with("ROOT\\LEGACY_"))
        .filter_map(|(_, k)| reg::string(k, "Service"))
        .map(|s| s.to_ascii_lowercase())
        .collect()
}

/// The Start value Windows uses at boot: `StartOverride\0` (Windows 8+:
/// set to 3 on boot drivers no device used, e.g. storvsc, stornvme,
/// pciide) wins over `Start`.
pub fn effective_start(d: &ServiceState) -> Option<u32> {
    d.start_override
        .iter()
        .find(|(n, _)| n == "0")
        .map(|&(_, v)| v)
        .or(d.start)
}

/// Storage drivers that serve the boot disk today: boot start (Start=0,
/// not overridden by `StartOverride`) and bound to a device instance in
/// `Enum`; when `Enum` binds none of them (a hive without device history),
/// every boot-start storage driver.
pub fn boot_storage(drivers: &[ServiceState], bound: &BTreeSet<String>) -> Vec<String> {
    let boot: Vec<&ServiceState> = drivers
        .iter()
        .filter(|d| effective_start(d) == Some(0))
        .collect();
    let bound_boot: Vec<String> = boot
        .iter()
        .filter(|d| bound.contains(&d.name.to_ascii_lowercase()))
        .map(|d| d.name.clone())
        .collect();
    if bound_boot.is_empty() {
        boot.iter().map(|d| d.name.clone()).collect()
    } else {
        bound_boot
    }
}

/// Whether a VirtIO storage driver is installed at Start=0 with its file
/// and bound to its PCI ids (CriticalDeviceDatabase before Windows 8,
/// DriverDatabase after, or a device instance that already used it).
pub fn virtio_ready(
    system: &Hive,
    ccs: &str,
    drivers: &[ServiceState],
    bound: &BTreeSet<String>,
) -> bool {
    let cdd = reg::key(system, &format!("{ccs}\\Control\\CriticalDeviceDatabase"));
    let cdd_names: Vec<(String, Option<String>)> = cdd
        .map(|c| {
            reg::subkeys(&c)
                .iter()
                .map(|k| (reg::name(k).to_ascii_uppercase(), reg::string(k, "Service")))
                .collect()
        })
        .unwrap_or_default();
    let ddb: Vec<String> = reg::key(system, "DriverDatabase\\DeviceIds\\PCI")
        .map(|k| {
            reg::subkeys(&k)
                .iter()
                .map(|k| reg::name(k).to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_default();
    VIRTIO_STORAGE.iter().any(|(svc, ids)| {
        let Some(d) = drivers.iter().find(|d| d.name.eq_ignore_ascii_case(svc)) else {
            return false;
        };
        if effective_start(d) != Some(0) || !d.file_present {
            return false;
        }
        let in_cdd = cdd_names.iter().any(|(n, s)| {
            ids.iter().any(|id| n.starts_with(&format!("PCI#{id}")))
                && s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(svc))
        });
        let in_ddb = ddb.iter().any(|n| ids.iter().any(|id| n.starts_with(id)));
        in_cdd || in_ddb || bound.contains(*svc)
    })
}

#[cfg(test)]
mod tests {
    use super::driver_file;

    #[test]
    fn image_paths_resolve_on_the_system_volume() {
        assert_eq!(
            driver_file("Windows", "viostor", None),
            "Windows/System32/drivers/viostor.sys"
        );
        assert_eq!(
            driver_file("WINDOWS", "x", Some("system32\\DRIVERS\\x.sys")),
            "WINDOWS/system32/DRIVERS/x.sys"
        );
        assert_eq!(
            driver_file(
                "Windows",
                "x",
                Some("\\SystemRoot\\System32\\drivers\\y.sys")
            ),
            "Windows/System32/drivers/y.sys"
        );
        assert_eq!(
            driver_file("Windows", "x", Some("\\??\\C:\\Program Files\\V\\v.sys")),
            "Program Files/V/v.sys"
        );
        assert_eq!(
            driver_file("WINNT", "x", Some("%SystemRoot%\\system32\\drivers\\x.sys")),
            "WINNT/system32/drivers/x.sys"
        );
    }
}
