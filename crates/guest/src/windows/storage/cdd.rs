//! Device binding before Windows 8: `CriticalDeviceDatabase` entries that
//! map the controller's PCI IDs to the service at boot.

use super::service::ServiceInfo;
use super::{MediaDriver, Out, Reg, Result};
use crate::inspect::WindowsInstall;
use crate::plan::RegData;

/// The CDD key name of a hardware ID: `\` becomes `#`, lower case (as
/// Windows writes third-party entries).
pub fn cdd_name(hardware_id: &str) -> String {
    hardware_id.replace('\\', "#").to_lowercase()
}

/// Plan one CDD entry in every control set.
pub fn plan_entry(
    install: &WindowsInstall,
    sys: &Reg,
    id: &str,
    service: &str,
    class_guid: &str,
    reason: &str,
    out: &mut Out,
) {
    for cs in &install.control_sets.in_use {
        let key = format!(r"{cs}\Control\CriticalDeviceDatabase\{}", cdd_name(id));
        out.set(
            sys,
            &key,
            "Service",
            RegData::Sz(service.to_string()),
            reason,
        );
        out.set(
            sys,
            &key,
            "ClassGUID",
            RegData::Sz(class_guid.to_string()),
            reason,
        );
    }
}

/// CDD entries for every hardware and compatible ID of the INF's models
/// for the guest's architecture and OS.
pub fn plan_cdd(
    install: &WindowsInstall,
    sys: &Reg,
    drv: &MediaDriver,
    svc: &ServiceInfo,
    out: &mut Out,
) -> Result<()> {
    let why = format!(
        "bind the VirtIO controller to {} at boot (CriticalDeviceDatabase, before Windows 8); IDs from {}",
        svc.name, drv.selected.inf_path
    );
    for id in &drv.selected.summary.hardware_ids {
        plan_entry(install, sys, id, &svc.name, &svc.class_guid, &why, out);
    }
    Ok(())
}
