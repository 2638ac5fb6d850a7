//! Writers for the structures QEMU cannot produce: differencing VHDs,
//! differencing VHDX files and dirty VHDX logs. Built from the published
//! specs, checked against libvhdi and QEMU in the tests.

use std::path::Path;

/// VHD checksum (one's complement of the byte sum, skipping `skip..skip+4`).
pub fn vhd_checksum(b: &[u8], skip: usize) -> u32 {
    let mut s: u32 = 0;
    for (i, x) in b.iter().enumerate() {
        if !(skip..skip + 4).contains(&i) {
            s = s.wrapping_add(*x as u32);
        }
    }
    !s
}

/// Recompute the checksum of a VHD footer in place.
pub fn fix_footer(f: &mut [u8]) {
    let c = vhd_checksum(&f[..512], 64);
    f[64..68].copy_from_slice(&c.to_be_bytes());
}

/// Recompute the checksum of a VHD dynamic header in place.
pub fn fix_dyn_header(h: &mut [u8]) {
    let c = vhd_checksum(&h[..1024], 36);
    h[36..40].copy_from_slice(&c.to_be_bytes());
}

/// Parent description for [`build_vhd`].
pub struct VhdParent<'a> {
    /// Unique id of the parent (from its footer).
    pub unique_id: [u8; 16],
    /// Parent file name (header's Unicode name).
    pub name: &'a str,
    /// W2ru locator (relative), if any.
    pub w2ru: Option<&'a str>,
    /// W2ku locator (absolute), if any.
    pub w2ku: Option<&'a str>,
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// Write a dynamic (no parent) or differencing VHD. `blocks` holds
/// (block index, sector bitmap bytes, block data).
pub fn build_vhd(
    path: &Path,
    size: u64,
    block_size: u32,
    blocks: &[(u32, Vec<u8>, Vec<u8>)],
    parent: Option<&VhdParent>,
) {
    let bs = block_size as u64;
    let nblocks = size.div_ceil(bs);
    let bitmap_size = ((bs / 512).div_ceil(8)).div_ceil(512) * 512;
    let bat_off = 1536u64;
    let bat_len = (nblocks * 4).div_ceil(512) * 512;
    let mut file = vec![0u8; (bat_off + bat_len) as usize];
    // BAT all unallocated.
    for i in 0..nblocks as usize {
        file[bat_off as usize + 4 * i..bat_off as usize + 4 * i + 4].fill(0xff);
    }
    let mut dh = vec![0u8; 1024];
    dh[0..8].copy_from_slice(b"cxsparse");
    dh[8..16].fill(0xff);
    dh[16..24].copy_from_slice(&bat_off.to_be_bytes());
    dh[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    dh[28..32].copy_from_slice(&(nblocks as u32).to_be_bytes());
    dh[32..36].copy_from_slice(&block_size.to_be_bytes());
    if let Some(p) = parent {
        dh[40..56].copy_from_slice(&p.unique_id);
        for (i, u) in p.name.encode_utf16().take(255).enumerate() {
            dh[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        let mut slot = 0;
        for (code, val) in [(b"W2ru", p.w2ru), (b"W2ku", p.w2ku)] {
            let Some(v) = val else { continue };
            let data = utf16le(v);
            let off = file.len() as u64;
            let mut sect = data.clone();
            sect.resize(data.len().div_ceil(512) * 512, 0);
            file.extend_from_slice(&sect);
            let o = 576 + 24 * slot;
            dh[o..o + 4].copy_from_slice(code);
            dh[o + 4..o + 8].copy_from_slice(&(sect.len() as u32).to_be_bytes());
            dh[o + 8..o + 12].copy_from_slice(&(data.len() as u32).to_be_bytes());
            dh[o + 16..o + 24].copy_from_slice(&off.to_be_bytes());
            slot += 1;
        }
    }
    fix_dyn_header(&mut dh);
    file[512..1536].copy_from_slice(&dh);
    for (blk, bitmap, data) in blocks {
        assert_eq!(bitmap.len() as u64, bitmap_size);
        assert_eq!(data.len() as u64, bs);
        let sector = (file.len() / 512) as u32;
        let e = bat_off as usize + 4 * *blk as usize;
        file[e..e + 4].copy_from_slice(&sector.to_be_bytes());
        file.extend_from_slice(bitmap);
        file.extend_from_slice(data);
    }
    let mut f = vec![0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes());
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&512u64.to_be_bytes());
    f[28..32].copy_from_slice(b"win ");
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let cyl = (size / (16 * 63 * 512)).min(65535) as u16;
    f[56..58].copy_from_slice(&cyl.to_be_bytes());
    f[58] = 16;
    f[59] = 63;
    let ty: u32 = if parent.is_some() { 4 } else { 3 };
    f[60..64].copy_from_slice(&ty.to_be_bytes());
    let mut uid = [0u8; 16];
    super::Rng::new(size ^ blocks.len() as u64 ^ ty as u64).fill(&mut uid);
    f[68..84].copy_from_slice(&uid);
    fix_footer(&mut f);
    file[0..512].copy_from_slice(&f);
    file.extend_from_slice(&f);
    std::fs::write(path, file).unwrap();
}
