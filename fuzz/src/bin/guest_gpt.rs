//! Fuzz the GPT parser: a protective MBR followed by the input as LBA 1..
//! (headers, arrays, backup at the last sector), over an in-memory disk.
#![no_main]
use hyper2kvm_fuzz::Mem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = vec![0u8; 512];
    v[0x1BE + 4] = 0xEE;
    v[0x1BE + 8] = 1;
    v[0x1BE + 12..0x1BE + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    v[510] = 0x55;
    v[511] = 0xAA;
    v.extend_from_slice(&data[..data.len().min(1 << 20)]);
    v.resize(v.len().max(34 * 512).next_multiple_of(512), 0);
    let d = Mem(v);
    if let Ok(t) = guest::partition::read_table(&d) {
        for p in t.partitions() {
            let _ = guest::partition::open_partition(&d, p);
        }
    }
});
