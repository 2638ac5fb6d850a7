//! Fuzz the MBR/EBR parser and the geometry audit over an in-memory disk
//! (the input, with the 0x55AA signature forced so the table path runs).
#![no_main]
use hyper2kvm_fuzz::Mem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = data.to_vec();
    v.resize(v.len().clamp(512, 1 << 20).next_multiple_of(512), 0);
    v[510] = 0x55;
    v[511] = 0xAA;
    let d = Mem(v);
    if let Ok(t) = guest::partition::read_table(&d) {
        for p in t.partitions() {
            let _ = guest::partition::open_partition(&d, p);
        }
    }
    if let Ok(a) = guest::audit::audit(&d, &Default::default()) {
        let _ = guest::fixgeo::plan(&d, &a, None, &guest::geometry::Bus::ALL);
    }
});
