#![no_main]
//! Fuzz the Winsock catalog item decoder (`PackedCatalogItem` bytes from a
//! guest's SYSTEM hive): never panic, never allocate unboundedly.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(item) = guest::windows::winsock::parse_item(data) {
        assert!(item.chain.len() <= 7);
        let _ = item.dll_file();
    }
});
