//! Fuzz the VMDK reader: the first input byte picks the flavour (KDMV
//! sparse, COWD, text descriptor, or as-is), the rest is written to a file
//! in a temp dir, opened through the probe and read in bounded chunks and
//! extents. Descriptors may name files; the open gate keeps every name
//! inside the temp dir. Must never panic or allocate without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    match mode % 4 {
        0 if bytes.len() >= 4 => bytes[..4].copy_from_slice(b"KDMV"),
        1 if bytes.len() >= 4 => bytes[..4].copy_from_slice(b"COWD"),
        2 => {
            let mut t = b"# Disk DescriptorFile\n".to_vec();
            t.extend_from_slice(&bytes);
            bytes = t;
        }
        _ => {}
    }
    // A small companion extent a fuzzed descriptor can name.
    hyper2kvm_fuzz::open_and_exercise("fuzz.vmdk", &bytes, &[("x.vmdk", &[0x5a; 8192])]);
});
