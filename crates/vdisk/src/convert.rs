//! Parallel conversion: worker threads read (and decompress, inside the
//! format readers), detect zeros and compress chunks; the calling thread
//! writes them in order.
//!
//! Memory bound: at most `window` chunks are in flight (being read, waiting
//! to be written, or queued), each at most `2 × CHUNK` bytes (raw data plus
//! compressed copies). Chunk buffers go back to a pool after they are
//! written and are reused, so a conversion touches a fixed set of pages
//! instead of faulting in fresh zeroed memory for every chunk. With the
//! defaults (`CHUNK` = 2 MiB, window =
//! 2 × threads + 2, threads capped at 16 for the bound) that is at most
//! 34 × 4 MiB = 136 MiB, plus per-format table caches, whatever the disk
//! size.

use crate::disk::{Disk, ExtentKind};
use crate::error::{Error, ErrorKind, Result};
use crate::writer::{Chunk, Cluster, Compression, SeqWriter};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// Bytes handled per work item.
pub const CHUNK: u64 = 2 << 20;

/// Conversion settings.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Worker threads (0 = number of CPUs).
    pub threads: usize,
    /// Compress clusters (the writer must accept compressed payloads).
    pub compression: Option<Compression>,
}

/// What a conversion did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConvertStats {
    /// Virtual size.
    pub virtual_size: u64,
    /// Bytes read from the source (data extents).
    pub bytes_read: u64,
    /// Clusters written as data (compressed or not).
    pub data_clusters: u64,
    /// Clusters skipped as zero.
    pub zero_clusters: u64,
    /// Clusters stored compressed.
    pub compressed_clusters: u64,
    /// Worker threads used.
    pub threads: usize,
    /// Peak number of chunks in flight.
    pub peak_in_flight: usize,
}

/// True when every byte of `b` is zero.
pub fn is_zero(b: &[u8]) -> bool {
    let (head, rest) = b.split_at(b.len() % 16);
    head.iter().all(|&x| x == 0)
        && rest
            .chunks_exact(16)
            .all(|c| u128::from_ne_bytes(c.try_into().unwrap()) == 0)
}

fn compress(c: Compression, data: &[u8], cluster: usize) -> Result<Option<Vec<u8>>> {
    let out = match c {
        Compression::Zlib => {
            // qcow2 uses raw deflate with a 4 KiB window (QEMU inflates with
            // windowBits -12), so we must not reference further back.
            let mut z =
                flate2::Compress::new_with_window_bits(flate2::Compression::fast(), false, 12);
            let mut out = Vec::with_capacity(cluster);
            let st = z
                .compress_vec(data, &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| Error::new(ErrorKind::Io, format!("deflate failed: {e}")))?;
            if st != flate2::Status::StreamEnd {
                return Ok(None); // did not fit: store uncompressed
            }
            out
        }
        Compression::Zstd => zstd::bulk::compress(data, 1)
            .map_err(|e| Error::new(ErrorKind::Io, format!("zstd failed: {e}")))?,
    };
    Ok((out.len() < cluster - 512).then_some(out))
}

struct Shared {
    next: AtomicU64,
    failed: AtomicBool,
    /// First chunk not yet written.
    written: Mutex<u64>,
    cv: Condvar,
}

/// Convert `src` into `writer`. `progress` is called with bytes done.
pub fn convert(
    src: &dyn Disk,
    mut writer: Box<dyn SeqWriter>,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(std::path::PathBuf, ConvertStats)> {
    let size = src.size();
    let cs = writer.cluster_size();
    if !CHUNK.is_multiple_of(cs) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "cluster size must divide 2 MiB",
        ));
    }
    let compression = if writer.accepts_compressed() {
        opts.compression
    } else {
        None
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    }
    .clamp(1, 64);
    let window = (2 * threads.min(16) + 2) as u64;
    let nchunks = size.div_ceil(CHUNK);
    let shared = Shared {
        next: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        written: Mutex::new(0),
        cv: Condvar::new(),
    };
    let mut stats = ConvertStats {
        virtual_size: size,
        threads,
        ..Default::default()
    };
    let (tx, rx) = crossbeam_channel::bounded::<Result<(u64, u64, Chunk)>>(window as usize);
    // Written chunks' buffers, for the workers to reuse (never more than
    // the window holds, so the memory bound is unchanged).
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(window as usize);

    std::thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            let tx = tx.clone();
            let free_rx = free_rx.clone();
            let shared = &shared;
            s.spawn(move || loop {
                let idx = shared.next.fetch_add(1, Ordering::SeqCst);
                if idx >= nchunks || shared.failed.load(Ordering::SeqCst) {
                    break;
                }
                {
                    let mut w = shared.written.lock().unwrap();
                    while idx >= *w + window && !shared.failed.load(Ordering::SeqCst) {
                        w = shared.cv.wait(w).unwrap();
                    }
                }
                let buf = free_rx.try_recv().unwrap_or_default();
                let r = process_chunk(src, idx, size, cs, compression, buf);
                let stop = r.is_err();
                if tx.send(r).is_err() || stop {
                    shared.failed.store(true, Ordering::SeqCst);
                    shared.cv.notify_all();
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<u64, (u64, Chunk)> = BTreeMap::new();
        let mut next_write = 0u64;
        let res = (|| -> Result<()> {
            while next_write < nchunks {
                let (idx, read, chunk) = match rx.recv() {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::Io,
                            "conversion workers stopped early",
                        ))
                    }
                };
                pending.insert(idx, (read, chunk));
                stats.peak_in_flight = stats.peak_in_flight.max(pending.len());
                while let Some((read, chunk)) = pending.remove(&next_write) {
                    stats.bytes_read += read;
                    for k in &chunk.kinds {
                        match k {
                            Cluster::Zero => stats.zero_clusters += 1,
                            Cluster::Data => stats.data_clusters += 1,
                            Cluster::Compressed(_) => {
                                stats.data_clusters += 1;
                                stats.compressed_clusters += 1
                            }
                        }
                    }
                    writer.put(&chunk)?;
                    let _ = free_tx.try_send(chunk.data);
                    next_write += 1;
                    *shared.written.lock().unwrap() = next_write;
                    shared.cv.notify_all();
                    progress((next_write * CHUNK).min(size));
                }
            }
            Ok(())
        })();
        if res.is_err() {
            shared.failed.store(true, Ordering::SeqCst);
            shared.cv.notify_all();
            // Drain so that blocked senders finish.
            while rx.recv().is_ok() {}
        }
        res
    })?;
    let path = writer.finish()?;
    Ok((path, stats))
}

fn process_chunk(
    src: &dyn Disk,
    idx: u64,
    size: u64,
    cs: u64,
    compression: Option<Compression>,
    mut buf: Vec<u8>,
) -> Result<(u64, u64, Chunk)> {
    let start = idx * CHUNK;
    let len = CHUNK.min(size - start);
    // A reused buffer holds an earlier chunk: every byte below is either
    // read from a data extent or explicitly zeroed.
    buf.resize(len as usize, 0);
    let mut no_data = vec![true; len.div_ceil(cs) as usize];
    let mut read = 0u64;
    let mut pos = start;
    while pos < start + len {
        let e = src.extent(pos, start + len - pos)?;
        if e.len == 0 || e.offset != pos {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("format reader returned an empty or misplaced extent at {pos:#x}"),
            ));
        }
        let elen = e.len.min(start + len - pos);
        let b = (pos - start) as usize;
        if e.kind != ExtentKind::Data {
            buf[b..b + elen as usize].fill(0);
        } else {
            src.read_at(&mut buf[b..b + elen as usize], pos)?;
            read += elen;
            let c0 = (pos - start) / cs;
            let c1 = (pos - start + elen).div_ceil(cs);
            for c in c0..c1 {
                no_data[c as usize] = false;
            }
        }
        pos += elen;
    }
    let mut kinds = Vec::with_capacity(no_data.len());
    for (c, &hole) in no_data.iter().enumerate() {
        let b = c * cs as usize;
        let e = (b + cs as usize).min(len as usize);
        let data = &buf[b..e];
        if hole || is_zero(data) {
            kinds.push(Cluster::Zero);
            continue;
        }
        if let Some(comp) = compression {
            let mut full = data.to_vec();
            full.resize(cs as usize, 0);
            if let Some(z) = compress(comp, &full, cs as usize)? {
                kinds.push(Cluster::Compressed(z));
                continue;
            }
        }
        kinds.push(Cluster::Data);
    }
    let chunk = Chunk {
        first: start / cs,
        data: buf,
        kinds,
    };
    Ok((idx, read, chunk))
}
