//! OVF descriptor parser (VMware and VirtualBox flavours).
//!
//! Hardware is read from the first `VirtualHardwareSection` of the first
//! `VirtualSystem` by DMTF CIM `ResourceType`: 3 CPU, 4 memory, 5 IDE,
//! 6 SCSI, 20 SATA/AHCI/NVMe controller, 10 ethernet, 15/16 CD/DVD,
//! 17 disk (`HostResource` `ovf:/disk/ID` → `DiskSection` → `References`).
//! VMware's `vmw:Config`/`vmw:ExtraConfig` (firmware, secure boot, vTPM,
//! uuid.bios) and VirtualBox's `vbox:Machine` (firmware, MACs, TPM, uuid)
//! are honoured.

use crate::error::{read_metadata, Error, Result};
use crate::guestos::GuestOs;
use crate::manifest::Manifest;
use crate::model::*;
use crate::xml::{self, Element};
use crate::ParseOptions;
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// A `References/File` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// `ovf:id`.
    pub id: String,
    /// `ovf:href` (relative file name).
    pub href: String,
    /// `ovf:size` if given.
    pub size: Option<u64>,
    /// `ovf:compression="gzip"`.
    pub gzip: bool,
}

/// Parse the `.ovf` at `path`. If `<stem>.mf` exists beside it, the
/// descriptor's digest is checked first; disk files are resolved through
/// the open gate (their digests are checked by [`verify_file`]).
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<VmModel> {
    let data = read_metadata(path)?;
    let mf = path.with_extension("mf");
    if mf.exists() {
        let m = Manifest::parse(&mf, &read_metadata(&mf)?)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        m.check_bytes(&name, &data)?;
    }
    let ctx = vdisk::OpenCtx::new(vdisk::OpenOptions {
        allow_outside: opts.allow_outside,
        ..Default::default()
    });
    let mut model = parse_descriptor(path, &data, &mut |f: &FileRef| {
        if f.href.contains("://") {
            return Err(Error::unsupported(
                path,
                format!("disk file {:?} is a URL; download it first", f.href),
            ));
        }
        Ok(DiskSource::File {
            path: ctx.resolve(path, &f.href)?,
        })
    })?;
    model.source = SourceKind::Ovf;
    Ok(model)
}

/// Stream the file `name` (as written in the manifest, relative to the
/// OVF's directory) through its manifest digest; `Ok` when there is no
/// manifest or no line for it.
pub fn verify_file(ovf: &Path, name: &str, opts: &ParseOptions) -> Result<()> {
    let mf = ovf.with_extension("mf");
    if !mf.exists() {
        return Ok(());
    }
    let m = Manifest::parse(&mf, &read_metadata(&mf)?)?;
    let Some(e) = m.entry(name) else {
        return Ok(());
    };
    let ctx = vdisk::OpenCtx::new(vdisk::OpenOptions {
        allow_outside: opts.allow_outside,
        ..Default::default()
    });
    let p = ctx.resolve(ovf, name)?;
    let mut f = std::fs::File::open(&p).map_err(|err| Error::io(&p, "cannot open", err))?;
    let mut h = e.algorithm.hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)
            .map_err(|err| Error::io(&p, "cannot read", err))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    m.check(name, e.algorithm, &h.finish_hex())
}

/// DiskSection entry: (fileRef, capacity in bytes, format URI).
type DiskDesc = (Option<String>, Option<u64>, Option<String>);

fn item_fields(item: &Element) -> HashMap<&str, &str> {
    item.children
        .iter()
        .map(|c| (c.name.as_str(), c.text.trim()))
        .collect()
}

fn parse_capacity(path: &Path, v: &str, units: Option<&str>) -> Result<u64> {
    let n: u64 = v.trim().parse().map_err(|_| {
        Error::invalid(
            path,
            "DiskSection",
            format!("capacity {v:?} is not a number"),
        )
    })?;
    let mul = match units {
        Some(u) => unit_multiplier(u, false).ok_or_else(|| {
            Error::invalid(
                path,
                "DiskSection",
                format!("unknown capacityAllocationUnits {u:?}"),
            )
        })?,
        None => 1,
    };
    n.checked_mul(mul)
        .ok_or_else(|| Error::invalid(path, "DiskSection", "capacity overflows 64 bits"))
}

/// Parse descriptor bytes; `resolve` turns a file reference into a disk
/// source (a gate-resolved file, or an entry of an OVA).
pub fn parse_descriptor(
    path: &Path,
    data: &[u8],
    resolve: &mut dyn FnMut(&FileRef) -> Result<DiskSource>,
) -> Result<VmModel> {
    let env = xml::parse(path, data)?;
    if env.name != "Envelope" {
        return Err(Error::invalid(
            path,
            format!("<{}>", env.name),
            "root element is not an OVF <Envelope>",
        ));
    }
    let mut files: HashMap<String, FileRef> = HashMap::new();
    if let Some(refs) = env.child("References") {
        for f in refs.children_named("File") {
            let (Some(id), Some(href)) = (f.attr("id"), f.attr("href")) else {
                return Err(Error::invalid(
                    path,
                    "References/File",
                    "File without ovf:id or ovf:href",
                ));
            };
            let gzip = match f.attr("compression") {
                None | Some("") | Some("identity") => false,
                Some("gzip") => true,
                Some(other) => {
                    return Err(Error::unsupported(
                        path,
                        format!("file {href:?} uses compression {other:?}"),
                    ))
                }
            };
            if f.attr("chunkSize").is_some() {
                return Err(Error::unsupported(
                    path,
                    format!("file {href:?} is split into chunks"),
                ));
            }
            files.insert(
                id.to_string(),
                FileRef {
                    id: id.into(),
                    href: href.into(),
                    size: f.attr("size").and_then(|s| s.parse().ok()),
                    gzip,
                },
            );
        }
    }
    // DiskSection: diskId → (fileRef, capacity, format).
    let mut disks: HashMap<String, DiskDesc> = HashMap::new();
    for sect in env
        .children
        .iter()
        .filter(|c| c.name == "DiskSection" || c.name == "VirtualDiskDesc")
    {
        for d in sect.children_named("Disk") {
            let Some(id) = d.attr("diskId") else { continue };
            let cap = match d.attr("capacity") {
                Some(c) => Some(parse_capacity(path, c, d.attr("capacityAllocationUnits"))?),
                None => None,
            };
            disks.insert(
                id.to_string(),
                (
                    d.attr("fileRef").map(String::from),
                    cap,
                    d.attr("format").map(String::from),
                ),
            );
        }
    }
    let vs = env
        .child("VirtualSystem")
        .or_else(|| {
            let mut v = Vec::new();
            env.descendants("VirtualSystem", &mut v);
            v.into_iter().next()
        })
        .ok_or_else(|| Error::invalid(path, "Envelope", "no <VirtualSystem>"))?;
    let name = vs
        .child_text("Name")
        .filter(|s| !s.is_empty())
        .or(vs.attr("id"))
        .unwrap_or("vm");
    let mut m = VmModel::new(name, SourceKind::Ova);
    // Guest OS.
    if let Some(os) = vs.child("OperatingSystemSection") {
        let hint = os
            .attr("osType")
            .map(String::from)
            .or_else(|| os.child_text("OSType").map(String::from))
            .or_else(|| {
                os.attr("id")
                    .filter(|i| *i != "0" && *i != "1")
                    .map(String::from)
            })
            .or_else(|| os.child_text("Description").map(String::from))
            .unwrap_or_default();
        m.guest_os = GuestOs::parse(&hint);
    }
    // VirtualBox section first; VMware Config/ExtraConfig and items below
    // override or complete it.
    let vbox_machine = vs.child("Machine");
    if let Some(mach) = vbox_machine {
        let os = m.guest_os.clone();
        crate::vbox::apply_machine(path, mach, &mut m)?;
        if m.guest_os.raw.is_empty() {
            m.guest_os = os;
        }
    }
    let vbox_nics = std::mem::take(&mut m.nics);
    let hw = vs
        .child("VirtualHardwareSection")
        .ok_or_else(|| Error::invalid(path, "VirtualSystem", "no <VirtualHardwareSection>"))?;
    if let Some(id) = hw
        .at("System")
        .and_then(|s| s.child_text("VirtualSystemIdentifier"))
    {
        if let Ok(u) = Uuid::parse_str(id) {
            m.instance_uuid.get_or_insert(u);
        }
    }
    // Default deployment configuration.
    let default_cfg = env
        .child("DeploymentOptionSection")
        .and_then(|d| {
            d.children_named("Configuration")
                .find(|c| c.attr("default") == Some("true"))
        })
        .and_then(|c| c.attr("id"))
        .map(String::from);
    let mut config: HashMap<String, String> = HashMap::new();
    for c in hw
        .children
        .iter()
        .filter(|c| c.name == "Config" || c.name == "ExtraConfig")
    {
        if let (Some(k), Some(v)) = (c.attr("key"), c.attr("value")) {
            config.insert(k.to_ascii_lowercase(), v.to_string());
        }
    }
    let truthy = |k: &str| {
        config
            .get(k)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if config
        .get("firmware")
        .is_some_and(|f| f.eq_ignore_ascii_case("efi"))
    {
        m.firmware = Firmware::UEFI;
    }
    if m.firmware.kind == FirmwareKind::Uefi
        && (truthy("bootoptions.efisecurebootenabled") || truthy("uefi.secureboot.enabled"))
    {
        m.firmware.secure_boot = true;
    }
    if truthy("vtpm.present") {
        m.vtpm = true;
    }
    if let Some(u) = config
        .get("uuid.bios")
        .and_then(|u| crate::vmx::vmware_bios_uuid(u))
    {
        m.uuid = Some(u);
    }
    let items: Vec<&Element> = hw
        .children
        .iter()
        .filter(|c| matches!(c.name.as_str(), "Item" | "StorageItem" | "EthernetPortItem"))
        .filter(|c| match (c.attr("configuration"), &default_cfg) {
            (None, _) => true,
            (Some(cfgs), Some(d)) => cfgs.split_whitespace().any(|x| x == d),
            (Some(_), None) => false,
        })
        .collect();
    let mut controllers: HashMap<String, Controller> = HashMap::new();
    let mut channels: HashMap<String, u32> = HashMap::new();
    let mut per_bus: HashMap<BusKind, u32> = HashMap::new();
    let mut ide_count = 0u32;
    let mut nic_items = Vec::new();
    let mut dev_items = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = item_fields(item);
        let loc = || format!("VirtualHardwareSection/Item[{}]", i + 1);
        let rt: u32 = match f.get("ResourceType").map(|s| s.parse()) {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Err(Error::invalid(path, loc(), "ResourceType is not a number"));
            }
            None => continue,
        };
        let sub = f
            .get("ResourceSubType")
            .copied()
            .unwrap_or("")
            .to_ascii_lowercase();
        let number = |k: &str| -> Result<u64> {
            f.get(k)
                .ok_or_else(|| Error::invalid(path, loc(), format!("no {k}")))?
                .parse::<u64>()
                .map_err(|_| Error::invalid(path, loc(), format!("{k} is not a number")))
        };
        match rt {
            3 => {
                let n = number("VirtualQuantity")?;
                if !(1..=1024).contains(&n) {
                    return Err(Error::invalid(
                        path,
                        loc(),
                        format!("{n} vCPUs; expected 1..1024"),
                    ));
                }
                let cps = f
                    .get("CoresPerSocket")
                    .and_then(|c| c.parse::<u32>().ok())
                    .unwrap_or(1);
                let (t, w) = CpuTopology::new(
                    n as u32,
                    if vbox_machine.is_some() {
                        n as u32
                    } else {
                        cps
                    },
                );
                m.cpu = t;
                m.warnings.extend(w);
            }
            4 => {
                let n = number("VirtualQuantity")?;
                let unit = f.get("AllocationUnits").copied().unwrap_or("byte * 2^20");
                let mul = unit_multiplier(unit, false).ok_or_else(|| {
                    Error::invalid(path, loc(), format!("unknown AllocationUnits {unit:?}"))
                })?;
                let mib = n.checked_mul(mul).map(|b| b >> 20).unwrap_or(0);
                if !(1..=64 << 20).contains(&mib) {
                    return Err(Error::invalid(
                        path,
                        loc(),
                        format!("memory {n} x {unit} is not between 1 MiB and 64 TiB"),
                    ));
                }
                m.memory_mib = mib;
            }
            5 | 6 | 20 => {
                let (bus, model, index) = match rt {
                    5 => {
                        ide_count += 1;
                        (
                            BusKind::Ide,
                            if sub.is_empty() {
                                "piix4".into()
                            } else {
                                sub.clone()
                            },
                            0,
                        )
                    }
                    6 => (
                        BusKind::Scsi,
                        if sub.is_empty() {
                            "lsilogic".into()
                        } else {
                            sub.clone()
                        },
                        u32::MAX,
                    ),
                    _ if sub.contains("nvme") => (BusKind::Nvme, "nvme".into(), u32::MAX),
                    _ => (BusKind::Sata, "ahci".into(), u32::MAX),
                };
                let index = if index == u32::MAX {
                    let n = per_bus.entry(bus).or_insert(0);
                    *n += 1;
                    *n - 1
                } else {
                    index
                };
                let ide_channel = if bus == BusKind::Ide {
                    f.get("Address")
                        .and_then(|a| a.parse::<u32>().ok())
                        .unwrap_or(ide_count - 1)
                        .min(1)
                } else {
                    0
                };
                if let Some(id) = f.get("InstanceID") {
                    controllers.insert(id.to_string(), Controller { bus, index, model });
                    channels.insert(id.to_string(), ide_channel);
                }
            }
            10 => nic_items.push((i, f)),
            14..=17 => dev_items.push((i, rt, f)),
            1 if sub.contains("vtpm") => m.vtpm = true,
            _ => {}
        }
    }
    for (i, rt, f) in dev_items {
        let loc = format!("VirtualHardwareSection/Item[{}]", i + 1);
        let parent = f.get("Parent").copied().unwrap_or("");
        let (controller, channel) = match controllers.get(parent) {
            Some(c) => (c.clone(), channels.get(parent).copied().unwrap_or(0)),
            None => {
                m.warnings.push(format!(
                    "{loc}: device has no known Parent controller; assumed SATA"
                ));
                (
                    Controller {
                        bus: BusKind::Sata,
                        index: 0,
                        model: "ahci".into(),
                    },
                    0,
                )
            }
        };
        let aop = f
            .get("AddressOnParent")
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(0)
            .min(255);
        let unit = if controller.bus == BusKind::Ide && aop < 2 {
            channel * 2 + aop
        } else {
            aop
        };
        let host = f.get("HostResource").copied().unwrap_or("");
        let host = host.strip_prefix("ovf:").unwrap_or(host);
        if rt == 17 {
            let (file_id, cap, fmt) = if let Some(d) = host.strip_prefix("/disk/") {
                let (fr, cap, fmt) = disks.get(d).ok_or_else(|| {
                    Error::invalid(
                        path,
                        &loc,
                        format!("HostResource names disk {d:?}, absent from DiskSection"),
                    )
                })?;
                let fr = fr.clone().ok_or_else(|| {
                    Error::unsupported(
                        path,
                        format!("disk {d:?} has no fileRef (an empty disk to be created)"),
                    )
                })?;
                (fr, *cap, fmt.clone())
            } else if let Some(fid) = host.strip_prefix("/file/") {
                (fid.to_string(), None, None)
            } else {
                return Err(Error::invalid(
                    path,
                    &loc,
                    format!("disk HostResource {host:?}: expected ovf:/disk/ID"),
                ));
            };
            let fr = files.get(&file_id).ok_or_else(|| {
                Error::invalid(
                    path,
                    &loc,
                    format!("disk refers to file {file_id:?}, absent from References"),
                )
            })?;
            let source = resolve(fr)?;
            m.disks.push(DiskDevice {
                source,
                source_name: fr.href.clone(),
                format_hint: fmt
                    .or_else(|| fr.href.rsplit('.').next().map(|e| e.to_ascii_lowercase())),
                controller,
                unit,
                mode: DiskMode::Persistent,
                boot: false,
                capacity_bytes: cap,
                snapshot_delta: false,
            });
        } else if rt != 14 {
            let image = host
                .strip_prefix("/file/")
                .and_then(|fid| files.get(fid))
                .map(|fr| fr.href.clone())
                .or_else(|| Some(host.to_string()).filter(|h| !h.is_empty()));
            m.push_unattached_cdrom(controller, unit, image);
        }
    }
    let mut vbox_nics = vbox_nics.into_iter();
    for (n, (i, f)) in nic_items.into_iter().enumerate() {
        let sub = f
            .get("ResourceSubType")
            .copied()
            .unwrap_or("")
            .to_ascii_lowercase();
        let model = match sub.as_str() {
            "e1000" => NicModel::E1000,
            "e1000e" => NicModel::E1000e,
            "vmxnet3" => NicModel::Vmxnet3,
            "vmxnet" | "vmxnet2" => NicModel::Vmxnet,
            "pcnet32" | "pcnet" => NicModel::Pcnet,
            "virtio" => NicModel::Virtio,
            other => NicModel::Other(other.into()),
        };
        let vb = vbox_nics.next();
        let mac = f
            .get("Address")
            .and_then(|a| normalise_mac(a))
            .map(|a| (a, false))
            .or_else(|| {
                vb.as_ref()
                    .filter(|v| !v.mac_generated)
                    .map(|v| (v.mac.clone(), false))
            });
        let (mac, mac_generated) = match mac {
            Some(x) => x,
            None => {
                let g = generated_mac(&format!("{}/ethernet{n}", m.name));
                m.warnings.push(format!(
                    "VirtualHardwareSection/Item[{}]: network adapter without MAC address; generated {g}",
                    i + 1
                ));
                (g, true)
            }
        };
        m.nics.push(Nic {
            model,
            mac,
            mac_generated,
            network: f
                .get("Connection")
                .filter(|c| !c.is_empty())
                .map(|c| c.to_string()),
        });
    }
    m.normalise();
    Ok(m)
}
