//! QEMU command line and `#!/bin/sh` script rendering of the device plan.

use super::*;

/// Network backend for every NIC in the QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuNetdev {
    /// User-mode networking (slirp).
    User,
    /// `-netdev bridge,br=NAME` (needs qemu-bridge-helper).
    Bridge(String),
    /// NICs without a backend.
    None,
}

/// QEMU-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuOptions {
    /// Emulator binary.
    pub binary: String,
    /// Accelerator list for `-machine accel=` in the argv; the script uses
    /// `${ACCEL:-kvm:tcg}` instead.
    pub accel: String,
    /// CPU model (`max` is the host CPU under KVM and works under TCG).
    pub cpu_model: String,
    /// QMP unix socket.
    pub qmp_socket: PathBuf,
    /// qemu-guest-agent unix socket (final phase).
    pub guest_agent_socket: PathBuf,
    /// `-serial` target (`file:PATH`, `stdio`, `pty`, `none`); the script
    /// uses `${SERIAL:-...}` with this as default.
    pub serial: String,
    /// swtpm state directory (its control socket is `swtpm.sock` inside).
    pub tpm_dir: PathBuf,
    /// NIC backend.
    pub netdev: QemuNetdev,
    /// Display arguments (default `-display none`).
    pub display: Vec<String>,
}

impl QemuOptions {
    /// Sockets, serial log and TPM state under `out_dir`, named after the VM.
    pub fn new(out_dir: &Path, model: &VmModel) -> Self {
        let n = model.safe_name();
        QemuOptions {
            binary: "qemu-system-x86_64".into(),
            accel: "kvm:tcg".into(),
            cpu_model: "max".into(),
            qmp_socket: out_dir.join(format!("{n}.qmp")),
            guest_agent_socket: out_dir.join(format!("{n}.qga")),
            serial: format!("file:{}", out_dir.join(format!("{n}-serial.log")).display()),
            tpm_dir: out_dir.join(format!("{n}-tpm")),
            netdev: QemuNetdev::User,
            display: vec!["-display".into(), "none".into()],
        }
    }
}

/// The QEMU invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    /// Commands to run (and wait for) before `argv`: `mkdir`-free, the
    /// caller creates [`QemuOptions::tpm_dir`]; today only swtpm for a vTPM.
    pub prelude: Vec<Vec<String>>,
    /// The full argv, binary first, with concrete values.
    pub argv: Vec<String>,
    /// A runnable `#!/bin/sh` script: `ACCEL` and `SERIAL` may be set in
    /// the environment, extra arguments (`-S`, `-snapshot`) are appended.
    pub script: String,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// Quote for POSIX sh (bare when only safe characters).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Escape a value for QEMU's `key=value,...` option syntax.
fn opt(s: &str) -> String {
    s.replace(',', ",,")
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Build the QEMU argv and script for `model` in `opts.phase`.
pub fn qemu_command(model: &VmModel, opts: &DomainOptions, q: &QemuOptions) -> Result<QemuCommand> {
    let p = build_plan(model, opts)?;
    let mut warnings = p.warnings.clone();
    let root = if p.machine == Machine::Q35 {
        "pcie.0"
    } else {
        "pci.0"
    };
    let at = |x: Pci| {
        if x.function == 0 {
            format!("bus={root},addr=0x{:x}", x.slot)
        } else {
            format!("bus={root},addr=0x{:x}.0x{:x}", x.slot, x.function)
        }
    };
    let mut a: Vec<String> = vec![q.binary.clone()];
    let mut push = |v: &[&str]| a.extend(v.iter().map(|s| s.to_string()));
    push(&[
        "-name",
        &format!("guest={},debug-threads=on", opt(&model.safe_name())),
    ]);
    push(&["-no-user-config", "-nodefaults"]);
    let mut machine = String::from(if p.machine == Machine::Q35 {
        "q35"
    } else {
        "pc"
    });
    if p.uefi.as_ref().is_some_and(|u| u.secure) {
        machine.push_str(",smm=on");
    }
    if model.guest_os.is_windows() {
        machine.push_str(",hpet=off");
    }
    if p.uefi.is_some() {
        machine.push_str(",pflash0=pflash0,pflash1=pflash1");
    }
    machine.push_str(",vmport=off,accel=");
    push(&["-machine", &format!("{machine}{}", q.accel)]);
    let machine_idx = a.len() - 1;
    let mut cpu = q.cpu_model.clone();
    if p.hyperv {
        cpu.push_str(",hv_relaxed,hv_vapic,hv_spinlocks=0x1fff,hv_vpindex,hv_runtime,hv_synic,hv_stimer,hv_reset,hv_frequencies,hv_time");
        // Crash MSRs in both phases: a bugcheck during the bootstrap boot
        // (the likeliest place for a 0x7B) reaches QEMU as GUEST_PANICKED.
        cpu.push_str(",hv_crash");
    }
    let c = &model.cpu;
    let mut push = |v: &[&str]| a.extend(v.iter().map(|s| s.to_string()));
    push(&["-cpu", &cpu]);
    push(&[
        "-smp",
        &format!(
            "{},sockets={},cores={},threads={}",
            c.vcpus, c.sockets, c.cores, c.threads
        ),
    ]);
    push(&["-m", &model.memory_mib.to_string()]);
    if let Some(u) = model.uuid {
        push(&[
            "-uuid",
            &u.to_string(),
            "-smbios",
            &format!("type=1,uuid={u}"),
        ]);
    }
    if let Some(u) = &p.uefi {
        push(&[
            "-blockdev",
            &format!(
                "{{\"node-name\":\"pflash0\",\"driver\":\"raw\",\"read-only\":true,\"file\":{{\"driver\":\"file\",\"filename\":{},\"read-only\":true}}}}",
                json_str(&path_str(&u.code))
            ),
            "-blockdev",
            &format!(
                "{{\"node-name\":\"pflash1\",\"driver\":\"raw\",\"file\":{{\"driver\":\"file\",\"filename\":{}}}}}",
                json_str(&path_str(&u.nvram))
            ),
        ]);
        if u.secure {
            push(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
        }
    }
    push(&[
        "-rtc",
        if p.localtime {
            "base=localtime,driftfix=slew"
        } else {
            "base=utc,driftfix=slew"
        },
    ]);
    // Disks.
    if let Some(x) = p.scsi {
        push(&["-device", &format!("virtio-scsi-pci,id=scsi0,{}", at(x))]);
    }
    for (i, d) in p.disks.iter().enumerate() {
        let node = format!("disk{i}");
        push(&[
            "-blockdev",
            &format!(
                "{{\"node-name\":\"{node}\",\"driver\":\"{}\",\"discard\":\"unmap\",\"file\":{{\"driver\":\"file\",\"filename\":{},\"discard\":\"unmap\"}}}}",
                d.format.as_str(),
                json_str(&path_str(&d.path))
            ),
        ]);
        let mut dev = match d.attach {
            Attach::Sata(port) => format!("ide-hd,bus=ide.{port}"),
            Attach::Ide(b, u) => format!("ide-hd,bus=ide.{b},unit={u}"),
            Attach::VirtioBlk(x) => format!("virtio-blk-pci,{}", at(x)),
            Attach::Scsi(t) => format!("scsi-hd,bus=scsi0.0,channel=0,scsi-id={t},lun=0"),
        };
        dev.push_str(&format!(",drive={node},id={}", d.alias));
        dev.push_str(&format!(",bootindex={}", d.boot_order));
        if let Some(g) = d.geometry {
            dev.push_str(&format!(
                ",lcyls={},lheads={},lsecs={}",
                g.cylinders, g.heads, g.sectors
            ));
        }
        push(&["-device", &dev]);
    }
    for (n, cd) in p.cdroms.iter().enumerate() {
        let node = format!("cd{n}");
        push(&[
            "-blockdev",
            &format!(
                "{{\"node-name\":\"{node}\",\"driver\":\"raw\",\"read-only\":true,\"file\":{{\"driver\":\"file\",\"filename\":{},\"read-only\":true}}}}",
                json_str(&path_str(&cd.path))
            ),
        ]);
        let dev = match cd.attach {
            Attach::Sata(port) => format!("ide-cd,bus=ide.{port}"),
            Attach::Ide(b, u) => format!("ide-cd,bus=ide.{b},unit={u}"),
            // Refused by the plan's own check already.
            _ => return Err(Error::Plan("CD-ROM must be on SATA or IDE".into())),
        };
        push(&["-device", &format!("{dev},drive={node},id={}", cd.alias)]);
    }
    // NICs.
    for (i, n) in p.nics.iter().enumerate() {
        let dev = match n.model {
            "virtio" => "virtio-net-pci",
            other => other,
        };
        let backend = match &q.netdev {
            QemuNetdev::User => Some(format!("user,id=net{i}")),
            QemuNetdev::Bridge(br) => Some(format!("bridge,id=net{i},br={}", opt(br))),
            QemuNetdev::None => None,
        };
        let mut d = format!("{dev},mac={},id=nic{i},{}", n.mac, at(n.pci));
        if let Some(b) = backend {
            push(&["-netdev", &b]);
            d.push_str(&format!(",netdev=net{i}"));
        }
        push(&["-device", &d]);
    }
    // Video.
    let vdev = match p.video.0 {
        Video::Vga => "VGA",
        Video::Qxl => "qxl-vga",
        Video::Virtio => "virtio-vga",
    };
    push(&["-device", &format!("{vdev},id=video0,{}", at(p.video.1))]);
    // USB + tablet.
    let usb = if p.machine == Machine::Q35 {
        "qemu-xhci"
    } else {
        "piix3-usb-uhci"
    };
    push(&["-device", &format!("{usb},id=usb,{}", at(p.usb))]);
    push(&["-device", "usb-tablet,id=input0,bus=usb.0,port=1"]);
    if let Some(x) = p.balloon {
        push(&[
            "-device",
            &format!("virtio-balloon-pci,id=balloon0,{}", at(x)),
        ]);
    }
    if let Some(x) = p.rng {
        push(&["-object", "rng-random,id=rng0,filename=/dev/urandom"]);
        push(&[
            "-device",
            &format!("virtio-rng-pci,rng=rng0,id=rng0dev,{}", at(x)),
        ]);
    }
    if let Some(x) = p.vserial {
        push(&[
            "-chardev",
            &format!(
                "socket,id=qga0,path={},server=on,wait=off",
                opt(&path_str(&q.guest_agent_socket))
            ),
        ]);
        push(&[
            "-device",
            &format!("virtio-serial-pci,id=vserial0,{}", at(x)),
        ]);
        push(&["-device", "virtserialport,bus=vserial0.0,nr=1,chardev=qga0,id=qga0port,name=org.qemu.guest_agent.0"]);
    }
    if p.panic {
        push(&["-device", "pvpanic,id=panic0"]);
    }
    let mut prelude = Vec::new();
    if p.tpm {
        let sock = q.tpm_dir.join("swtpm.sock");
        prelude.push(vec![
            "swtpm".into(),
            "socket".into(),
            "--tpm2".into(),
            "--tpmstate".into(),
            format!("dir={}", opt(&path_str(&q.tpm_dir))),
            "--ctrl".into(),
            format!("type=unixio,path={}", opt(&path_str(&sock))),
            "--terminate".into(),
            "--daemon".into(),
        ]);
        push(&[
            "-chardev",
            &format!("socket,id=chrtpm,path={}", opt(&path_str(&sock))),
        ]);
        push(&[
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0,id=tpm0dev",
        ]);
    }
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", opt(&path_str(&q.qmp_socket))),
    ]);
    for s in [&q.qmp_socket, &q.guest_agent_socket] {
        if s.as_os_str().len() > 100 {
            warnings.push(format!(
                "unix socket path {} is longer than 100 bytes and may not bind",
                s.display()
            ));
        }
    }
    push(&["-serial", &q.serial]);
    let serial_idx = a.len() - 1;
    a.extend(q.display.iter().cloned());
    // Script.
    let mut sh = String::from("#!/bin/sh\n");
    sh.push_str(&format!(
        "# hyper2kvm: {} domain for {:?} ({}).\n# Environment: ACCEL (default kvm:tcg), SERIAL (default {}).\n# Extra arguments are appended to the QEMU command line.\nset -e\n",
        if opts.phase == Phase::Final { "final" } else { "bootstrap" },
        model.name.replace(['\n', '\r'], " "),
        model.guest_os.id(),
        q.serial.replace(['\n', '\r'], " "),
    ));
    if p.tpm {
        sh.push_str(&format!(
            "mkdir -p {}\n",
            shell_quote(&path_str(&q.tpm_dir))
        ));
        for cmd in &prelude {
            sh.push_str(
                &cmd.iter()
                    .map(|s| shell_quote(s))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            sh.push('\n');
        }
    }
    sh.push_str(&format!("SERIAL_DEFAULT={}\n", shell_quote(&q.serial)));
    sh.push_str("exec");
    for (i, arg) in a.iter().enumerate() {
        let rendered = if i == machine_idx {
            format!("{}\"${{ACCEL:-kvm:tcg}}\"", shell_quote(&machine))
        } else if i == serial_idx {
            "\"${SERIAL:-$SERIAL_DEFAULT}\"".to_string()
        } else {
            shell_quote(arg)
        };
        if arg.starts_with('-') && i > 0 {
            sh.push_str(" \\\n  ");
        } else {
            sh.push(' ');
        }
        sh.push_str(&rendered);
    }
    sh.push_str(" \\\n  \"$@\"\n");
    Ok(QemuCommand {
        prelude,
        argv: a,
        script: sh,
        warnings,
    })
}
