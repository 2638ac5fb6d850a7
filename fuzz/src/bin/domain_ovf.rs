#![no_main]
//! Fuzz the domain crate's ovf parser: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Names are resolved under this directory; nothing is written.
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let opts = domain::ParseOptions::default();
    let _ = &opts;
    let _ = domain::ovf::parse_descriptor(&dir.path().join("f.ovf"), data, &mut |f| {
        Ok(domain::DiskSource::File {
            path: dir.path().join(f.href.replace("..", "_")),
        })
    });
});
