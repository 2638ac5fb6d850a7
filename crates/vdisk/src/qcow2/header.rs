//! qcow2 header and header-extension parsing with range checks on every
//! field (all fields are big-endian).

use crate::error::{Error, Result};
use crate::file::{be, ImageFile};
use std::path::Path;

/// `QFI\xfb`.
pub const MAGIC: u32 = 0x5146_49fb;
/// Smallest cluster size (512 B).
pub const MIN_CLUSTER_BITS: u32 = 9;
/// Largest cluster size (2 MiB), as in QEMU.
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Largest L1 table we accept, in bytes (QEMU uses the same limit).
pub const MAX_L1_BYTES: u64 = 32 * 1024 * 1024;
/// Longest backing file name (QEMU's limit).
pub const MAX_BACKING_NAME: u32 = 1023;
/// Size of the v2 header.
pub const V2_HEADER_LEN: u32 = 72;
/// Minimum size of the v3 header.
pub const V3_MIN_HEADER_LEN: u32 = 104;

/// Incompatible feature bit 0: the image was not closed cleanly.
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: QEMU found corruption in the image.
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: guest data lives in an external file.
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit 3: the compression type field is not zlib.
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: extended L2 entries (subclusters).
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
/// All incompatible bits this reader understands.
pub const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_CRYPTO: u32 = 0x0537_be77;

/// Compression method of compressed clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate, window 4 KiB (the default).
    Zlib,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    /// Name as used by `qemu-img`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::Zstd => "zstd",
        }
    }
}

/// The parsed, validated header.
#[derive(Debug, Clone)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Virtual size in bytes.
    pub size: u64,
    /// Entries in the active L1 table.
    pub l1_size: u32,
    /// File offset of the active L1 table.
    pub l1_offset: u64,
    /// File offset of the refcount table.
    pub refcount_table_offset: u64,
    /// Clusters used by the refcount table.
    pub refcount_table_clusters: u32,
    /// Number of internal snapshots (ignored for reading).
    pub nb_snapshots: u32,
    /// Incompatible feature bits.
    pub incompatible: u64,
    /// Compatible feature bits.
    pub compatible: u64,
    /// Autoclear feature bits.
    pub autoclear: u64,
    /// log2 of the refcount width in bits.
    pub refcount_order: u32,
    /// Length of the header proper (extensions follow).
    pub header_length: u32,
    /// Compression method.
    pub compression: Compression,
    /// Backing file name and where it is stored.
    pub backing: Option<(String, u64)>,
    /// Backing format from the header extension, if any.
    pub backing_format: Option<String>,
    /// Names from the feature name table: (type, bit, name).
    pub feature_names: Vec<(u8, u8, String)>,
}

impl Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// True for images with extended L2 entries (subclusters).
    pub fn extended_l2(&self) -> bool {
        self.incompatible & INCOMPAT_EXTL2 != 0
    }

    /// Name of a feature bit from the image's feature table, if recorded.
    pub fn feature_name(&self, kind: u8, bit: u8) -> Option<&str> {
        self.feature_names
            .iter()
            .find(|(k, b, _)| *k == kind && *b == bit)
            .map(|(_, _, n)| n.as_str())
    }

    /// Parse and validate the header of `file`.
    pub fn parse(file: &ImageFile) -> Result<Header> {
        let path = file.path();
        let mut h = [0u8; 112];
        if file.len() < u64::from(V2_HEADER_LEN) {
            return Err(Error::corrupt(
                path,
                0,
                format!(
                    "qcow2 header needs at least {V2_HEADER_LEN} bytes but the file has {}",
                    file.len()
                ),
            ));
        }
        file.read_at_padded(&mut h, 0)?;
        if be::u32(&h, 0) != MAGIC {
            return Err(Error::corrupt(path, 0, "missing qcow2 magic QFI\\xfb"));
        }
        let version = be::u32(&h, 4);
        if version != 2 && version != 3 {
            return Err(Error::unsupported(
                path,
                format!("qcow2 version {version} (only versions 2 and 3 are supported)"),
            ));
        }
        let cluster_bits = be::u32(&h, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(Error::corrupt(
                path,
                20,
                format!(
                    "cluster_bits {cluster_bits} out of range (expected {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS})"
                ),
            ));
        }
        let cluster_size = 1u64 << cluster_bits;
        let crypt = be::u32(&h, 32);
        if crypt != 0 {
            let what = match crypt {
                1 => "AES",
                2 => "LUKS",
                _ => "unknown",
            };
            return Err(Error::unsupported(
                path,
                format!("encrypted qcow2 image (crypt_method {crypt}, {what}) cannot be read"),
            ));
        }
        let (incompatible, compatible, autoclear, refcount_order, header_length) = if version == 3 {
            if file.len() < u64::from(V3_MIN_HEADER_LEN) {
                return Err(Error::corrupt(
                    path,
                    0,
                    format!(
                        "qcow2 v3 header needs {V3_MIN_HEADER_LEN} bytes but the file has {}",
                        file.len()
                    ),
                ));
            }
            (
                be::u64(&h, 72),
                be::u64(&h, 80),
                be::u64(&h, 88),
                be::u32(&h, 96),
                be::u32(&h, 100),
            )
        } else {
            (0, 0, 0, 4, V2_HEADER_LEN)
        };
        if version == 3
            && (header_length < V3_MIN_HEADER_LEN
                || header_length % 8 != 0
                || u64::from(header_length) > cluster_size)
        {
            return Err(Error::corrupt(
                path,
                100,
                format!(
                    "header_length {header_length} invalid (expected a multiple of 8 between {V3_MIN_HEADER_LEN} and the cluster size {cluster_size})"
                ),
            ));
        }
        if refcount_order > 6 {
            return Err(Error::corrupt(
                path,
                96,
                format!("refcount_order {refcount_order} out of range (expected 0..=6)"),
            ));
        }
        let compression_byte = if header_length > 104 { h[104] } else { 0 };
        let compression = match compression_byte {
            0 => Compression::Zlib,
            1 => Compression::Zstd,
            n => {
                return Err(Error::unsupported(
                    path,
                    format!(
                        "unknown compression type {n} at header offset 104 (known: 0 zlib, 1 zstd)"
                    ),
                ))
            }
        };
        if compression != Compression::Zlib && incompatible & INCOMPAT_COMPRESSION == 0 {
            return Err(Error::corrupt(
                path,
                104,
                "compression type is not zlib but incompatible feature bit 3 (compression type) is clear",
            ));
        }
        if compression == Compression::Zlib && incompatible & INCOMPAT_COMPRESSION != 0 {
            return Err(Error::corrupt(
                path,
                72,
                "incompatible feature bit 3 (compression type) is set but the compression type is zlib",
            ));
        }

        let backing_offset = be::u64(&h, 8);
        let backing_len = be::u32(&h, 16);
        let backing = if backing_offset != 0 {
            if backing_len > MAX_BACKING_NAME {
                return Err(Error::corrupt(
                    path,
                    16,
                    format!(
                        "backing file name length {backing_len} exceeds the limit of {MAX_BACKING_NAME}"
                    ),
                ));
            }
            if beyond(backing_offset, u64::from(backing_len), cluster_size) {
                return Err(Error::corrupt(
                    path,
                    8,
                    format!(
                        "backing file name at {backing_offset:#x}+{backing_len} lies outside the header cluster ({cluster_size} bytes)"
                    ),
                ));
            }
            let raw = file.read_vec(
                backing_offset,
                u64::from(backing_len),
                u64::from(MAX_BACKING_NAME),
                "backing file name",
            )?;
            let name = String::from_utf8(raw).map_err(|_| {
                Error::corrupt(path, backing_offset, "backing file name is not valid UTF-8")
            })?;
            Some((name, backing_offset))
        } else {
            None
        };

        let mut hdr = Header {
            version,
            cluster_bits,
            size: be::u64(&h, 24),
            l1_size: be::u32(&h, 36),
            l1_offset: be::u64(&h, 40),
            refcount_table_offset: be::u64(&h, 48),
            refcount_table_clusters: be::u32(&h, 56),
            nb_snapshots: be::u32(&h, 60),
            incompatible,
            compatible,
            autoclear,
            refcount_order,
            header_length,
            compression,
            backing,
            backing_format: None,
            feature_names: Vec::new(),
        };
        hdr.parse_extensions(file)?;
        hdr.check_features(path)?;
        hdr.check_l1(file)?;
        Ok(hdr)
    }

    /// Walk the header extensions (inside the first cluster).
    fn parse_extensions(&mut self, file: &ImageFile) -> Result<()> {
        let path = file.path();
        let end = self.cluster_size().min(file.len());
        let mut off = u64::from(self.header_length);
        let mut count = 0;
        while off + 8 <= end {
            count += 1;
            if count > 1024 {
                return Err(Error::corrupt(
                    path,
                    off,
                    "more than 1024 header extensions",
                ));
            }
            let mut eh = [0u8; 8];
            file.read_exact_at(&mut eh, off)?;
            let typ = be::u32(&eh, 0);
            let len = u64::from(be::u32(&eh, 4));
            if typ == EXT_END {
                break;
            }
            let data_off = off + 8;
            if data_off + len > end {
                return Err(Error::corrupt(
                    path,
                    off,
                    format!(
                        "header extension {typ:#x} of {len} bytes runs past the header cluster (ends at {end:#x})"
                    ),
                ));
            }
            let data = file.read_vec(data_off, len, self.cluster_size(), "header extension")?;
            match typ {
                EXT_BACKING_FORMAT => {
                    self.backing_format = Some(String::from_utf8_lossy(&data).into_owned());
                }
                EXT_FEATURE_TABLE => {
                    for e in data.chunks_exact(48) {
                        let name = &e[2..];
                        let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                        self.feature_names.push((
                            e[0],
                            e[1],
                            String::from_utf8_lossy(&name[..n]).into_owned(),
                        ));
                    }
                }
                EXT_DATA_FILE => {
                    let name = String::from_utf8_lossy(&data).into_owned();
                    return Err(Error::unsupported(
                        path,
                        format!(
                            "qcow2 image with an external data file ({name:?}) is not supported"
                        ),
                    ));
                }
                EXT_CRYPTO => {
                    return Err(Error::unsupported(
                        path,
                        "qcow2 image has a full disk encryption header; encrypted images are not supported",
                    ));
                }
                _ => {}
            }
            off = data_off + len.div_ceil(8) * 8;
        }
        Ok(())
    }

    fn check_features(&self, path: &Path) -> Result<()> {
        if self.incompatible & INCOMPAT_DATA_FILE != 0 {
            return Err(Error::unsupported(
                path,
                "qcow2 image stores its data in an external data file (incompatible bit 2); not supported",
            ));
        }
        let unknown = self.incompatible & !INCOMPAT_KNOWN;
        if unknown != 0 {
            let names: Vec<String> = (0..64u8)
                .filter(|b| unknown & (1u64 << b) != 0)
                .map(|b| match self.feature_name(0, b) {
                    Some(n) => format!("bit {b} ({n})"),
                    None => format!("bit {b}"),
                })
                .collect();
            return Err(Error::unsupported(
                path,
                format!(
                    "qcow2 image uses unknown incompatible features: {}",
                    names.join(", ")
                ),
            ));
        }
        if self.extended_l2() && self.cluster_bits < 14 {
            return Err(Error::corrupt(
                path,
                20,
                format!(
                    "extended L2 entries need clusters of at least 16 KiB, found {}",
                    self.cluster_size()
                ),
            ));
        }
        Ok(())
    }

    /// Check that the L1 table is large enough for the virtual size, is
    /// cluster-aligned, bounded and inside the file.
    fn check_l1(&self, file: &ImageFile) -> Result<()> {
        let path = file.path();
        let l1_bytes = u64::from(self.l1_size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(Error::corrupt(
                path,
                36,
                format!(
                    "L1 table of {} entries ({l1_bytes} bytes) exceeds the limit of {MAX_L1_BYTES} bytes",
                    self.l1_size
                ),
            ));
        }
        let needed = self.l1_entries_needed().ok_or_else(|| {
            Error::corrupt(path, 24, format!("virtual size {} is too large", self.size))
        })?;
        if needed > u64::from(self.l1_size) {
            return Err(Error::corrupt(
                path,
                36,
                format!(
                    "L1 table has {} entries but virtual size {} needs {needed}",
                    self.l1_size, self.size
                ),
            ));
        }
        if self.l1_size > 0 {
            if self.l1_offset & (self.cluster_size() - 1) != 0 {
                return Err(Error::corrupt(
                    path,
                    40,
                    format!(
                        "L1 table offset {:#x} is not aligned to the cluster size {}",
                        self.l1_offset,
                        self.cluster_size()
                    ),
                ));
            }
            if beyond(self.l1_offset, l1_bytes, file.len()) {
                return Err(Error::corrupt(
                    path,
                    self.l1_offset,
                    format!(
                        "L1 table at {:#x} ({l1_bytes} bytes) extends past the end of the file ({:#x})",
                        self.l1_offset,
                        file.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Bytes of one L2 entry (8, or 16 with extended L2).
    pub fn l2_entry_size(&self) -> u64 {
        if self.extended_l2() {
            16
        } else {
            8
        }
    }

    /// Entries per L2 table.
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_size()
    }

    /// Number of L1 entries the virtual size requires (None on overflow).
    pub fn l1_entries_needed(&self) -> Option<u64> {
        let per_l1 = self.l2_entries().checked_mul(self.cluster_size())?;
        Some(self.size.div_ceil(per_l1))
    }
}

/// True when `[off, off+len)` overflows or ends beyond `limit`.
pub(crate) fn beyond(off: u64, len: u64, limit: u64) -> bool {
    match off.checked_add(len) {
        Some(end) => end > limit,
        None => true,
    }
}
