//! Fuzz the vhdx reader: bytes -> temp file -> vdisk::probe::open -> read a
//! few bounded chunks and extents. Only a private tempdir is touched.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("image.vhdx");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(disk) = vdisk::probe::open(&path) else {
        return;
    };
    let size = disk.size();
    let mut buf = vec![0u8; 64 * 1024];
    for off in [0, size / 3, size / 2, size.saturating_sub(4096)] {
        if off >= size {
            continue;
        }
        let n = (buf.len() as u64).min(size - off) as usize;
        let _ = disk.read_at(&mut buf[..n], off);
        let _ = disk.extent(off, size - off);
    }
    let _ = disk.layer();
});
