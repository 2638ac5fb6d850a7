//! Files: the storage driver in `System32\drivers`, every driver package
//! of the media staged under `%SystemRoot%\Drivers\VirtIO\<driver>\` for
//! PnP (and the first-boot step) to install, `DevicePath` extended, and
//! the list of temporary registrations the first-boot step removes.

use super::service::ServiceInfo;
use super::{under_root, Error, MediaDriver, Out, Reg, Result, StorageMedia};
use crate::inspect::WindowsInstall;
use crate::plan::{Action, RegData};

/// Staging directory under the system root, `/`-separated.
pub const STAGE_DIR: &str = "Drivers/VirtIO";
/// `DevicePath` entry for the staging directory (PnP searches below it).
pub const DEVICE_PATH_ENTRY: &str = r"%SystemRoot%\Drivers\VirtIO";
/// SOFTWARE key holding hyper2kvm's state in the guest.
pub const STATE_KEY: &str = "hyper2kvm";
/// SOFTWARE key listing what the first-boot step removes once the real
/// driver packages are installed.
pub const TEMPORARY_KEY: &str = r"hyper2kvm\Temporary";
/// SOFTWARE key and value of the driver search path.
pub const DEVICE_PATH_KEY: &str = r"Microsoft\Windows\CurrentVersion";

/// One temporary registration: a whole key, or one value of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Temporary {
    /// A key (deleted with everything below it), path from `HKLM`.
    Key(String),
    /// A value: key path from `HKLM` and value name.
    Value(String, String),
}

/// Copy the storage driver's binary to `System32\drivers`.
pub fn plan_driver_file(
    install: &WindowsInstall,
    drv: &MediaDriver,
    svc: &ServiceInfo,
    out: &mut Out,
) -> Result<()> {
    let f = drv.file(&svc.binary).ok_or_else(|| Error::Driver {
        inf: drv.selected.inf_path.clone(),
        msg: format!(
            "ServiceBinary {} is not among the package's files on the media",
            svc.binary
        ),
    })?;
    out.action(
        Action::PutFile {
            volume: install.system.clone(),
            path: under_root(install, &svc.image_path.replace('\\', "/")),
            source: f.source.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
        },
        &format!(
            "{} is the boot-start driver of the final disk bus (from {})",
            svc.binary, f.path
        ),
    );
    Ok(())
}

/// Stage every driver package, extend `DevicePath`, record `temporary`.
pub fn plan_staging(
    install: &WindowsInstall,
    soft: &Reg,
    media: &StorageMedia,
    temporary: &[Temporary],
    out: &mut Out,
) {
    for d in &media.drivers {
        let dir = under_root(install, &format!("{STAGE_DIR}/{}", d.selected.name));
        for f in &d.files {
            out.action(
                Action::PutFile {
                    volume: install.system.clone(),
                    path: format!("{dir}/{}", f.name),
                    source: f.source.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                },
                &format!(
                    "stage the {} package ({}) for Plug and Play and the first-boot install",
                    d.selected.name, d.selected.dir
                ),
            );
        }
    }
    plan_device_path(soft, out);
    plan_temporary(soft, temporary, out);
}

fn plan_device_path(soft: &Reg, out: &mut Out) {
    let cur = match super::get_value(soft.hive, DEVICE_PATH_KEY, "DevicePath") {
        Some(regf::Value::ExpandString(s)) | Some(regf::Value::String(s)) => s,
        _ => r"%SystemRoot%\inf".to_string(),
    };
    let mut parts: Vec<String> = cur
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(String::from)
        .collect();
    if parts
        .iter()
        .any(|p| p.trim().eq_ignore_ascii_case(DEVICE_PATH_ENTRY))
    {
        return;
    }
    parts.push(DEVICE_PATH_ENTRY.to_string());
    out.set(
        soft,
        DEVICE_PATH_KEY,
        "DevicePath",
        RegData::ExpandSz(parts.join(";")),
        "Plug and Play searches the staged VirtIO drivers when a new device appears",
    );
}

/// The temporary list as `(value name, entries)`: `Keys` holds key paths
/// from `HKLM`, `Values` holds `<key path>|<value name>`.
pub fn temporary_values(temporary: &[Temporary]) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for t in temporary {
        match t {
            Temporary::Key(k) => keys.push(k.clone()),
            Temporary::Value(k, v) => values.push(format!("{k}|{v}")),
        }
    }
    (keys, values)
}

fn plan_temporary(soft: &Reg, temporary: &[Temporary], out: &mut Out) {
    if temporary.is_empty() {
        return;
    }
    let (keys, values) = temporary_values(temporary);
    let why = "the first-boot step removes these offline registrations once the real driver package is installed";
    for (name, new) in [("Keys", keys), ("Values", values)] {
        let mut list = match super::get_value(soft.hive, TEMPORARY_KEY, name) {
            Some(regf::Value::MultiString(v)) => v,
            _ => Vec::new(),
        };
        for n in new {
            if !list.iter().any(|x| x.eq_ignore_ascii_case(&n)) {
                list.push(n);
            }
        }
        if !list.is_empty() {
            out.set(soft, TEMPORARY_KEY, name, RegData::MultiSz(list), why);
        }
    }
}
