//! libvirt domain XML rendering of the device plan.

use super::*;
use crate::xml::Writer;

/// A rendered document plus the warnings met on the way.
pub type Rendered = (String, Vec<String>);

fn pci_attrs(p: Pci) -> [(&'static str, String); 5] {
    [
        ("type", "pci".into()),
        ("domain", "0x0000".into()),
        ("bus", "0x00".into()),
        ("slot", format!("0x{:02x}", p.slot)),
        ("function", format!("0x{:x}", p.function)),
    ]
}

fn pci_address(w: &mut Writer, p: Pci) {
    let a = pci_attrs(p);
    let refs: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.empty("address", &refs);
}

fn drive_address(w: &mut Writer, a: Attach) {
    let (bus, target, unit) = match a {
        Attach::Sata(p) => (0, 0, p),
        Attach::Ide(b, u) => (b, 0, u),
        Attach::Scsi(t) => (0, t, 0),
        Attach::VirtioBlk(p) => return pci_address(w, p),
    };
    let (b, t, u) = (bus.to_string(), target.to_string(), unit.to_string());
    w.empty(
        "address",
        &[
            ("type", "drive"),
            ("controller", "0"),
            ("bus", &b),
            ("target", &t),
            ("unit", &u),
        ],
    );
}

fn bus_name(a: Attach) -> &'static str {
    match a {
        Attach::Sata(_) => "sata",
        Attach::Ide(..) => "ide",
        Attach::Scsi(_) => "scsi",
        Attach::VirtioBlk(_) => "virtio",
    }
}

/// Render the libvirt domain XML for `model` in `opts.phase`. Returns the
/// XML text and the warnings (parser warnings are not repeated).
pub fn libvirt_xml(model: &VmModel, opts: &DomainOptions) -> Result<Rendered> {
    let p = build_plan(model, opts)?;
    let mut w = Writer::new();
    w.open(
        "domain",
        &[
            ("type", "kvm"),
            ("xmlns:qemu", "http://libvirt.org/schemas/domain/qemu/1.0"),
        ],
    );
    w.text("name", &[], &model.safe_name());
    if model.name != model.safe_name() {
        w.text("title", &[], &model.name.replace(['\n', '\r'], " "));
    }
    if let Some(u) = model.uuid {
        w.text("uuid", &[], &u.to_string());
    }
    w.text("memory", &[("unit", "MiB")], &model.memory_mib.to_string());
    w.text(
        "currentMemory",
        &[("unit", "MiB")],
        &model.memory_mib.to_string(),
    );
    w.text(
        "vcpu",
        &[("placement", "static")],
        &model.cpu.vcpus.to_string(),
    );
    if let Some(u) = model.uuid {
        w.open("sysinfo", &[("type", "smbios")]);
        w.open("system", &[]);
        w.text("entry", &[("name", "uuid")], &u.to_string());
        w.close();
        w.close();
    }
    w.open("os", &[]);
    let machine = if p.machine == Machine::Q35 {
        "q35"
    } else {
        "pc"
    };
    w.text("type", &[("arch", "x86_64"), ("machine", machine)], "hvm");
    if let Some(u) = &p.uefi {
        w.text(
            "loader",
            &[
                ("readonly", "yes"),
                ("secure", if u.secure { "yes" } else { "no" }),
                ("type", "pflash"),
            ],
            &u.code.display().to_string(),
        );
        w.text("nvram", &[], &u.nvram.display().to_string());
    }
    if model.uuid.is_some() {
        w.empty("smbios", &[("mode", "sysinfo")]);
    }
    w.close();
    w.open("features", &[]);
    w.empty("acpi", &[]);
    w.empty("apic", &[]);
    if p.hyperv {
        w.open("hyperv", &[("mode", "custom")]);
        for f in ["relaxed", "vapic"] {
            w.empty(f, &[("state", "on")]);
        }
        w.empty("spinlocks", &[("state", "on"), ("retries", "8191")]);
        for f in [
            "vpindex",
            "runtime",
            "synic",
            "stimer",
            "reset",
            "frequencies",
        ] {
            w.empty(f, &[("state", "on")]);
        }
        w.close();
    }
    if p.uefi.as_ref().is_some_and(|u| u.secure) {
        w.empty("smm", &[("state", "on")]);
    }
    w.empty("vmport", &[("state", "off")]);
    w.close();
    let (s, c, t) = (
        model.cpu.sockets.to_string(),
        model.cpu.cores.to_string(),
        model.cpu.threads.to_string(),
    );
    w.open(
        "cpu",
        &[
            ("mode", "host-passthrough"),
            ("check", "none"),
            ("migratable", "on"),
        ],
    );
    w.empty(
        "topology",
        &[
            ("sockets", &s),
            ("dies", "1"),
            ("cores", &c),
            ("threads", &t),
        ],
    );
    w.close();
    w.open(
        "clock",
        &[("offset", if p.localtime { "localtime" } else { "utc" })],
    );
    w.empty("timer", &[("name", "rtc"), ("tickpolicy", "catchup")]);
    w.empty("timer", &[("name", "pit"), ("tickpolicy", "delay")]);
    w.empty(
        "timer",
        &[
            ("name", "hpet"),
            (
                "present",
                if model.guest_os.is_windows() {
                    "no"
                } else {
                    "yes"
                },
            ),
        ],
    );
    if p.hyperv {
        w.empty("timer", &[("name", "hypervclock"), ("present", "yes")]);
    }
    w.close();
    w.text("on_poweroff", &[], "destroy");
    w.text("on_reboot", &[], "restart");
    w.text("on_crash", &[], "destroy");
    w.open("devices", &[]);
    w.text("emulator", &[], "/usr/bin/qemu-system-x86_64");
    for d in &p.disks {
        w.open("disk", &[("type", "file"), ("device", "disk")]);
        w.empty(
            "driver",
            &[
                ("name", "qemu"),
                ("type", d.format.as_str()),
                ("discard", "unmap"),
            ],
        );
        w.empty("source", &[("file", &d.path.display().to_string())]);
        w.empty("target", &[("dev", &d.target), ("bus", bus_name(d.attach))]);
        // Every disk gets a boot order (boot disk 1): the firmware then
        // tries the data disks too instead of stopping at the first one.
        w.empty("boot", &[("order", &d.boot_order.to_string())]);
        w.empty("alias", &[("name", &d.alias)]);
        drive_address(&mut w, d.attach);
        w.close();
    }
    for cd in &p.cdroms {
        w.open("disk", &[("type", "file"), ("device", "cdrom")]);
        w.empty("driver", &[("name", "qemu"), ("type", "raw")]);
        w.empty("source", &[("file", &cd.path.display().to_string())]);
        w.empty(
            "target",
            &[("dev", &cd.target), ("bus", bus_name(cd.attach))],
        );
        w.empty("readonly", &[]);
        w.empty("alias", &[("name", &cd.alias)]);
        drive_address(&mut w, cd.attach);
        w.close();
    }
    // Controllers, all at explicit addresses.
    match p.machine {
        Machine::Q35 => {
            w.empty(
                "controller",
                &[("type", "pci"), ("index", "0"), ("model", "pcie-root")],
            );
            w.open("controller", &[("type", "sata"), ("index", "0")]);
            pci_address(
                &mut w,
                Pci {
                    slot: 0x1f,
                    function: 2,
                },
            );
            w.close();
            w.open(
                "controller",
                &[("type", "usb"), ("index", "0"), ("model", "qemu-xhci")],
            );
        }
        Machine::Pc => {
            w.empty(
                "controller",
                &[("type", "pci"), ("index", "0"), ("model", "pci-root")],
            );
            w.open("controller", &[("type", "ide"), ("index", "0")]);
            pci_address(
                &mut w,
                Pci {
                    slot: 1,
                    function: 1,
                },
            );
            w.close();
            w.open(
                "controller",
                &[("type", "usb"), ("index", "0"), ("model", "piix3-uhci")],
            );
        }
    }
    pci_address(&mut w, p.usb);
    w.close();
    if let Some(x) = p.scsi {
        w.open(
            "controller",
            &[("type", "scsi"), ("index", "0"), ("model", "virtio-scsi")],
        );
        pci_address(&mut w, x);
        w.close();
    }
    if let Some(x) = p.vserial {
        w.open("controller", &[("type", "virtio-serial"), ("index", "0")]);
        pci_address(&mut w, x);
        w.close();
    }
    for n in &p.nics {
        w.open("interface", &[("type", "network")]);
        w.empty("mac", &[("address", &n.mac)]);
        w.empty("source", &[("network", &opts.network)]);
        w.empty("model", &[("type", n.model)]);
        pci_address(&mut w, n.pci);
        w.close();
    }
    w.open("serial", &[("type", "pty")]);
    w.open("target", &[("type", "isa-serial"), ("port", "0")]);
    w.empty("model", &[("name", "isa-serial")]);
    w.close();
    w.close();
    w.open("console", &[("type", "pty")]);
    w.empty("target", &[("type", "serial"), ("port", "0")]);
    w.close();
    if p.vserial.is_some() {
        w.open("channel", &[("type", "unix")]);
        w.empty("source", &[("mode", "bind")]);
        w.empty(
            "target",
            &[("type", "virtio"), ("name", "org.qemu.guest_agent.0")],
        );
        w.empty(
            "address",
            &[
                ("type", "virtio-serial"),
                ("controller", "0"),
                ("bus", "0"),
                ("port", "1"),
            ],
        );
        w.close();
    }
    w.open("input", &[("type", "tablet"), ("bus", "usb")]);
    w.empty("address", &[("type", "usb"), ("bus", "0"), ("port", "1")]);
    w.close();
    w.empty(
        "graphics",
        &[
            ("type", "vnc"),
            ("port", "-1"),
            ("autoport", "yes"),
            ("listen", "127.0.0.1"),
        ],
    );
    w.open("video", &[]);
    match p.video.0 {
        Video::Vga => w.empty(
            "model",
            &[
                ("type", "vga"),
                ("vram", "16384"),
                ("heads", "1"),
                ("primary", "yes"),
            ],
        ),
        Video::Qxl => w.empty(
            "model",
            &[
                ("type", "qxl"),
                ("ram", "65536"),
                ("vram", "65536"),
                ("vgamem", "16384"),
                ("heads", "1"),
                ("primary", "yes"),
            ],
        ),
        Video::Virtio => w.empty(
            "model",
            &[("type", "virtio"), ("heads", "1"), ("primary", "yes")],
        ),
    }
    pci_address(&mut w, p.video.1);
    w.close();
    match p.balloon {
        Some(x) => {
            w.open("memballoon", &[("model", "virtio")]);
            pci_address(&mut w, x);
            w.close();
        }
        None => w.empty("memballoon", &[("model", "none")]),
    }
    if let Some(x) = p.rng {
        w.open("rng", &[("model", "virtio")]);
        w.text("backend", &[("model", "random")], "/dev/urandom");
        pci_address(&mut w, x);
        w.close();
    }
    if p.tpm {
        w.open("tpm", &[("model", "tpm-crb")]);
        w.empty("backend", &[("type", "emulator"), ("version", "2.0")]);
        w.close();
    }
    if p.hyperv {
        // Both phases: see the QEMU writer's hv_crash.
        w.empty("panic", &[("model", "hyperv")]);
    }
    if p.panic {
        w.open("panic", &[("model", "isa")]);
        w.empty("address", &[("type", "isa"), ("iobase", "0x505")]);
        w.close();
    }
    w.close(); // devices
    if p.disks.iter().any(|d| d.geometry.is_some()) {
        w.open("qemu:override", &[]);
        for d in p.disks.iter().filter(|d| d.geometry.is_some()) {
            let g = d.geometry.unwrap_or(vdisk::Chs {
                cylinders: 0,
                heads: 0,
                sectors: 0,
            });
            w.open("qemu:device", &[("alias", &d.alias)]);
            w.open("qemu:frontend", &[]);
            for (k, v) in [
                ("lcyls", g.cylinders),
                ("lheads", g.heads),
                ("lsecs", g.sectors),
            ] {
                w.empty(
                    "qemu:property",
                    &[("name", k), ("type", "unsigned"), ("value", &v.to_string())],
                );
            }
            w.close();
            w.close();
        }
        w.close();
    }
    Ok((w.finish(), p.warnings))
}
