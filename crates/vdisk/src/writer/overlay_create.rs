//! Empty qcow2 v3 overlays: a new image of a given virtual size whose every
//! cluster is unallocated, so that all reads fall through to a backing file
//! and all writes land in the overlay (the backing file is never written).
//!
//! Layout (64 KiB clusters): cluster 0 holds the header, the backing-format
//! header extension and the backing file name; the L1 table (all zero)
//! follows, sized for the virtual size (none for an empty disk); then one
//! refcount table cluster and one refcount block (16-bit refcounts)
//! covering the metadata clusters.

use super::TempOutput;
use crate::error::{Error, ErrorKind, Result};
use crate::qcow2::header::MAX_BACKING_NAME;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// log2 of the overlay cluster size.
const CLUSTER_BITS: u32 = 16;
/// Header length written (v3 base header plus the compression-type byte,
/// padded to a multiple of 8).
const HEADER_LEN: usize = 112;
/// Header extension type: backing file format name.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// Longest backing format name accepted.
const MAX_FORMAT_NAME: usize = 64;

/// Create an empty qcow2 v3 image at `path` (refusing to overwrite) of
/// `virtual_size` bytes, backed by `backing_file` in `backing_format`
/// (a QEMU driver name such as `raw` or `qcow2`). The backing name is
/// stored as given: QEMU resolves a relative name against the overlay's
/// directory, so callers usually pass an absolute path. Returns the path.
pub fn create_qcow2_overlay(
    path: &Path,
    virtual_size: u64,
    backing_file: &str,
    backing_format: &str,
) -> Result<PathBuf> {
    if backing_file.is_empty()
        || backing_file.len() > MAX_BACKING_NAME as usize
        || backing_file.contains('\0')
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "backing file name must be 1..={MAX_BACKING_NAME} bytes without NUL, got {} bytes",
                backing_file.len()
            ),
        )
        .with_path(path));
    }
    if backing_format.is_empty()
        || backing_format.len() > MAX_FORMAT_NAME
        || !backing_format
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("backing format {backing_format:?} is not a format driver name"),
        )
        .with_path(path));
    }
    let cs = 1u64 << CLUSTER_BITS;
    let per_l2 = cs / 8;
    let l1_entries = virtual_size.div_ceil(cs).div_ceil(per_l2);
    if l1_entries > crate::qcow2::header::MAX_L1_BYTES / 8 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "virtual size {virtual_size} too large for a qcow2 image with {cs}-byte clusters"
            ),
        )
        .with_path(path));
    }
    // An empty disk has no L1 table at all (offset 0, as qemu-img makes it).
    let l1_clusters = (l1_entries * 8).div_ceil(cs);
    let rt_cluster = 1 + l1_clusters;
    let rb_cluster = rt_cluster + 1;
    let total = rb_cluster + 1;
    // One refcount block of 16-bit entries covers cs/2 clusters: far more
    // than the at most 515 metadata clusters.
    debug_assert!(total <= cs / 2);

    let mut header = vec![0u8; cs as usize];
    let h = &mut header;
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&CLUSTER_BITS.to_be_bytes());
    h[24..32].copy_from_slice(&virtual_size.to_be_bytes());
    h[36..40].copy_from_slice(&(l1_entries as u32).to_be_bytes());
    let l1_offset = if l1_entries == 0 { 0 } else { cs };
    h[40..48].copy_from_slice(&l1_offset.to_be_bytes());
    h[48..56].copy_from_slice(&(rt_cluster * cs).to_be_bytes());
    h[56..60].copy_from_slice(&1u32.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes()); // refcount_order: 16 bits
    h[100..104].copy_from_slice(&(HEADER_LEN as u32).to_be_bytes());
    // Extensions: backing format (padded to 8), then the end marker.
    let mut off = HEADER_LEN;
    let fmt = backing_format.as_bytes();
    h[off..off + 4].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
    h[off + 4..off + 8].copy_from_slice(&(fmt.len() as u32).to_be_bytes());
    h[off + 8..off + 8 + fmt.len()].copy_from_slice(fmt);
    off += 8 + fmt.len().div_ceil(8) * 8;
    off += 8; // end marker: type 0, length 0 (already zero)
    let name = backing_file.as_bytes();
    h[8..16].copy_from_slice(&(off as u64).to_be_bytes());
    h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
    h[off..off + name.len()].copy_from_slice(name);

    let mut rt = vec![0u8; cs as usize];
    rt[0..8].copy_from_slice(&(rb_cluster * cs).to_be_bytes());
    let mut rb = vec![0u8; cs as usize];
    for c in 0..total as usize {
        rb[c * 2..c * 2 + 2].copy_from_slice(&1u16.to_be_bytes());
    }

    let out = TempOutput::create(path, false)?;
    let f = out.file();
    let tmp = out.tmp_path().to_path_buf();
    let put = |buf: &[u8], at: u64| {
        f.write_all_at(buf, at)
            .map_err(|e| Error::io(&tmp, Some(at), "write failed", e))
    };
    put(&header, 0)?;
    // The L1 table stays zero: a sparse hole until the size is set.
    put(&rt, rt_cluster * cs)?;
    put(&rb, rb_cluster * cs)?;
    f.set_len(total * cs)
        .map_err(|e| Error::io(&tmp, None, "cannot size output", e))?;
    out.commit()
}
