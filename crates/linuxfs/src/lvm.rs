//! LVM2 physical volumes and linear logical volumes, read-only.
//!
//! A physical volume (PV) carries a label (`LABELONE`, in one of its first
//! four 512-byte sectors) whose PV header gives the PV's UUID, its data
//! area and its metadata areas. Each metadata area starts with an
//! `mda_header` whose first raw location points at the newest copy of the
//! volume group's metadata: a text in LVM's configuration syntax (a
//! circular buffer after the 512-byte header). [`parse_metadata`] reads
//! that text into a [`VolumeGroup`]; [`VolumeGroup::open_lv`] turns a
//! logical volume made of linear segments (one or several, on one or
//! several PVs) into a [`vdisk::Disk`].
//!
//! Striped, mirrored, RAID, thin, snapshot, cache, VDO and other segment
//! types, and PVs missing from the disks given, are typed errors naming
//! the LV and the feature. Every size is bounded; hostile bytes give
//! errors, never panics.

use crate::dev::{le32, le64};
use crate::error::{Error, Result};
use std::sync::Arc;
use vdisk::{Disk, LayerInfo};

const FS: &str = "lvm2";
const SECTOR: u64 = 512;
/// The magic of an `mda_header`.
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// Size of the `mda_header` before the circular metadata buffer.
const MDA_HEADER: u64 = 512;
/// `raw_locn.flags`: this metadata area is ignored.
const RAW_LOCN_IGNORED: u32 = 1;
/// Largest metadata text we read.
pub const MAX_METADATA: u64 = 16 << 20;
/// Largest nesting of sections and lists in metadata text.
const MAX_DEPTH: usize = 32;
/// Most segments one LV may have.
const MAX_SEGMENTS: usize = 1 << 16;
/// Most data/metadata area descriptors read from a PV header.
const MAX_AREAS: usize = 8;

/// A PV's label and the newest metadata found in its metadata areas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// Sector (0..=3) holding the label.
    pub label_sector: u64,
    /// The PV's UUID as stored (32 characters, no dashes).
    pub uuid: String,
    /// Device size recorded in the PV header (bytes; 0 when unknown).
    pub device_size: u64,
    /// Byte offset of the first data area.
    pub data_start: Option<u64>,
    /// The newest metadata text among the metadata areas (highest
    /// `seqno`), if any area holds one.
    pub metadata: Option<String>,
}

/// Read the PV label of `disk` (a partition or a whole disk): `Ok(None)`
/// when no `LABELONE` label is in its first four sectors.
pub fn read_label(disk: &dyn Disk) -> Result<Option<PvLabel>> {
    let n = disk.size().min(4 * SECTOR);
    let mut head = vec![0u8; n as usize];
    disk.read_at(&mut head, 0).map_err(|source| Error::Io {
        fs: FS,
        offset: 0,
        len: n,
        source,
    })?;
    for s in 0..n / SECTOR {
        let sec = &head[(s * SECTOR) as usize..((s + 1) * SECTOR) as usize];
        if &sec[0..8] == b"LABELONE" && &sec[24..32] == b"LVM2 001" {
            return parse_label(disk, s, sec).map(Some);
        }
    }
    Ok(None)
}

/// One `disk_locn` of a PV header: (offset, size) in bytes.
fn read_locns(sec: &[u8], at: &mut usize, base: u64) -> Result<Vec<(u64, u64)>> {
    let mut v = Vec::new();
    loop {
        if *at + 16 > sec.len() {
            return Err(Error::corrupt(
                FS,
                base + *at as u64,
                "PV header area list runs past its sector without a zero terminator",
            ));
        }
        let (off, size) = (le64(sec, *at), le64(sec, *at + 8));
        *at += 16;
        if off == 0 {
            return Ok(v);
        }
        if v.len() == MAX_AREAS {
            return Err(Error::corrupt(
                FS,
                base + *at as u64,
                format!("more than {MAX_AREAS} areas in the PV header"),
            ));
        }
        v.push((off, size));
    }
}

fn parse_label(disk: &dyn Disk, s: u64, sec: &[u8]) -> Result<PvLabel> {
    let base = s * SECTOR;
    let sector_xl = le64(sec, 8);
    if sector_xl != s {
        return Err(Error::corrupt(
            FS,
            base + 8,
            format!("label in sector {s} says it is in sector {sector_xl}"),
        ));
    }
    let hdr = le32(sec, 20) as usize;
    if !(32..=SECTOR as usize - 48).contains(&hdr) {
        return Err(Error::corrupt(
            FS,
            base + 20,
            format!("PV header offset {hdr} outside the label sector (expected 32)"),
        ));
    }
    let raw_uuid = &sec[hdr..hdr + 32];
    if !raw_uuid.iter().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::corrupt(
            FS,
            base + hdr as u64,
            "PV UUID is not 32 alphanumeric characters",
        ));
    }
    let uuid = String::from_utf8_lossy(raw_uuid).into_owned();
    let device_size = le64(sec, hdr + 32);
    let mut at = hdr + 40;
    let data = read_locns(sec, &mut at, base)?;
    let mdas = read_locns(sec, &mut at, base)?;
    let mut best: Option<(u64, String)> = None;
    let mut first_err = None;
    for (off, size) in mdas {
        match read_mda(disk, off, size) {
            Ok(Some(text)) => {
                let seq = metadata_seqno(&text);
                if best.as_ref().is_none_or(|(b, _)| seq > *b) {
                    best = Some((seq, text));
                }
            }
            Ok(None) => {}
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    // A damaged metadata area is an error only when no other one holds
    // metadata (LVM itself keeps copies for this).
    if let (None, Some(e)) = (&best, first_err) {
        return Err(e);
    }
    Ok(PvLabel {
        label_sector: s,
        uuid,
        device_size,
        data_start: data.first().map(|d| d.0),
        metadata: best.map(|b| b.1),
    })
}

fn io(offset: u64, len: u64, source: vdisk::Error) -> Error {
    Error::Io {
        fs: FS,
        offset,
        len,
        source,
    }
}

/// The current metadata text of the metadata area at `off` (`size`
/// bytes, header included); `None` when the area is ignored or empty.
fn read_mda(disk: &dyn Disk, off: u64, size: u64) -> Result<Option<String>> {
    let end = off.checked_add(size).filter(|&e| e <= disk.size());
    if end.is_none() || size < MDA_HEADER * 2 {
        return Err(Error::corrupt(
            FS,
            off,
            format!(
                "metadata area of {size} bytes here does not fit a {}-byte device (or is smaller than 1 KiB)",
                disk.size()
            ),
        ));
    }
    let mut h = [0u8; MDA_HEADER as usize];
    disk.read_at(&mut h, off)
        .map_err(|e| io(off, MDA_HEADER, e))?;
    if &h[4..20] != MDA_MAGIC {
        return Err(Error::corrupt(
            FS,
            off + 4,
            "expected the mda_header magic \" LVM2 x[5A%r0N*>\"",
        ));
    }
    let start = le64(&h, 24);
    if start != off {
        return Err(Error::corrupt(
            FS,
            off + 24,
            format!("mda_header says it starts at {start:#x}, the PV header says {off:#x}"),
        ));
    }
    let (r_off, r_size, r_flags) = (le64(&h, 40), le64(&h, 48), le32(&h, 60));
    if r_off == 0 || r_size == 0 || r_flags & RAW_LOCN_IGNORED != 0 {
        return Ok(None);
    }
    if r_size > MAX_METADATA || r_size > size - MDA_HEADER || r_off < MDA_HEADER || r_off >= size {
        return Err(Error::corrupt(
            FS,
            off + 40,
            format!(
                "metadata location {r_off:#x}+{r_size:#x} does not fit the {size:#x}-byte metadata area (text at most {MAX_METADATA} bytes)"
            ),
        ));
    }
    let mut text = vec![0u8; r_size as usize];
    let first = r_size.min(size - r_off);
    disk.read_at(&mut text[..first as usize], off + r_off)
        .map_err(|e| io(off + r_off, first, e))?;
    if first < r_size {
        // The circular buffer wraps to just after the header.
        disk.read_at(&mut text[first as usize..], off + MDA_HEADER)
            .map_err(|e| io(off + MDA_HEADER, r_size - first, e))?;
    }
    while text.last() == Some(&0) {
        text.pop();
    }
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// The `seqno` of a metadata text without parsing all of it (0 if none).
fn metadata_seqno(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "seqno").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// A value of LVM's configuration syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A string (escapes resolved).
    Str(String),
    /// A list `[a, b, ...]`.
    List(Vec<Value>),
    /// A section `name { ... }`: its entries in order.
    Section(Vec<(String, Value)>),
}

impl Value {
    /// The entry `key` of a section.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(v) => v.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn strings(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }
    fn sections(&self) -> impl Iterator<Item = (&str, &Value)> {
        let v: &[(String, Value)] = match self {
            Value::Section(v) => v,
            _ => &[],
        };
        v.iter()
            .filter(|(_, v)| matches!(v, Value::Section(_)))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// A tokenizer + recursive-descent parser of LVM metadata text.
struct Parser<'t> {
    s: &'t [u8],
    i: usize,
    line: usize,
}

impl<'t> Parser<'t> {
    fn err(&self, what: impl Into<String>) -> Error {
        Error::LvmMetadata {
            line: self.line,
            what: what.into(),
        }
    }
    fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.i += 1;
                }
                b'#' => {
                    while self.s.get(self.i).is_some_and(|&c| c != b'\n') {
                        self.i += 1;
                    }
                }
                c if c.is_ascii_whitespace() => self.i += 1,
                _ => break,
            }
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }
    fn ident(&mut self) -> Result<String> {
        self.skip_ws();
        let a = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"_.-+/".contains(c))
        {
            self.i += 1;
        }
        if a == self.i {
            return Err(self.err(format!(
                "expected a name, found {:?}",
                self.s.get(self.i).map(|&c| c as char)
            )));
        }
        Ok(String::from_utf8_lossy(&self.s[a..self.i]).into_owned())
    }
    fn string(&mut self) -> Result<String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    let c = *self
                        .s
                        .get(self.i + 1)
                        .ok_or_else(|| self.err("unterminated string"))?;
                    out.push(c);
                    self.i += 2;
                }
                Some(&c) => {
                    if c == b'\n' {
                        self.line += 1;
                    }
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
    fn number(&mut self) -> Result<Value> {
        let a = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'.')
        {
            self.i += 1;
        }
        let t = String::from_utf8_lossy(&self.s[a..self.i]).into_owned();
        match t.parse::<i64>() {
            Ok(n) => Ok(Value::Int(n)),
            // Floats (rare, e.g. in profiles) are kept as text.
            Err(_) if t.parse::<f64>().is_ok() => Ok(Value::Str(t)),
            Err(_) => Err(self.err(format!("bad number {t:?}"))),
        }
    }
    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("nested deeper than {MAX_DEPTH}")));
        }
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::List(v));
                        }
                        Some(b',') => self.i += 1,
                        None => return Err(self.err("unterminated list")),
                        _ => v.push(self.value(depth + 1)?),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => self.number(),
            other => Err(self.err(format!(
                "expected a value, found {:?}",
                other.map(|c| c as char)
            ))),
        }
    }
    /// Entries until `}` (inside a section) or the end of text (top).
    fn entries(&mut self, depth: usize) -> Result<Vec<(String, Value)>> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("sections nested deeper than {MAX_DEPTH}")));
        }
        let mut v = Vec::new();
        loop {
            match self.peek() {
                None if depth == 0 => return Ok(v),
                None => return Err(self.err("section not closed with '}'")),
                Some(b'}') if depth > 0 => {
                    self.i += 1;
                    return Ok(v);
                }
                _ => {}
            }
            let name = self.ident()?;
            match self.peek() {
                Some(b'=') => {
                    self.i += 1;
                    v.push((name, self.value(depth)?));
                }
                Some(b'{') => {
                    self.i += 1;
                    v.push((name, Value::Section(self.entries(depth + 1)?)));
                }
                other => {
                    return Err(self.err(format!(
                        "expected '=' or '{{' after {name:?}, found {:?}",
                        other.map(|c| c as char)
                    )))
                }
            }
        }
    }
}

/// Parse LVM configuration text into its top-level section.
pub fn parse_config(text: &str) -> Result<Value> {
    if text.len() as u64 > MAX_METADATA {
        return Err(Error::TooLarge {
            what: "LVM2 metadata text".into(),
            size: text.len() as u64,
            max: MAX_METADATA,
        });
    }
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    Ok(Value::Section(p.entries(0)?))
}

/// A physical volume as the VG metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvMeta {
    /// Name inside the VG metadata (`pv0`).
    pub name: String,
    /// UUID with dashes (`KW9wfQ-NBUc-...`).
    pub id: String,
    /// The device path it had when last written (a hint).
    pub device: Option<String>,
    /// First physical extent, in 512-byte sectors.
    pub pe_start: u64,
    /// Number of physical extents.
    pub pe_count: u64,
    /// Flagged `MISSING` by LVM.
    pub missing: bool,
}

/// One area of a segment: `(PV name, first physical extent)`.
pub type Stripe = (String, u64);

/// A segment of a logical volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First logical extent.
    pub start_extent: u64,
    /// Length in extents.
    pub extent_count: u64,
    /// Segment type (`striped`, `thin`, `raid1`, …).
    pub kind: String,
    /// Stripes (one for a linear segment).
    pub stripes: Vec<Stripe>,
}

/// A logical volume as the VG metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvMeta {
    /// Name (`root`).
    pub name: String,
    /// UUID with dashes.
    pub id: String,
    /// `status` flags (`READ`, `WRITE`, `VISIBLE`).
    pub status: Vec<String>,
    /// Segments, in metadata order.
    pub segments: Vec<Segment>,
}

impl LvMeta {
    /// Shown by `lvs` (not an internal sub-volume).
    pub fn visible(&self) -> bool {
        self.status.iter().any(|s| s == "VISIBLE")
    }
}

/// A volume group's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeGroup {
    /// VG name.
    pub name: String,
    /// VG UUID.
    pub id: String,
    /// Metadata sequence number (higher is newer).
    pub seqno: u64,
    /// Extent size in 512-byte sectors.
    pub extent_size: u64,
    /// Physical volumes.
    pub pvs: Vec<PvMeta>,
    /// Logical volumes.
    pub lvs: Vec<LvMeta>,
}

/// Parse a VG's metadata text (as found in a metadata area, or written by
/// `vgcfgbackup`).
pub fn parse_metadata(text: &str) -> Result<VolumeGroup> {
    let top = parse_config(text)?;
    let (name, vg) = top.sections().next().ok_or_else(|| Error::LvmMetadata {
        line: 0,
        what: "no volume group section".into(),
    })?;
    let bad = |what: String| Error::LvmMetadata { line: 0, what };
    let uint = |v: &Value, k: &str, ctx: &str| -> Result<u64> {
        v.int(k)
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| bad(format!("{ctx}: missing or negative {k}")))
    };
    let extent_size = uint(vg, "extent_size", name)?;
    if extent_size == 0 {
        return Err(bad(format!("{name}: extent_size is 0")));
    }
    let pvs = vg
        .get("physical_volumes")
        .map(|s| {
            s.sections()
                .map(|(n, p)| {
                    Ok(PvMeta {
                        name: n.into(),
                        id: p.str("id").unwrap_or_default().into(),
                        device: p.str("device").map(String::from),
                        pe_start: uint(p, "pe_start", n)?,
                        pe_count: uint(p, "pe_count", n)?,
                        missing: p.strings("flags").iter().any(|f| f == "MISSING"),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let lvs = vg
        .get("logical_volumes")
        .map(|s| s.sections().map(|(n, l)| parse_lv(n, l)).collect())
        .transpose()?
        .unwrap_or_default();
    Ok(VolumeGroup {
        name: name.into(),
        id: vg.str("id").unwrap_or_default().into(),
        seqno: vg.int("seqno").unwrap_or(0).max(0) as u64,
        extent_size,
        pvs,
        lvs,
    })
}

fn parse_lv(name: &str, l: &Value) -> Result<LvMeta> {
    let bad = |what: String| Error::LvmMetadata { line: 0, what };
    let mut segments = Vec::new();
    for (sname, s) in l.sections() {
        if segments.len() == MAX_SEGMENTS {
            return Err(bad(format!("{name}: more than {MAX_SEGMENTS} segments")));
        }
        let num = |k: &str| {
            s.int(k)
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| bad(format!("{name}/{sname}: missing or negative {k}")))
        };
        let mut stripes = Vec::new();
        if let Some(Value::List(items)) = s.get("stripes") {
            for pair in items.chunks(2) {
                match pair {
                    [Value::Str(pv), Value::Int(pe)] if *pe >= 0 => {
                        stripes.push((pv.clone(), *pe as u64))
                    }
                    _ => {
                        return Err(bad(format!(
                            "{name}/{sname}: stripes is not a list of \"pv\", extent pairs"
                        )))
                    }
                }
            }
        }
        segments.push(Segment {
            start_extent: num("start_extent")?,
            extent_count: num("extent_count")?,
            kind: s.str("type").unwrap_or("").into(),
            stripes,
        });
    }
    Ok(LvMeta {
        name: name.into(),
        id: l.str("id").unwrap_or_default().into(),
        status: l.strings("status"),
        segments,
    })
}

/// One linear piece of an LV: `len` bytes at byte `lv_off` of the LV are
/// at byte `pv_off` of PV `pv` (an index into the LV's disks).
#[derive(Debug, Clone, Copy)]
struct Piece {
    lv_off: u64,
    len: u64,
    pv: usize,
    pv_off: u64,
}

/// A linear logical volume readable as a disk.
#[derive(Debug)]
pub struct LogicalVolume<'a> {
    name: String,
    size: u64,
    pieces: Vec<Piece>,
    pvs: Vec<Arc<dyn Disk + 'a>>,
}

impl VolumeGroup {
    /// The LV called `lv` as a [`vdisk::Disk`], its PVs found among `pvs`
    /// (PV UUID as in its label, with or without dashes → the PV's
    /// device: a partition or whole disk).
    pub fn open_lv<'a>(
        &self,
        lv: &str,
        pvs: &[(String, Arc<dyn Disk + 'a>)],
    ) -> Result<LogicalVolume<'a>> {
        let full = format!("{}/{lv}", self.name);
        let meta = self
            .lvs
            .iter()
            .find(|l| l.name == lv)
            .ok_or_else(|| Error::LvmNoVolume { lv: full.clone() })?;
        let mut segs: Vec<&Segment> = meta.segments.iter().collect();
        segs.sort_by_key(|s| s.start_extent);
        let ext = self.extent_size * SECTOR;
        let mut pieces = Vec::new();
        let mut disks: Vec<Arc<dyn Disk + 'a>> = Vec::new();
        let mut next = 0u64;
        for s in segs {
            self.check_linear(&full, s)?;
            if s.start_extent != next {
                return Err(self.corrupt(
                    &full,
                    format!(
                        "segment at extent {} leaves a gap or overlap after extent {next}",
                        s.start_extent
                    ),
                ));
            }
            let (pv_name, pe) = &s.stripes[0];
            let pvm = self
                .pvs
                .iter()
                .find(|p| &p.name == pv_name)
                .ok_or_else(|| {
                    self.corrupt(
                        &full,
                        format!("segment names PV {pv_name:?} which the VG does not list"),
                    )
                })?;
            let disk = find_pv(pvs, &pvm.id)
                .filter(|_| !pvm.missing)
                .ok_or_else(|| Error::LvmMissingPv {
                    lv: full.clone(),
                    pv: pvm.name.clone(),
                    id: pvm.id.clone(),
                    device: pvm.device.clone().unwrap_or_default(),
                })?;
            let span = pe
                .checked_add(s.extent_count)
                .filter(|&e| e <= pvm.pe_count);
            let pv_off = pvm
                .pe_start
                .checked_mul(SECTOR)
                .and_then(|a| pe.checked_mul(ext).and_then(|b| a.checked_add(b)));
            let len = s.extent_count.checked_mul(ext);
            let (Some(_), Some(pv_off), Some(len)) = (span, pv_off, len) else {
                return Err(self.corrupt(
                    &full,
                    format!(
                        "extents {pe}+{} lie outside PV {pv_name} ({} extents)",
                        s.extent_count, pvm.pe_count
                    ),
                ));
            };
            if pv_off.checked_add(len).is_none_or(|e| e > disk.size()) {
                return Err(self.corrupt(
                    &full,
                    format!(
                        "extents {pe}+{} of PV {pv_name} end beyond its {}-byte device",
                        s.extent_count,
                        disk.size()
                    ),
                ));
            }
            let pv = match disks.iter().position(|d| Arc::ptr_eq(d, &disk)) {
                Some(i) => i,
                None => {
                    disks.push(disk);
                    disks.len() - 1
                }
            };
            pieces.push(Piece {
                lv_off: next * ext,
                len,
                pv,
                pv_off,
            });
            next += s.extent_count;
        }
        Ok(LogicalVolume {
            name: full,
            size: next * ext,
            pieces,
            pvs: disks,
        })
    }

    fn corrupt(&self, lv: &str, what: String) -> Error {
        Error::LvmMetadata {
            line: 0,
            what: format!("{lv}: {what}"),
        }
    }

    /// A linear segment, or the typed error naming what it is.
    fn check_linear(&self, lv: &str, s: &Segment) -> Result<()> {
        let unsupported = |feature: String| Error::LvmUnsupported {
            lv: lv.into(),
            feature,
        };
        match s.kind.as_str() {
            "striped" if s.stripes.len() == 1 => Ok(()),
            "striped" => Err(unsupported(format!(
                "a striped segment over {} PVs",
                s.stripes.len()
            ))),
            "" => Err(unsupported("a segment without a type".into())),
            t => Err(unsupported(format!("a {t:?} segment"))),
        }
        .and_then(|()| {
            if s.extent_count == 0 {
                Err(self.corrupt(lv, "a segment of 0 extents".into()))
            } else {
                Ok(())
            }
        })
    }
}

/// The PV whose UUID (dashes ignored) is `id`.
fn find_pv<'a>(pvs: &[(String, Arc<dyn Disk + 'a>)], id: &str) -> Option<Arc<dyn Disk + 'a>> {
    let norm = |s: &str| s.chars().filter(|&c| c != '-').collect::<String>();
    let want = norm(id);
    pvs.iter()
        .find(|(u, _)| norm(u) == want)
        .map(|(_, d)| d.clone())
}

impl LogicalVolume<'_> {
    /// `VG/LV`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Disk for LogicalVolume<'_> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> vdisk::Result<()> {
        vdisk::disk::check_range(self.size, offset, buf.len() as u64)?;
        let end = offset + buf.len() as u64;
        let first = self.pieces.partition_point(|p| p.lv_off + p.len <= offset);
        for p in &self.pieces[first..] {
            if p.lv_off >= end {
                break;
            }
            let a = p.lv_off.max(offset);
            let b = (p.lv_off + p.len).min(end);
            self.pvs[p.pv].read_at(
                &mut buf[(a - offset) as usize..(b - offset) as usize],
                p.pv_off + (a - p.lv_off),
            )?;
        }
        Ok(())
    }
    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: format!("lvm:{}", self.name).into(),
            format: "lvm2-linear".into(),
            subformat: None,
            virtual_size: self.size,
            file_size: self.size,
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }
}
