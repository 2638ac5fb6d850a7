//! Streaming qcow2 v3 writer.
//!
//! Layout: cluster 0 holds the header, the L1 table follows (its size is
//! known from the virtual size), then data clusters, L2 tables and
//! compressed clusters are appended in the order they arrive; refcount
//! blocks and the refcount table are appended last. Zero clusters are simply
//! left unallocated (the image has no backing file, so they read as zero).
//!
//! Memory: one L2 table, the L1 table (8 bytes per `cluster²/8` of virtual
//! size) and one 16-bit refcount per host cluster (32 KiB per GiB of output
//! with 64 KiB clusters), plus a write-combining buffer of 4 MiB.

use super::{Chunk, Cluster, Compression, SeqWriter, TempOutput};
use crate::error::{Error, ErrorKind, Result};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const HEADER_LEN: u32 = 112;
const COMBINE: usize = 4 << 20;

/// Options for a qcow2 output.
#[derive(Debug, Clone, Copy)]
pub struct Qcow2Options {
    /// log2 of the cluster size (9..=21). Default 16 (64 KiB).
    pub cluster_bits: u32,
    /// Compression of clusters the pipeline compresses (None: never).
    pub compression: Option<Compression>,
}

impl Default for Qcow2Options {
    fn default() -> Self {
        Qcow2Options {
            cluster_bits: 16,
            compression: None,
        }
    }
}

/// Writes a qcow2 v3 image sequentially.
#[derive(Debug)]
pub struct Qcow2Writer {
    out: TempOutput,
    size: u64,
    cs: u64,
    bits: u32,
    opts: Qcow2Options,
    l1: Vec<u64>,
    l2: Vec<u64>,
    l2_index: Option<u64>,
    refcounts: Vec<u16>,
    end: u64,
    last: Option<u64>,
    pending: Vec<u8>,
    pending_off: u64,
}

impl Qcow2Writer {
    /// Create a qcow2 output of virtual `size` at `path` (via a temporary
    /// name).
    pub fn create(path: &Path, size: u64, opts: Qcow2Options, overwrite: bool) -> Result<Self> {
        if !(9..=21).contains(&opts.cluster_bits) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("cluster_bits {} outside 9..=21", opts.cluster_bits),
            ));
        }
        let cs = 1u64 << opts.cluster_bits;
        let per_l2 = cs / 8;
        let l1_entries = size.div_ceil(cs).div_ceil(per_l2);
        if l1_entries > (32 << 20) / 8 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("virtual size {size} too large for cluster size {cs}"),
            ));
        }
        let out = TempOutput::create(path, overwrite)?;
        let l1_clusters = (l1_entries * 8).div_ceil(cs).max(1);
        let end = (1 + l1_clusters) * cs;
        let refcounts = vec![1u16; (1 + l1_clusters) as usize];
        Ok(Qcow2Writer {
            out,
            size,
            cs,
            bits: opts.cluster_bits,
            opts,
            l1: vec![0; l1_entries as usize],
            l2: vec![0; per_l2 as usize],
            l2_index: None,
            refcounts,
            end,
            last: None,
            pending: Vec::with_capacity(COMBINE),
            pending_off: 0,
        })
    }

    fn write(&mut self, data: &[u8], off: u64) -> Result<()> {
        if !self.pending.is_empty()
            && (self.pending_off + self.pending.len() as u64 != off
                || self.pending.len() + data.len() > COMBINE)
        {
            self.flush_pending()?;
        }
        if self.pending.is_empty() {
            self.pending_off = off;
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let off = self.pending_off;
        self.out
            .file()
            .write_all_at(&self.pending, off)
            .map_err(|e| Error::io(self.out.tmp_path(), Some(off), "write failed", e))?;
        self.out.wrote(off + self.pending.len() as u64);
        self.pending.clear();
        Ok(())
    }

    fn write_now(&mut self, data: &[u8], off: u64) -> Result<()> {
        self.flush_pending()?;
        self.out
            .file()
            .write_all_at(data, off)
            .map_err(|e| Error::io(self.out.tmp_path(), Some(off), "write failed", e))?;
        self.out.wrote(off + data.len() as u64);
        Ok(())
    }

    fn bump(&mut self, from: u64, to_excl: u64) {
        let first = from / self.cs;
        let last = (to_excl - 1) / self.cs;
        if self.refcounts.len() <= last as usize {
            self.refcounts.resize(last as usize + 1, 0);
        }
        for c in first..=last {
            self.refcounts[c as usize] = self.refcounts[c as usize].saturating_add(1);
        }
    }

    /// Allocate a whole fresh cluster at the end of the file.
    fn alloc_cluster(&mut self) -> u64 {
        self.end = self.end.div_ceil(self.cs) * self.cs;
        let off = self.end;
        self.end += self.cs;
        self.bump(off, off + self.cs);
        off
    }

    fn flush_l2(&mut self) -> Result<()> {
        if let Some(i) = self.l2_index.take() {
            let off = self.alloc_cluster();
            let mut buf = vec![0u8; self.cs as usize];
            for (k, e) in self.l2.iter().enumerate() {
                buf[k * 8..k * 8 + 8].copy_from_slice(&e.to_be_bytes());
            }
            self.write(&buf, off)?;
            self.l1[i as usize] = off | COPIED;
            self.l2.iter_mut().for_each(|e| *e = 0);
        }
        Ok(())
    }

    fn set_l2(&mut self, index: u64, entry: u64) -> Result<()> {
        let per_l2 = self.cs / 8;
        let l1i = index / per_l2;
        if self.l2_index != Some(l1i) {
            self.flush_l2()?;
            self.l2_index = Some(l1i);
        }
        self.l2[(index % per_l2) as usize] = entry;
        Ok(())
    }

    fn write_refcounts(&mut self) -> Result<(u64, u32)> {
        self.end = self.end.div_ceil(self.cs) * self.cs;
        let base = self.end / self.cs;
        let per_block = self.cs / 2;
        let (mut rb, mut rt) = (0u64, 0u64);
        loop {
            let total = base + rb + rt;
            let nrb = total.div_ceil(per_block);
            let nrt = (nrb * 8).div_ceil(self.cs);
            if nrb == rb && nrt == rt {
                break;
            }
            rb = nrb;
            rt = nrt;
        }
        self.refcounts.resize((base + rb + rt) as usize, 0);
        for c in base..base + rb + rt {
            self.refcounts[c as usize] = 1;
        }
        let mut table = vec![0u8; (rt * self.cs) as usize];
        for b in 0..rb {
            let off = (base + b) * self.cs;
            table[(b * 8) as usize..(b * 8 + 8) as usize].copy_from_slice(&off.to_be_bytes());
            let mut blk = vec![0u8; self.cs as usize];
            let first = (b * per_block) as usize;
            let n = (self.refcounts.len() - first).min(per_block as usize);
            for k in 0..n {
                blk[k * 2..k * 2 + 2].copy_from_slice(&self.refcounts[first + k].to_be_bytes());
            }
            self.write(&blk, off)?;
        }
        let table_off = (base + rb) * self.cs;
        self.write(&table, table_off)?;
        self.end = table_off + rt * self.cs;
        Ok((table_off, rt as u32))
    }

    fn header(&self, rt_off: u64, rt_clusters: u32) -> Vec<u8> {
        let mut h = vec![0u8; self.cs as usize];
        h[0..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&self.bits.to_be_bytes());
        h[24..32].copy_from_slice(&self.size.to_be_bytes());
        h[36..40].copy_from_slice(&(self.l1.len() as u32).to_be_bytes());
        h[40..48].copy_from_slice(&self.cs.to_be_bytes());
        h[48..56].copy_from_slice(&rt_off.to_be_bytes());
        h[56..60].copy_from_slice(&rt_clusters.to_be_bytes());
        let zstd = self.opts.compression == Some(Compression::Zstd);
        let incompat: u64 = if zstd { 1 << 3 } else { 0 };
        h[72..80].copy_from_slice(&incompat.to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&HEADER_LEN.to_be_bytes());
        h[104] = u8::from(zstd);
        // Header extension area: just the end marker (type 0, length 0).
        h
    }
}

impl SeqWriter for Qcow2Writer {
    fn cluster_size(&self) -> u64 {
        self.cs
    }
    fn accepts_compressed(&self) -> bool {
        self.opts.compression.is_some()
    }
    fn put(&mut self, chunk: &Chunk) -> Result<()> {
        let n = chunk.kinds.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let last = chunk.first + n - 1;
        if self.last.is_some_and(|l| chunk.first <= l) || last * self.cs >= self.size.max(1) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "clusters {}..={last} out of order or beyond the disk",
                    chunk.first
                ),
            ));
        }
        self.last = Some(last);
        let mut k = 0usize;
        while k < chunk.kinds.len() {
            let index = chunk.first + k as u64;
            match &chunk.kinds[k] {
                Cluster::Zero => k += 1,
                Cluster::Data => {
                    // A run of data clusters: contiguous host clusters, one
                    // write straight from the chunk buffer.
                    let mut b = k;
                    while b < chunk.kinds.len() && matches!(chunk.kinds[b], Cluster::Data) {
                        b += 1;
                    }
                    let run = (b - k) as u64;
                    self.end = self.end.div_ceil(self.cs) * self.cs;
                    let off = self.end;
                    self.end += run * self.cs;
                    self.bump(off, self.end);
                    let bytes = chunk.bytes(k, b, self.cs);
                    self.write_now(bytes, off)?;
                    for j in 0..run {
                        self.set_l2(index + j, (off + j * self.cs) | COPIED)?;
                    }
                    k = b;
                }
                Cluster::Compressed(c) => {
                    if c.is_empty() || c.len() as u64 >= self.cs {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            "compressed cluster not smaller than a cluster",
                        ));
                    }
                    let off = self.end;
                    self.end += c.len() as u64;
                    self.bump(off, self.end);
                    self.write(c, off)?;
                    let x = 62 - (self.bits - 8);
                    let nsec = ((off + c.len() as u64 - 1) >> 9) - (off >> 9);
                    self.set_l2(index, COMPRESSED | (nsec << x) | off)?;
                    k += 1;
                }
            }
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<PathBuf> {
        self.flush_l2()?;
        let (rt_off, rt_clusters) = self.write_refcounts()?;
        let mut l1 = vec![0u8; (self.l1.len() * 8).max(1)];
        for (k, e) in self.l1.iter().enumerate() {
            l1[k * 8..k * 8 + 8].copy_from_slice(&e.to_be_bytes());
        }
        let cs = self.cs;
        self.write_now(&l1, cs)?;
        let h = self.header(rt_off, rt_clusters);
        self.write_now(&h, 0)?;
        let end = self.end;
        self.out
            .file()
            .set_len(end)
            .map_err(|e| Error::io(self.out.tmp_path(), None, "cannot size output", e))?;
        self.out.commit()
    }
}
