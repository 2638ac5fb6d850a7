//! `txtsetup.oem` for Windows XP/2003 text-mode setup ("press F6").
//!
//! Built from the selected storage drivers' INFs: the component id and
//! driver key are the INF's function-driver service name, the driver file
//! is its ServiceBinary, the hardware ids are the models' ids, and the
//! `[Config.<service>]` values are a `Tag` plus the service's own HKR
//! AddReg lines. Sections written: `[Disks]` (one disk, files in the root,
//! with a tag file), `[Defaults]`, `[scsi]`, `[Files.scsi.<id>]`,
//! `[HardwareIds.scsi.<id>]`, `[Config.<id>]`. Text-mode setup reads 8.3
//! file names only; longer names are refused.

use super::inf::RegData;
use super::select::{DriverSet, SelectedDriver};
use super::{Error, Result};
use serde::Serialize;

/// Name of the tag file whose presence identifies the disk.
pub const TAG_FILE: &str = "virtio.tag";

/// Where a file of the driver disk comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DiskData {
    /// A file on the driver media (path).
    Media(String),
    /// Generated contents.
    Bytes(Vec<u8>),
}

/// One file of the driver disk (all in its root directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskFile {
    /// File name in the root of the disk.
    pub name: String,
    /// Its contents.
    pub data: DiskData,
}

/// A text-mode setup driver disk: `txtsetup.oem`, the tag file and the
/// drivers' files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxtsetupDisk {
    /// The `txtsetup.oem` text (CRLF line ends).
    pub text: String,
    /// Every file of the disk, `txtsetup.oem` and the tag file first.
    pub files: Vec<DiskFile>,
}

fn is_83(name: &str) -> bool {
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    !stem.is_empty()
        && stem.len() <= 8
        && ext.len() <= 3
        && !ext.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-~!#$%&'(){}^@`".contains(&b))
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "'"))
}

fn base(path: &str) -> &str {
    SelectedDriver::base_name(path.rsplit('\\').next().unwrap_or(path))
}

fn config_line(data: &RegData, subkey: &str, name: &str) -> Option<String> {
    let (ty, val) = match data {
        RegData::Dword(v) => ("REG_DWORD", format!("{v:x}")),
        RegData::Sz(s) => ("REG_SZ", q(s)),
        RegData::ExpandSz(s) => ("REG_EXPAND_SZ", q(s)),
        RegData::MultiSz(v) => (
            "REG_MULTI_SZ",
            v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "),
        ),
        RegData::Binary { kind: 3, bytes } => (
            "REG_BINARY",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        ),
        _ => return None,
    };
    Some(format!("value = {}, {}, {ty}, {val}", q(subkey), q(name)))
}

/// Build the text-mode setup disk for the storage drivers of `set`.
pub fn txtsetup_oem(set: &DriverSet) -> Result<TxtsetupDisk> {
    let storage: Vec<&SelectedDriver> =
        set.drivers.iter().filter(|d| d.role.is_storage()).collect();
    if storage.is_empty() {
        return Err(Error::Txtsetup("no storage driver selected".into()));
    }
    let e = |d: &SelectedDriver, m: String| Error::Txtsetup(format!("{}: {m}", d.inf_path));
    struct Comp {
        id: String,
        desc: String,
        driver: String,
        inf: String,
        cat: Option<String>,
        hwids: Vec<String>,
        config: Vec<String>,
    }
    let mut comps = Vec::new();
    for (n, d) in storage.iter().enumerate() {
        let svc = d
            .summary
            .main_service()
            .ok_or_else(|| e(d, "the INF installs no service".into()))?;
        let id = svc.add_service.name.clone();
        let binary = svc
            .install
            .as_ref()
            .and_then(|i| i.service_binary.clone())
            .ok_or_else(|| e(d, format!("service {id} has no ServiceBinary")))?;
        let driver = base(&binary).to_string();
        if !d
            .files
            .iter()
            .any(|f| base(&f.path).eq_ignore_ascii_case(&driver))
        {
            return Err(e(
                d,
                format!("ServiceBinary {driver} is not among the driver's files"),
            ));
        }
        let desc = d
            .summary
            .models
            .iter()
            .flat_map(|m| &m.models)
            .map(|m| m.description.clone())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| id.clone());
        let mut config = vec![format!("value = \"\", Tag, REG_DWORD, {:x}", n + 1)];
        for r in &svc.add_reg {
            if !r.root.eq_ignore_ascii_case("HKR") {
                continue;
            }
            if let Some(l) = config_line(&r.data, &r.subkey, r.value_name.as_deref().unwrap_or(""))
            {
                config.push(l);
            }
        }
        comps.push(Comp {
            id,
            desc,
            driver,
            inf: base(&d.inf_path).to_string(),
            cat: d.summary.catalog_file.clone(),
            hwids: d.summary.hardware_ids.clone(),
            config,
        });
    }

    let mut t: Vec<String> = vec![
        format!(
            "; txtsetup.oem for {} ({}) {}, written by hyper2kvm from {}",
            set.os_name,
            set.os_id,
            set.arch,
            storage
                .iter()
                .map(|d| d.inf_path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        String::new(),
        "[Disks]".into(),
        format!(
            "d1 = {}, \\{TAG_FILE}, \\",
            q(&format!(
                "VirtIO storage drivers for {} {}",
                set.os_name, set.arch
            ))
        ),
        String::new(),
        "[Defaults]".into(),
        format!("scsi = {}", comps[0].id),
        String::new(),
        "[scsi]".into(),
    ];
    for c in &comps {
        t.push(format!("{} = {}", c.id, q(&c.desc)));
    }
    for c in &comps {
        t.push(String::new());
        t.push(format!("[Files.scsi.{}]", c.id));
        t.push(format!("driver = d1, {}, {}", c.driver, c.id));
        t.push(format!("inf = d1, {}", c.inf));
        if let Some(cat) = &c.cat {
            t.push(format!("catalog = d1, {cat}"));
        }
        t.push(String::new());
        t.push(format!("[HardwareIds.scsi.{}]", c.id));
        for h in &c.hwids {
            t.push(format!("id = {}, {}", q(h), q(&c.id)));
        }
        t.push(String::new());
        t.push(format!("[Config.{}]", c.id));
        t.extend(c.config.iter().cloned());
    }
    let mut text = t.join("\r\n");
    text.push_str("\r\n");

    let mut files = vec![
        DiskFile {
            name: "txtsetup.oem".into(),
            data: DiskData::Bytes(text.clone().into_bytes()),
        },
        DiskFile {
            name: TAG_FILE.into(),
            data: DiskData::Bytes(b"hyper2kvm VirtIO driver disk\r\n".to_vec()),
        },
    ];
    for d in &storage {
        for f in &d.files {
            let name = base(&f.path).to_string();
            if !is_83(&name) {
                return Err(e(
                    d,
                    format!("file {name} is not an 8.3 name, which text-mode setup needs"),
                ));
            }
            if let Some(prev) = files.iter().find(|x| x.name.eq_ignore_ascii_case(&name)) {
                if prev.data != DiskData::Media(f.path.clone()) {
                    return Err(e(
                        d,
                        format!("two different files named {name} for one disk"),
                    ));
                }
                continue;
            }
            files.push(DiskFile {
                name,
                data: DiskData::Media(f.path.clone()),
            });
        }
    }
    Ok(TxtsetupDisk { text, files })
}
