#![no_main]
//! Fuzz the BCD device-element parser and the default-loader lookup of
//! the Windows storage planner: never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a device element blob.
    let _ = guest::windows::storage::bcd::parse_device(data);
    // As a BCD store (a hive).
    if let Ok(h) = regf::Hive::open(data.to_vec()) {
        let _ = guest::windows::storage::bcd::default_devices(&h);
    }
});
