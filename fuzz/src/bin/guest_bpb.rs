//! Fuzz the BPB parser and filesystem signature detection.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(b) = guest::bpb::Bpb::parse(data) {
        let _ = b.backup_sector;
    }
    let _ = guest::bpb::detect_bytes(data);
});
