//! The control sets a SYSTEM hive boots from (`Select`) and facts read
//! from the current one (hostname, processor architecture).

use super::reg;
use crate::drivers::Arch;
use crate::inspect::ControlSets;
use regf::Hive;

/// Read `Select`. `None` when the hive has no `Select` key or no
/// existing control set referenced by it.
pub fn read(system: &Hive) -> Option<ControlSets> {
    let sel = reg::key(system, "Select")?;
    let get = |n: &str| reg::dword(&sel, n).unwrap_or(0);
    let mut cs = ControlSets {
        current: get("Current"),
        default: get("Default"),
        last_known_good: get("LastKnownGood"),
        in_use: vec![],
    };
    for n in [cs.current, cs.default, cs.last_known_good] {
        if !(1..=999).contains(&n) {
            continue;
        }
        let name = format!("ControlSet{n:03}");
        if !cs.in_use.contains(&name) && reg::key(system, &name).is_some() {
            cs.in_use.push(name);
        }
    }
    (!cs.in_use.is_empty()).then_some(cs)
}

/// `ControlSetNNN\Control\ComputerName\ComputerName\ComputerName`, else
/// the TCP/IP host name (`Services\Tcpip\Parameters\Hostname`, which
/// Windows 10 spells `HostName`: value names match case-insensitively, as
/// in Windows, unlike libguestfs' lookup).
pub fn hostname(system: &Hive, ccs: &str) -> Option<String> {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let computer = reg::key(
        system,
        &format!("{ccs}\\Control\\ComputerName\\ComputerName"),
    )
    .and_then(|k| nonempty(reg::string(&k, "ComputerName")));
    computer.or_else(|| {
        let k = reg::key(system, &format!("{ccs}\\Services\\Tcpip\\Parameters"))?;
        nonempty(reg::string(&k, "Hostname"))
    })
}

/// The architecture the hive's environment records
/// (`Session Manager\Environment\PROCESSOR_ARCHITECTURE`): the fallback
/// when `ntoskrnl.exe` cannot be read.
pub fn env_arch(system: &Hive, ccs: &str) -> Option<Arch> {
    let k = reg::key(
        system,
        &format!("{ccs}\\Control\\Session Manager\\Environment"),
    )?;
    match reg::string(&k, "PROCESSOR_ARCHITECTURE")?
        .to_ascii_lowercase()
        .as_str()
    {
        "x86" => Some(Arch::X86),
        "amd64" => Some(Arch::Amd64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_falls_back_to_tcpip_whatever_the_case() {
        let mut h = Hive::new_empty("SYSTEM").unwrap();
        let tcp = "ControlSet001\\Services\\Tcpip\\Parameters";
        h.create_key(tcp).unwrap();
        // Windows 10's spelling
        h.set_value(tcp, "HostName", &regf::Value::String("WIN10-HOST".into()))
            .unwrap();
        assert_eq!(hostname(&h, "ControlSet001").as_deref(), Some("WIN10-HOST"));
        let cn = "ControlSet001\\Control\\ComputerName\\ComputerName";
        h.create_key(cn).unwrap();
        h.set_value(cn, "ComputerName", &regf::Value::String("NETBIOS".into()))
            .unwrap();
        assert_eq!(hostname(&h, "ControlSet001").as_deref(), Some("NETBIOS"));
    }
}
