//! The bootstrap controller: what the first boot (before VirtIO works)
//! runs on. Vista and later boot from SATA/AHCI (QEMU's ICH9 AHCI, class
//! `PCI\CC_010601`): `msahci` (Vista/7) or `storahci` (8+) at Start=0
//! without a `StartOverride`. XP/2003 boot from IDE on i440fx (PIIX3
//! 8086:7010, PIIX4 8086:7111): MergeIDE — `atapi`, `intelide`, `pciide`
//! at Start=0 and the IDE CriticalDeviceDatabase entries.

use super::{cdd, driverdb, has_key, under_root, Generation, GuestAccess, Out, Reg};
use crate::inspect::WindowsInstall;
use crate::plan::RegData;

/// Class GUID of IDE ATA/ATAPI controllers.
pub const IDE_CLASS: &str = "{4D36E96A-E325-11CE-BFC1-08002BE10318}";
/// Class GUID of disk drives.
pub const DISK_CLASS: &str = "{4D36E967-E325-11CE-BFC1-08002BE10318}";

/// MergeIDE CriticalDeviceDatabase entries: (device ID, service, class).
pub const MERGEIDE_CDD: &[(&str, &str, &str)] = &[
    ("primary_ide_channel", "atapi", IDE_CLASS),
    ("secondary_ide_channel", "atapi", IDE_CLASS),
    ("*pnp0600", "atapi", IDE_CLASS),
    ("*azt0502", "atapi", IDE_CLASS),
    ("gendisk", "disk", DISK_CLASS),
    (r"pci\cc_0101", "pciide", IDE_CLASS),
    (r"pci\ven_0e11&dev_ae33", "pciide", IDE_CLASS),
    (r"pci\ven_1039&dev_0601", "pciide", IDE_CLASS),
    (r"pci\ven_1039&dev_5513", "pciide", IDE_CLASS),
    (r"pci\ven_1042&dev_1000", "pciide", IDE_CLASS),
    (r"pci\ven_105a&dev_4d33", "pciide", IDE_CLASS),
    (r"pci\ven_1095&dev_0640", "pciide", IDE_CLASS),
    (r"pci\ven_1095&dev_0646", "pciide", IDE_CLASS),
    (r"pci\ven_1097&dev_0038", "pciide", IDE_CLASS),
    (r"pci\ven_10ad&dev_0001", "pciide", IDE_CLASS),
    (r"pci\ven_10ad&dev_0150", "pciide", IDE_CLASS),
    (r"pci\ven_10b9&dev_5215", "pciide", IDE_CLASS),
    (r"pci\ven_10b9&dev_5219", "pciide", IDE_CLASS),
    (r"pci\ven_10b9&dev_5229", "pciide", IDE_CLASS),
    (r"pci\ven_1106&dev_0571", "pciide", IDE_CLASS),
    (r"pci\ven_8086&dev_1222", "intelide", IDE_CLASS),
    (r"pci\ven_8086&dev_1230", "intelide", IDE_CLASS),
    (r"pci\ven_8086&dev_2411", "intelide", IDE_CLASS),
    (r"pci\ven_8086&dev_2421", "intelide", IDE_CLASS),
    (r"pci\ven_8086&dev_7010", "intelide", IDE_CLASS),
    (r"pci\ven_8086&dev_7111", "intelide", IDE_CLASS),
    (r"pci\ven_8086&dev_7199", "intelide", IDE_CLASS),
];

/// A boot service the bootstrap controller needs, with the values used
/// when the service key is missing altogether.
struct Inbox {
    name: &'static str,
    group: &'static str,
    file: &'static str,
}

const ATAPI: Inbox = Inbox {
    name: "atapi",
    group: "SCSI miniport",
    file: "atapi.sys",
};
const INTELIDE: Inbox = Inbox {
    name: "intelide",
    group: "System Bus Extender",
    file: "intelide.sys",
};
const PCIIDE: Inbox = Inbox {
    name: "pciide",
    group: "System Bus Extender",
    file: "pciide.sys",
};
const MSAHCI: Inbox = Inbox {
    name: "msahci",
    group: "SCSI miniport",
    file: "msahci.sys",
};
const STORAHCI: Inbox = Inbox {
    name: "storahci",
    group: "SCSI miniport",
    file: "storahci.sys",
};

/// Case-insensitive lookup of a service key name in a control set.
fn service_key(sys: &Reg, cs: &str, name: &str) -> Option<String> {
    super::subkeys(sys.hive, &format!(r"{cs}\Services"))
        .into_iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| format!(r"{cs}\Services\{k}"))
}

fn plan_inbox(install: &WindowsInstall, sys: &Reg, s: &Inbox, why: &str, out: &mut Out) {
    for cs in &install.control_sets.in_use {
        match service_key(sys, cs, s.name) {
            Some(key) => {
                out.set(sys, &key, "Start", RegData::Dword(0), why);
                out.delete_key(
                    sys,
                    &format!(r"{key}\StartOverride"),
                    "a StartOverride would keep the bootstrap controller's driver from starting",
                );
            }
            None => {
                let key = format!(r"{cs}\Services\{}", s.name);
                out.set(sys, &key, "Type", RegData::Dword(1), why);
                out.set(sys, &key, "Start", RegData::Dword(0), why);
                out.set(sys, &key, "ErrorControl", RegData::Dword(1), why);
                out.set(sys, &key, "Group", RegData::Sz(s.group.into()), why);
                out.set(
                    sys,
                    &key,
                    "ImagePath",
                    RegData::ExpandSz(format!(r"System32\drivers\{}", s.file)),
                    why,
                );
            }
        }
    }
}

fn check_files(install: &WindowsInstall, guest: &dyn GuestAccess, files: &[&str], out: &mut Out) {
    for f in files {
        let p = under_root(install, &format!("System32/drivers/{f}"));
        if !guest.exists(&install.system, &p) {
            out.manual(format!(
                "{p} is missing on the system volume: the bootstrap controller's driver cannot load \
                 (on XP/2003 it may only be in driver.cab; extract it on the source VM, e.g. \
                 `expand %SystemRoot%\\Driver Cache\\i386\\driver.cab -F:{f} %SystemRoot%\\System32\\drivers`)"
            ));
        }
    }
}

/// Plan the bootstrap controller for the install's generation.
pub fn plan_bootstrap(install: &WindowsInstall, sys: &Reg, guest: &dyn GuestAccess, out: &mut Out) {
    match Generation::of(install) {
        Generation::Nt5 => {
            let why =
                "MergeIDE: the bootstrap domain boots XP/2003 from IDE on i440fx (PIIX3/PIIX4)";
            for s in [&ATAPI, &INTELIDE, &PCIIDE] {
                plan_inbox(install, sys, s, why, out);
            }
            for (id, svc, class) in MERGEIDE_CDD {
                cdd::plan_entry(install, sys, id, svc, class, why, out);
            }
            check_files(
                install,
                guest,
                &["atapi.sys", "intelide.sys", "pciide.sys", "pciidex.sys"],
                out,
            );
        }
        Generation::Nt60 => {
            let why = "the bootstrap domain boots from SATA/AHCI (PCI\\CC_010601): msahci must start at boot (KB922976)";
            plan_inbox(install, sys, &MSAHCI, why, out);
            plan_inbox(install, sys, &ATAPI, why, out);
            for cs in &install.control_sets.in_use {
                let cdd_key = format!(r"{cs}\Control\CriticalDeviceDatabase\pci#cc_010601");
                if !has_key(sys.hive, &cdd_key) {
                    cdd::plan_entry(
                        install,
                        sys,
                        r"PCI\CC_010601",
                        "msahci",
                        IDE_CLASS,
                        why,
                        out,
                    );
                }
            }
            check_files(
                install,
                guest,
                &["msahci.sys", "pciidex.sys", "atapi.sys"],
                out,
            );
        }
        Generation::Nt62 => {
            let why = "the bootstrap domain boots from SATA/AHCI (PCI\\CC_010601): storahci must start at boot";
            plan_inbox(install, sys, &STORAHCI, why, out);
            let bind = format!(r"{}\DeviceIds\PCI\CC_010601", driverdb::ROOT);
            if !has_key(sys.hive, &bind) {
                out.warn(format!(
                    "SYSTEM has no {bind}: nothing binds the AHCI controller to storahci; the bootstrap boot may fail"
                ));
            }
            check_files(install, guest, &["storahci.sys"], out);
        }
    }
}
