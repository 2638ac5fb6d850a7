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
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("fuzz.vmdk");
    // A small companion extent a fuzzed descriptor can name.
    if std::fs::write(&path, &bytes).is_err()
        || std::fs::write(dir.path().join("x.vmdk"), [0x5au8; 8192]).is_err()
    {
        return;
    }
    let Ok(disk) = vdisk::probe::open(&path) else {
        return;
    };
    let _ = disk.layer();
    let _ = disk.geometry_hints();
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
