//! VirtualBox `.vbox` (machine settings XML) parser.
//!
//! Reads `Machine` (name, uuid, OSType), `Hardware` (CPU count, RAMSize,
//! Firmware, network adapters, TPM), the storage controllers and their
//! attached devices, and the media registry that maps image UUIDs to file
//! locations (differencing children nested under their parents: the
//! attached UUID of a machine with snapshots names the newest child).

use crate::error::{read_metadata, Error, Result};
use crate::guestos::GuestOs;
use crate::model::*;
use crate::xml::{self, Element};
use crate::ParseOptions;
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// Parse the `.vbox` file at `path`.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<VmModel> {
    let data = read_metadata(path)?;
    parse(path, &data, opts)
}

/// Parse `.vbox` bytes read from `path`.
pub fn parse(path: &Path, data: &[u8], opts: &ParseOptions) -> Result<VmModel> {
    let root = xml::parse(path, data)?;
    if root.name != "VirtualBox" {
        return Err(Error::invalid(
            path,
            format!("<{}>", root.name),
            "root element is not <VirtualBox> (not a .vbox file)",
        ));
    }
    let machine = root
        .child("Machine")
        .ok_or_else(|| Error::invalid(path, "VirtualBox", "no <Machine> element"))?;
    let mut m = VmModel::new(machine.attr("name").unwrap_or("vm"), SourceKind::Vbox);
    apply_machine(path, machine, &mut m)?;
    // Media registry.
    let mut media: HashMap<String, (String, Option<String>, bool)> = HashMap::new();
    if let Some(reg) = machine.child("MediaRegistry") {
        if let Some(hds) = reg.child("HardDisks") {
            for hd in hds.children_named("HardDisk") {
                collect_media(hd, false, &mut media);
            }
        }
        if let Some(dvds) = reg.child("DVDImages") {
            for img in dvds.children_named("Image") {
                if let (Some(u), Some(l)) = (img.attr("uuid"), img.attr("location")) {
                    media.insert(norm_uuid(u), (l.to_string(), None, false));
                }
            }
        }
    }
    let ctx = vdisk::OpenCtx::new(vdisk::OpenOptions {
        allow_outside: opts.allow_outside,
        ..Default::default()
    });
    let scs = machine
        .child("StorageControllers")
        .or_else(|| machine.at("Hardware/StorageControllers"));
    let mut per_bus: HashMap<BusKind, u32> = HashMap::new();
    for sc in scs
        .map(|s| s.children_named("StorageController").collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let ty = sc.attr("type").unwrap_or("").to_string();
        let (bus, model) = match ty.as_str() {
            "PIIX3" | "PIIX4" | "ICH6" => (BusKind::Ide, ty.to_ascii_lowercase()),
            "AHCI" => (BusKind::Sata, "ahci".into()),
            "LsiLogic" => (BusKind::Scsi, "lsilogic".into()),
            "LsiLogicSas" => (BusKind::Scsi, "lsisas1068".into()),
            "BusLogic" => (BusKind::Scsi, "buslogic".into()),
            "NVMe" => (BusKind::Nvme, "nvme".into()),
            "VirtioSCSI" => (BusKind::Scsi, "virtio-scsi".into()),
            "USB" => (BusKind::Usb, "usb".into()),
            "I82078" => (BusKind::Floppy, "i82078".into()),
            other => {
                m.warnings.push(format!(
                    "storage controller {:?} has unknown type {other:?}; treated as SATA",
                    sc.attr("name").unwrap_or("")
                ));
                (BusKind::Sata, other.to_ascii_lowercase())
            }
        };
        let n = per_bus.entry(bus).or_insert(0);
        let controller = Controller {
            bus,
            index: *n,
            model,
        };
        *n += 1;
        for dev in sc.children_named("AttachedDevice") {
            let num = |k: &str| {
                dev.attr(k)
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
                    .min(255)
            };
            let unit = if bus == BusKind::Ide {
                num("port") * 2 + num("device")
            } else {
                num("port")
            };
            let img = dev
                .child("Image")
                .and_then(|i| i.attr("uuid"))
                .map(norm_uuid);
            let found = img.as_ref().and_then(|u| media.get(u));
            match dev.attr("type").unwrap_or("") {
                "HardDisk" => {
                    let Some((loc, fmt, child)) = found else {
                        m.warnings.push(format!(
                            "hard disk on {:?} port {} refers to image {:?} missing from the media registry; skipped",
                            sc.attr("name").unwrap_or(""),
                            num("port"),
                            img.unwrap_or_default()
                        ));
                        continue;
                    };
                    let resolved = ctx.resolve(path, loc)?;
                    m.disks.push(DiskDevice {
                        source: DiskSource::File { path: resolved },
                        source_name: loc.clone(),
                        format_hint: fmt.as_ref().map(|f| f.to_ascii_lowercase()),
                        controller: controller.clone(),
                        unit,
                        mode: DiskMode::Persistent,
                        boot: false,
                        capacity_bytes: None,
                        snapshot_delta: *child,
                    });
                }
                "DVD" => {
                    m.push_unattached_cdrom(controller.clone(), unit, found.map(|f| f.0.clone()))
                }
                _ => {}
            }
        }
    }
    if machine.child("Snapshot").is_some() {
        m.warnings.push(
            "the machine has snapshots: the current state's differencing images are used; older snapshots are not migrated"
                .into(),
        );
    }
    m.normalise();
    Ok(m)
}

fn norm_uuid(u: &str) -> String {
    u.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase()
}

fn collect_media(
    hd: &Element,
    child: bool,
    out: &mut HashMap<String, (String, Option<String>, bool)>,
) {
    if let (Some(u), Some(l)) = (hd.attr("uuid"), hd.attr("location")) {
        out.insert(
            norm_uuid(u),
            (l.to_string(), hd.attr("format").map(String::from), child),
        );
    }
    for c in hd.children_named("HardDisk") {
        collect_media(c, true, out);
    }
}

/// Apply a `<Machine>` element's identity and hardware (everything but
/// storage) to `m`. Used for `.vbox` files and for the `vbox:Machine`
/// section of VirtualBox OVFs.
pub(crate) fn apply_machine(path: &Path, machine: &Element, m: &mut VmModel) -> Result<()> {
    let muuid = machine
        .attr("uuid")
        .and_then(|u| Uuid::parse_str(&norm_uuid(u)).ok());
    m.instance_uuid = muuid;
    if let Some(os) = machine.attr("OSType") {
        m.guest_os = GuestOs::parse(os);
    }
    let Some(hw) = machine.child("Hardware") else {
        return Err(Error::invalid(path, "Machine", "no <Hardware> element"));
    };
    m.uuid = hw
        .attr("uuid")
        .and_then(|u| Uuid::parse_str(&norm_uuid(u)).ok())
        .or(muuid);
    let vcpus = hw
        .child("CPU")
        .and_then(|c| c.attr("count"))
        .map(|c| c.parse::<u32>().ok().filter(|n| (1..=1024).contains(n)))
        .unwrap_or(Some(1))
        .ok_or_else(|| {
            Error::invalid(
                path,
                "Hardware/CPU",
                "count is not a number between 1 and 1024",
            )
        })?;
    m.cpu = CpuTopology::new(vcpus, vcpus).0;
    if let Some(r) = hw.child("Memory").and_then(|c| c.attr("RAMSize")) {
        m.memory_mib = r
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=64 << 20).contains(n))
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    "Hardware/Memory",
                    format!("RAMSize {r:?} is not a size in MiB"),
                )
            })?;
    }
    if let Some(f) = hw.child("Firmware").and_then(|f| f.attr("type")) {
        if f.to_ascii_uppercase().starts_with("EFI") {
            m.firmware = Firmware::UEFI;
        }
    }
    if let Some(t) = hw
        .child("TrustedPlatformModule")
        .and_then(|t| t.attr("type"))
    {
        m.vtpm = !t.eq_ignore_ascii_case("none");
    }
    if let Some(net) = hw.child("Network") {
        let mut adapters: Vec<&Element> = net
            .children_named("Adapter")
            .filter(|a| a.attr("enabled") == Some("true"))
            .collect();
        adapters.sort_by_key(|a| {
            a.attr("slot")
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(0)
        });
        for a in adapters {
            let model = match a.attr("type").unwrap_or("Am79C973") {
                "Am79C970A" | "Am79C973" | "Am79C960" => NicModel::Pcnet,
                "82540EM" | "82543GC" | "82545EM" => NicModel::E1000,
                "virtio" => NicModel::Virtio,
                other => NicModel::Other(other.into()),
            };
            let slot = a.attr("slot").unwrap_or("0");
            let (mac, mac_generated) = match a.attr("MACAddress").and_then(normalise_mac) {
                Some(mac) => (mac, false),
                None => {
                    let g = generated_mac(&format!("{}/adapter{slot}", m.name));
                    m.warnings.push(format!(
                        "network adapter {slot} has no MAC address; generated {g}"
                    ));
                    (g, true)
                }
            };
            let network = a.children.iter().find_map(|c| match c.name.as_str() {
                "NAT" => Some("nat".to_string()),
                "BridgedInterface" | "InternalNetwork" | "HostOnlyInterface" | "NATNetwork"
                | "GenericInterface" => c.attr("name").map(String::from),
                _ => None,
            });
            m.nics.push(Nic {
                model,
                mac,
                mac_generated,
                network,
            });
        }
    }
    Ok(())
}
