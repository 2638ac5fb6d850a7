#![no_main]
//! Fuzz the domain crate's libvirt parser: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Names are resolved under this directory; nothing is written.
    let dir = hyper2kvm_fuzz::scratch_dir();
    let opts = domain::ParseOptions::default();
    let _ = &opts;
    if let Ok(m) = domain::libvirt::parse(&dir.join("f.xml"), data, &opts) {
        // Whatever parses must also render without panicking.
        let disks = m
            .disks
            .iter()
            .map(|_| domain::writer::OutputDisk {
                path: dir.join("d.qcow2"),
                format: domain::writer::OutputFormat::Qcow2,
                bios_geometry: None,
            })
            .collect();
        let mut o = domain::writer::DomainOptions::new(domain::writer::Phase::Final, disks);
        o.nvram = Some(dir.join("nv.fd"));
        let _ = domain::writer::libvirt_xml(&m, &o);
        let q = domain::writer::QemuOptions::new(dir, &m);
        let _ = domain::writer::qemu_command(&m, &o, &q);
    }
});
