//! Fuzz the MBR/EBR parser and the geometry audit over an in-memory disk
//! (the input, with the 0x55AA signature forced so the table path runs).
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
    let mut v = data.to_vec();
    v.resize(v.len().clamp(512, 1 << 20).next_multiple_of(512), 0);
    v[510] = 0x55;
    v[511] = 0xAA;
    let d = Mem(v);
    if let Ok(t) = guest::partition::read_table(&d) {
        for p in t.partitions() {
            let _ = guest::partition::open_partition(&d, p);
        }
    }
    if let Ok(a) = guest::audit::audit(&d, &Default::default()) {
        let _ = guest::fixgeo::plan(&d, &a, None, &guest::geometry::Bus::ALL);
    }
});
