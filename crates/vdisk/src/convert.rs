//! Parallel conversion: a planner thread walks the source's extents and
//! hands out only the clusters that hold data; worker threads read (and
//! decompress, inside the format readers), detect zeros and compress
//! chunks; the calling thread writes them in order. Ranges that read as
//! zeros (unallocated tables, zero clusters, holes of a sparse raw file)
//! cost one `extent` call per run, whatever their length: the time of a
//! conversion follows the data, not the virtual size.
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
use std::sync::atomic::{AtomicBool, Ordering};
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
    failed: AtomicBool,
    /// Sequence number of the first work item not yet written.
    written: Mutex<u64>,
    cv: Condvar,
}

impl Shared {
    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }
    fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }
}

/// A bounded multi-producer, multi-consumer queue that waits in the
/// kernel (mutex + condition variable) and never spins or yields. Channel
/// implementations that spin and then `sched_yield` before sleeping lose
/// their time slice on a loaded machine at every hand-over: measured on
/// 2 busy cores, a 2 GiB zstd qcow2 conversion made ~4800 yields and ran
/// at 35% CPU, its wall time twice its CPU time.
struct Queue<T> {
    state: Mutex<QueueState<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

struct QueueState<T> {
    items: std::collections::VecDeque<T>,
    /// Producers still running; at 0 an empty queue is finished.
    producers: usize,
    cancelled: bool,
}

impl<T> Queue<T> {
    fn new(cap: usize, producers: usize) -> Self {
        Queue {
            state: Mutex::new(QueueState {
                items: std::collections::VecDeque::with_capacity(cap),
                producers,
                cancelled: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        // Every update is a single push/pop/flag: a panicking holder cannot
        // leave the state inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueue, waiting while full; false once cancelled.
    fn send(&self, v: T) -> bool {
        let mut st = self.lock();
        while st.items.len() >= self.cap && !st.cancelled {
            st = self.not_full.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.cancelled {
            return false;
        }
        st.items.push_back(v);
        drop(st);
        self.not_empty.notify_one();
        true
    }

    /// Dequeue, waiting while empty; None when cancelled, or when empty and
    /// every producer is done.
    fn recv(&self) -> Option<T> {
        let mut st = self.lock();
        loop {
            if st.cancelled {
                return None;
            }
            if let Some(v) = st.items.pop_front() {
                drop(st);
                self.not_full.notify_one();
                return Some(v);
            }
            if st.producers == 0 {
                return None;
            }
            st = self.not_empty.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stop everything: blocked senders and receivers return at once.
    fn cancel(&self) {
        self.lock().cancelled = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

/// Marks one producer of a [`Queue`] done when dropped (also on panic).
struct Producer<'a, T>(&'a Queue<T>);

impl<T> Drop for Producer<'_, T> {
    fn drop(&mut self) {
        self.0.lock().producers -= 1;
        self.0.not_empty.notify_all();
    }
}

/// One unit of work: the clusters `[start, start + len)` of the disk
/// (cluster-aligned; `len` is a whole number of clusters except at the end
/// of the disk, at most [`CHUNK`], never crossing a [`CHUNK`] boundary).
/// Items are numbered in disk order; the writer puts them back in order.
#[derive(Debug, Clone, Copy)]
struct Item {
    seq: u64,
    start: u64,
    len: u64,
}

/// Walks the source's extents once, in order, and turns every cluster that
/// holds a [`ExtentKind::Data`] byte into work items. Ranges that read as
/// zeros are skipped as ranges: a 4 TiB hole costs one `extent` call (or a
/// few, as the format reader reports it), not 2 million chunks.
struct Planner {
    size: u64,
    cs: u64,
    /// Pending cluster-aligned data range not yet handed out.
    cur: Option<(u64, u64)>,
    seq: u64,
}

impl Planner {
    /// Walk the whole disk; `emit` returns false to stop early.
    fn run(mut self, src: &dyn Disk, emit: &mut dyn FnMut(Item) -> bool) -> Result<()> {
        let mut pos = 0u64;
        while pos < self.size {
            let e = src.extent(pos, self.size - pos)?;
            if e.len == 0 || e.offset != pos {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("format reader returned an empty or misplaced extent at {pos:#x}"),
                ));
            }
            let end = pos + e.len.min(self.size - pos);
            if e.kind == ExtentKind::Data && !self.add(pos, end, emit) {
                return Ok(());
            }
            pos = end;
        }
        self.drain(u64::MAX, emit);
        Ok(())
    }

    /// Add data bytes `[a, b)`; hand out every item that can no longer grow.
    fn add(&mut self, a: u64, b: u64, emit: &mut dyn FnMut(Item) -> bool) -> bool {
        let a = a / self.cs * self.cs;
        let b = b.div_ceil(self.cs).saturating_mul(self.cs).min(self.size);
        self.cur = match self.cur {
            Some((s, t)) if a <= t => Some((s, t.max(b))),
            Some(_) => {
                if !self.drain(u64::MAX, emit) {
                    return false;
                }
                Some((a, b))
            }
            None => Some((a, b)),
        };
        // Later data can only extend the range at its end (or inside its
        // last cluster), so whole CHUNK pieces before that are final.
        let last_cluster = b.saturating_sub(1) / self.cs * self.cs;
        self.drain(last_cluster / CHUNK * CHUNK, emit)
    }

    /// Hand out the pending range up to `limit` in pieces that do not cross
    /// a CHUNK boundary.
    fn drain(&mut self, limit: u64, emit: &mut dyn FnMut(Item) -> bool) -> bool {
        while let Some((s, t)) = self.cur {
            let piece_end = ((s / CHUNK + 1) * CHUNK).min(t);
            if piece_end > limit {
                break;
            }
            let item = Item {
                seq: self.seq,
                start: s,
                len: piece_end - s,
            };
            self.seq += 1;
            self.cur = (piece_end < t).then_some((piece_end, t));
            if !emit(item) {
                return false;
            }
        }
        true
    }
}

/// Convert `src` into `writer`. `progress` is called with bytes done.
///
/// One planner thread walks the extents and hands out the clusters that
/// hold data; worker threads read, detect zeros and compress them; the
/// calling thread writes them in order. Ranges that read as zeros are never
/// read and never passed to the writer: the writers leave them unallocated
/// (qcow2) or as holes (raw) without per-cluster work.
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
    let shared = Shared {
        failed: AtomicBool::new(false),
        written: Mutex::new(0),
        cv: Condvar::new(),
    };
    let mut stats = ConvertStats {
        virtual_size: size,
        threads,
        ..Default::default()
    };
    let work = Queue::<Item>::new(window as usize, 1);
    // Producers: the planner (for its error) and every worker.
    let results = Queue::<Result<(Item, u64, Chunk)>>::new(window as usize, threads + 1);
    // Written chunks' buffers, for the workers to reuse (never more than
    // the window holds, so the memory bound is unchanged).
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(window as usize);

    std::thread::scope(|s| -> Result<()> {
        {
            let (work, results, shared) = (&work, &results, &shared);
            let planner = Planner {
                size,
                cs,
                cur: None,
                seq: 0,
            };
            s.spawn(move || {
                let _done = (Producer(work), Producer(results));
                let r = planner.run(src, &mut |item| !shared.failed() && work.send(item));
                if let Err(e) = r {
                    results.send(Err(e));
                }
            });
        }
        for _ in 0..threads {
            let (work, results, shared) = (&work, &results, &shared);
            let free_rx = free_rx.clone();
            s.spawn(move || {
                let _done = Producer(results);
                while let Some(item) = work.recv() {
                    if shared.failed() {
                        break;
                    }
                    {
                        let mut w = shared.written.lock().unwrap();
                        while item.seq >= *w + window && !shared.failed() {
                            w = shared.cv.wait(w).unwrap();
                        }
                    }
                    let buf = free_rx.try_recv().unwrap_or_default();
                    let r = process_chunk(src, item, cs, compression, buf);
                    let stop = r.is_err();
                    if !results.send(r) || stop {
                        shared.fail();
                        break;
                    }
                }
            });
        }
        let res = write_in_order(
            &results,
            &mut *writer,
            &shared,
            &free_tx,
            &mut stats,
            progress,
        );
        if res.is_err() {
            // Wake and stop the planner and the workers wherever they wait.
            shared.fail();
            work.cancel();
            results.cancel();
        }
        res
    })?;
    // Clusters never handed out read as zeros.
    stats.zero_clusters += size.div_ceil(cs) - stats.zero_clusters - stats.data_clusters;
    progress(size);
    let path = writer.finish()?;
    Ok((path, stats))
}

/// The writer's side: receive processed items, put them in disk order and
/// hand them to `writer`.
fn write_in_order(
    rx: &Queue<Result<(Item, u64, Chunk)>>,
    writer: &mut dyn SeqWriter,
    shared: &Shared,
    free_tx: &crossbeam_channel::Sender<Vec<u8>>,
    stats: &mut ConvertStats,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let mut pending: BTreeMap<u64, (Item, u64, Chunk)> = BTreeMap::new();
    let mut next_write = 0u64;
    while let Some(r) = rx.recv() {
        let (item, read, chunk) = r?;
        pending.insert(item.seq, (item, read, chunk));
        stats.peak_in_flight = stats.peak_in_flight.max(pending.len());
        while let Some((item, read, chunk)) = pending.remove(&next_write) {
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
            progress(item.start + item.len);
        }
    }
    if !pending.is_empty() || shared.failed() {
        return Err(Error::new(
            ErrorKind::Io,
            "conversion workers stopped early",
        ));
    }
    Ok(())
}

fn process_chunk(
    src: &dyn Disk,
    item: Item,
    cs: u64,
    compression: Option<Compression>,
    mut buf: Vec<u8>,
) -> Result<(Item, u64, Chunk)> {
    let Item { start, len, .. } = item;
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
    Ok((item, read, chunk))
}
