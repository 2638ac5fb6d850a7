#![no_main]
//! Fuzz the domain crate's vmx parser: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Names are resolved under this directory; nothing is written.
    let dir = hyper2kvm_fuzz::scratch_dir();
    let opts = domain::ParseOptions::default();
    let _ = &opts;
    let _ = domain::vmx::parse(&dir.join("f.vmx"), data, &opts);
});
