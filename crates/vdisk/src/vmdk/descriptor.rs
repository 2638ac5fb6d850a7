//! The VMDK text descriptor ("# Disk DescriptorFile"): a pure parser with no
//! I/O, usable by the VM-import code on its own.
//!
//! Grammar (VMware "Virtual Disk Format 1.1"): `key=value` header lines
//! (`version`, `CID`, `parentCID`, `createType`, `parentFileNameHint`, ...),
//! extent lines `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`, and disk-database
//! lines `ddb.key = "value"`. `#` starts a comment line.

use crate::disk::{Chs, GeometryHints};
use std::collections::BTreeMap;

/// Largest descriptor we accept (text file or embedded), in bytes.
pub const MAX_DESCRIPTOR_BYTES: usize = 1 << 20;
/// Largest number of extent lines we accept (a 16 TiB disk split in 2 GiB
/// parts needs 8192).
pub const MAX_EXTENTS: usize = 8192;
/// `parentCID` value meaning "no parent".
pub const NO_PARENT_CID: u32 = 0xffff_ffff;

/// A descriptor that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VMDK descriptor line {line}: {message}")]
pub struct DescriptorError {
    /// 1-based line number (0 when the problem concerns the whole text).
    pub line: usize,
    /// What was found and what was expected.
    pub message: String,
}

/// Access mode of an extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `RW`
    ReadWrite,
    /// `RDONLY`
    ReadOnly,
    /// `NOACCESS`: reads fail.
    NoAccess,
}

/// Extent type of an extent line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentType {
    /// `FLAT`: raw data at OFFSET sectors into the file.
    Flat,
    /// `SPARSE`: a hosted sparse extent (`KDMV`) or, rarely, `COWD`.
    Sparse,
    /// `ZERO`: reads as zeros, no file.
    Zero,
    /// `VMFS`: flat extent on VMFS (no offset).
    Vmfs,
    /// `VMFSSPARSE`: ESX delta (`COWD`).
    VmfsSparse,
    /// `VMFSRDM`: raw device mapping.
    VmfsRdm,
    /// `VMFSRAW`: raw device.
    VmfsRaw,
    /// `SESPARSE`: ESXi space-efficient sparse (not supported for reading).
    SeSparse,
}

impl ExtentType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FLAT" => ExtentType::Flat,
            "SPARSE" => ExtentType::Sparse,
            "ZERO" => ExtentType::Zero,
            "VMFS" => ExtentType::Vmfs,
            "VMFSSPARSE" => ExtentType::VmfsSparse,
            "VMFSRDM" => ExtentType::VmfsRdm,
            "VMFSRAW" => ExtentType::VmfsRaw,
            "SESPARSE" => ExtentType::SeSparse,
            _ => return None,
        })
    }

    /// The keyword as written in descriptors.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtentType::Flat => "FLAT",
            ExtentType::Sparse => "SPARSE",
            ExtentType::Zero => "ZERO",
            ExtentType::Vmfs => "VMFS",
            ExtentType::VmfsSparse => "VMFSSPARSE",
            ExtentType::VmfsRdm => "VMFSRDM",
            ExtentType::VmfsRaw => "VMFSRAW",
            ExtentType::SeSparse => "SESPARSE",
        }
    }
}

/// One extent line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    /// Access mode.
    pub access: Access,
    /// Size of the extent in 512-byte sectors.
    pub sectors: u64,
    /// Extent type.
    pub kind: ExtentType,
    /// File name as written (relative to the descriptor); `None` for ZERO.
    pub file: Option<String>,
    /// Start of the data inside the file, in sectors (FLAT only; else 0).
    pub offset: u64,
    /// 1-based line number in the descriptor.
    pub line: usize,
}

/// A parsed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `version=` (1, 2 or 3).
    pub version: Option<u32>,
    /// `encoding=` (e.g. "UTF-8", "windows-1252").
    pub encoding: Option<String>,
    /// Content ID `CID=` (hex).
    pub cid: Option<u32>,
    /// `parentCID=` (hex; `ffffffff` = no parent).
    pub parent_cid: Option<u32>,
    /// `createType=` (monolithicSparse, twoGbMaxExtentFlat, vmfs, ...).
    pub create_type: Option<String>,
    /// `parentFileNameHint=` of a snapshot delta.
    pub parent_file_name_hint: Option<String>,
    /// Extent lines in order.
    pub extents: Vec<ExtentLine>,
    /// `ddb.*` entries, keyed by the full key (e.g. `ddb.adapterType`).
    pub ddb: BTreeMap<String, String>,
    /// Other `key=value` header entries (e.g. `isNativeSnapshot`).
    pub other: BTreeMap<String, String>,
    /// Lines that matched nothing in the grammar (line number, text).
    pub ignored_lines: Vec<(usize, String)>,
}

impl Descriptor {
    /// A `ddb.*` value by full key (`"ddb.adapterType"`).
    pub fn ddb(&self, key: &str) -> Option<&str> {
        self.ddb.get(key).map(String::as_str)
    }

    /// `ddb.adapterType` (ide, buslogic, lsilogic, legacyESX, pvscsi, ...).
    pub fn adapter_type(&self) -> Option<&str> {
        self.ddb("ddb.adapterType")
    }

    /// `ddb.virtualHWVersion` as a number.
    pub fn virtual_hw_version(&self) -> Option<u32> {
        self.ddb("ddb.virtualHWVersion")?.trim().parse().ok()
    }

    /// True when the descriptor names a parent (snapshot delta).
    pub fn has_parent(&self) -> bool {
        self.parent_file_name_hint
            .as_deref()
            .is_some_and(|h| !h.is_empty())
    }

    /// Sum of the extent sizes in sectors (`None` on overflow).
    pub fn total_sectors(&self) -> Option<u64> {
        self.extents
            .iter()
            .try_fold(0u64, |acc, e| acc.checked_add(e.sectors))
    }

    fn chs(&self, c: &str, h: &str, s: &str) -> Option<Chs> {
        let num = |k: &str| self.ddb(k)?.trim().parse::<u32>().ok();
        Some(Chs {
            cylinders: num(c)?,
            heads: num(h)?,
            sectors: num(s)?,
        })
    }

    /// Geometry from `ddb.geometry.{cylinders,heads,sectors}` (physical)
    /// and `ddb.geometry.{biosCylinders,biosHeads,biosSectors}` (BIOS).
    pub fn geometry(&self) -> GeometryHints {
        let physical = self.chs(
            "ddb.geometry.cylinders",
            "ddb.geometry.heads",
            "ddb.geometry.sectors",
        );
        let bios = self.chs(
            "ddb.geometry.biosCylinders",
            "ddb.geometry.biosHeads",
            "ddb.geometry.biosSectors",
        );
        let source = (physical.is_some() || bios.is_some()).then(|| "vmdk descriptor".to_string());
        GeometryHints {
            physical,
            bios,
            source,
        }
    }
}

fn err(line: usize, message: impl Into<String>) -> DescriptorError {
    DescriptorError {
        line,
        message: message.into(),
    }
}

/// Strip one pair of surrounding double quotes.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn parse_hex_u32(line: usize, key: &str, v: &str) -> Result<u32, DescriptorError> {
    let t = v.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16)
        .map_err(|_| err(line, format!("{key} is {v:?}; expected up to 8 hex digits")))
}

fn parse_extent(line: usize, text: &str) -> Result<ExtentLine, DescriptorError> {
    let mut rest = text.trim();
    let mut word = || {
        let w_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (w, r) = rest.split_at(w_end);
        rest = r.trim_start();
        w
    };
    let access = match word() {
        "RW" => Access::ReadWrite,
        "RDONLY" => Access::ReadOnly,
        "NOACCESS" => Access::NoAccess,
        a => {
            return Err(err(
                line,
                format!("extent access {a:?}; expected RW, RDONLY or NOACCESS"),
            ))
        }
    };
    let size = word();
    let sectors: u64 = size.parse().map_err(|_| {
        err(
            line,
            format!("extent size {size:?}; expected a sector count"),
        )
    })?;
    let kind_s = word();
    let kind = ExtentType::parse(kind_s).ok_or_else(|| {
        err(
            line,
            format!("extent type {kind_s:?}; expected FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, VMFSRDM, VMFSRAW or SESPARSE"),
        )
    })?;
    let mut file = None;
    if let Some(q) = rest.strip_prefix('"') {
        let end = q
            .find('"')
            .ok_or_else(|| err(line, "extent file name has no closing quote"))?;
        file = Some(q[..end].to_string());
        rest = q[end + 1..].trim_start();
    } else if !rest.is_empty() && kind != ExtentType::Zero {
        // Tolerate an unquoted name (no spaces possible then).
        let w_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        file = Some(rest[..w_end].to_string());
        rest = rest[w_end..].trim_start();
    }
    let mut offset = 0;
    if !rest.is_empty() {
        let w = rest.split_whitespace().next().unwrap_or("");
        offset = w.parse().map_err(|_| {
            err(
                line,
                format!("extent offset {w:?}; expected a sector number"),
            )
        })?;
    }
    match (&file, kind) {
        (None, ExtentType::Zero) => {}
        (None, _) => {
            return Err(err(
                line,
                format!("{} extent without a file name", kind.as_str()),
            ))
        }
        (Some(f), _) if f.is_empty() && kind != ExtentType::Zero => {
            return Err(err(line, "empty extent file name"))
        }
        _ => {}
    }
    if kind == ExtentType::Zero {
        file = None;
    }
    Ok(ExtentLine {
        access,
        sectors,
        kind,
        file,
        offset,
        line,
    })
}

fn is_extent_line(t: &str) -> bool {
    ["RW", "RDONLY", "NOACCESS"].iter().any(|a| {
        t.strip_prefix(a)
            .is_some_and(|r| r.starts_with(char::is_whitespace))
    })
}

/// Parse descriptor text. Stops at the first NUL (embedded descriptors are
/// NUL-padded). Unknown `key=value` entries are kept in
/// [`Descriptor::other`], lines that fit nothing in
/// [`Descriptor::ignored_lines`].
pub fn parse_descriptor(text: &str) -> Result<Descriptor, DescriptorError> {
    let text = text.split('\0').next().unwrap_or("");
    if text.len() > MAX_DESCRIPTOR_BYTES {
        return Err(err(
            0,
            format!(
                "descriptor is {} bytes; at most {MAX_DESCRIPTOR_BYTES} expected",
                text.len()
            ),
        ));
    }
    let mut d = Descriptor::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if is_extent_line(t) {
            if d.extents.len() >= MAX_EXTENTS {
                return Err(err(line, format!("more than {MAX_EXTENTS} extents")));
            }
            d.extents.push(parse_extent(line, t)?);
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            if d.ignored_lines.len() < 64 {
                d.ignored_lines.push((line, t.chars().take(200).collect()));
            }
            continue;
        };
        let key = k.trim();
        let value = unquote(v);
        match key {
            "version" => {
                d.version =
                    Some(value.parse().map_err(|_| {
                        err(line, format!("version is {value:?}; expected a number"))
                    })?)
            }
            "encoding" => d.encoding = Some(value.to_string()),
            "CID" => d.cid = Some(parse_hex_u32(line, key, value)?),
            "parentCID" => d.parent_cid = Some(parse_hex_u32(line, key, value)?),
            "createType" => d.create_type = Some(value.to_string()),
            "parentFileNameHint" => d.parent_file_name_hint = Some(value.to_string()),
            _ if key.starts_with("ddb.") => {
                d.ddb.insert(key.to_string(), value.to_string());
            }
            _ => {
                d.other.insert(key.to_string(), value.to_string());
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Disk DescriptorFile\r\nversion=1\r\nencoding=\"UTF-8\"\r\nCID=fffffffe\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentFlat\"\r\n\r\n# Extent description\r\nRW 4192256 FLAT \"my disk-f001.vmdk\" 0\r\nRDONLY 1000 SPARSE \"b.vmdk\"\r\nNOACCESS 8 ZERO\r\n\r\n#DDB\r\nddb.adapterType = \"lsilogic\"\r\nddb.geometry.cylinders = \"1523\"\r\nddb.geometry.heads = \"16\"\r\nddb.geometry.sectors = \"63\"\r\nddb.geometry.biosCylinders = \"1024\"\r\nddb.geometry.biosHeads = \"255\"\r\nddb.geometry.biosSectors = \"63\"\r\nddb.virtualHWVersion = \"8\"\r\n";

    #[test]
    fn parses_sample() {
        let d = parse_descriptor(SAMPLE).unwrap();
        assert_eq!(d.version, Some(1));
        assert_eq!(d.cid, Some(0xffff_fffe));
        assert_eq!(d.parent_cid, Some(NO_PARENT_CID));
        assert_eq!(d.create_type.as_deref(), Some("twoGbMaxExtentFlat"));
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file.as_deref(), Some("my disk-f001.vmdk"));
        assert_eq!(d.extents[0].sectors, 4192256);
        assert_eq!(d.extents[1].access, Access::ReadOnly);
        assert_eq!(d.extents[2].kind, ExtentType::Zero);
        assert_eq!(d.extents[2].file, None);
        assert_eq!(d.adapter_type(), Some("lsilogic"));
        assert_eq!(d.virtual_hw_version(), Some(8));
        let g = d.geometry();
        assert_eq!(
            g.physical,
            Some(Chs {
                cylinders: 1523,
                heads: 16,
                sectors: 63
            })
        );
        assert_eq!(g.bios.unwrap().heads, 255);
        assert_eq!(g.source.as_deref(), Some("vmdk descriptor"));
        assert_eq!(d.total_sectors(), Some(4192256 + 1000 + 8));
        assert!(!d.has_parent());
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(parse_descriptor("CID=xyz\n").unwrap_err().line, 1);
        assert!(parse_descriptor("\nRW abc FLAT \"a\" 0\n").is_err());
        assert!(parse_descriptor("RW 10 BOGUS \"a\"\n").is_err());
        assert!(parse_descriptor("RW 10 FLAT \"a\n").is_err());
        assert!(parse_descriptor("RW 10 FLAT\n").is_err());
        assert!(parse_descriptor("RW 10 FLAT \"a\" x\n").is_err());
    }

    #[test]
    fn stops_at_nul_and_keeps_unknowns() {
        let d = parse_descriptor("isNativeSnapshot=\"no\"\nfoo bar\n\0garbage=1").unwrap();
        assert_eq!(
            d.other.get("isNativeSnapshot").map(String::as_str),
            Some("no")
        );
        assert!(!d.other.contains_key("garbage"));
        assert_eq!(d.ignored_lines, vec![(2, "foo bar".to_string())]);
    }
}
