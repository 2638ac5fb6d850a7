//! Fuzz the GPT parser: a protective MBR followed by the input as LBA 1..
//! (headers, arrays, backup at the last sector), over an in-memory disk.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vdisk::{Disk, LayerInfo};

#[derive(Debug)]
struct Mem(Vec<u8>);

impl Disk for Mem {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> vdisk::Result<()> {
        vdisk::disk::check_range(self.size(), off, buf.len() as u64)?;
        buf.copy_from_slice(&self.0[off as usize..off as usize + buf.len()]);
        Ok(())
    }
    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: "fuzz".into(),
            format: "raw".into(),
            subformat: None,
            virtual_size: self.size(),
            file_size: self.size(),
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }
}

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
