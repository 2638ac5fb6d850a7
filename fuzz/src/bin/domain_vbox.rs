#![no_main]
//! Fuzz the domain crate's vbox parser: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Names are resolved under this directory; nothing is written.
    let dir = hyper2kvm_fuzz::scratch_dir();
    let opts = domain::ParseOptions::default();
    let _ = &opts;
    let _ = domain::vbox::parse(&dir.join("f.vbox"), data, &opts);
});
