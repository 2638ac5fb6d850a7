//! A disk held in memory: parsed images that are small by construction
//! (fuzz inputs, hostile variants built by tests, metadata areas).

use crate::{Disk, LayerInfo, Result};

/// A read-only disk whose bytes are a `Vec<u8>`; its size is the vector's
/// length.
#[derive(Debug, Clone, Default)]
pub struct MemDisk(pub Vec<u8>);

impl Disk for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<()> {
        crate::disk::check_range(self.size(), off, buf.len() as u64)?;
        let at = off as usize;
        buf.copy_from_slice(&self.0[at..at + buf.len()]);
        Ok(())
    }
    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: "memory".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_range_and_refuses_past_the_end() {
        let d = MemDisk((0u8..16).collect());
        let mut b = [0u8; 4];
        d.read_at(&mut b, 12).unwrap();
        assert_eq!(b, [12, 13, 14, 15]);
        assert!(d.read_at(&mut b, 13).is_err());
        assert!(d.read_at(&mut b, u64::MAX).is_err());
    }
}
