//! Initramfs inspection: split an initrd into its segments the way the
//! kernel unpacks it (uncompressed cpio archives, e.g. the early-microcode
//! prefix, then compressed ones; zero padding between them), list every
//! member, and answer which kernel modules — storage and VirtIO drivers in
//! particular — it carries.

use super::cpio::{self, Entry, Limits};
use super::{LinuxError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};

/// How a segment of the initrd is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain cpio.
    None,
    /// gzip.
    Gzip,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// One segment (one compressed stream or a run of plain archives).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Segment {
    /// Offset in the initrd.
    pub offset: u64,
    /// Stored bytes.
    pub stored_len: u64,
    /// How it is stored.
    pub compression: Compression,
    /// Archives (trailers) inside.
    pub archives: usize,
    /// Members inside.
    pub entries: usize,
}

/// A parsed initrd: segments and members. Later members with the same name
/// replace earlier ones (as the kernel's unpacker does); `entries` keeps
/// them all in order.
#[derive(Debug, Default)]
pub struct Initrd {
    /// Segments in file order.
    pub segments: Vec<Segment>,
    /// Every member, in unpack order.
    pub entries: Vec<Entry>,
}

/// Which files' contents [`Initrd::parse`] keeps: module lists and the
/// small text files inspection needs.
pub fn keep_default(name: &str, size: u64) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    size <= 4 << 20
        && (matches!(base, "modules.builtin" | "modules.order" | "ORDER")
            || name == "conf/initramfs.conf"
            || name == "etc/os-release"
            || name == "usr/lib/os-release")
}

fn magic(b: &[u8]) -> std::result::Result<Compression, &'static str> {
    if b.starts_with(b"0707") {
        Ok(Compression::None)
    } else if b.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Ok(Compression::Xz)
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if b.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Err("lz4")
    } else if b.starts_with(b"BZh") {
        Err("bzip2")
    } else if b.starts_with(&[0x5d, 0, 0]) {
        Err("lzma")
    } else if b.starts_with(&[0x89, b'L', b'Z', b'O']) {
        Err("lzo")
    } else {
        Err("")
    }
}

impl Initrd {
    /// Parse with the default limits and [`keep_default`].
    pub fn parse(bytes: &[u8]) -> Result<Initrd> {
        Initrd::parse_with(bytes, &Limits::default(), &keep_default)
    }

    /// Parse `bytes`, keeping the contents of files `keep` selects.
    pub fn parse_with(
        bytes: &[u8],
        limits: &Limits,
        keep: &dyn Fn(&str, u64) -> bool,
    ) -> Result<Initrd> {
        let mut out = Initrd::default();
        let mut kept = 0u64;
        let mut pos = 0usize;
        loop {
            pos += bytes[pos..].iter().take_while(|b| **b == 0).count();
            if pos >= bytes.len() {
                break;
            }
            let comp = magic(&bytes[pos..]).map_err(|name| match name {
                "" => LinuxError::Format {
                    what: "initrd segment",
                    offset: pos as u64,
                    detail: format!(
                        "expected a cpio archive or a gzip/xz/zstd stream, found bytes {:02x?}",
                        &bytes[pos..bytes.len().min(pos + 6)]
                    ),
                },
                n => LinuxError::Unsupported {
                    compression: n,
                    offset: pos as u64,
                },
            })?;
            let (stream, stored) = segment(
                &bytes[pos..],
                pos as u64,
                comp,
                limits,
                keep,
                &mut kept,
                out.entries.len(),
            )?;
            out.segments.push(Segment {
                offset: pos as u64,
                stored_len: stored,
                compression: comp,
                archives: stream.archives,
                entries: stream.entries.len(),
            });
            out.entries.extend(stream.entries);
            if stored == 0 {
                break;
            }
            pos += stored as usize;
        }
        if out.segments.is_empty() {
            return Err(LinuxError::Format {
                what: "initrd",
                offset: 0,
                detail: "no cpio archive found (empty or all zero)".into(),
            });
        }
        Ok(out)
    }

    /// The member that wins for `name` (the last one unpacked).
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.name == name)
    }

    /// Inspection summary.
    pub fn report(&self) -> InitrdReport {
        InitrdReport::from_initrd(self)
    }
}

/// Parse one segment starting at `data[0]`; returns the stream and the
/// stored bytes it used.
fn segment(
    data: &[u8],
    base: u64,
    comp: Compression,
    limits: &Limits,
    keep: &dyn Fn(&str, u64) -> bool,
    kept: &mut u64,
    entries_before: usize,
) -> Result<(cpio::Stream, u64)> {
    let dec_err = |source: std::io::Error| LinuxError::Decompress {
        compression: comp.name(),
        offset: base,
        source,
    };
    match comp {
        Compression::None => {
            let mut r = data;
            let s = cpio::read_stream(&mut r, base, limits, keep, kept, entries_before)?;
            let used = s.consumed;
            Ok((s, used))
        }
        Compression::Gzip => {
            let mut dec = flate2::bufread::GzDecoder::new(data);
            let s = decoded(&mut dec, base, limits, keep, kept, entries_before)?;
            drain(&mut dec, base, limits).map_err(dec_err)?;
            let rest = dec.into_inner();
            Ok((s, (data.len() - rest.len()) as u64))
        }
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(dec_err)?
                .single_frame();
            let s = decoded(&mut dec, base, limits, keep, kept, entries_before)?;
            drain(&mut dec, base, limits).map_err(dec_err)?;
            let rest = dec.finish();
            Ok((s, (data.len() - rest.len()) as u64))
        }
        Compression::Xz => xz_segment(data, base, limits, keep, kept, entries_before),
    }
}

/// Parse the cpio archives of a decoder's output.
fn decoded<R: Read>(
    dec: &mut R,
    base: u64,
    limits: &Limits,
    keep: &dyn Fn(&str, u64) -> bool,
    kept: &mut u64,
    entries_before: usize,
) -> Result<cpio::Stream> {
    let mut br = BufReader::with_capacity(64 * 1024, dec);
    let s = cpio::read_stream(&mut br, 0, limits, keep, kept, entries_before)
        .map_err(|e| in_segment(e, base))?;
    // Whatever follows the archives inside one compressed stream must be
    // padding.
    let left = br.fill_buf().map(|b| b.to_vec()).unwrap_or_default();
    if left.iter().any(|b| *b != 0) {
        return Err(LinuxError::Format {
            what: "initrd segment",
            offset: base,
            detail: format!(
                "bytes after the cpio trailer at decompressed offset {} are not a cpio header",
                s.consumed
            ),
        });
    }
    Ok(s)
}

/// Read a decoder to its end (padding after the archives), bounded.
fn drain<R: Read>(dec: &mut R, base: u64, limits: &Limits) -> std::io::Result<()> {
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    loop {
        let n = dec.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        total += n as u64;
        if buf[..n].iter().any(|b| *b != 0) || total > limits.max_total {
            return Err(std::io::Error::other(format!(
                "non-padding data after the last cpio archive of the stream at {base}"
            )));
        }
    }
}

/// A `Read` over chunks sent by a decoding thread (bounded channel).
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A `Write` that sends chunks; fails when the reader went away.
struct ChunkWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::other("reader stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// xz: `lzma-rs` pushes into a writer, so it runs on a helper thread
/// feeding the cpio reader through a bounded channel.
fn xz_segment(
    data: &[u8],
    base: u64,
    limits: &Limits,
    keep: &dyn Fn(&str, u64) -> bool,
    kept: &mut u64,
    entries_before: usize,
) -> Result<(cpio::Stream, u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
    std::thread::scope(|sc| {
        let h = sc.spawn(move || {
            let mut input: &[u8] = data;
            let mut w = ChunkWriter { tx };
            let r = lzma_rs::xz_decompress(&mut input, &mut w);
            drop(w);
            (r, (data.len() - input.len()) as u64)
        });
        let mut reader = ChunkReader {
            rx,
            cur: Vec::new(),
            at: 0,
        };
        let parsed = decoded(&mut reader, base, limits, keep, kept, entries_before);
        let drained = parsed
            .as_ref()
            .ok()
            .map(|_| drain(&mut reader, base, limits));
        drop(reader);
        let (r, used) = h.join().map_err(|_| LinuxError::Format {
            what: "xz stream",
            offset: base,
            detail: "decoder thread panicked".into(),
        })?;
        let s = parsed?;
        if let Some(Err(e)) = drained {
            return Err(LinuxError::Decompress {
                compression: "xz",
                offset: base,
                source: e,
            });
        }
        r.map_err(|e| LinuxError::Decompress {
            compression: "xz",
            offset: base,
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok((s, used))
    })
}

/// Shift a decompressed-stream error so the message says which segment.
fn in_segment(e: LinuxError, base: u64) -> LinuxError {
    match e {
        LinuxError::Format {
            what,
            offset,
            detail,
        } => LinuxError::Format {
            what,
            offset: base,
            detail: format!("{detail} (at offset {offset} of the decompressed stream)"),
        },
        other => other,
    }
}

/// Presence of a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Built into the kernel (`modules.builtin` or `CONFIG_...=y`).
    BuiltIn,
    /// A module file in the initrd.
    Module,
    /// Neither.
    Absent,
}

/// Storage drivers worth naming (module names, `-` as `_`).
pub const STORAGE_DRIVERS: &[&str] = &[
    "virtio_blk",
    "virtio_scsi",
    "ata_piix",
    "ahci",
    "ata_generic",
    "pata_acpi",
    "pata_legacy",
    "nvme",
    "vmw_pvscsi",
    "mptspi",
    "mptsas",
    "mpt3sas",
    "BusLogic",
    "megaraid_sas",
    "hv_storvsc",
    "xen_blkfront",
    "sym53c8xx",
    "aacraid",
    "sd_mod",
];

/// What an initrd carries.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct InitrdReport {
    /// Segments (compression, sizes).
    pub segments: Vec<Segment>,
    /// Member count.
    pub entries: usize,
    /// Kernel versions with a module directory.
    pub kernel_versions: Vec<String>,
    /// Module names (file stem, `-` as `_`), sorted.
    pub modules: BTreeSet<String>,
    /// Built-in modules listed in `modules.builtin`.
    pub builtin: BTreeSet<String>,
    /// Storage drivers from [`STORAGE_DRIVERS`] present (module or built in).
    pub storage_drivers: Vec<String>,
    /// Which initramfs generator built it.
    pub generator: Generator,
    /// The first segment is an uncompressed archive holding only
    /// `kernel/x86/microcode` (early microcode).
    pub early_microcode: bool,
}

/// The initramfs generator, from its marks in the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generator {
    /// Debian/Ubuntu initramfs-tools (`scripts/init-bottom`).
    InitramfsTools,
    /// dracut (`usr/lib/dracut`).
    Dracut,
    /// Neither seen.
    #[default]
    Unknown,
}

/// The module name of a module file path, if it is one.
pub fn module_name(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|s| base.strip_suffix(s))?;
    Some(stem.replace('-', "_"))
}

impl InitrdReport {
    fn from_initrd(i: &Initrd) -> InitrdReport {
        let mut r = InitrdReport {
            segments: i.segments.clone(),
            entries: i.entries.len(),
            ..Default::default()
        };
        let mut versions = BTreeMap::new();
        for e in &i.entries {
            let n = e.name.as_str();
            let under = n.strip_prefix("usr/").unwrap_or(n);
            if let Some(rest) = under.strip_prefix("lib/modules/") {
                if let Some(v) = rest.split('/').next().filter(|v| !v.is_empty()) {
                    versions.insert(v.to_string(), ());
                }
                if e.is_file() {
                    if let Some(m) = module_name(n) {
                        r.modules.insert(m);
                    }
                }
                if n.ends_with("/modules.builtin") {
                    if let Some(d) = &e.data {
                        for l in String::from_utf8_lossy(d).lines() {
                            if let Some(m) = module_name(l.trim()) {
                                r.builtin.insert(m);
                            }
                        }
                    }
                }
            }
            if n.starts_with("scripts/init-bottom") {
                r.generator = Generator::InitramfsTools;
            } else if n.starts_with("usr/lib/dracut") && r.generator == Generator::Unknown {
                r.generator = Generator::Dracut;
            }
        }
        r.kernel_versions = versions.into_keys().collect();
        r.storage_drivers = STORAGE_DRIVERS
            .iter()
            .filter(|d| r.presence(d) != Presence::Absent)
            .map(|d| d.to_string())
            .collect();
        r.early_microcode = i.segments.first().is_some_and(|s| {
            s.compression == Compression::None && i.segments.len() > 1 && {
                let n = s.entries;
                i.entries[..n]
                    .iter()
                    .all(|e| e.name.starts_with("kernel") || e.name == "early_cpio")
            }
        });
        r
    }

    /// Whether `module` (`virtio_blk`) is a module here or listed as built in.
    pub fn presence(&self, module: &str) -> Presence {
        let m = module.replace('-', "_");
        if self.builtin.contains(&m) {
            Presence::BuiltIn
        } else if self.modules.contains(&m) {
            Presence::Module
        } else {
            Presence::Absent
        }
    }

    /// True when this initrd (with the kernel's built-ins, from its config
    /// when given) drives a virtio-blk disk: virtio_blk and virtio_pci each
    /// built in or present.
    pub fn drives_virtio_blk(&self, kconfig: Option<&super::kconfig::KernelConfig>) -> bool {
        ["virtio_blk", "virtio_pci"].iter().all(|m| {
            self.presence(m) != Presence::Absent
                || kconfig.is_some_and(|k| k.module_state(m) == super::kconfig::State::BuiltIn)
        })
    }
}
