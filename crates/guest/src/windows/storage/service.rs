//! The storage driver's service, from its INF, in every control set.

use super::{Error, MediaDriver, Out, Reg, Result};
use crate::drivers::inf::{AddRegLine, RegData as InfData};
use crate::inspect::WindowsInstall;
use crate::plan::RegData;

/// What the rest of the plan needs to know about the storage service.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// Service name (`viostor`).
    pub name: String,
    /// Driver file name (`viostor.sys`).
    pub binary: String,
    /// `ImagePath` (relative to the system root, `System32\drivers\…`).
    pub image_path: String,
    /// LoadOrderGroup.
    pub group: Option<String>,
    /// Class GUID of the INF.
    pub class_guid: String,
    /// The service's AddReg lines (HKR = the service key).
    pub add_reg: Vec<AddRegLine>,
}

/// An INF AddReg datum as a plan value; `None` for a key-only line.
pub fn reg_data(d: &InfData) -> Option<RegData> {
    Some(match d {
        InfData::Sz(s) => RegData::Sz(s.clone()),
        InfData::ExpandSz(s) => RegData::ExpandSz(s.clone()),
        InfData::MultiSz(v) => RegData::MultiSz(v.clone()),
        InfData::Dword(n) => RegData::Dword(*n),
        InfData::Binary { kind: 3, bytes } => RegData::Binary(bytes.clone()),
        InfData::Binary { kind, bytes } => RegData::Raw {
            kind: *kind,
            bytes: bytes.clone(),
        },
        InfData::None(b) => RegData::None(b.clone()),
        InfData::KeyOnly => return None,
    })
}

/// `ServiceBinary` (`%12%\viostor.sys`) as an `ImagePath` relative to the
/// system root and the file name; `None` for a directory id we do not map.
pub fn image_path(binary: &str) -> Option<(String, String)> {
    let b = binary.trim().replace('/', "\\");
    let (dir, file) = b.rsplit_once('\\')?;
    let base = match dir.to_ascii_lowercase().as_str() {
        "%12%" => r"System32\drivers",
        "%11%" => "System32",
        "%10%" => "",
        d if d.eq_ignore_ascii_case(r"%systemroot%\system32\drivers")
            || d.eq_ignore_ascii_case(r"\systemroot\system32\drivers") =>
        {
            r"System32\drivers"
        }
        _ => return None,
    };
    if file.is_empty() {
        return None;
    }
    let path = if base.is_empty() {
        file.to_string()
    } else {
        format!(r"{base}\{file}")
    };
    Some((path, file.to_string()))
}

/// Key path for an HKR AddReg line under `base`.
pub fn hkr_key(base: &str, subkey: &str) -> String {
    let s = subkey.trim_matches('\\');
    if s.is_empty() {
        base.to_string()
    } else {
        format!(r"{base}\{s}")
    }
}

/// Apply AddReg `lines` (HKR = `base`) as plan actions.
pub fn plan_add_reg(
    reg: &Reg,
    base: &str,
    lines: &[AddRegLine],
    reason: &str,
    out: &mut Out,
) -> Vec<String> {
    let mut skipped = Vec::new();
    for l in lines {
        if !l.root.eq_ignore_ascii_case("HKR") {
            skipped.push(format!(
                "line {}: {}\\{} (only HKR lines are applied)",
                l.line, l.root, l.subkey
            ));
            continue;
        }
        let key = hkr_key(base, &l.subkey);
        match reg_data(&l.data) {
            None => out.create_key(reg, &key, reason),
            Some(d) => {
                let name = l.value_name.clone().unwrap_or_default();
                if l.no_clobber() && super::get_value(reg.hive, &key, &name).is_some() {
                    continue;
                }
                out.set(reg, &key, &name, d, reason);
            }
        }
    }
    skipped
}

/// Plan `Services\<svc>` (and its event-log source) in every control set
/// in use: Start=0 and the INF's values, `StartOverride` removed, the
/// group in `ServiceGroupOrder`.
pub fn plan_service(
    install: &WindowsInstall,
    sys: &Reg,
    drv: &MediaDriver,
    out: &mut Out,
) -> Result<ServiceInfo> {
    let inf_path = drv.selected.inf_path.clone();
    let derr = |msg: String| Error::Driver {
        inf: inf_path.clone(),
        msg,
    };
    let summary = &drv.selected.summary;
    let main = summary
        .main_service()
        .ok_or_else(|| derr("installs no service (no AddService)".into()))?;
    let inst = main.install.as_ref().ok_or_else(|| {
        derr(format!(
            "AddService {} has no service-install section",
            main.add_service.name
        ))
    })?;
    let svc = main.add_service.name.clone();
    let (image, binary) = match inst.service_binary.as_deref().and_then(image_path) {
        Some(x) => x,
        None => {
            out.warn(format!(
                "{inf_path}: ServiceBinary {:?} is not under a known directory id; using System32\\drivers\\{svc}.sys",
                inst.service_binary
            ));
            (format!(r"System32\drivers\{svc}.sys"), format!("{svc}.sys"))
        }
    };
    let class_guid = summary
        .version
        .class_guid
        .clone()
        .ok_or_else(|| derr("[Version] has no ClassGUID".into()))?;
    let why = format!("{svc} must start at boot (STOP 0x7B otherwise); values from {inf_path}");
    let mut skipped = Vec::new();
    for cs in &install.control_sets.in_use {
        let base = format!(r"{cs}\Services\{svc}");
        out.set(
            sys,
            &base,
            "Type",
            RegData::Dword(inst.service_type.unwrap_or(1)),
            &why,
        );
        out.set(sys, &base, "Start", RegData::Dword(0), &why);
        out.set(
            sys,
            &base,
            "ErrorControl",
            RegData::Dword(inst.error_control.unwrap_or(1)),
            &why,
        );
        if let Some(g) = &inst.load_order_group {
            out.set(sys, &base, "Group", RegData::Sz(g.clone()), &why);
        }
        out.set(
            sys,
            &base,
            "ImagePath",
            RegData::ExpandSz(image.clone()),
            &why,
        );
        if let Some(d) = &inst.display_name {
            out.set(sys, &base, "DisplayName", RegData::Sz(d.clone()), &why);
        }
        skipped = plan_add_reg(sys, &base, &main.add_reg, &why, out);
        out.delete_key(
            sys,
            &format!(r"{base}\StartOverride"),
            "a StartOverride would keep the boot driver from starting",
        );
        plan_event_log(sys, drv, cs, &svc, out)?;
        if let Some(g) = &inst.load_order_group {
            plan_group_order(sys, cs, g, out);
        }
    }
    for s in skipped {
        out.warn(format!("{inf_path}: {s}"));
    }
    Ok(ServiceInfo {
        name: svc,
        binary,
        image_path: image,
        group: inst.load_order_group.clone(),
        class_guid,
        add_reg: main.add_reg.clone(),
    })
}

fn plan_event_log(sys: &Reg, drv: &MediaDriver, cs: &str, svc: &str, out: &mut Out) -> Result<()> {
    let Some(main) = drv.selected.summary.main_service() else {
        return Ok(());
    };
    let Some(sec) = &main.add_service.event_log_section else {
        return Ok(());
    };
    let Some(section) = drv.inf.section(sec) else {
        return Ok(());
    };
    let base = format!(r"{cs}\Services\EventLog\System\{svc}");
    for l in section.get_all("AddReg") {
        for name in l.values.iter().filter(|v| !v.is_empty()) {
            let lines = drv.inf.add_reg(name)?;
            plan_add_reg(
                sys,
                &base,
                &lines,
                &format!("event-log source of {svc} (INF event-log section)"),
                out,
            );
        }
    }
    Ok(())
}

fn plan_group_order(sys: &Reg, cs: &str, group: &str, out: &mut Out) {
    let key = format!(r"{cs}\Control\ServiceGroupOrder");
    let list = match super::get_value(sys.hive, &key, "List") {
        Some(regf::Value::MultiString(v)) => v,
        _ => Vec::new(),
    };
    if list.iter().any(|g| g.eq_ignore_ascii_case(group)) {
        return;
    }
    let mut new = list;
    new.push(group.to_string());
    out.set(
        sys,
        &key,
        "List",
        RegData::MultiSz(new),
        &format!("load-order group '{group}' must be listed for its drivers to load in order"),
    );
}
