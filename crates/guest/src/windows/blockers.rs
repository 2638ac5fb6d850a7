//! Blockers and risks of an offline fix, and the raw facts fixers restore
//! later (`SanPolicy`, `RealTimeIsUniversal`, …).

use super::reg;
use crate::inspect::Blocker;
use regf::Hive;

/// What the first page of `hiberfil.sys` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiberState {
    /// A hibernation image is there (`hibr`, `HIBR`, `wake`, `WAKE`,
    /// `RSTR`): Windows resumes from it.
    Hibernated,
    /// Zeroed or unknown signature: no image to resume.
    Clear,
}

/// Classify the first bytes of `hiberfil.sys`.
pub fn hiber_state(head: &[u8]) -> HiberState {
    const SIGS: [&[u8; 4]; 5] = [b"hibr", b"HIBR", b"wake", b"WAKE", b"RSTR"];
    match head.get(..4) {
        Some(s) if SIGS.iter().any(|g| s == *g) => HiberState::Hibernated,
        _ => HiberState::Clear,
    }
}

fn blocker(id: &str, refuse: bool, message: String) -> Blocker {
    Blocker {
        id: id.into(),
        refuse,
        message,
    }
}

/// The hibernation / Fast Startup blocker from the hiberfil header and
/// `HiberbootEnabled`.
pub fn hibernation(hiber: Option<HiberState>, hiberboot: Option<u32>) -> Option<Blocker> {
    if hiber != Some(HiberState::Hibernated) {
        return None;
    }
    Some(if hiberboot == Some(1) {
        blocker(
            "fast-startup",
            true,
            "Windows was shut down with Fast Startup (hiberfil.sys holds a hibernated kernel and HiberbootEnabled=1): changes made offline would be lost or corrupt the volume. On the source VM run `shutdown /s /t 0` (a full shutdown), or disable Fast Startup (powercfg /h off), then migrate".into(),
        )
    } else {
        blocker(
            "hibernated",
            true,
            "Windows is hibernated (hiberfil.sys holds a resume image): resume the source VM and shut it down fully (shutdown /s /t 0) before migrating".into(),
        )
    })
}

/// Blockers read from the SYSTEM (control set `ccs`) and SOFTWARE hives.
pub fn from_hives(system: &Hive, software: Option<&Hive>, ccs: &str) -> Vec<Blocker> {
    let mut out = Vec::new();
    let sm = reg::key(system, &format!("{ccs}\\Control\\Session Manager"));
    let renames = sm
        .map(|k| {
            let mut v = reg::multi_with_empty(&k, "PendingFileRenameOperations");
            v.extend(reg::multi_with_empty(&k, "PendingFileRenameOperations2"));
            v
        })
        .unwrap_or_default();
    if !renames.is_empty() {
        out.push(blocker(
            "pending-rename",
            false,
            format!(
                "{} file rename/delete operation(s) are pending for the next boot (Session Manager\\PendingFileRenameOperations, e.g. {}): an update or installer awaits a reboot. Reboot the source VM once before migrating",
                renames.len().div_ceil(2),
                renames[0]
            ),
        ));
    }
    if let Some(sw) = software {
        let markers: Vec<&str> = PENDING_REBOOT
            .iter()
            .filter(|k| reg::key(sw, k).is_some())
            .copied()
            .collect();
        let update_exe = reg::key(sw, "Microsoft\\Updates")
            .and_then(|k| reg::dword(&k, "UpdateExeVolatile"))
            .is_some_and(|v| v != 0);
        if !markers.is_empty() || update_exe {
            let mut what: Vec<String> = markers.iter().map(|m| format!("SOFTWARE\\{m}")).collect();
            if update_exe {
                what.push("SOFTWARE\\Microsoft\\Updates\\UpdateExeVolatile".into());
            }
            out.push(blocker(
                "pending-reboot",
                false,
                format!(
                    "a reboot is pending ({}): reboot the source VM once before migrating",
                    what.join(", ")
                ),
            ));
        }
        if let Some(b) = device_install_policy(sw) {
            out.push(b);
        }
    }
    if let Some(v) = san_policy(system, ccs).filter(|&v| v != 1) {
        out.push(blocker(
            "san-policy",
            false,
            format!(
                "SanPolicy is {v} ({}): disks that appear on new controllers may come up offline; the first boot sets OnlineAll and restores it",
                san_policy_name(v)
            ),
        ));
    }
    out
}

/// Keys in SOFTWARE whose presence means a reboot is pending.
pub const PENDING_REBOOT: &[&str] = &[
    "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending",
    "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\PackagesPending",
    "Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired",
];

/// Values of `Policies\Microsoft\Windows\DeviceInstall\Restrictions` that
/// deny device installation when non-zero.
const DENY: &[&str] = &[
    "DenyUnspecified",
    "DenyDeviceIDs",
    "DenyDeviceClasses",
    "DenyRemovableDevices",
    "DenyAll",
];

fn device_install_policy(software: &Hive) -> Option<Blocker> {
    let k = reg::key(
        software,
        "Policies\\Microsoft\\Windows\\DeviceInstall\\Restrictions",
    )?;
    let set: Vec<&str> = DENY
        .iter()
        .filter(|n| reg::dword(&k, n).is_some_and(|v| v != 0))
        .copied()
        .collect();
    (!set.is_empty()).then(|| {
        blocker(
            "device-install-policy",
            false,
            format!(
                "Group Policy restricts device installation ({}): new VirtIO devices may not get drivers (0x7B at boot); the fix relaxes it for the first boot and restores it",
                set.join(", ")
            ),
        )
    })
}

/// `Services\partmgr\Parameters\SanPolicy` (Vista+; absent = default).
pub fn san_policy(system: &Hive, ccs: &str) -> Option<u32> {
    reg::key(system, &format!("{ccs}\\Services\\partmgr\\Parameters"))
        .and_then(|k| reg::dword(&k, "SanPolicy"))
}

fn san_policy_name(v: u32) -> &'static str {
    match v {
        1 => "OnlineAll",
        2 => "OfflineShared",
        3 => "OfflineAll",
        4 => "OfflineInternal",
        _ => "unknown",
    }
}

/// `Control\Session Manager\Power\HiberbootEnabled`.
pub fn hiberboot(system: &Hive, ccs: &str) -> Option<u32> {
    reg::key(system, &format!("{ccs}\\Control\\Session Manager\\Power"))
        .and_then(|k| reg::dword(&k, "HiberbootEnabled"))
}

/// Raw facts by name, in a stable order.
pub fn facts(system: &Hive, ccs: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dw = |name: &str, path: String, value: &str| {
        if let Some(v) = reg::key(system, &path).and_then(|k| reg::dword(&k, value)) {
            out.push((name.to_string(), v.to_string()));
        }
    };
    dw(
        "HiberbootEnabled",
        format!("{ccs}\\Control\\Session Manager\\Power"),
        "HiberbootEnabled",
    );
    dw(
        "SanPolicy",
        format!("{ccs}\\Services\\partmgr\\Parameters"),
        "SanPolicy",
    );
    dw(
        "RealTimeIsUniversal",
        format!("{ccs}\\Control\\TimeZoneInformation"),
        "RealTimeIsUniversal",
    );
    dw(
        "CrashControl.AutoReboot",
        format!("{ccs}\\Control\\CrashControl"),
        "AutoReboot",
    );
    for v in ["SetupType", "SystemSetupInProgress", "OOBEInProgress"] {
        dw(&format!("Setup.{v}"), "Setup".into(), v);
    }
    if let Some(c) = reg::key(system, "Setup").and_then(|k| reg::string(&k, "CmdLine")) {
        out.push(("Setup.CmdLine".into(), c));
    }
    if let Some(tz) =
        reg::key(system, &format!("{ccs}\\Control\\TimeZoneInformation")).and_then(|k| {
            reg::string(&k, "TimeZoneKeyName").or_else(|| reg::string(&k, "StandardName"))
        })
    {
        out.push(("TimeZone".into(), tz));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiberfil_signatures() {
        for s in [b"hibr", b"HIBR", b"wake", b"WAKE", b"RSTR"] {
            let mut h = s.to_vec();
            h.extend_from_slice(&[0; 60]);
            assert_eq!(hiber_state(&h), HiberState::Hibernated);
        }
        assert_eq!(hiber_state(&[0; 64]), HiberState::Clear);
        assert_eq!(hiber_state(b"hib"), HiberState::Clear);
        assert_eq!(
            hibernation(Some(HiberState::Hibernated), Some(1))
                .unwrap()
                .id,
            "fast-startup"
        );
        assert_eq!(
            hibernation(Some(HiberState::Hibernated), None).unwrap().id,
            "hibernated"
        );
        assert!(hibernation(Some(HiberState::Clear), Some(1)).is_none());
    }
}
