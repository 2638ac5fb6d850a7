//! The readable text `inspect` prints for a Windows install.

use super::vol_name;
use crate::drivers::Arch;
use crate::inspect::{Firmware, WindowsInstall};

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// Lines describing `w`, for people.
pub fn describe(w: &WindowsInstall) -> Vec<String> {
    let mut out = vec![
        format!(
            "Windows: {} ({}, NT {}.{} build {}, {}, edition {}, {})",
            w.product_name,
            w.os_id,
            w.major,
            w.minor,
            w.build,
            match w.arch {
                Arch::Amd64 => "x86-64",
                Arch::X86 => "x86",
            },
            opt(&w.edition_id),
            opt(&w.installation_type)
        ),
        format!("  hostname: {}", opt(&w.hostname)),
        format!(
            "  system volume: {}, systemroot \\{}",
            vol_name(&w.system),
            w.systemroot.replace('/', "\\")
        ),
        format!(
            "  boot volume: {}; firmware: {}; BCD: {}",
            w.boot_volume
                .as_ref()
                .map(vol_name)
                .unwrap_or_else(|| "the system volume".into()),
            match w.firmware {
                Firmware::Bios => "BIOS",
                Firmware::Uefi => "UEFI",
            },
            if w.bcd.is_empty() {
                "none".to_string()
            } else {
                w.bcd
                    .iter()
                    .map(|b| b.path.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        format!(
            "  hives: SYSTEM {}, SOFTWARE {}",
            w.system_hive.path, w.software_hive.path
        ),
        format!(
            "  control sets: current {}, default {}, last known good {} (in use: {})",
            w.control_sets.current,
            w.control_sets.default,
            w.control_sets.last_known_good,
            w.control_sets.in_use.join(", ")
        ),
    ];
    // boot-start, VirtIO and overridden drivers in full; the rest on one line
    let detailed = |d: &&crate::inspect::ServiceState| {
        d.start == Some(0)
            || !d.start_override.is_empty()
            || d.name.eq_ignore_ascii_case("viostor")
            || d.name.eq_ignore_ascii_case("vioscsi")
    };
    let others: Vec<String> = w
        .storage_drivers
        .iter()
        .filter(|d| !detailed(d))
        .map(|d| {
            format!(
                "{} (start {})",
                d.name,
                d.start.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
            )
        })
        .collect();
    for d in w.storage_drivers.iter().filter(detailed) {
        let so: Vec<String> = d
            .start_override
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        out.push(format!(
            "  storage driver {}: start {}{}, group {}, image {}, file {}",
            d.name,
            d.start.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            if so.is_empty() {
                String::new()
            } else {
                format!(" (StartOverride {})", so.join(" "))
            },
            opt(&d.group),
            opt(&d.image_path),
            if d.file_present { "present" } else { "missing" }
        ));
    }
    if !others.is_empty() {
        out.push(format!("  other storage drivers: {}", others.join(", ")));
    }
    out.push(format!(
        "  boot storage today: {}; VirtIO storage boot-ready: {}",
        if w.boot_storage.is_empty() {
            "unknown".into()
        } else {
            w.boot_storage.join(", ")
        },
        if w.virtio_ready { "yes" } else { "no" }
    ));
    for n in &w.nics {
        let mut l = format!(
            "  NIC {} \"{}\": driver {}, MAC {}, ",
            n.guid,
            opt(&n.connection_name),
            opt(&n.driver),
            opt(&n.mac)
        );
        if n.dhcp {
            l.push_str("DHCP");
        } else {
            l.push_str(&format!("static {}", n.addresses.join(" ")));
        }
        if !n.gateways.is_empty() {
            l.push_str(&format!(", gateway {}", n.gateways.join(" ")));
        }
        if !n.dns.is_empty() {
            l.push_str(&format!(", DNS {}", n.dns.join(" ")));
        }
        out.push(l);
    }
    for t in &w.foreign_tools {
        out.push(format!(
            "  foreign {} {}: {} at {}{}",
            t.vendor,
            t.kind,
            t.name,
            t.location,
            t.uninstall
                .as_ref()
                .map(|u| format!(" (uninstall: {u})"))
                .unwrap_or_default()
        ));
    }
    for b in &w.blockers {
        out.push(format!(
            "  {} {}: {}",
            if b.refuse { "BLOCKER" } else { "warning" },
            b.id,
            b.message
        ));
    }
    for (k, v) in &w.facts {
        out.push(format!("  fact {k} = {v}"));
    }
    out
}
