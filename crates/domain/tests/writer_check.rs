//! `writer::check` refuses exactly what the writers refuse (so planning
//! can fail before any disk is converted), memory and vCPU counts are
//! range-checked, and source CD-ROM images reach the bootstrap domain.
//! Oracles: virt-xml-validate, the virsh test driver, QEMU itself.

mod common;

use common::*;
use domain::writer::*;
use domain::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn nic(i: usize) -> Nic {
    Nic {
        model: NicModel::E1000,
        mac: format!("00:50:56:00:{:02x}:{:02x}", i >> 8, i & 0xff),
        mac_generated: false,
        network: None,
    }
}

fn out_disks(dir: &Path, n: usize) -> Vec<OutputDisk> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("out{i}.qcow2"));
            if !p.exists() {
                qemu_img_create(&p, "qcow2", "8M");
            }
            OutputDisk {
                path: p,
                format: OutputFormat::Qcow2,
                bios_geometry: None,
            }
        })
        .collect()
}

fn model(dir: &Path, os: &str, disks: usize) -> VmModel {
    let paths: Vec<PathBuf> = (0..disks)
        .map(|i| dir.join(format!("src{i}.vmdk")))
        .collect();
    VmModel::from_disks(&paths, 512, 1, Firmware::BIOS, os)
}

/// `check`, `libvirt_xml` and `qemu_command` all say the same: `Ok` with
/// the same warnings, or the same error text. Returns check's result.
fn same_verdict(m: &VmModel, o: &DomainOptions, dir: &Path) -> Result<Vec<String>, String> {
    let c = check(m, o).map_err(|e| e.to_string());
    let x = libvirt_xml(m, o).map(|(_, w)| w).map_err(|e| e.to_string());
    let q = qemu_command(m, o, &QemuOptions::new(dir, m))
        .map(|c| c.warnings)
        .map_err(|e| e.to_string());
    assert_eq!(c, x, "check vs libvirt_xml");
    assert_eq!(c, q, "check vs qemu_command");
    c
}

fn virt_xml_validate(dir: &Path, tag: &str, xml: &str) -> String {
    need("virt-xml-validate");
    let f = dir.join(format!("{tag}.xml"));
    std::fs::write(&f, xml).unwrap();
    let out = Command::new("virt-xml-validate")
        .arg(&f)
        .arg("domain")
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn memory_and_vcpus_out_of_range_are_refused_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let disks = out_disks(dir, 1);
    let o = DomainOptions::new(Phase::Bootstrap, disks.clone());

    let mut m = model(dir, "win10", 1);
    m.memory_mib = 0;
    let e = same_verdict(&m, &o, dir).unwrap_err();
    assert!(e.contains("memory 0 MiB is out of range"), "{e}");

    for (os, vcpus, machine) in [("win10", 100_000u32, "q35"), ("winxppro", 256, "pc")] {
        let mut m = model(dir, os, 1);
        m.cpu = CpuTopology::new(vcpus, 1).0;
        let e = same_verdict(&m, &o, dir).unwrap_err();
        assert!(
            e.contains(&format!("{vcpus} vCPUs is out of range")) && e.contains(machine),
            "{e}"
        );
    }

    let mut m = model(dir, "win10", 1);
    m.cpu = CpuTopology {
        vcpus: 4,
        sockets: 1,
        cores: 2,
        threads: 1,
    };
    let e = same_verdict(&m, &o, dir).unwrap_err();
    assert!(e.contains("does not make 4 vCPUs"), "{e}");

    // The limits themselves are accepted by libvirt's schema.
    for (os, vcpus, mem) in [
        ("win10", MAX_VCPUS, 1u64),
        ("winxppro", 255, MAX_MEMORY_MIB),
    ] {
        let mut m = model(dir, os, 1);
        m.cpu = CpuTopology::new(vcpus, 1).0;
        m.memory_mib = mem;
        same_verdict(&m, &o, dir).unwrap();
        let (xml, _) = libvirt_xml(&m, &o).unwrap();
        let v = virt_xml_validate(dir, &format!("limits-{os}"), &xml);
        assert!(v.contains("validates"), "{os}: {v}");
        assert!(xml.contains(&format!(">{vcpus}</vcpu>")), "{xml}");
    }
}

#[test]
fn check_refuses_exactly_what_the_writers_refuse() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let mut refused = Vec::new();
    for (os, ndisks) in [("win10", 1), ("win10", 8), ("winxppro", 2)] {
        let disks = out_disks(dir, ndisks);
        for phase in [Phase::Bootstrap, Phase::Final] {
            for bus in [BlockBus::VirtioBlk, BlockBus::VirtioScsi] {
                for nics in [0usize, 20, 23, 24, 25, 28, 29, 30, 100] {
                    let mut m = model(dir, os, ndisks);
                    m.nics = (0..nics).map(nic).collect();
                    let mut o = DomainOptions::new(phase, disks.clone());
                    o.block_bus = bus;
                    o.virtio_win_iso = Some(dir.join("virtio-win.iso"));
                    if let Err(e) = same_verdict(&m, &o, dir) {
                        assert!(e.contains("no free PCI slot"), "{e}");
                        refused.push((os, ndisks, phase, bus, nics));
                    }
                }
            }
        }
    }
    // 30 NICs never fit on one root bus; without NICs everything does.
    assert!(refused.iter().all(|r| r.4 >= 20), "{refused:?}");
    assert!(
        !refused.iter().any(|r| r.4 == 20 && r.1 == 1),
        "{refused:?}"
    );
    for os in ["win10", "winxppro"] {
        for phase in [Phase::Bootstrap, Phase::Final] {
            assert!(
                refused
                    .iter()
                    .any(|r| r.0 == os && r.2 == phase && r.4 == 30),
                "{os} {phase:?}: {refused:?}"
            );
        }
    }
    // Other refusals: disk list, NVRAM.
    let m = model(dir, "win10", 2);
    let o = DomainOptions::new(Phase::Final, out_disks(dir, 1));
    assert!(same_verdict(&m, &o, dir)
        .unwrap_err()
        .contains("output disks"));
    let mut m = model(dir, "win10", 1);
    m.firmware = Firmware::UEFI;
    let o = DomainOptions::new(Phase::Final, out_disks(dir, 1));
    assert!(same_verdict(&m, &o, dir).unwrap_err().contains("NVRAM"));
}

/// A VM folder with a disk and a real ISO, described by a VMX whose
/// CD-ROM names the ISO by an ESXi datastore path.
fn vm_with_iso(dir: &Path, os: &str, disks: usize) -> (VmModel, PathBuf) {
    let vm = dir.join("vm");
    std::fs::create_dir_all(&vm).unwrap();
    let iso = make_iso(&vm); // vm/virtio-win.iso
    let iso = {
        let p = vm.join("tools.iso");
        std::fs::rename(&iso, &p).unwrap();
        p
    };
    let mut vmx = format!(
        "config.version = \"8\"\nvirtualHW.version = \"19\"\nguestOS = \"{os}\"\nmemsize = \"512\"\n\
         sata0.present = \"TRUE\"\nsata0:5.present = \"TRUE\"\nsata0:5.deviceType = \"cdrom-image\"\n\
         sata0:5.fileName = \"/vmfs/volumes/datastore1/ISO/tools.iso\"\n\
         ide1:1.present = \"TRUE\"\nide1:1.deviceType = \"cdrom-image\"\nide1:1.fileName = \"gone.iso\"\n\
         ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"e1000e\"\nethernet0.address = \"00:50:56:01:02:03\"\nethernet0.addressType = \"static\"\n"
    );
    for i in 0..disks {
        std::fs::write(vm.join(format!("d{i}.vmdk")), b"x").unwrap();
        vmx.push_str(&format!(
            "scsi0.present = \"TRUE\"\nscsi0:{i}.present = \"TRUE\"\nscsi0:{i}.fileName = \"d{i}.vmdk\"\n"
        ));
    }
    std::fs::write(vm.join("vm.vmx"), vmx).unwrap();
    let m = vmx::parse_file(&vm.join("vm.vmx"), &ParseOptions::default()).unwrap();
    (m, iso)
}

/// Start QEMU on `argv` paused (-S) under TCG; fail if it exits before its
/// QMP socket appears (it rejected the command line).
fn qemu_accepts(dir: &Path, tag: &str, argv: &[String]) {
    need("qemu-system-x86_64");
    let qmp = dir.join(format!("{tag}.qmp"));
    let log = dir.join(format!("{tag}.log"));
    let mut args: Vec<String> = argv[1..].to_vec();
    // Our own QMP socket, no serial file.
    for (i, a) in argv.iter().enumerate().skip(1) {
        if (a == "-qmp" || a == "-serial") && i < argv.len() - 1 {
            let pos = args.iter().position(|x| x == a).unwrap();
            args.drain(pos..pos + 2);
        }
    }
    args.extend(
        [
            "-S",
            "-machine",
            "accel=tcg",
            "-serial",
            "none",
            "-qmp",
            &format!("unix:{},server=on,wait=off", qmp.display()),
        ]
        .map(String::from),
    );
    let mut child = Command::new(&argv[0])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !qmp.exists() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "{tag}: QEMU exited ({st}): {}\nargv: {args:?}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{tag}: no QMP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn cdrom_sources(xml: &domain::xml::Element) -> Vec<(String, String)> {
    all(xml, "devices/disk")
        .into_iter()
        .filter(|d| d.attr("device") == Some("cdrom"))
        .map(|d| {
            (
                one(d, "source").attr("file").unwrap().to_string(),
                one(d, "target").attr("bus").unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn source_cdrom_image_is_attached_to_the_bootstrap_domain_only() {
    need("virsh");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (m, iso) = vm_with_iso(dir, "windows9-64", 1);
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("ide1:1") && w.contains("gone.iso") && w.contains("not found")),
        "{:?}",
        m.warnings
    );
    let vw = make_iso(dir);
    for phase in [Phase::Bootstrap, Phase::Final] {
        let mut o = DomainOptions::new(phase, out_disks(dir, 1));
        o.virtio_win_iso = (phase == Phase::Bootstrap).then(|| vw.clone());
        let warnings = same_verdict(&m, &o, dir).unwrap();
        let (xml, _) = libvirt_xml(&m, &o).unwrap();
        let tag = format!("{phase:?}");
        let v = virt_xml_validate(dir, &tag, &xml);
        assert!(v.contains("validates"), "{v}");
        let f = dir.join(format!("{tag}.xml"));
        let dump = run(Command::new("virsh")
            .args(["-q", "-c", "test:///default"])
            .arg(format!("define {}; dumpxml {}", f.display(), m.safe_name())));
        let dumped = parse_xml(&dump[dump.find("<domain").unwrap()..]);
        let cmd = qemu_command(&m, &o, &QemuOptions::new(dir, &m)).unwrap();
        let iso_s = iso.display().to_string();
        let in_argv = cmd
            .argv
            .iter()
            .filter(|a| a.starts_with("{") && a.contains(&format!("\"filename\":\"{iso_s}\"")))
            .collect::<Vec<_>>();
        if phase == Phase::Bootstrap {
            let want = vec![
                (vw.display().to_string(), "sata".to_string()),
                (iso_s.clone(), "sata".to_string()),
            ];
            assert_eq!(cdrom_sources(&parse_xml(&xml)), want);
            assert_eq!(cdrom_sources(&dumped), want, "virsh dumpxml");
            assert_eq!(in_argv.len(), 1, "{:?}", cmd.argv);
            let blockdev: serde_json::Value = serde_json::from_str(in_argv[0]).unwrap();
            assert_eq!(blockdev["read-only"], true);
            assert_eq!(blockdev["node-name"], "cd1");
            assert!(
                cmd.argv
                    .iter()
                    .any(|a| a.starts_with("ide-cd,bus=ide.")
                        && a.contains("drive=cd1,id=ua-cdrom0")),
                "{:?}",
                cmd.argv
            );
            assert!(
                warnings.iter().any(|w| w.contains("tools.iso")
                    && w.contains("attached to the bootstrap domain as sd")),
                "{warnings:?}"
            );
            qemu_accepts(dir, &tag, &cmd.argv);
        } else {
            assert!(cdrom_sources(&dumped).is_empty(), "{dump}");
            assert!(in_argv.is_empty(), "{:?}", cmd.argv);
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("tools.iso") && w.contains("bootstrap domain only")),
                "{warnings:?}"
            );
        }
    }
}

#[test]
fn source_cdrom_without_a_free_port_is_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    // Windows XP: pc machine, four IDE places: three disks + virtio-win.
    let (m, _) = vm_with_iso(dir, "winxppro", 3);
    let mut o = DomainOptions::new(Phase::Bootstrap, out_disks(dir, 3));
    o.virtio_win_iso = Some(dir.join("virtio-win.iso"));
    let w = same_verdict(&m, &o, dir).unwrap();
    assert!(
        w.iter().any(
            |w| w.contains("no IDE port left for the source CD-ROM") && w.contains("tools.iso")
        ),
        "{w:?}"
    );
    let (xml, _) = libvirt_xml(&m, &o).unwrap();
    let cds = cdrom_sources(&parse_xml(&xml));
    assert_eq!(cds.len(), 1, "{cds:?}");
    assert!(cds[0].0.ends_with("virtio-win.iso"));
    // Without virtio-win the source CD gets the place.
    o.virtio_win_iso = None;
    let (xml, _) = libvirt_xml(&m, &o).unwrap();
    let cds = cdrom_sources(&parse_xml(&xml));
    assert_eq!(cds.len(), 1);
    assert!(
        cds[0].0.ends_with("tools.iso") && cds[0].1 == "ide",
        "{cds:?}"
    );
}
