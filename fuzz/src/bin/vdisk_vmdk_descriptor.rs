//! Fuzz the pure VMDK descriptor parser and its accessors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = vdisk::vmdk::parse_descriptor(&text) {
        let _ = d.geometry();
        let _ = d.total_sectors();
        let _ = d.adapter_type();
        let _ = d.virtual_hw_version();
        let _ = d.has_parent();
        assert!(d.extents.len() <= vdisk::vmdk::MAX_EXTENTS);
    }
});
