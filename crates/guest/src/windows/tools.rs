//! Other hypervisors' guest components: services, filter drivers in
//! class and device filter lists, network providers, Winsock catalog
//! providers ([`super::winsock`]) and uninstall entries. The vendors'
//! names are data ([`VENDORS`]).

use super::bootdrivers::enum_instances;
use super::{reg, winsock};
use crate::inspect::ForeignTool;
use regf::{Hive, Key};
use std::collections::BTreeSet;

/// One vendor's component names.
pub struct Vendor {
    /// Vendor id (`vmware`, `hyperv`, `virtualbox`, `parallels`, `xen`).
    pub id: &'static str,
    /// Service / driver names; a trailing `*` matches a prefix.
    pub services: &'static [&'static str],
    /// Lower-case substrings of uninstall entries' `DisplayName`.
    pub uninstall: &'static [&'static str],
    /// Lower-case file names of Winsock provider DLLs it installs in the
    /// protocol catalog.
    pub winsock: &'static [&'static str],
    /// Shipped inside Windows itself (Hyper-V integration): reported only
    /// when a device instance in `Enum` is bound to one of its services,
    /// i.e. the guest did run on that hypervisor.
    pub inbox: bool,
}

/// The vendors inspection knows.
pub const VENDORS: &[Vendor] = &[
    Vendor {
        id: "vmware",
        services: &[
            "vmci",
            "vsock",
            "VMRawDsk",
            "VMMemCtl",
            "vmhgfs",
            "vmmouse",
            "vmusbmouse",
            "vm3dmp*",
            "vm3dservice",
            "pvscsi",
            "vmscsi",
            "vmxnet",
            "vmxnet3ndis6",
            "VMXNET3NDIS5",
            "vmxnet2*",
            "efifw",
            "vmwefifw",
            "vsepflt",
            "vnetWFP",
            "vnetflt",
            "VMTools",
            "VGAuthService",
            "vmvss",
            "VMUpgradeHelper",
            "vmx_svga",
            "vmrawdsk",
            "vmStatsProvider",
        ],
        uninstall: &["vmware tools"],
        winsock: &["vsocklib.dll"],
        inbox: false,
    },
    Vendor {
        id: "hyperv",
        services: &[
            "vmbus",
            "VMBusHID",
            "storvsc",
            "netvsc",
            "hyperkbd",
            "vmgid",
            "storflt",
            "vmic*",
            "HyperVideo",
        ],
        uninstall: &["hyper-v integration"],
        winsock: &[],
        inbox: true,
    },
    Vendor {
        id: "virtualbox",
        services: &[
            "VBoxGuest",
            "VBoxMouse",
            "VBoxVideo",
            "VBoxWddm",
            "VBoxSF",
            "VBoxService",
        ],
        uninstall: &["virtualbox guest additions"],
        winsock: &[],
        inbox: false,
    },
    Vendor {
        id: "parallels",
        services: &["prl_*"],
        uninstall: &["parallels tools"],
        winsock: &[],
        inbox: false,
    },
    Vendor {
        id: "xen",
        // Citrix/XenServer PV drivers (xenfilt is a class and device
        // filter), the older GPLPV and Citrix names, RHEL's Xen drivers;
        // `xen*` catches the rest of the family.
        services: &[
            "xenbus",
            "xenfilt",
            "xeniface",
            "xennet",
            "xenvbd",
            "xenvif",
            "xendisk",
            "xenbus_monitor",
            "xensvc",
            "xenagent",
            "xenpci",
            "xenhide",
            "xenscsi",
            "xen*",
            "rhelscsi",
            "rhelnet",
            "rhelfltr",
        ],
        uninstall: &[
            "xenserver",
            "citrix vm tools",
            "xen pv",
            "citrix xen",
            "xenserver pv tools",
        ],
        winsock: &[],
        inbox: false,
    },
];

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(p) => name
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The vendor whose component `name` is.
pub fn vendor_of(name: &str) -> Option<&'static Vendor> {
    VENDORS
        .iter()
        .find(|v| v.services.iter().any(|p| matches(p, name)))
}

/// The vendor whose Winsock provider DLL `file` (a file name) is.
pub fn winsock_vendor(file: &str) -> Option<&'static Vendor> {
    VENDORS
        .iter()
        .find(|v| v.winsock.iter().any(|w| w.eq_ignore_ascii_case(file)))
}

/// Find every foreign component in control set `ccs` of `system` and in
/// `software`.
pub fn read(system: &Hive, software: Option<&Hive>, ccs: &str) -> Vec<ForeignTool> {
    let instances = enum_instances(system, ccs);
    let bound = super::bootdrivers::bound_services(&instances);
    read_with(system, software, ccs, &instances, &bound)
}

/// [`read`] with the `Enum` instances and their bound services already
/// collected.
pub fn read_with(
    system: &Hive,
    software: Option<&Hive>,
    ccs: &str,
    instances: &[(String, Key<'_>)],
    bound: &BTreeSet<String>,
) -> Vec<ForeignTool> {
    let ran_on = |v: &Vendor| {
        !v.inbox
            || bound
                .iter()
                .any(|s| v.services.iter().any(|p| matches(p, s)))
    };
    let mut out = Vec::new();
    services(system, ccs, &mut out);
    class_filters(system, ccs, &mut out);
    for (path, k) in instances {
        filter_lists(k, &format!("{ccs}\\Enum\\{path}"), &mut out);
    }
    network_providers(system, ccs, &mut out);
    winsock_providers(system, ccs, &mut out);
    if let Some(sw) = software {
        uninstall(sw, &mut out);
    }
    out.retain(|t| VENDORS.iter().any(|v| v.id == t.vendor && ran_on(v)));
    out
}

fn push(out: &mut Vec<ForeignTool>, vendor: &str, kind: &str, name: String, location: String) {
    out.push(ForeignTool {
        vendor: vendor.into(),
        kind: kind.into(),
        name,
        location,
        uninstall: None,
    });
}

fn services(system: &Hive, ccs: &str, out: &mut Vec<ForeignTool>) {
    let Some(s) = reg::key(system, &format!("{ccs}\\Services")) else {
        return;
    };
    for k in reg::subkeys(&s) {
        let n = reg::name(&k);
        if let Some(v) = vendor_of(&n) {
            push(
                out,
                v.id,
                "service",
                n.clone(),
                format!("{ccs}\\Services\\{n}"),
            );
        }
    }
}

fn filter_lists(k: &Key<'_>, location: &str, out: &mut Vec<ForeignTool>) {
    for list in ["UpperFilters", "LowerFilters"] {
        for f in reg::list(k, list) {
            if let Some(v) = vendor_of(&f) {
                push(out, v.id, "filter", f, format!("{location}\\{list}"));
            }
        }
    }
}

fn class_filters(system: &Hive, ccs: &str, out: &mut Vec<ForeignTool>) {
    let Some(c) = reg::key(system, &format!("{ccs}\\Control\\Class")) else {
        return;
    };
    for k in reg::subkeys(&c) {
        filter_lists(
            &k,
            &format!("{ccs}\\Control\\Class\\{}", reg::name(&k)),
            out,
        );
    }
}

fn network_providers(system: &Hive, ccs: &str, out: &mut Vec<ForeignTool>) {
    for order in ["Order", "HwOrder"] {
        let path = format!("{ccs}\\Control\\NetworkProvider\\{order}");
        let Some(k) = reg::key(system, &path) else {
            continue;
        };
        for p in reg::list(&k, "ProviderOrder") {
            if let Some(v) = vendor_of(&p) {
                push(
                    out,
                    v.id,
                    "network-provider",
                    p,
                    format!("{path}\\ProviderOrder"),
                );
            }
        }
    }
}

fn winsock_providers(system: &Hive, ccs: &str, out: &mut Vec<ForeignTool>) {
    for (catalog, _) in winsock::CATALOGS {
        for e in winsock::entries(system, ccs, catalog) {
            let Some(item) = e.item else { continue };
            let Some(v) = winsock_vendor(&item.dll_file()) else {
                continue;
            };
            let name = if item.protocol.is_empty() {
                item.dll.clone()
            } else {
                item.protocol.clone()
            };
            push(
                out,
                v.id,
                "winsock-provider",
                name,
                format!(r"{ccs}\{}\{catalog}\{}", winsock::PROTOCOL_CATALOG, e.key),
            );
        }
    }
}

fn uninstall(software: &Hive, out: &mut Vec<ForeignTool>) {
    for root in [
        "Microsoft\\Windows\\CurrentVersion\\Uninstall",
        "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall",
    ] {
        let Some(u) = reg::key(software, root) else {
            continue;
        };
        for k in reg::subkeys(&u) {
            let Some(name) = reg::string(&k, "DisplayName") else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            let Some(v) = VENDORS
                .iter()
                .find(|v| v.uninstall.iter().any(|p| lower.contains(p)))
            else {
                continue;
            };
            out.push(ForeignTool {
                vendor: v.id.into(),
                kind: "uninstall".into(),
                name,
                location: format!("SOFTWARE\\{root}\\{}", reg::name(&k)),
                uninstall: reg::string(&k, "QuietUninstallString")
                    .or_else(|| reg::string(&k, "UninstallString"))
                    .filter(|s| !s.is_empty()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_vendors_case_insensitively_and_by_prefix() {
        assert_eq!(vendor_of("VMMouse").map(|v| v.id), Some("vmware"));
        assert_eq!(vendor_of("vm3dmp_loader").map(|v| v.id), Some("vmware"));
        assert_eq!(vendor_of("prl_strg").map(|v| v.id), Some("parallels"));
        assert_eq!(vendor_of("vmicheartbeat").map(|v| v.id), Some("hyperv"));
        assert_eq!(vendor_of("vboxsf").map(|v| v.id), Some("virtualbox"));
        assert!(vendor_of("mouclass").is_none());
        assert!(vendor_of("prl").is_none());
        // a prefix length that falls inside a multi-byte character
        assert!(vendor_of("x\u{20ac}").is_none());
        assert!(vendor_of("pr\u{20ac}").is_none());
    }
}
