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
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(_) => return,
    };
    let path = dir.path().join("fuzz.qcow2");
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let Ok(disk) = vdisk::probe::open(&path) else {
        return;
    };
    let _ = disk.layer();
    let size = disk.size();
    if size == 0 {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..8u64 {
        let off = (size / 8).saturating_mul(i).min(size - 1);
        let n = (size - off).min(buf.len() as u64) as usize;
        let _ = disk.read_at(&mut buf[..n], off);
        let _ = disk.read_at(&mut buf[..1], off);
    }
    let mut off = 0;
    for _ in 0..64 {
        if off >= size {
            break;
        }
        match disk.extent(off, size - off) {
            Ok(e) if e.len > 0 => off = e.offset + e.len,
            _ => break,
        }
    }
});
