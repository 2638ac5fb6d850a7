#![no_main]
//! Fuzz the domain crate's vbox parser: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Names are resolved under this directory; nothing is written.
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let opts = domain::ParseOptions::default();
    let _ = &opts;
    let _ = domain::vbox::parse(&dir.path().join("f.vbox"), data, &opts);
});
