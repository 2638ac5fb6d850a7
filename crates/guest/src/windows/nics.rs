//! Network adapters as Windows recorded them: the physical adapters of
//! the net class (`Control\Class\{4D36E972…}\NNNN`), their connection
//! names, TCP/IP settings and drivers.

use super::reg;
use crate::inspect::WindowsNic;
use regf::{Hive, Key};

/// The network adapter device class.
pub const NET_CLASS: &str = "{4D36E972-E325-11CE-BFC1-08002BE10318}";

/// `Characteristics` flag of a physical adapter (NCF_PHYSICAL).
const NCF_PHYSICAL: u32 = 0x4;

/// Read every physical adapter of control set `ccs`.
pub fn read(system: &Hive, ccs: &str) -> Vec<WindowsNic> {
    let Some(class) = reg::key(system, &format!("{ccs}\\Control\\Class\\{NET_CLASS}")) else {
        return vec![];
    };
    let mut out = Vec::new();
    for k in reg::subkeys(&class) {
        let Some(guid) = reg::string(&k, "NetCfgInstanceId") else {
            continue;
        };
        let physical = reg::dword(&k, "Characteristics").is_some_and(|c| c & NCF_PHYSICAL != 0);
        if !physical {
            continue;
        }
        let mut nic = WindowsNic {
            guid: guid.clone(),
            driver: driver(system, ccs, &k),
            mac: reg::string(&k, "NetworkAddress").and_then(|m| format_mac(&m)),
            ..Default::default()
        };
        nic.connection_name = reg::key(
            system,
            &format!("{ccs}\\Control\\Network\\{NET_CLASS}\\{guid}\\Connection"),
        )
        .and_then(|c| reg::string(&c, "Name"));
        if let Some(t) = reg::key(
            system,
            &format!("{ccs}\\Services\\Tcpip\\Parameters\\Interfaces\\{guid}"),
        ) {
            tcpip(&t, &mut nic);
        }
        out.push(nic);
    }
    out
}

/// The driver service: the device instance's `Service`, else the class
/// key's `Ndi\Service`.
fn driver(system: &Hive, ccs: &str, class_key: &Key<'_>) -> Option<String> {
    reg::string(class_key, "DeviceInstanceID")
        .and_then(|id| reg::key(system, &format!("{ccs}\\Enum\\{id}")))
        .and_then(|e| reg::string(&e, "Service"))
        .or_else(|| reg::sub(class_key, "Ndi").and_then(|n| reg::string(&n, "Service")))
        .filter(|s| !s.is_empty())
}

fn tcpip(t: &Key<'_>, nic: &mut WindowsNic) {
    nic.dhcp = reg::dword(t, "EnableDHCP") == Some(1);
    let valid = |a: &String| !a.is_empty() && a != "0.0.0.0";
    if nic.dhcp {
        nic.gateways = reg::list(t, "DhcpDefaultGateway");
        nic.dns = reg::list(t, "NameServer");
    } else {
        let ips = reg::list(t, "IPAddress");
        let masks = reg::list(t, "SubnetMask");
        nic.addresses = ips
            .iter()
            .enumerate()
            .filter(|(_, a)| valid(a))
            .map(|(i, a)| match masks.get(i) {
                Some(m) => format!("{a}/{m}"),
                None => a.clone(),
            })
            .collect();
        nic.gateways = reg::list(t, "DefaultGateway");
        nic.dns = reg::list(t, "NameServer");
    }
    nic.gateways.retain(valid);
    nic.dns.retain(valid);
}

/// `NetworkAddress` (12 hex digits, maybe with `-`/`:`) as
/// `00:50:56:01:02:03`.
pub fn format_mac(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | ' '))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(
        (0..6)
            .map(|i| &hex[i * 2..i * 2 + 2])
            .collect::<Vec<_>>()
            .join(":"),
    )
}
