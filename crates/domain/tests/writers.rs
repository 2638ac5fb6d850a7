//! Generated domains checked against libvirt (virt-xml-validate, the
//! virsh test driver) and QEMU itself (the script starts under TCG with
//! -S and answers QMP).

mod common;

use common::*;
use domain::writer::*;
use domain::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Case {
    model: VmModel,
    disks: Vec<OutputDisk>,
    nvram: Option<PathBuf>,
    rtc_utc: bool,
    block_bus: BlockBus,
}

fn nic(mac: &str) -> Nic {
    Nic {
        model: NicModel::Vmxnet3,
        mac: mac.into(),
        mac_generated: false,
        network: Some("VM Network".into()),
    }
}

fn case(dir: &Path, name: &str, os: &str, fw: Firmware, formats: &[OutputFormat]) -> Case {
    let paths: Vec<PathBuf> = (0..formats.len())
        .map(|i| dir.join(format!("{name}-src{i}.vmdk")))
        .collect();
    let mut model = VmModel::from_disks(&paths, 256, 2, fw, os);
    model.name = name.into();
    model.uuid = Some("34124d56-9c3e-2f11-7a5b-2d5563367f2a".parse().unwrap());
    model.nics = vec![nic("00:50:56:aa:bb:01"), nic("00:0c:29:aa:bb:02")];
    let disks = formats
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = dir.join(format!("{name}-disk{i}.{}", f.as_str()));
            qemu_img_create(&p, f.as_str(), "8M");
            OutputDisk {
                path: p,
                format: *f,
                bios_geometry: None,
            }
        })
        .collect();
    Case {
        model,
        disks,
        nvram: None,
        rtc_utc: false,
        block_bus: BlockBus::VirtioBlk,
    }
}

fn opts(c: &Case, phase: Phase, iso: &Path) -> DomainOptions {
    let mut o = DomainOptions::new(phase, c.disks.clone());
    o.virtio_win_iso = Some(iso.to_path_buf());
    o.nvram = c.nvram.clone();
    o.windows_rtc_utc = c.rtc_utc;
    o.block_bus = c.block_bus;
    o
}

/// virt-xml-validate + virsh test driver define/dumpxml; returns the
/// parsed dumpxml.
fn libvirt_roundtrip(dir: &Path, tag: &str, xml: &str) -> domain::xml::Element {
    need("virt-xml-validate");
    need("virsh");
    let f = dir.join(format!("{tag}.xml"));
    std::fs::write(&f, xml).unwrap();
    let out = run_all(Command::new("virt-xml-validate").arg(&f).arg("domain"));
    assert!(out.contains("validates"), "virt-xml-validate: {out}");
    let name = one(&parse_xml(xml), "name").text.clone();
    let dump = run(Command::new("virsh")
        .args(["-q", "-c", "test:///default"])
        .arg(format!("define {}; dumpxml {name}", f.display())));
    let start = dump.find("<domain").expect("dumpxml output");
    parse_xml(&dump[start..])
}

/// Run the script under TCG with -S, check QMP query-status, quit.
fn qemu_start(dir: &Path, tag: &str, cmd: &QemuCommand, qmp: &Path) {
    need("qemu-system-x86_64");
    let script = dir.join(format!("{tag}.sh"));
    std::fs::write(&script, &cmd.script).unwrap();
    let log = std::fs::File::create(dir.join(format!("{tag}.log"))).unwrap();
    let mut child = Command::new("sh")
        .arg(&script)
        .arg("-S")
        .env("ACCEL", "tcg")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let stream = loop {
        if let Ok(s) = UnixStream::connect(qmp) {
            break s;
        }
        if let Some(st) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.join(format!("{tag}.log"))).unwrap_or_default();
            panic!(
                "{tag}: QEMU exited ({st}) before QMP came up:\n{log}\nscript:\n{}",
                cmd.script
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{tag}: QMP socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let read_reply = |r: &mut BufReader<UnixStream>| -> serde_json::Value {
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "{tag}: QMP closed");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v.get("return").is_some() || v.get("error").is_some() {
                return v;
            }
        }
    };
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    assert!(greeting.contains("QMP"), "{tag}: bad greeting {greeting}");
    writeln!(w, r#"{{"execute":"qmp_capabilities"}}"#).unwrap();
    assert!(read_reply(&mut r).get("return").is_some());
    writeln!(w, r#"{{"execute":"query-status"}}"#).unwrap();
    let st = read_reply(&mut r);
    let status = st["return"]["status"].as_str().unwrap_or("").to_string();
    assert!(
        status == "prelaunch" || status == "paused",
        "{tag}: status {st}"
    );
    writeln!(w, r#"{{"execute":"quit"}}"#).unwrap();
    let _ = read_reply(&mut r);
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{tag}: QEMU did not quit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn disks_of(d: &domain::xml::Element) -> Vec<&domain::xml::Element> {
    all(d, "devices/disk")
        .into_iter()
        .filter(|x| x.attr("device") == Some("disk"))
        .collect()
}

fn macs(d: &domain::xml::Element) -> Vec<String> {
    all(d, "devices/interface/mac")
        .iter()
        .map(|m| m.attr("address").unwrap().to_string())
        .collect()
}

/// Check the elements that must survive libvirt's parser.
fn common_checks(tag: &str, ours: &str, dumped: &domain::xml::Element, c: &Case) {
    let x = parse_xml(ours);
    for d in [&x, dumped] {
        let types: Vec<&str> = disks_of(d)
            .iter()
            .map(|e| one(e, "driver").attr("type").unwrap())
            .collect();
        let want: Vec<&str> = c.disks.iter().map(|o| o.format.as_str()).collect();
        assert_eq!(types, want, "{tag}: disk driver types");
        assert_eq!(
            macs(d),
            vec!["00:50:56:aa:bb:01", "00:0c:29:aa:bb:02"],
            "{tag}: MACs"
        );
        assert_eq!(one(d, "uuid").text, "34124d56-9c3e-2f11-7a5b-2d5563367f2a");
        assert_eq!(
            one(d, "sysinfo/system/entry").text,
            "34124d56-9c3e-2f11-7a5b-2d5563367f2a"
        );
        let topo = one(d, "cpu/topology");
        assert_eq!(topo.attr("sockets"), Some("1"));
        assert_eq!(topo.attr("cores"), Some("2"));
        assert_eq!(one(d, "vcpu").text, "2");
    }
    // PCI addresses in our XML never collide.
    let mut seen = std::collections::BTreeSet::new();
    let mut addrs = Vec::new();
    x.descendants("address", &mut addrs);
    for a in addrs.into_iter().filter(|a| a.attr("type") == Some("pci")) {
        let k = (
            a.attr("slot").unwrap().to_string(),
            a.attr("function").unwrap().to_string(),
        );
        assert!(
            seen.insert(k.clone()),
            "{tag}: PCI address {k:?} used twice"
        );
    }
}

fn machine(d: &domain::xml::Element) -> String {
    one(d, "os/type").attr("machine").unwrap().to_string()
}

fn clock(d: &domain::xml::Element) -> String {
    one(d, "clock").attr("offset").unwrap().to_string()
}

fn run_both(
    dir: &Path,
    tag: &str,
    c: &Case,
    iso: &Path,
) -> Vec<(Phase, String, domain::xml::Element, QemuCommand)> {
    let mut out = Vec::new();
    for phase in [Phase::Bootstrap, Phase::Final] {
        let t = format!("{tag}-{phase:?}");
        let o = opts(c, phase, iso);
        let (xml, _warn) = libvirt_xml(&c.model, &o).unwrap();
        let dumped = libvirt_roundtrip(dir, &t, &xml);
        common_checks(&t, &xml, &dumped, c);
        let mut q = QemuOptions::new(dir, &c.model);
        q.qmp_socket = dir.join(format!("{t}.qmp"));
        q.guest_agent_socket = dir.join(format!("{t}.qga"));
        q.tpm_dir = dir.join(format!("{t}-tpm"));
        let cmd = qemu_command(&c.model, &o, &q).unwrap();
        qemu_start(dir, &t, &cmd, &q.qmp_socket);
        out.push((phase, xml, dumped, cmd));
    }
    out
}

fn has_arg(cmd: &QemuCommand, needle: &str) -> bool {
    cmd.argv.iter().any(|a| a.contains(needle))
}

#[test]
fn xp_bios_i440fx_with_pinned_geometry() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let iso = make_iso(dir);
    let mut c = case(dir, "xp", "winxppro", Firmware::BIOS, &[OutputFormat::Raw]);
    c.disks[0].bios_geometry = Some(vdisk::Chs {
        cylinders: 1024,
        heads: 255,
        sectors: 63,
    });
    for (phase, xml, dumped, cmd) in run_both(dir, "xp", &c, &iso) {
        let x = parse_xml(&xml);
        assert!(machine(&dumped).starts_with("pc"), "{}", machine(&dumped));
        assert_eq!(clock(&dumped), "localtime");
        assert!(
            all(&dumped, "features/hyperv").is_empty(),
            "no Hyper-V enlightenments for XP"
        );
        assert_eq!(one(&x, "devices/video/model").attr("type"), Some("vga"));
        let bus = one(disks_of(&dumped)[0], "target")
            .attr("bus")
            .unwrap()
            .to_string();
        let nicm = all(&dumped, "devices/interface/model")[0]
            .attr("type")
            .unwrap()
            .to_string();
        match phase {
            Phase::Bootstrap => {
                assert_eq!(bus, "ide");
                assert_eq!(nicm, "e1000");
                assert!(has_arg(&cmd, "ide-hd,bus=ide.0,unit=0,drive=disk0"));
            }
            Phase::Final => {
                assert_eq!(bus, "virtio");
                assert_eq!(nicm, "virtio");
                assert!(has_arg(&cmd, "virtio-blk-pci"));
            }
        }
        // Geometry pinned on both outputs.
        let props = all(&x, "override/device/frontend/property");
        let kv: Vec<(&str, &str)> = props
            .iter()
            .map(|p| (p.attr("name").unwrap(), p.attr("value").unwrap()))
            .collect();
        assert_eq!(
            kv,
            vec![("lcyls", "1024"), ("lheads", "255"), ("lsecs", "63")]
        );
        assert_eq!(one(&x, "override/device").attr("alias"), Some("ua-disk0"));
        assert!(has_arg(&cmd, "lcyls=1024,lheads=255,lsecs=63"));
        assert!(has_arg(&cmd, "pc,hpet=off"));
    }
}

#[test]
fn win7_q35_bootstrap_sata_final_virtio_scsi() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let iso = make_iso(dir);
    let mut c = case(
        dir,
        "win7",
        "windows7-64",
        Firmware::BIOS,
        &[OutputFormat::Qcow2, OutputFormat::Raw],
    );
    c.block_bus = BlockBus::VirtioScsi;
    c.rtc_utc = true;
    for (phase, xml, dumped, cmd) in run_both(dir, "win7", &c, &iso) {
        let x = parse_xml(&xml);
        assert!(machine(&dumped).contains("q35"));
        assert_eq!(clock(&dumped), "utc", "RealTimeIsUniversal keeps UTC");
        assert_eq!(
            one(&dumped, "features/hyperv/spinlocks").attr("retries"),
            Some("8191")
        );
        let buses: Vec<String> = disks_of(&dumped)
            .iter()
            .map(|d| one(d, "target").attr("bus").unwrap().to_string())
            .collect();
        let cd = all(&dumped, "devices/disk")
            .into_iter()
            .find(|d| d.attr("device") == Some("cdrom"))
            .unwrap();
        assert_eq!(one(cd, "source").attr("file"), Some(iso.to_str().unwrap()));
        let nicm = all(&dumped, "devices/interface/model")[0]
            .attr("type")
            .unwrap()
            .to_string();
        match phase {
            Phase::Bootstrap => {
                assert_eq!(buses, vec!["sata", "sata"]);
                assert_eq!(nicm, "e1000");
                assert_eq!(one(&x, "devices/video/model").attr("type"), Some("vga"));
                // Only the Hyper-V crash MSRs (a bugcheck during bootstrap is
                // reported); the ISA pvpanic device comes with the final phase.
                let panics = all(&dumped, "devices/panic");
                assert_eq!(panics.len(), 1);
                assert_eq!(panics[0].attr("model"), Some("hyperv"));
            }
            Phase::Final => {
                assert_eq!(buses, vec!["scsi", "scsi"]);
                assert_eq!(nicm, "virtio");
                assert_eq!(one(&x, "devices/video/model").attr("type"), Some("qxl"));
                let panics: Vec<&str> = all(&dumped, "devices/panic")
                    .iter()
                    .map(|p| p.attr("model").unwrap())
                    .collect();
                assert!(panics.contains(&"hyperv"), "Hyper-V crash: {panics:?}");
                assert!(has_arg(&cmd, "hv_crash"));
                assert!(has_arg(&cmd, "virtio-scsi-pci"));
                assert_eq!(one(&dumped, "devices/rng/backend").text, "/dev/urandom");
                assert_eq!(
                    one(&dumped, "devices/channel/target").attr("name"),
                    Some("org.qemu.guest_agent.0")
                );
            }
        }
    }
}

#[test]
fn win10_uefi_secure_boot_vtpm() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let iso = make_iso(dir);
    need("swtpm");
    let fw = Firmware {
        kind: FirmwareKind::Uefi,
        secure_boot: true,
    };
    let mut c = case(dir, "win10", "windows9-64", fw, &[OutputFormat::Qcow2]);
    c.model.vtpm = true;
    let nv = prepare_nvram(&c.model, dir, &OvmfPaths::default()).unwrap();
    assert_eq!(
        std::fs::read(&nv).unwrap(),
        std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").unwrap()
    );
    c.nvram = Some(nv.clone());
    let (_, warnings) = libvirt_xml(&c.model, &opts(&c, Phase::Final, &iso)).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("TPM") && w.contains("lost")),
        "{warnings:?}"
    );
    for (phase, _xml, dumped, cmd) in run_both(dir, "win10", &c, &iso) {
        let loader = one(&dumped, "os/loader");
        assert_eq!(loader.text, "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd");
        assert_eq!(loader.attr("secure"), Some("yes"));
        assert_eq!(one(&dumped, "os/nvram").text, nv.to_str().unwrap());
        assert_eq!(one(&dumped, "features/smm").attr("state"), Some("on"));
        assert_eq!(one(&dumped, "devices/tpm").attr("model"), Some("tpm-crb"));
        assert_eq!(clock(&dumped), "localtime");
        assert!(has_arg(&cmd, "smm=on"));
        assert!(has_arg(&cmd, "tpm-crb"));
        assert_eq!(cmd.prelude.len(), 1);
        let nicm = all(&dumped, "devices/interface/model")[0]
            .attr("type")
            .unwrap()
            .to_string();
        match phase {
            Phase::Bootstrap => assert_eq!(nicm, "e1000e"),
            Phase::Final => {
                assert_eq!(nicm, "virtio");
                assert_eq!(
                    one(&dumped, "devices/video/model").attr("type"),
                    Some("virtio")
                );
            }
        }
    }
}

#[test]
fn linux_utc_no_hyperv_and_argv_runs_directly() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let iso = make_iso(dir);
    let c = case(
        dir,
        "deb",
        "debian10-64",
        Firmware::BIOS,
        &[OutputFormat::Qcow2],
    );
    let res = run_both(dir, "deb", &c, &iso);
    for (_, _, dumped, cmd) in &res {
        assert_eq!(clock(dumped), "utc");
        assert!(all(dumped, "features/hyperv").is_empty());
        assert!(!has_arg(cmd, "hv_relaxed"));
    }
    // The argv (no shell) starts as well.
    let o = opts(&c, Phase::Final, &iso);
    let mut q = QemuOptions::new(dir, &c.model);
    q.qmp_socket = dir.join("argv.qmp");
    q.accel = "tcg".into();
    let cmd = qemu_command(&c.model, &o, &q).unwrap();
    let mut argv = cmd.argv.clone();
    argv.push("-S".into());
    let mut sh = String::from("#!/bin/sh\nexec");
    for a in &argv {
        sh.push(' ');
        sh.push_str(&shell_quote(a));
    }
    sh.push('\n');
    let c2 = QemuCommand { script: sh, ..cmd };
    qemu_start(dir, "argv", &c2, &q.qmp_socket);
}

#[test]
fn mismatched_disk_list_and_missing_nvram_are_errors() {
    let m = VmModel::from_disks(&[PathBuf::from("a.vhdx")], 512, 1, Firmware::UEFI, "win10");
    let o = DomainOptions::new(Phase::Final, vec![]);
    assert!(libvirt_xml(&m, &o)
        .unwrap_err()
        .to_string()
        .contains("output disks"));
    let o = DomainOptions::new(
        Phase::Final,
        vec![OutputDisk {
            path: "a.qcow2".into(),
            format: OutputFormat::Qcow2,
            bios_geometry: None,
        }],
    );
    assert!(libvirt_xml(&m, &o)
        .unwrap_err()
        .to_string()
        .contains("NVRAM"));
}

#[test]
fn many_nics_run_out_of_pci_slots_cleanly() {
    let mut m = VmModel::from_disks(&[], 512, 1, Firmware::BIOS, "debian10-64");
    m.nics = (0..40)
        .map(|i| nic(&format!("52:54:00:00:00:{i:02x}")))
        .collect();
    let o = DomainOptions::new(Phase::Final, vec![]);
    let e = libvirt_xml(&m, &o).unwrap_err().to_string();
    assert!(e.contains("no free PCI slot"), "{e}");
}
