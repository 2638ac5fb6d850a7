//! The SYSTEM hive (derived from a real one) and the SOFTWARE hive (from
//! generated `.reg` text) of a phony guest.
//!
//! The real hives come from VMware guests: their VMware Tools and network
//! adapters are scrubbed first, then the variant's components are written
//! into every control set `Select` names, so that what the builder reports
//! is exactly what the hive holds.

use crate::versions::VersionInfo;
use crate::{Error, Hypervisor, Result};
use guest::drivers::Arch;
use guest::inspect::{ControlSets, ForeignTool, ServiceState, WindowsNic};
use regf::{Hive, Value};

/// Mouse class key.
pub const MOUSE_CLASS: &str = "Control\\Class\\{4D36E96F-E325-11CE-BFC1-08002BE10318}";
/// Network adapter class key.
pub const NET_CLASS: &str = "Control\\Class\\{4D36E972-E325-11CE-BFC1-08002BE10318}";
/// Network connections key.
pub const NET_CONNECTIONS: &str = "Control\\Network\\{4D36E972-E325-11CE-BFC1-08002BE10318}";

/// Storage driver services reported in [`crate::Expected::storage_drivers`]
/// when the hive has them.
pub const STORAGE_SERVICES: &[&str] = &[
    "atapi",
    "intelide",
    "pciide",
    "msahci",
    "storahci",
    "iaStorV",
    "amdsata",
    "LSI_SAS",
    "LSI_SAS2",
    "LSI_SAS2i",
    "LSI_SAS3",
    "LSI_SAS3i",
    "LSI_SCSI",
    "LSI_FC",
    "symmpi",
    "pvscsi",
    "vmscsi",
    "storvsc",
    "stornvme",
    "viostor",
    "vioscsi",
];

/// VMware components found in the real hives (removed before a variant
/// is applied).
const VMWARE_SERVICES: &[&str] = &[
    "VMTools",
    "VMUpgradeHelper",
    "VGAuthService",
    "vmci",
    "vmdebug",
    "vmmouse",
    "VMRawDsk",
    "vm3dmp",
    "vm3dmp_loader",
    "vm3dmp-debug",
    "vm3dmp-stats",
    "vm3dservice",
    "VMMEMCTL",
    "vmhgfs",
    "vmxnet3ndis6",
    "vmxnet",
    "VMUsbMouse",
    "vmvss",
    "vmwefifw",
    "vsock",
];

/// A service to create.
#[derive(Debug, Clone)]
pub struct Svc {
    /// Key name.
    pub name: &'static str,
    /// Type (1 kernel driver, 2 file system driver, 0x10 own process).
    pub kind: u32,
    /// Start.
    pub start: u32,
    /// Group.
    pub group: Option<&'static str>,
    /// ImagePath.
    pub image: String,
    /// DisplayName.
    pub display: &'static str,
}

fn drv(name: &'static str, start: u32, group: Option<&'static str>, display: &'static str) -> Svc {
    Svc {
        name,
        kind: 1,
        start,
        group,
        image: format!("System32\\drivers\\{}.sys", name.to_ascii_lowercase()),
        display,
    }
}

fn own(name: &'static str, image: &str, display: &'static str) -> Svc {
    Svc {
        name,
        kind: 0x10,
        start: 2,
        group: None,
        image: image.to_string(),
        display,
    }
}

/// The network adapter a guest gets.
#[derive(Debug, Clone)]
pub struct NicSpec {
    /// Interface GUID with braces.
    pub guid: String,
    /// Connection name.
    pub name: String,
    /// Driver service.
    pub driver: &'static str,
    /// Driver description.
    pub desc: &'static str,
    /// PCI hardware id.
    pub hwid: &'static str,
    /// `Some((address, mask, gateway, dns, mac))` for a static setup.
    pub static_ip: Option<StaticIp>,
}

/// A static IPv4 configuration.
#[derive(Debug, Clone)]
pub struct StaticIp {
    /// Address.
    pub address: String,
    /// Mask.
    pub mask: String,
    /// Default gateway.
    pub gateway: String,
    /// DNS servers.
    pub dns: Vec<String>,
    /// MAC recorded as `NetworkAddress` (`005056010203`).
    pub mac: String,
}

/// What goes into the SYSTEM hive.
#[derive(Debug, Clone)]
pub struct SystemSpec<'a> {
    /// Version facts.
    pub version: &'a VersionInfo,
    /// Architecture.
    pub arch: Arch,
    /// Host name.
    pub hostname: &'a str,
    /// Hypervisor whose components are installed.
    pub hypervisor: Hypervisor,
    /// Boot storage drivers (set to Start=0).
    pub boot_storage: Vec<&'static str>,
    /// The NIC.
    pub nic: NicSpec,
    /// Fast Startup on (Windows 8+).
    pub fast_startup: bool,
    /// `MountedDevices` values (name, data).
    pub mounted: Vec<(String, Vec<u8>)>,
}

/// Facts read back from the SYSTEM hive the builder made.
#[derive(Debug, Clone, Default)]
pub struct SystemFacts {
    /// `Select`.
    pub control_sets: ControlSets,
    /// Storage drivers present.
    pub storage: Vec<ServiceState>,
    /// Driver files to place (paths relative to the system root, `\`).
    pub driver_files: Vec<String>,
    /// Components of other hypervisors written.
    pub tools: Vec<ForeignTool>,
    /// The NIC as recorded.
    pub nic: WindowsNic,
}

fn sz(s: &str) -> Value {
    Value::String(s.to_string())
}

fn get_dword(h: &Hive, key: &str, name: &str) -> Result<Option<u32>> {
    let Some(k) = h.get_key(key)? else {
        return Ok(None);
    };
    match k.value(name)? {
        Some(v) => Ok(match v.data()? {
            Value::Dword(d) => Some(d),
            _ => None,
        }),
        None => Ok(None),
    }
}

fn get_str(h: &Hive, key: &str, name: &str) -> Result<Option<String>> {
    let Some(k) = h.get_key(key)? else {
        return Ok(None);
    };
    match k.value(name)? {
        Some(v) => Ok(v.data()?.as_str_lossy()),
        None => Ok(None),
    }
}

fn subkey_names(h: &Hive, key: &str) -> Result<Vec<String>> {
    let Some(k) = h.get_key(key)? else {
        return Ok(vec![]);
    };
    k.subkeys()?.iter().map(|s| Ok(s.name()?)).collect()
}

fn delete_if_present(h: &mut Hive, key: &str) -> Result<()> {
    if h.get_key(key)?.is_some() {
        h.delete_key(key, true)?;
    }
    Ok(())
}

/// The control sets `Select` names that exist.
pub fn control_sets(h: &Hive) -> Result<ControlSets> {
    let current = get_dword(h, "Select", "Current")?.unwrap_or(1);
    let default = get_dword(h, "Select", "Default")?.unwrap_or(current);
    let lkg = get_dword(h, "Select", "LastKnownGood")?.unwrap_or(0);
    let mut in_use = vec![];
    for n in [current, default, lkg] {
        let name = format!("ControlSet{n:03}");
        if n != 0 && !in_use.contains(&name) && h.get_key(&name)?.is_some() {
            in_use.push(name);
        }
    }
    Ok(ControlSets {
        current,
        default,
        last_known_good: lkg,
        in_use,
    })
}

fn set_multi(h: &mut Hive, key: &str, name: &str, v: &[&str]) -> Result<()> {
    h.set_value(
        key,
        name,
        &Value::MultiString(v.iter().map(|s| s.to_string()).collect()),
    )?;
    Ok(())
}

fn create_service(h: &mut Hive, cs: &str, s: &Svc) -> Result<()> {
    let k = format!("{cs}\\Services\\{}", s.name);
    h.create_key(&k)?;
    h.set_value(&k, "Type", &Value::Dword(s.kind))?;
    h.set_value(&k, "Start", &Value::Dword(s.start))?;
    h.set_value(&k, "ErrorControl", &Value::Dword(1))?;
    h.set_value(&k, "ImagePath", &Value::ExpandString(s.image.clone()))?;
    h.set_value(&k, "DisplayName", &sz(s.display))?;
    if let Some(g) = s.group {
        h.set_value(&k, "Group", &sz(g))?;
    }
    Ok(())
}

/// Remove the VMware Tools components and the network adapters the real
/// hive came with.
fn scrub(h: &mut Hive, cs: &str) -> Result<()> {
    for s in VMWARE_SERVICES {
        delete_if_present(h, &format!("{cs}\\Services\\{s}"))?;
    }
    let mc = format!("{cs}\\{MOUSE_CLASS}");
    if h.get_key(&mc)?.is_some() {
        set_multi(h, &mc, "UpperFilters", &["mouclass"])?;
    }
    // the real Windows 10 hive lists vmhgfs in HwOrder as well as Order
    for list in ["Order", "HwOrder"] {
        let order = format!("{cs}\\Control\\NetworkProvider\\{list}");
        if let Some(o) = get_str(h, &order, "ProviderOrder")? {
            let kept: Vec<&str> = o
                .split(',')
                .filter(|p| !p.eq_ignore_ascii_case("vmhgfs") && !p.is_empty())
                .collect();
            h.set_value(&order, "ProviderOrder", &sz(&kept.join(",")))?;
        }
    }
    // the real Windows 10 hive has a pvscsi key holding only VMware
    // Tools' installer marker (`vwdk.installers`), no service
    let pv = format!("{cs}\\Services\\pvscsi");
    if h.get_key(&pv)?.is_some() && get_dword(h, &pv, "Type")?.is_none() {
        h.delete_key(&pv, true)?;
    }
    scrub_device_filters(h, cs)?;
    // the real Windows 10 hive was captured with a driver update waiting
    // for a reboot: a phony guest is cleanly shut down
    let sm = format!("{cs}\\Control\\Session Manager");
    for v in [
        "PendingFileRenameOperations",
        "PendingFileRenameOperations2",
    ] {
        if h.get_key(&sm)?.is_some() {
            match h.delete_value(&sm, v) {
                Ok(()) => {}
                Err(e) if e.kind == regf::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let ifs = format!("{cs}\\Services\\Tcpip\\Parameters\\Interfaces");
    for g in subkey_names(h, &ifs)? {
        h.delete_key(&format!("{ifs}\\{g}"), true)?;
    }
    let class = format!("{cs}\\{NET_CLASS}");
    for inst in subkey_names(h, &class)? {
        let k = format!("{class}\\{inst}");
        let dev = get_str(h, &k, "DeviceInstanceID")?
            .or(get_str(h, &k, "ComponentId")?)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if dev.starts_with("PCI\\") || dev.starts_with("VMBUS\\") {
            if let Some(g) = get_str(h, &k, "NetCfgInstanceId")? {
                delete_if_present(h, &format!("{cs}\\{NET_CONNECTIONS}\\{g}"))?;
            }
            h.delete_key(&k, true)?;
        }
    }
    Ok(())
}

/// Remove the VMware Tools drivers from the device-level filter lists
/// (`Enum\<bus>\<device>\<instance>\UpperFilters`: the real hives' PS/2
/// mouse carries vmmouse there too).
fn scrub_device_filters(h: &mut Hive, cs: &str) -> Result<()> {
    let en = format!("{cs}\\Enum");
    for bus in subkey_names(h, &en)? {
        for dev in subkey_names(h, &format!("{en}\\{bus}"))? {
            for inst in subkey_names(h, &format!("{en}\\{bus}\\{dev}"))? {
                let k = format!("{en}\\{bus}\\{dev}\\{inst}");
                for list in ["UpperFilters", "LowerFilters"] {
                    let Some(key) = h.get_key(&k)? else { continue };
                    let Some(v) = key.value(list)? else { continue };
                    let Value::MultiString(names) = v.data()? else {
                        continue;
                    };
                    let kept: Vec<String> = names
                        .iter()
                        .filter(|n| !VMWARE_SERVICES.iter().any(|s| s.eq_ignore_ascii_case(n)))
                        .cloned()
                        .collect();
                    if kept.len() != names.len() {
                        h.set_value(&k, list, &Value::MultiString(kept))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The components each hypervisor's guest tools install, for `version`.
pub fn tool_services(hv: Hypervisor, v: &VersionInfo) -> Vec<Svc> {
    match hv {
        Hypervisor::None => vec![],
        Hypervisor::Vmware => vec![
            own(
                "VMTools",
                "\"C:\\Program Files\\VMware\\VMware Tools\\vmtoolsd.exe\"",
                "VMware Tools",
            ),
            drv(
                "vmci",
                0,
                Some("System Bus Extender"),
                "VMware VMCI Bus Driver",
            ),
            Svc {
                kind: 2,
                ..drv(
                    "vmhgfs",
                    1,
                    Some("Network"),
                    "VMware Host Guest File System",
                )
            },
            drv(
                "vmmouse",
                3,
                Some("Pointer Class"),
                "VMware Pointing Device",
            ),
            drv("VMMEMCTL", 2, None, "Memory Control Driver"),
            drv(
                if v.nt5 { "vmxnet" } else { "vmxnet3ndis6" },
                3,
                Some("NDIS"),
                "vmxnet3 NDIS 6 Ethernet Adapter Driver",
            ),
        ],
        // Windows 7 / 2008 R2 and later ship the Hyper-V integration
        // components inbox: only NT 5 guests have them installed
        Hypervisor::Hyperv if !v.nt5 => vec![],
        Hypervisor::Hyperv => {
            let ic = "%SystemRoot%\\System32\\svchost.exe -k ICService";
            vec![
                own("vmicheartbeat", ic, "Hyper-V Heartbeat Service"),
                own("vmicshutdown", ic, "Hyper-V Guest Shutdown Service"),
                own("vmickvpexchange", ic, "Hyper-V Data Exchange Service"),
                drv(
                    "vmbus",
                    0,
                    Some("System Bus Extender"),
                    "Virtual Machine Bus",
                ),
                drv("storvsc", 0, Some("SCSI miniport"), "storvsc"),
                drv("netvsc", 3, Some("NDIS"), "Virtual Machine Network Driver"),
            ]
        }
        Hypervisor::Virtualbox => vec![
            drv("VBoxGuest", 1, Some("Base"), "VirtualBox Guest Driver"),
            drv(
                "VBoxMouse",
                3,
                Some("Pointer Class"),
                "VirtualBox Guest Mouse Service",
            ),
            Svc {
                kind: 2,
                ..drv("VBoxSF", 1, Some("Network"), "VirtualBox Shared Folders")
            },
            own(
                "VBoxService",
                "%SystemRoot%\\System32\\VBoxService.exe",
                "VirtualBox Guest Additions Service",
            ),
        ],
    }
}

/// The (filter, network provider) the hypervisor's tools install.
fn tool_hooks(hv: Hypervisor) -> (Option<&'static str>, Option<&'static str>) {
    match hv {
        Hypervisor::Vmware => (Some("vmmouse"), Some("vmhgfs")),
        Hypervisor::Virtualbox => (Some("VBoxMouse"), Some("VBoxSF")),
        _ => (None, None),
    }
}

/// Vendor id of a hypervisor for [`ForeignTool::vendor`].
pub fn vendor(hv: Hypervisor) -> &'static str {
    match hv {
        Hypervisor::None => "none",
        Hypervisor::Vmware => "vmware",
        Hypervisor::Hyperv => "hyperv",
        Hypervisor::Virtualbox => "virtualbox",
    }
}

/// Inbox storage and NIC driver services the variant needs.
fn inbox_drivers(spec: &SystemSpec) -> Vec<Svc> {
    let mut out = vec![];
    for &b in &spec.boot_storage {
        out.push(drv(b, 0, Some("SCSI miniport"), b));
    }
    out.push(drv(spec.nic.driver, 3, Some("NDIS"), spec.nic.desc));
    out
}

fn write_nic(h: &mut Hive, cs: &str, nic: &NicSpec, index: usize) -> Result<()> {
    let class = format!("{cs}\\{NET_CLASS}\\{index:04}");
    h.create_key(&class)?;
    h.set_value(&class, "NetCfgInstanceId", &sz(&nic.guid))?;
    h.set_value(&class, "DriverDesc", &sz(nic.desc))?;
    h.set_value(&class, "ComponentId", &sz(nic.hwid))?;
    h.set_value(&class, "MatchingDeviceId", &sz(nic.hwid))?;
    let dev = format!(
        "PCI\\{}\\3&61AAA01&0&88",
        nic.hwid.trim_start_matches("pci\\")
    )
    .to_ascii_uppercase();
    h.set_value(&class, "DeviceInstanceID", &sz(&dev))?;
    h.set_value(&class, "Characteristics", &Value::Dword(0x84))?;
    if let Some(s) = &nic.static_ip {
        h.set_value(&class, "NetworkAddress", &sz(&s.mac))?;
    }
    let ndi = format!("{class}\\Ndi");
    h.create_key(&ndi)?;
    h.set_value(&ndi, "Service", &sz(nic.driver))?;
    let conn = format!("{cs}\\{NET_CONNECTIONS}\\{}\\Connection", nic.guid);
    h.create_key(&conn)?;
    h.set_value(&conn, "Name", &sz(&nic.name))?;
    h.set_value(&conn, "PnpInstanceID", &sz(&dev))?;
    let tk = format!(
        "{cs}\\Services\\Tcpip\\Parameters\\Interfaces\\{}",
        nic.guid
    );
    h.create_key(&tk)?;
    match &nic.static_ip {
        None => {
            h.set_value(&tk, "EnableDHCP", &Value::Dword(1))?;
        }
        Some(s) => {
            h.set_value(&tk, "EnableDHCP", &Value::Dword(0))?;
            set_multi(h, &tk, "IPAddress", &[&s.address])?;
            set_multi(h, &tk, "SubnetMask", &[&s.mask])?;
            set_multi(h, &tk, "DefaultGateway", &[&s.gateway])?;
            set_multi(h, &tk, "DefaultGatewayMetric", &["0"])?;
            h.set_value(&tk, "NameServer", &sz(&s.dns.join(",")))?;
        }
    }
    Ok(())
}

fn next_class_index(h: &Hive, cs: &str) -> Result<usize> {
    Ok(subkey_names(h, &format!("{cs}\\{NET_CLASS}"))?
        .iter()
        .filter_map(|n| n.parse::<usize>().ok())
        .max()
        .map(|n| n + 1)
        .unwrap_or(0))
}

/// Apply the variant to one control set.
fn apply_control_set(h: &mut Hive, cs: &str, spec: &SystemSpec) -> Result<()> {
    scrub(h, cs)?;
    let cn = format!("{cs}\\Control\\ComputerName\\ComputerName");
    h.create_key(&cn)?;
    h.set_value(&cn, "ComputerName", &sz(spec.hostname))?;
    let acn = format!("{cs}\\Control\\ComputerName\\ActiveComputerName");
    h.create_key(&acn)?;
    h.set_value(&acn, "ComputerName", &sz(spec.hostname))?;
    let tcp = format!("{cs}\\Services\\Tcpip\\Parameters");
    h.create_key(&tcp)?;
    // Windows 10 spells it "HostName"; libguestfs looks the value up
    // case-sensitively as "Hostname" (the Windows 7 spelling): write that
    // one so both it and Windows find the name
    for n in ["Hostname", "NV Hostname"] {
        match h.delete_value(&tcp, n) {
            Ok(()) => {}
            Err(e) if e.kind == regf::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        h.set_value(&tcp, n, &sz(spec.hostname))?;
    }
    let env = format!("{cs}\\Control\\Session Manager\\Environment");
    h.create_key(&env)?;
    let pa = if spec.arch == Arch::Amd64 {
        "AMD64"
    } else {
        "x86"
    };
    h.set_value(&env, "PROCESSOR_ARCHITECTURE", &sz(pa))?;
    if spec.version.major >= 10 || spec.version.base == crate::versions::BaseHive::Win10 {
        let p = format!("{cs}\\Control\\Session Manager\\Power");
        h.create_key(&p)?;
        h.set_value(
            &p,
            "HiberbootEnabled",
            &Value::Dword(u32::from(spec.fast_startup)),
        )?;
    }
    for s in inbox_drivers(spec)
        .iter()
        .chain(tool_services(spec.hypervisor, spec.version).iter())
    {
        let k = format!("{cs}\\Services\\{}", s.name);
        if s.kind == 1 && get_dword(h, &k, "Type")?.is_some() {
            h.set_value(&k, "Start", &Value::Dword(s.start))?;
        } else {
            create_service(h, cs, s)?;
        }
    }
    // Windows 8+ marks boot drivers no device used with
    // StartOverride\0=3 (storvsc, vmbus, stornvme in the real hive); the
    // drivers of the controllers this guest boots from have none
    let mut used: Vec<&str> = spec.boot_storage.clone();
    if spec.hypervisor == Hypervisor::Hyperv {
        used.push("vmbus");
    }
    for d in used {
        delete_if_present(h, &format!("{cs}\\Services\\{d}\\StartOverride"))?;
    }
    storage_controllers(h, cs, &spec.boot_storage)?;
    let (filter, provider) = tool_hooks(spec.hypervisor);
    if let Some(f) = filter {
        let mc = format!("{cs}\\{MOUSE_CLASS}");
        h.create_key(&mc)?;
        set_multi(h, &mc, "UpperFilters", &["mouclass", f])?;
    }
    if let Some(p) = provider {
        let order = format!("{cs}\\Control\\NetworkProvider\\Order");
        h.create_key(&order)?;
        let cur = get_str(h, &order, "ProviderOrder")?
            .unwrap_or_else(|| "RDPNP,LanmanWorkstation,webclient".into());
        h.set_value(&order, "ProviderOrder", &sz(&format!("{p},{cur}")))?;
    }
    let idx = next_class_index(h, cs)?;
    write_nic(h, cs, &spec.nic, idx)?;
    Ok(())
}

/// Drivers of the IDE controller every source here has (the CD-ROM's):
/// its device instances in the real hives are kept.
const IDE: &[&str] = &["atapi", "intelide"];

/// A controller's device instance: (`Enum` path, hardware id, class GUID,
/// description).
fn controller_instance(driver: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    const SCSI: &str = "{4D36E97B-E325-11CE-BFC1-08002BE10318}";
    const HDC: &str = "{4D36E96A-E325-11CE-BFC1-08002BE10318}";
    match driver.to_ascii_lowercase().as_str() {
        "lsi_sas" => (
            "PCI\\VEN_1000&DEV_0054&SUBSYS_197615AD&REV_01\\4&1F16FEF7&0&00A8",
            "PCI\\VEN_1000&DEV_0054&SUBSYS_197615AD&REV_01",
            SCSI,
            "LSI Adapter, SAS 3000 series, 8-port with 1068",
        ),
        "lsi_scsi" | "symmpi" => (
            "PCI\\VEN_1000&DEV_0030&SUBSYS_197615AD&REV_01\\4&1F16FEF7&0&0888",
            "PCI\\VEN_1000&DEV_0030&SUBSYS_197615AD&REV_01",
            SCSI,
            "LSI Adapter, Ultra320 SCSI 2000 series, w/1020/1030",
        ),
        "pvscsi" => (
            "PCI\\VEN_15AD&DEV_07C0&SUBSYS_07C015AD&REV_02\\FF3AFF3A0A5A2A2A00",
            "PCI\\VEN_15AD&DEV_07C0&SUBSYS_07C015AD&REV_02",
            SCSI,
            "VMware PVSCSI Controller",
        ),
        "storvsc" => (
            "VMBUS\\{BA6163D9-04A1-4D29-B605-72E2FFB1DC7F}\\{F8B3781B-1E82-4818-A1C3-63D806EC15BB}",
            "VMBUS\\{BA6163D9-04A1-4D29-B605-72E2FFB1DC7F}",
            SCSI,
            "Microsoft Hyper-V SCSI Controller",
        ),
        _ => (
            // VirtualBox's ICH8M AHCI controller (msahci, storahci)
            "PCI\\VEN_8086&DEV_2829&SUBSYS_00000000&REV_02\\3&267A616A&0&68",
            "PCI\\VEN_8086&DEV_2829&SUBSYS_00000000&REV_02",
            HDC,
            "Standard SATA AHCI Controller",
        ),
    }
}

/// Make `Enum` hold the storage controllers of this guest: the real hive's
/// VM had LSI SAS (and SATA) controllers bound to their drivers, which
/// inspection would rightly report as in use; they are replaced by the
/// controllers `boot` drives (the IDE controller stays).
fn storage_controllers(h: &mut Hive, cs: &str, boot: &[&str]) -> Result<()> {
    let keep = |svc: &str| {
        IDE.iter()
            .chain(boot.iter())
            .any(|b| b.eq_ignore_ascii_case(svc))
    };
    let en = format!("{cs}\\Enum");
    for bus in subkey_names(h, &en)? {
        for dev in subkey_names(h, &format!("{en}\\{bus}"))? {
            let dk = format!("{en}\\{bus}\\{dev}");
            for inst in subkey_names(h, &dk)? {
                let ik = format!("{dk}\\{inst}");
                let Some(svc) = get_str(h, &ik, "Service")? else {
                    continue;
                };
                let storage = STORAGE_SERVICES
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&svc));
                if storage && !keep(&svc) && !bus.eq_ignore_ascii_case("Root") {
                    h.delete_key(&ik, true)?;
                }
            }
            if subkey_names(h, &dk)?.is_empty() {
                h.delete_key(&dk, true)?;
            }
        }
    }
    for d in boot.iter().filter(|d| !IDE.contains(d)) {
        let (path, hwid, class, desc) = controller_instance(d);
        let k = format!("{en}\\{path}");
        if h.get_key(&k)?.is_some() {
            continue;
        }
        h.create_key(&k)?;
        h.set_value(&k, "Service", &sz(d))?;
        set_multi(h, &k, "HardwareID", &[hwid])?;
        h.set_value(&k, "ClassGUID", &sz(class))?;
        h.set_value(&k, "DeviceDesc", &sz(desc))?;
        h.set_value(&k, "ConfigFlags", &Value::Dword(0))?;
    }
    Ok(())
}

fn rewrite_mounted_devices(h: &mut Hive, mounted: &[(String, Vec<u8>)]) -> Result<()> {
    delete_if_present(h, "MountedDevices")?;
    h.create_key("MountedDevices")?;
    for (n, d) in mounted {
        h.set_value_raw("MountedDevices", n, regf::REG_BINARY, d)?;
    }
    Ok(())
}

/// Read the storage drivers' state from the current control set.
fn storage_states(h: &Hive, cs: &str, driver_files: &[String]) -> Result<Vec<ServiceState>> {
    let mut out = vec![];
    for name in STORAGE_SERVICES {
        let k = format!("{cs}\\Services\\{name}");
        if h.get_key(&k)?.is_none() {
            continue;
        }
        let mut start_override = vec![];
        let so = format!("{k}\\StartOverride");
        if let Some(key) = h.get_key(&so)? {
            for v in key.values()? {
                if let Value::Dword(d) = v.data()? {
                    start_override.push((v.name()?, d));
                }
            }
        }
        let image_path = get_str(h, &k, "ImagePath")?;
        // the builder places the files of kernel drivers only (a service
        // key without a Type, as pvscsi's in the Windows 10 hive, has none)
        let file = driver_file(name, image_path.as_deref());
        out.push(ServiceState {
            name: name.to_string(),
            start: get_dword(h, &k, "Start")?,
            start_override,
            group: get_str(h, &k, "Group")?,
            image_path,
            file_present: driver_files.iter().any(|f| f.eq_ignore_ascii_case(&file)),
        });
    }
    Ok(out)
}

/// A service's driver file, relative to the system root (`\`-separated).
pub fn driver_file(name: &str, image: Option<&str>) -> String {
    let default = format!("System32\\drivers\\{name}.sys");
    let Some(img) = image else {
        return default;
    };
    let img = img.trim_matches('"');
    let lower = img.to_ascii_lowercase();
    for p in ["\\systemroot\\", "%systemroot%\\", "\\??\\c:\\windows\\"] {
        if lower.starts_with(p) {
            return img[p.len()..].to_string();
        }
    }
    if lower.starts_with("system32\\") {
        return img.to_string();
    }
    default
}

/// Kernel drivers that load at boot or system start (their files must
/// exist), plus the storage drivers present.
fn boot_driver_files(h: &Hive, cs: &str) -> Result<Vec<String>> {
    let mut files = vec![];
    let svcs = format!("{cs}\\Services");
    for n in subkey_names(h, &svcs)? {
        let k = format!("{svcs}\\{n}");
        let kind = get_dword(h, &k, "Type")?.unwrap_or(0);
        let start = get_dword(h, &k, "Start")?.unwrap_or(4);
        let storage = STORAGE_SERVICES.iter().any(|s| s.eq_ignore_ascii_case(&n));
        if (kind == 1 || kind == 2) && (start <= 1 || storage) {
            let img = get_str(h, &k, "ImagePath")?;
            let f = driver_file(&n, img.as_deref());
            if f.to_ascii_lowercase().ends_with(".sys") && !files.contains(&f) {
                files.push(f);
            }
        }
    }
    Ok(files)
}

fn tools_written(
    spec: &SystemSpec,
    cs: &str,
    software_uninstall: &[Uninstall],
) -> Vec<ForeignTool> {
    let hv = spec.hypervisor;
    let vendor = vendor(hv).to_string();
    let mut out: Vec<ForeignTool> = tool_services(hv, spec.version)
        .iter()
        .map(|s| ForeignTool {
            vendor: vendor.clone(),
            kind: "service".into(),
            name: s.name.to_string(),
            location: format!("{cs}\\Services\\{}", s.name),
            uninstall: None,
        })
        .collect();
    // VMware Tools installs the PVSCSI driver (the boot storage of the
    // VMware server guests)
    if hv == Hypervisor::Vmware && spec.boot_storage.contains(&"pvscsi") {
        out.push(ForeignTool {
            vendor: vendor.clone(),
            kind: "service".into(),
            name: "pvscsi".into(),
            location: format!("{cs}\\Services\\pvscsi"),
            uninstall: None,
        });
    }
    let (filter, provider) = tool_hooks(hv);
    if let Some(f) = filter {
        out.push(ForeignTool {
            vendor: vendor.clone(),
            kind: "filter".into(),
            name: f.into(),
            location: format!("{cs}\\{MOUSE_CLASS}\\UpperFilters"),
            uninstall: None,
        });
    }
    if let Some(p) = provider {
        out.push(ForeignTool {
            vendor: vendor.clone(),
            kind: "network-provider".into(),
            name: p.into(),
            location: format!("{cs}\\Control\\NetworkProvider\\Order\\ProviderOrder"),
            uninstall: None,
        });
    }
    // ordinary programs (vendor None) are not another hypervisor's tools
    for u in software_uninstall
        .iter()
        .filter(|u| u.vendor == hv && hv != Hypervisor::None)
    {
        out.push(ForeignTool {
            vendor: vendor.clone(),
            kind: "uninstall".into(),
            name: u.display_name.into(),
            location: u.key.clone(),
            uninstall: Some(u.uninstall_string.into()),
        });
    }
    out
}

/// Derive the SYSTEM hive from the real one (`base`, decompressed).
pub fn derive_system(
    base: Vec<u8>,
    spec: &SystemSpec,
    uninstall: &[Uninstall],
) -> Result<(Hive, SystemFacts)> {
    // the real Windows 10 hive was captured dirty, without its logs: take
    // the primary as it is (our commit makes it clean)
    let (mut h, _) = Hive::open_with_logs(base, &[], regf::ReplayPolicy::IgnoreLogs)?;
    let sets = control_sets(&h)?;
    if sets.in_use.is_empty() {
        return Err(Error::Layout(
            "the base SYSTEM hive has no control set named by Select".into(),
        ));
    }
    for cs in &sets.in_use {
        apply_control_set(&mut h, cs, spec)?;
    }
    rewrite_mounted_devices(&mut h, &spec.mounted)?;
    let cur = sets.in_use[0].clone();
    let driver_files = boot_driver_files(&h, &cur)?;
    let storage = storage_states(&h, &cur, &driver_files)?;
    let tools = tools_written(spec, &cur, uninstall);
    let nic = WindowsNic {
        guid: spec.nic.guid.clone(),
        connection_name: Some(spec.nic.name.clone()),
        driver: Some(spec.nic.driver.to_string()),
        mac: spec.nic.static_ip.as_ref().map(|s| {
            s.mac
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(":")
        }),
        dhcp: spec.nic.static_ip.is_none(),
        addresses: spec
            .nic
            .static_ip
            .iter()
            .map(|s| format!("{}/{}", s.address, s.mask))
            .collect(),
        gateways: spec
            .nic
            .static_ip
            .iter()
            .map(|s| s.gateway.clone())
            .collect(),
        dns: spec
            .nic
            .static_ip
            .iter()
            .flat_map(|s| s.dns.clone())
            .collect(),
    };
    let facts = SystemFacts {
        control_sets: control_sets(&h)?,
        storage,
        driver_files,
        tools,
        nic,
    };
    Ok((h, facts))
}

/// An uninstall entry written to SOFTWARE.
#[derive(Debug, Clone)]
pub struct Uninstall {
    /// Whose it is (`Hypervisor::None` for ordinary software).
    pub vendor: Hypervisor,
    /// Key path in the SOFTWARE hive.
    pub key: String,
    /// `DisplayName`.
    pub display_name: &'static str,
    /// `Publisher`.
    pub publisher: &'static str,
    /// `DisplayVersion`.
    pub version: &'static str,
    /// `UninstallString`.
    pub uninstall_string: &'static str,
}

/// The uninstall entries of a guest: a few ordinary programs and the
/// hypervisor's tools.
pub fn uninstall_entries(hv: Hypervisor, v: &VersionInfo, arch: Arch) -> Vec<Uninstall> {
    let base = "Microsoft\\Windows\\CurrentVersion\\Uninstall";
    let wow = "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall";
    let x64 = arch == Arch::Amd64;
    let mut out = vec![Uninstall {
        vendor: Hypervisor::None,
        key: format!("{base}\\7-Zip"),
        display_name: "7-Zip 19.00",
        publisher: "Igor Pavlov",
        version: "19.00",
        uninstall_string: "\"C:\\Program Files\\7-Zip\\Uninstall.exe\"",
    }];
    if x64 {
        out.push(Uninstall {
            vendor: Hypervisor::None,
            key: format!("{wow}\\NotepadPlusPlus"),
            display_name: "Notepad++ (32-bit x86)",
            publisher: "Notepad++ Team",
            version: "7.8.9",
            uninstall_string: "\"C:\\Program Files (x86)\\Notepad++\\uninstall.exe\"",
        });
    }
    match hv {
        Hypervisor::Vmware => out.push(Uninstall {
            vendor: hv,
            key: format!("{base}\\{{F32C4E7B-2BF8-4788-8408-824C6896E1BB}}"),
            display_name: "VMware Tools",
            publisher: "VMware, Inc.",
            version: if v.nt5 {
                "10.0.12.4448491"
            } else {
                "12.1.5.20735119"
            },
            uninstall_string: "MsiExec.exe /X{F32C4E7B-2BF8-4788-8408-824C6896E1BB}",
        }),
        Hypervisor::Virtualbox => out.push(Uninstall {
            vendor: hv,
            key: format!("{base}\\Oracle VM VirtualBox Guest Additions"),
            display_name: "Oracle VM VirtualBox Guest Additions 6.1.50",
            publisher: "Oracle Corporation",
            version: "6.1.50.161033",
            uninstall_string:
                "\"C:\\Program Files\\Oracle\\VirtualBox Guest Additions\\uninst.exe\"",
        }),
        Hypervisor::Hyperv if v.nt5 => out.push(Uninstall {
            vendor: hv,
            key: format!("{base}\\{{90B5A8F1-4C1C-4EE8-B4B0-3D44B2C18EE6}}"),
            display_name: "Microsoft Hyper-V Integration Components",
            publisher: "Microsoft Corporation",
            version: "6.1.7601.17514",
            uninstall_string: "MsiExec.exe /X{90B5A8F1-4C1C-4EE8-B4B0-3D44B2C18EE6}",
        }),
        _ => {}
    }
    out
}

fn reg_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The SOFTWARE hive as `.reg` text: the libguestfs phony base, then
/// `CurrentVersion` and the uninstall entries.
pub fn software_reg(
    base_reg: &str,
    v: &VersionInfo,
    arch: Arch,
    systemroot: &str,
    uninstall: &[Uninstall],
) -> String {
    let mut t = String::from("Windows Registry Editor Version 5.00\n\n");
    // the shared base names its own Windows 7 product: keep its uninstall
    // entries, drop its CurrentVersion values (ours follow) and, on 32-bit
    // Windows, its WOW6432Node
    for block in base_reg.split("\n\n") {
        let wow = block.to_ascii_lowercase().contains("\\wow6432node");
        let ours = block.contains("Windows NT\\CurrentVersion]");
        if !(ours || wow && arch == Arch::X86) {
            t.push_str(block.trim());
            t.push_str("\n\n");
        }
    }
    let cv = "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion]";
    t.push_str(cv);
    t.push('\n');
    let mut kv = |n: &str, val: String| t.push_str(&format!("\"{n}\"={val}\n"));
    kv("ProductName", reg_str(v.product_name));
    kv("CurrentVersion", reg_str(v.current_version));
    kv("CurrentBuildNumber", reg_str(&v.build.to_string()));
    kv("CurrentBuild", reg_str(&v.build.to_string()));
    if v.major >= 10 {
        kv(
            "CurrentMajorVersionNumber",
            format!("dword:{:08x}", v.major),
        );
        kv(
            "CurrentMinorVersionNumber",
            format!("dword:{:08x}", v.minor),
        );
        kv("DisplayVersion", reg_str("22H2"));
        kv("ReleaseId", reg_str("2009"));
    }
    if let Some(it) = v.installation_type {
        kv("InstallationType", reg_str(it));
    }
    if let Some(e) = v.edition_id {
        kv("EditionID", reg_str(e));
    }
    if let Some(c) = v.csd_version {
        kv("CSDVersion", reg_str(c));
    }
    kv("SystemRoot", reg_str(&format!("C:\\{systemroot}")));
    kv("PathName", reg_str(&format!("C:\\{systemroot}")));
    kv("RegisteredOwner", reg_str("Phony User"));
    kv("CurrentType", reg_str("Multiprocessor Free"));
    t.push('\n');
    for u in uninstall {
        t.push_str(&format!("[HKEY_LOCAL_MACHINE\\SOFTWARE\\{}]\n", u.key));
        t.push_str(&format!("\"DisplayName\"={}\n", reg_str(u.display_name)));
        t.push_str(&format!("\"Publisher\"={}\n", reg_str(u.publisher)));
        t.push_str(&format!("\"DisplayVersion\"={}\n", reg_str(u.version)));
        t.push_str(&format!(
            "\"UninstallString\"={}\n\n",
            reg_str(u.uninstall_string)
        ));
    }
    t
}
