#![no_main]
//! Fuzz the domain crate's libvirt parser: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Names are resolved under this directory; nothing is written.
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let opts = domain::ParseOptions::default();
    let _ = &opts;
    if let Ok(m) = domain::libvirt::parse(&dir.path().join("f.xml"), data, &opts) {
        // Whatever parses must also render without panicking.
        let disks = m
            .disks
            .iter()
            .map(|_| domain::writer::OutputDisk {
                path: dir.path().join("d.qcow2"),
                format: domain::writer::OutputFormat::Qcow2,
                bios_geometry: None,
            })
            .collect();
        let mut o = domain::writer::DomainOptions::new(domain::writer::Phase::Final, disks);
        o.nvram = Some(dir.path().join("nv.fd"));
        let _ = domain::writer::libvirt_xml(&m, &o);
        let q = domain::writer::QemuOptions::new(dir.path(), &m);
        let _ = domain::writer::qemu_command(&m, &o, &q);
    }
});
