//! Device binding on Windows 8 and later: a `DriverDatabase` registration
//! shaped like the packages Windows itself registers, so PnP binds the
//! controller to the service at the first boot.
//!
//! Written (all under `DriverDatabase`, `<inf>` the INF's own name, e.g.
//! `viostor.inf`, `<label>` = `<inf>_<arch>_<16 hex of the INF's SHA-256>`):
//! - `DriverInfFiles\<inf>`: `@` = [label] (MULTI_SZ), `Active` = label,
//!   `Configurations` = the install sections (MULTI_SZ);
//! - `DeviceIds\<enum>\<rest>` for every ID of the models: value `<inf>` =
//!   `[1 (hardware ID) or 2 (compatible ID), 0xff, 0, 0]` (REG_BINARY);
//! - `DeviceIds\{class guid}`: value `<inf>` (REG_NONE, empty);
//! - `DriverPackages\<label>`: `@` = `<inf>`, `InfName`, `Catalog`,
//!   `Provider`, `SignerScore`, `StatusFlags`, `Version` (48 bytes: OEM
//!   marker, arch, class GUID, DriverVer date as FILETIME, version as
//!   u64);
//! - `DriverPackages\<label>\Configurations\<section>`: `ConfigFlags`,
//!   `ConfigScope`, `Service`; `Device\…` mirrors the `.HW` AddReg lines
//!   and `Services\<svc>\…` the service's AddReg lines (type number with
//!   the AddReg flags in its high word; a key-only line becomes a value
//!   named after its flags, as Windows records them);
//! - `DriverPackages\<label>\Descriptors\<enum>\<rest>`: `Configuration`,
//!   `Description`, `Manufacturer`.
//!
//! The package and INF keys and the `DeviceIds` values are temporary: the
//! first-boot step deletes them once `pnputil` has installed the real
//! package (see [`super::stage::Temporary`]).

use super::service::{hkr_key, ServiceInfo};
use super::stage::Temporary;
use super::{Error, MediaDriver, Out, Reg, Result};
use crate::drivers::inf::{AddRegLine, RegData as InfData};
use crate::drivers::Arch;
use crate::inspect::WindowsInstall;
use crate::plan::RegData;

/// Root key of the driver database in SYSTEM.
pub const ROOT: &str = "DriverDatabase";
/// `SignerScore` of an OEM (third-party signed) package.
pub const SIGNER_SCORE_OEM: u32 = 0x0d00_0005;
/// `StatusFlags` real packages carry (0x12).
pub const STATUS_FLAGS: u32 = 0x12;
/// `ConfigScope` of a device configuration with a service.
pub const CONFIG_SCOPE: u32 = 7;

/// Architecture number of the `Version` blob (PROCESSOR_ARCHITECTURE_*).
pub fn arch_code(arch: Arch) -> u16 {
    match arch {
        Arch::Amd64 => 9,
        Arch::X86 => 0,
    }
}

/// A GUID string (`{4D36E97B-E325-11CE-BFC1-08002BE10318}`) as the 16
/// bytes Windows stores (first three fields little-endian).
pub fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let u = uuid::Uuid::parse_str(s.trim().trim_start_matches('{').trim_end_matches('}')).ok()?;
    Some(u.to_bytes_le())
}

/// FILETIME of midnight UTC of an INF date `mm/dd/yyyy`.
pub fn driver_date_filetime(date: &str) -> Option<u64> {
    let mut it = date.trim().split('/');
    let m: i64 = it.next()?.trim().parse().ok()?;
    let d: i64 = it.next()?.trim().parse().ok()?;
    let y: i64 = it.next()?.trim().parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1601 {
        return None;
    }
    // Days from 1970-01-01 (civil-from-days inverse, proleptic Gregorian).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + 11_644_473_600;
    u64::try_from(secs).ok().map(|s| s * 10_000_000)
}

/// An INF version `w.x.y.z` as Windows packs it (major<<48 | minor<<32 |
/// build<<16 | revision).
pub fn driver_version_u64(v: &str) -> Option<u64> {
    let mut out = 0u64;
    let parts: Vec<&str> = v.trim().split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    for i in 0..4 {
        let n: u16 = match parts.get(i) {
            Some(p) => p.trim().parse().ok()?,
            None => 0,
        };
        out |= (n as u64) << (48 - 16 * i);
    }
    Some(out)
}

/// The 48-byte `Version` value of a `DriverPackages` entry.
pub fn version_blob(arch: Arch, class_guid: &[u8; 16], filetime: u64, version: u64) -> Vec<u8> {
    let mut b = vec![0u8; 48];
    b[0] = 0x00;
    b[1] = 0xff;
    b[2..4].copy_from_slice(&arch_code(arch).to_le_bytes());
    b[8..24].copy_from_slice(class_guid);
    b[24..32].copy_from_slice(&filetime.to_le_bytes());
    b[32..40].copy_from_slice(&version.to_le_bytes());
    b
}

/// The package label `<inf>_<arch>_<16 hex>` (hash from the INF's SHA-256).
pub fn package_label(inf_name: &str, arch: Arch, inf_sha256: &str) -> String {
    let h: String = inf_sha256.chars().take(16).collect();
    format!("{}_{}_{h}", inf_name.to_lowercase(), arch.inf_name())
}

/// `<enum>\<rest>` key path of a device ID (`PCI\VEN_1AF4&DEV_1001`);
/// IDs without an enumerator (`*PNP0600`) stay one component.
pub fn device_key(id: &str) -> String {
    id.to_string()
}

/// An AddReg line as a DriverDatabase mirror value: name and data.
fn mirror_value(l: &AddRegLine) -> (String, RegData) {
    let flags_hi = (l.flags & 0xfffe) << 16;
    match &l.data {
        InfData::KeyOnly => (format!("0x{:08x}", l.flags), RegData::Sz(String::new())),
        d => {
            let name = l.value_name.clone().unwrap_or_default();
            let data = super::service::reg_data(d).unwrap_or(RegData::Sz(String::new()));
            if flags_hi == 0 {
                return (name, data);
            }
            let v = data.to_value();
            (
                name,
                RegData::Raw {
                    kind: v.kind() | flags_hi,
                    bytes: v.to_bytes(),
                },
            )
        }
    }
}

fn plan_mirror(sys: &Reg, base: &str, lines: &[AddRegLine], why: &str, out: &mut Out) {
    for l in lines.iter().filter(|l| l.root.eq_ignore_ascii_case("HKR")) {
        let key = hkr_key(base, &l.subkey);
        let (name, data) = mirror_value(l);
        out.set(sys, &key, &name, data, why);
    }
}

/// What the stages of the registration share.
struct Ctx<'a> {
    sys: &'a Reg<'a>,
    drv: &'a MediaDriver,
    svc: &'a ServiceInfo,
    arch: Arch,
    inf: String,
    pkg: String,
    why: String,
}

/// Plan the registration; returns what is temporary.
pub fn plan_driverdb(
    install: &WindowsInstall,
    sys: &Reg,
    drv: &MediaDriver,
    svc: &ServiceInfo,
    out: &mut Out,
) -> Result<Vec<Temporary>> {
    let inf = drv.inf_name().to_lowercase();
    let inf_sha = drv
        .inf_blob()
        .map(|b| b.sha256.as_str())
        .ok_or_else(|| Error::Driver {
            inf: drv.selected.inf_path.clone(),
            msg: "the package lists no files (the INF first)".into(),
        })?;
    let label = package_label(&inf, install.arch, inf_sha);
    let c = Ctx {
        sys,
        drv,
        svc,
        arch: install.arch,
        pkg: format!(r"{ROOT}\DriverPackages\{label}"),
        why: format!(
            "register {inf} in the DriverDatabase so PnP binds the VirtIO controller to {} at the first boot (Windows 8+)",
            svc.name
        ),
        inf,
    };
    let inf_key = format!(r"{ROOT}\DriverInfFiles\{}", c.inf);
    let mut temporary = vec![
        Temporary::Key(format!(r"SYSTEM\{}", c.pkg)),
        Temporary::Key(format!(r"SYSTEM\{inf_key}")),
    ];
    let configs = plan_configurations(&c, out)?;
    temporary.extend(plan_device_ids(&c, out)?);
    plan_package(&c, out)?;
    out.set(
        sys,
        &inf_key,
        "",
        RegData::MultiSz(vec![label.clone()]),
        &c.why,
    );
    out.set(sys, &inf_key, "Active", RegData::Sz(label), &c.why);
    out.set(
        sys,
        &inf_key,
        "Configurations",
        RegData::MultiSz(configs),
        &c.why,
    );
    Ok(temporary)
}

/// `Configurations\<section>` for every install section the models use;
/// returns the section names.
fn plan_configurations(c: &Ctx, out: &mut Out) -> Result<Vec<String>> {
    let mut configs: Vec<String> = Vec::new();
    for is in &c.drv.selected.summary.install_sections {
        let cfg = is.name.clone();
        let base = format!(r"{}\Configurations\{cfg}", c.pkg);
        out.set(c.sys, &base, "ConfigFlags", RegData::Dword(0), &c.why);
        out.set(
            c.sys,
            &base,
            "ConfigScope",
            RegData::Dword(CONFIG_SCOPE),
            &c.why,
        );
        let service = is
            .services
            .iter()
            .find(|a| a.flags & 0x2 != 0)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        out.set(
            c.sys,
            &base,
            "Service",
            RegData::Sz(service.clone()),
            &c.why,
        );
        let mut hw = Vec::new();
        for name in &is.hw_add_reg {
            hw.extend(c.drv.inf.add_reg(name)?);
        }
        if !hw.is_empty() {
            plan_mirror(c.sys, &format!(r"{base}\Device"), &hw, &c.why, out);
        }
        if !service.is_empty() && service.eq_ignore_ascii_case(&c.svc.name) {
            let sbase = format!(r"{base}\Services\{service}");
            out.create_key(c.sys, &sbase, &c.why);
            plan_mirror(c.sys, &sbase, &c.svc.add_reg, &c.why, out);
        }
        configs.push(cfg);
    }
    Ok(configs)
}

/// `Descriptors` for every model line, `DeviceIds` for every ID and the
/// class; returns the temporary `DeviceIds` values.
fn plan_device_ids(c: &Ctx, out: &mut Out) -> Result<Vec<Temporary>> {
    let s = &c.drv.selected.summary;
    let mut seen: Vec<(String, u8)> = Vec::new();
    for ms in &s.models {
        for m in &ms.models {
            let cfg = c
                .drv
                .inf
                .install_section(&m.install_section, c.arch)?
                .map(|i| i.name)
                .unwrap_or_else(|| m.install_section.clone());
            for (i, id) in m.hardware_ids.iter().enumerate() {
                let rank = if i == 0 { 1u8 } else { 2u8 };
                match seen.iter_mut().find(|(x, _)| x.eq_ignore_ascii_case(id)) {
                    Some(e) => e.1 = e.1.min(rank),
                    None => seen.push((id.clone(), rank)),
                }
                let d = format!(r"{}\Descriptors\{}", c.pkg, device_key(id));
                out.set(c.sys, &d, "Configuration", RegData::Sz(cfg.clone()), &c.why);
                out.set(
                    c.sys,
                    &d,
                    "Description",
                    RegData::Sz(m.description.clone()),
                    &c.why,
                );
                out.set(
                    c.sys,
                    &d,
                    "Manufacturer",
                    RegData::Sz(ms.manufacturer.clone()),
                    &c.why,
                );
            }
        }
    }
    let mut temporary = Vec::new();
    for (id, rank) in &seen {
        let k = format!(r"{ROOT}\DeviceIds\{}", device_key(id));
        out.set(
            c.sys,
            &k,
            &c.inf,
            RegData::Binary(vec![*rank, 0xff, 0, 0]),
            &c.why,
        );
        temporary.push(Temporary::Value(format!(r"SYSTEM\{k}"), c.inf.clone()));
    }
    let ck = format!(r"{ROOT}\DeviceIds\{}", c.svc.class_guid.to_lowercase());
    out.set(c.sys, &ck, &c.inf, RegData::None(vec![]), &c.why);
    temporary.push(Temporary::Value(format!(r"SYSTEM\{ck}"), c.inf.clone()));
    Ok(temporary)
}

/// The `DriverPackages\<label>` values.
fn plan_package(c: &Ctx, out: &mut Out) -> Result<()> {
    let s = &c.drv.selected.summary;
    let derr = |msg: String| Error::Driver {
        inf: c.drv.selected.inf_path.clone(),
        msg,
    };
    let guid = guid_bytes(&c.svc.class_guid)
        .ok_or_else(|| derr(format!("ClassGUID {} is not a GUID", c.svc.class_guid)))?;
    let date = s
        .version
        .driver_date
        .as_deref()
        .and_then(driver_date_filetime)
        .ok_or_else(|| {
            derr(format!(
                "DriverVer date {:?} is not mm/dd/yyyy",
                s.version.driver_date
            ))
        })?;
    let ver = s
        .version
        .driver_version
        .as_deref()
        .and_then(driver_version_u64)
        .ok_or_else(|| {
            derr(format!(
                "DriverVer version {:?} is not w.x.y.z",
                s.version.driver_version
            ))
        })?;
    let (sys, pkg, why) = (c.sys, &c.pkg, &c.why);
    out.set(sys, pkg, "", RegData::Sz(c.inf.clone()), why);
    out.set(sys, pkg, "InfName", RegData::Sz(c.inf.clone()), why);
    if let Some(cat) = &s.catalog_file {
        out.set(sys, pkg, "Catalog", RegData::Sz(cat.clone()), why);
    }
    if let Some(p) = &s.version.provider {
        out.set(sys, pkg, "Provider", RegData::Sz(p.clone()), why);
    }
    out.set(
        sys,
        pkg,
        "SignerScore",
        RegData::Dword(SIGNER_SCORE_OEM),
        why,
    );
    out.set(sys, pkg, "StatusFlags", RegData::Dword(STATUS_FLAGS), why);
    out.set(
        sys,
        pkg,
        "Version",
        RegData::Binary(version_blob(c.arch, &guid, date, ver)),
        why,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_fields_match_what_windows_wrote() {
        // pvscsi.inf (DriverVer 08/02/2019,1.3.15.0) and stornvme.inf
        // (10.0.18362.693) in the shared Windows 10 SYSTEM hive.
        assert_eq!(
            driver_date_filetime("08/02/2019"),
            Some(0x01d5_48c5_3a3b_0000)
        );
        assert_eq!(
            driver_version_u64("1.3.15.0").unwrap().to_le_bytes(),
            [0x00, 0x00, 0x0f, 0x00, 0x03, 0x00, 0x01, 0x00]
        );
        assert_eq!(
            driver_version_u64("10.0.18362.693").unwrap().to_le_bytes(),
            [0xb5, 0x02, 0xba, 0x47, 0x00, 0x00, 0x0a, 0x00]
        );
        let g = guid_bytes("{4D36E97B-E325-11CE-BFC1-08002BE10318}").unwrap();
        assert_eq!(
            g,
            [
                0x7b, 0xe9, 0x36, 0x4d, 0x25, 0xe3, 0xce, 0x11, 0xbf, 0xc1, 0x08, 0x00, 0x2b, 0xe1,
                0x03, 0x18
            ]
        );
        let v = version_blob(
            Arch::Amd64,
            &g,
            0x01d5_48c5_3a3b_0000,
            driver_version_u64("1.3.15.0").unwrap(),
        );
        // The whole Version value of the pvscsi package.
        let real = "00ff0900000000007be9364d25e3ce11bfc108002be1031800003b3ac548d50100000f00030001000000000000000000";
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, real);
        // Bad input: no value, no panic.
        for d in ["13/01/2008", "1/1", "a/b/c", "01/01/1500", ""] {
            assert_eq!(driver_date_filetime(d), None, "{d}");
        }
        for d in ["1.2.3.4.5", "70000.0", "x"] {
            assert_eq!(driver_version_u64(d), None, "{d}");
        }
        assert_eq!(driver_version_u64("6.1"), Some(6 << 48 | 1 << 32));
    }
}
