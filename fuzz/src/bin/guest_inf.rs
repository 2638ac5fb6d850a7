#![no_main]
//! Fuzz the INF parser and its typed accessors: never panic, bounded memory.
use guest::drivers::inf::{Inf, OsVersion};
use guest::drivers::Arch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(inf) = Inf::parse(data, "fuzz.inf") else {
        return;
    };
    let _ = inf.version();
    let w7 = OsVersion {
        major: 6,
        minor: 1,
        build: None,
        server: Some(false),
    };
    for arch in [Arch::Amd64, Arch::X86] {
        for os in [None, Some(&w7)] {
            let _ = inf.models(arch, os);
            let _ = inf.summary(arch, os);
        }
        let _ = inf.source_disks_files(arch);
        let _ = inf.source_disks_names(arch);
    }
    let _ = inf.destination_dirs();
    for s in inf.sections() {
        let _ = inf.add_reg(&s.name);
        let _ = inf.copy_files(&s.name);
        let _ = inf.service_install(&s.name);
        let _ = inf.install_section(&s.name, Arch::Amd64);
    }
});
