//! Fuzz the vdi reader: bytes -> temp file -> vdisk::probe::open -> bounded
//! reads and extents. Only a private tempdir is touched.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hyper2kvm_fuzz::open_and_exercise("image.vdi", data, &[]);
});
