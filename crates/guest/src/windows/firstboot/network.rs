//! The MAC → network-settings table: every source adapter with a static
//! configuration, staged in the SOFTWARE hive (`hyper2kvm\FirstBoot\Network`)
//! so the plan is reproducible after the old binding was cleared, and
//! turned into one final-phase step per adapter.

use super::steps::{Phase, Step};
use crate::inspect::WindowsNic;
use std::net::Ipv4Addr;

/// SOFTWARE key of the staged table (one subkey `NN` per adapter).
pub const NETWORK_KEY: &str = r"hyper2kvm\FirstBoot\Network";

/// How the runner finds the new adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// By MAC address (the domains keep the source MACs), as `getmac`
    /// prints it: `00-50-56-01-02-03`.
    Mac(String),
    /// The n-th (1-based) VirtIO adapter `getmac` lists, when the MAC is
    /// unknown.
    Order(usize),
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetEntry {
    /// The source adapter's interface GUID (its stale binding).
    pub guid: String,
    /// How to find the new adapter.
    pub matcher: Match,
    /// The old connection name, when it can be given to `netsh` safely.
    pub name: Option<String>,
    /// Addresses with masks.
    pub addresses: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Default gateways.
    pub gateways: Vec<Ipv4Addr>,
    /// DNS servers in order.
    pub dns: Vec<Ipv4Addr>,
}

/// `00:50:56:01:02:03` (or with `-`) as `getmac` prints it, if valid.
pub fn getmac_form(mac: &str) -> Option<String> {
    let m = super::super::nics::format_mac(mac)?;
    Some(m.replace(':', "-").to_ascii_uppercase())
}

/// A connection name usable in the script: printable ASCII (cmd reads a
/// script in the OEM code page, which the plan does not know) without
/// `"`, `%`, `!` or `^` (they cannot be passed through `call` intact).
pub fn safe_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 256
        && n.chars()
            .all(|c| (' '..='~').contains(&c) && !matches!(c, '"' | '%' | '!' | '^'))
}

/// Build the table from the inspected adapters: static ones only (DHCP
/// adapters stay DHCP). `macs` are the source VM's MACs in its NIC order,
/// used for adapters whose MAC the hive does not record when the counts
/// agree. Problems go to `warnings`.
pub fn table(nics: &[WindowsNic], macs: &[String], warnings: &mut Vec<String>) -> Vec<NetEntry> {
    let physical_static: Vec<&WindowsNic> = nics
        .iter()
        .filter(|n| !n.dhcp && !n.addresses.is_empty())
        .collect();
    let by_meta = macs.len() == nics.len();
    let mut order = 0;
    let mut out = Vec::new();
    for n in physical_static {
        let pos = nics.iter().position(|x| x.guid == n.guid).unwrap_or(0);
        let mac = n
            .mac
            .as_deref()
            .or_else(|| by_meta.then(|| macs[pos].as_str()))
            .and_then(getmac_form);
        let matcher = match mac {
            Some(m) => Match::Mac(m),
            None => {
                order += 1;
                Match::Order(pos + 1)
            }
        };
        let mut addresses = Vec::new();
        for a in &n.addresses {
            let (ip, mask) = a.split_once('/').unwrap_or((a, ""));
            match (ip.parse::<Ipv4Addr>(), mask.parse::<Ipv4Addr>()) {
                (Ok(i), Ok(m)) => addresses.push((i, m)),
                _ => warnings.push(format!(
                    "{}: address {a:?} is not IPv4 with a mask; not reapplied",
                    n.guid
                )),
            }
        }
        let v4 = |list: &[String], what: &str, warnings: &mut Vec<String>| {
            let mut v = Vec::new();
            for s in list {
                match s.parse::<Ipv4Addr>() {
                    Ok(a) => v.push(a),
                    Err(_) => warnings.push(format!(
                        "{}: {what} {s:?} is not IPv4; not reapplied",
                        n.guid
                    )),
                }
            }
            v
        };
        let gateways = v4(&n.gateways, "gateway", warnings);
        let dns = v4(&n.dns, "DNS server", warnings);
        if addresses.is_empty() {
            continue;
        }
        let name = n.connection_name.clone().filter(|c| {
            let ok = safe_name(c);
            if !ok {
                warnings.push(format!(
                    "{}: connection name {c:?} has characters the runner cannot pass to netsh; the new connection keeps its own name",
                    n.guid
                ));
            }
            ok
        });
        out.push(NetEntry {
            guid: n.guid.clone(),
            matcher,
            name,
            addresses,
            gateways,
            dns,
        });
    }
    if order > 0 && out.len() > 1 {
        warnings.push(format!(
            "{order} static adapter(s) have no known MAC: the runner pairs them with the VirtIO adapters by order; check the addresses after the first boot"
        ));
    }
    out
}

/// Whether `netsh … set dns` takes `validate=` (Windows 7 / 2008 R2 on,
/// where it otherwise checks the server and may refuse an unreachable
/// one) [I].
fn dns_validate(major: u32, minor: u32) -> bool {
    (major, minor) >= (6, 1)
}

/// The final-phase step applying `e` (the `n`-th row).
pub fn step(e: &NetEntry, n: usize, major: u32, minor: u32) -> Step {
    const CHECK: &str = r#"if not "%ERRORLEVEL%"=="0" exit /b %ERRORLEVEL%"#;
    let mut c = Vec::new();
    match &e.matcher {
        Match::Mac(m) => c.push(format!("call :nicbymac {m}")),
        Match::Order(i) => c.push(format!("call :nicbyorder {i}")),
    }
    c.push(r#"if "%H2K_IF%"=="" exit /b 2"#.to_string());
    if let Some(name) = &e.name {
        c.push(format!(r#"call :rename "{name}""#));
    }
    let (ip, mask) = e.addresses[0];
    let gw = e
        .gateways
        .first()
        .map(|g| format!("{g} 1"))
        .unwrap_or_else(|| "none".into());
    c.push(format!(
        r#"netsh interface ip set address "%H2K_IF%" static {ip} {mask} {gw}"#
    ));
    c.push(CHECK.into());
    for (ip, mask) in &e.addresses[1..] {
        c.push(format!(
            r#"netsh interface ip add address "%H2K_IF%" {ip} {mask}"#
        ));
        c.push(CHECK.into());
    }
    let validate = if dns_validate(major, minor) {
        " validate=no"
    } else {
        ""
    };
    for (i, d) in e.dns.iter().enumerate() {
        if i == 0 {
            c.push(format!(
                r#"netsh interface ip set dns "%H2K_IF%" static {d} primary{validate}"#
            ));
        } else {
            c.push(format!(
                r#"netsh interface ip add dns "%H2K_IF%" {d} index={}{validate}"#,
                i + 1
            ));
        }
        c.push(CHECK.into());
    }
    let what = format!(
        "apply {} (was {}{}) to the new adapter {}",
        e.addresses
            .iter()
            .map(|(i, m)| format!("{i}/{m}"))
            .collect::<Vec<_>>()
            .join(" "),
        e.guid,
        e.name
            .as_deref()
            .map(|n| format!(", {n:?}"))
            .unwrap_or_default(),
        match &e.matcher {
            Match::Mac(m) => format!("with MAC {m}"),
            Match::Order(i) => format!("number {i} by order"),
        }
    );
    Step::new(&format!("net-{n:02}"), Phase::Final, false, &what, c)
}

/// The optional final-phase check that the adapter holds its first address.
pub fn check_step(e: &NetEntry, n: usize) -> Step {
    let ip = e.addresses[0].0;
    Step::new(
        &format!("check-net-{n:02}"),
        Phase::Final,
        false,
        &format!("the new adapter holds {ip}"),
        vec![format!(r#"ipconfig | find ": {ip}" >nul"#)],
    )
}
