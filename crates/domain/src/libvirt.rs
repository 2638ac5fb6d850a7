//! libvirt domain XML parser (for KVM→KVM re-homing).
//!
//! Reads name, uuid, memory (with `unit`), vcpu and topology, the loader
//! (OVMF → UEFI, `secure='yes'`), TPM, disks (source file, target bus and
//! dev, driver type, `<boot order>`), CD-ROMs, interfaces (MAC, model,
//! network/bridge) and the libosinfo OS id from `<metadata>`. Disk paths
//! go through the open gate like every other source: libvirt XML usually
//! holds absolute paths, so callers pass [`ParseOptions::allow_outside`].

use crate::error::{read_metadata, Error, Result};
use crate::guestos::GuestOs;
use crate::model::*;
use crate::xml::{self, Element};
use crate::ParseOptions;
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

/// Parse the libvirt domain XML at `path`.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<VmModel> {
    let data = read_metadata(path)?;
    parse(path, &data, opts)
}

fn target_unit(dev: &str) -> u32 {
    // sda → 0, hdb → 1, vdc → 2, sdaa → 26
    let letters: Vec<u32> = dev
        .chars()
        .skip(2)
        .filter(|c| c.is_ascii_lowercase())
        .map(|c| c as u32 - 'a' as u32)
        .collect();
    letters
        .iter()
        .fold(0u32, |acc, l| acc.saturating_mul(26).saturating_add(*l))
        .min(255)
}

/// Parse libvirt domain XML bytes read from `path`.
pub fn parse(path: &Path, data: &[u8], opts: &ParseOptions) -> Result<VmModel> {
    let dom = xml::parse(path, data)?;
    if dom.name != "domain" {
        return Err(Error::invalid(
            path,
            format!("<{}>", dom.name),
            "root element is not <domain>",
        ));
    }
    let name = dom
        .child_text("name")
        .filter(|n| !n.is_empty())
        .unwrap_or("vm");
    let mut m = VmModel::new(name, SourceKind::Libvirt);
    if let Some(u) = dom.child_text("uuid") {
        let u = Uuid::parse_str(u)
            .map_err(|_| Error::invalid(path, "domain/uuid", format!("{u:?} is not a UUID")))?;
        m.uuid = Some(u);
    }
    if let Some(mem) = dom.child("memory") {
        let unit = mem.attr("unit").unwrap_or("KiB");
        let mul = unit_multiplier(unit, true).ok_or_else(|| {
            Error::invalid(path, "domain/memory", format!("unknown unit {unit:?}"))
        })?;
        let n: u64 = mem
            .text
            .trim()
            .parse()
            .map_err(|_| Error::invalid(path, "domain/memory", "not a number"))?;
        let mib = n.checked_mul(mul).map(|b| b >> 20).unwrap_or(0);
        if !(1..=64 << 20).contains(&mib) {
            return Err(Error::invalid(
                path,
                "domain/memory",
                "memory is not between 1 MiB and 64 TiB",
            ));
        }
        m.memory_mib = mib;
    }
    let vcpus = match dom.child_text("vcpu") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    "domain/vcpu",
                    format!("{v:?} is not a number between 1 and 1024"),
                )
            })?,
        None => 1,
    };
    m.cpu = CpuTopology::new(vcpus, 1).0;
    if let Some(t) = dom.at("cpu/topology") {
        let g = |k: &str| {
            t.attr(k)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1)
                .max(1)
        };
        let (s, c, th) = (g("sockets"), g("cores"), g("threads"));
        if s.checked_mul(c).and_then(|x| x.checked_mul(th)) == Some(vcpus) {
            m.cpu = CpuTopology {
                vcpus,
                sockets: s,
                cores: c,
                threads: th,
            };
        } else {
            m.warnings.push(format!(
                "cpu topology {s}x{c}x{th} does not match {vcpus} vCPUs; ignored"
            ));
        }
    }
    if let Some(os) = dom.child("os") {
        let loader = os.child("loader");
        let efi = os.attr("firmware") == Some("efi")
            || loader.is_some_and(|l| {
                l.text.to_ascii_uppercase().contains("OVMF") || l.attr("type") == Some("pflash")
            });
        if efi {
            m.firmware = Firmware {
                kind: FirmwareKind::Uefi,
                secure_boot: loader.is_some_and(|l| l.attr("secure") == Some("yes"))
                    || os.at("firmware").is_some_and(|f| {
                        f.children_named("feature").any(|x| {
                            x.attr("name") == Some("secure-boot")
                                && x.attr("enabled") == Some("yes")
                        })
                    }),
            };
        }
    }
    let mut osinfo = Vec::new();
    if let Some(md) = dom.child("metadata") {
        md.descendants("os", &mut osinfo);
    }
    m.guest_os = match osinfo.first().and_then(|o| o.attr("id")) {
        Some(id) => GuestOs::parse(id),
        None if dom.at("features/hyperv").is_some() => {
            let mut g = GuestOs::parse("windows");
            g.raw = String::new();
            g
        }
        None => GuestOs::unknown(),
    };
    let ctx = vdisk::OpenCtx::new(vdisk::OpenOptions {
        allow_outside: opts.allow_outside,
        ..Default::default()
    });
    let empty = Element::default();
    let devices = dom.child("devices").unwrap_or(&empty);
    m.vtpm = devices.child("tpm").is_some();
    let mut scsi_models: HashMap<u32, String> = HashMap::new();
    for c in devices
        .children_named("controller")
        .filter(|c| c.attr("type") == Some("scsi"))
    {
        let idx = c.attr("index").and_then(|i| i.parse().ok()).unwrap_or(0);
        scsi_models.insert(idx, c.attr("model").unwrap_or("").to_string());
    }
    let mut boot_set = false;
    for (i, d) in devices.children_named("disk").enumerate() {
        let loc = format!("devices/disk[{}]", i + 1);
        let dev = d.attr("device").unwrap_or("disk");
        let target = d.child("target");
        let tdev = target.and_then(|t| t.attr("dev")).unwrap_or("");
        let bus = match target.and_then(|t| t.attr("bus")).unwrap_or("") {
            "ide" => BusKind::Ide,
            "sata" => BusKind::Sata,
            "scsi" => BusKind::Scsi,
            "virtio" => BusKind::Virtio,
            "usb" => BusKind::Usb,
            "fdc" => BusKind::Floppy,
            "nvme" => BusKind::Nvme,
            _ => BusKind::Other,
        };
        let addr = d
            .child("address")
            .filter(|a| a.attr("type") == Some("drive"));
        let controller_idx = addr
            .and_then(|a| a.attr("controller"))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let model = match bus {
            BusKind::Scsi => scsi_models
                .get(&controller_idx)
                .cloned()
                .unwrap_or_default(),
            BusKind::Sata => "ahci".into(),
            BusKind::Ide => "piix3".into(),
            BusKind::Virtio => "virtio-blk".into(),
            _ => String::new(),
        };
        let controller = Controller {
            bus,
            index: controller_idx,
            model,
        };
        let unit = target_unit(tdev);
        let src = d.child("source");
        let file = src.and_then(|s| s.attr("file").or(s.attr("dev")));
        if dev == "cdrom" {
            m.push_unattached_cdrom(controller, unit, file.map(String::from));
            continue;
        }
        if dev != "disk" {
            continue;
        }
        let Some(file) = file else {
            m.warnings.push(format!(
                "{loc} ({tdev}) has no source file or block device; skipped"
            ));
            continue;
        };
        let boot = d.child("boot").and_then(|b| b.attr("order")) == Some("1");
        boot_set |= boot;
        m.disks.push(DiskDevice {
            source: DiskSource::File {
                path: ctx.resolve(path, file)?,
            },
            source_name: file.to_string(),
            format_hint: d
                .child("driver")
                .and_then(|dr| dr.attr("type"))
                .map(String::from),
            controller,
            unit,
            mode: if d.child("readonly").is_some() || d.child("transient").is_some() {
                DiskMode::IndependentNonpersistent
            } else {
                DiskMode::Persistent
            },
            boot,
            capacity_bytes: None,
            snapshot_delta: false,
        });
    }
    // Without <boot order='1'/>, normalise() marks the first disk in
    // (bus, controller, unit) order, as <os><boot dev='hd'/> would.
    let _ = boot_set;
    for (i, n) in devices.children_named("interface").enumerate() {
        let model = match n.child("model").and_then(|x| x.attr("type")).unwrap_or("") {
            "virtio" => NicModel::Virtio,
            "e1000" => NicModel::E1000,
            "e1000e" => NicModel::E1000e,
            "rtl8139" => NicModel::Rtl8139,
            "vmxnet3" => NicModel::Vmxnet3,
            "pcnet" => NicModel::Pcnet,
            other => NicModel::Other(other.into()),
        };
        let (mac, mac_generated) = match n
            .child("mac")
            .and_then(|x| x.attr("address"))
            .and_then(normalise_mac)
        {
            Some(mac) => (mac, false),
            None => {
                let g = generated_mac(&format!("{}/interface{i}", m.name));
                m.warnings.push(format!(
                    "devices/interface[{}] has no MAC address; generated {g}",
                    i + 1
                ));
                (g, true)
            }
        };
        let network = n
            .child("source")
            .and_then(|s| s.attr("network").or(s.attr("bridge")).or(s.attr("dev")))
            .map(String::from);
        m.nics.push(Nic {
            model,
            mac,
            mac_generated,
            network,
        });
    }
    m.normalise();
    Ok(m)
}
