#![no_main]
//! Fuzz the initrd reader (segments, gzip/xz/zstd, newc cpio) and the
//! plain cpio lister: never panic, bounded memory (small limits).
use guest::linux::cpio::{self, Limits};
use guest::linux::initrd::Initrd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_entries: 10_000,
        max_name: 4096,
        max_total: 64 << 20,
        max_kept_file: 1 << 20,
        max_kept_total: 4 << 20,
    };
    if let Ok(i) = Initrd::parse_with(data, &limits, &|_, _| true) {
        let r = i.report();
        let _ = r.presence("virtio_blk");
        let _ = r.drives_virtio_blk(None);
    }
    let _ = cpio::list(data);
});
