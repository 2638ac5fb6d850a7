//! Fuzz the qcow2 reader: the input (with the qcow2 magic forced) is
//! written to a temp file, opened through the probe and read in bounded
//! chunks and extents. Must never panic or allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() >= 4 {
        bytes[..4].copy_from_slice(b"QFI\xfb");
    }
    hyper2kvm_fuzz::open_and_exercise("fuzz.qcow2", &bytes, &[]);
});
