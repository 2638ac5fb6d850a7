//! Fuzz the btrfs reader: the input is the image from byte 0 (the
//! _BHRfS_M magic is forced at 0x10040 so inputs reach the superblock
//! checks), padded to 128 KiB; the whole tree is walked with bounded reads.
#![no_main]
use hyper2kvm_fuzz::Mem;
use libfuzzer_sys::fuzz_target;
use linuxfs::{FileType, LinuxFs};

fn walk(fs: &dyn LinuxFs, path: &str, depth: usize) {
    let Ok(entries) = fs.read_dir(path) else { return };
    for e in entries.iter().take(64) {
        let child = format!("{}/{}", path.trim_end_matches('/'), e.name);
        let _ = fs.stat(&child);
        let _ = fs.read_link(&child);
        let _ = fs.read_file(&child, 1 << 20);
        if e.file_type == FileType::Directory && depth < 3 {
            walk(fs, &child, depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut img = data[..data.len().min(4 << 20)].to_vec();
    img.resize(img.len().max(128 << 10), 0);
    img[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
    if let Ok(fs) = linuxfs::open(Box::new(Mem(img))) {
        walk(&*fs, "/", 0);
    }
});
