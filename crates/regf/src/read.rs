//! Reading: key nodes, subkey lists, values, class names, security, paths.

use crate::base::{le16, le32, le64};
use crate::error::{Error, Result};
use crate::hive::Hive;
use crate::names;
use crate::value::Value;

/// Key flag: name stored one byte per character.
pub(crate) const KEY_COMP_NAME: u16 = 0x20;
/// Key flag: root of the hive.
pub(crate) const KEY_HIVE_ENTRY: u16 = 0x04;
/// Value flag: name stored one byte per character.
pub(crate) const VALUE_COMP_NAME: u16 = 0x01;
/// Largest data stored in one cell; bigger data uses a `db` record (1.4+).
pub const BIG_DATA_SEGMENT: usize = 16344;
/// Cap on the number of entries we accept in one list.
pub(crate) const NONE: u32 = 0xFFFF_FFFF;

/// A decoded key node (copied out of its cell).
#[derive(Debug, Clone)]
pub(crate) struct Nk {
    pub flags: u16,
    pub timestamp: u64,
    pub parent: u32,
    pub subkey_count: u32,
    pub subkeys: u32,
    pub value_count: u32,
    pub values: u32,
    pub sk: u32,
    pub class: u32,
    pub class_len: u16,
    pub name: Vec<u16>,
}

/// A decoded key value record.
#[derive(Debug, Clone)]
pub(crate) struct Vk {
    pub name: Vec<u16>,
    pub size_raw: u32,
    pub data_off: u32,
    pub kind: u32,
}

/// One subkey list entry kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    Li,
    Lf,
    Lh,
}

impl Hive {
    pub(crate) fn nk(&self, off: u32) -> Result<Nk> {
        let c = self.cell(off)?;
        if c.len() < 76 || &c[0..2] != b"nk" {
            return Err(Error::corrupt_cell(off, "expected a key node (nk)"));
        }
        let flags = le16(c, 2);
        let nlen = le16(c, 72) as usize;
        if 76 + nlen > c.len() {
            return Err(Error::corrupt_cell(
                off,
                format!("key name length {nlen} exceeds the cell"),
            ));
        }
        let comp = flags & KEY_COMP_NAME != 0;
        if !comp && !nlen.is_multiple_of(2) {
            return Err(Error::corrupt_cell(off, "odd UTF-16 key name length"));
        }
        Ok(Nk {
            flags,
            timestamp: le64(c, 4),
            parent: le32(c, 16),
            subkey_count: le32(c, 20),
            subkeys: le32(c, 28),
            value_count: le32(c, 36),
            values: le32(c, 40),
            sk: le32(c, 44),
            class: le32(c, 48),
            class_len: le16(c, 74),
            name: names::decode_units(&c[76..76 + nlen], comp),
        })
    }

    pub(crate) fn vk(&self, off: u32) -> Result<Vk> {
        let c = self.cell(off)?;
        if c.len() < 20 || &c[0..2] != b"vk" {
            return Err(Error::corrupt_cell(off, "expected a key value (vk)"));
        }
        let nlen = le16(c, 2) as usize;
        let flags = le16(c, 16);
        if 20 + nlen > c.len() {
            return Err(Error::corrupt_cell(
                off,
                format!("value name length {nlen} exceeds the cell"),
            ));
        }
        let comp = flags & VALUE_COMP_NAME != 0;
        Ok(Vk {
            name: names::decode_units(&c[20..20 + nlen], comp),
            size_raw: le32(c, 4),
            data_off: le32(c, 8),
            kind: le32(c, 12),
        })
    }

    /// Entries of one leaf list cell (li/lf/lh): (nk offset, hash/hint).
    pub(crate) fn leaf(&self, off: u32) -> Result<(ListKind, Vec<(u32, u32)>)> {
        let c = self.cell(off)?;
        if c.len() < 4 {
            return Err(Error::corrupt_cell(off, "subkey list cell too small"));
        }
        let n = le16(c, 2) as usize;
        let (kind, step) = match &c[0..2] {
            b"li" => (ListKind::Li, 4),
            b"lf" => (ListKind::Lf, 8),
            b"lh" => (ListKind::Lh, 8),
            s => {
                return Err(Error::corrupt_cell(
                    off,
                    format!("subkey list signature {s:02x?}, expected li, lf or lh"),
                ))
            }
        };
        if 4 + n * step > c.len() {
            return Err(Error::corrupt_cell(
                off,
                format!("subkey list count {n} exceeds the cell"),
            ));
        }
        let v = (0..n)
            .map(|i| {
                let e = 4 + i * step;
                (le32(c, e), if step == 8 { le32(c, e + 4) } else { 0 })
            })
            .collect();
        Ok((kind, v))
    }

    /// All subkey nk offsets of a key node, in list order (ri flattened).
    pub(crate) fn subkey_offsets(&self, nk: &Nk) -> Result<Vec<u32>> {
        if nk.subkey_count == 0 {
            return Ok(Vec::new());
        }
        let c = self.cell(nk.subkeys)?;
        let mut out = Vec::new();
        if c.len() >= 4 && &c[0..2] == b"ri" {
            let n = le16(c, 2) as usize;
            if 4 + n * 4 > c.len() {
                return Err(Error::corrupt_cell(
                    nk.subkeys,
                    "index root count exceeds the cell",
                ));
            }
            for i in 0..n {
                let l = le32(c, 4 + i * 4);
                let (_, e) = self.leaf(l)?;
                out.extend(e.into_iter().map(|x| x.0));
                if out.len() > nk.subkey_count as usize {
                    break;
                }
            }
        } else {
            out = self.leaf(nk.subkeys)?.1.into_iter().map(|x| x.0).collect();
        }
        if out.len() != nk.subkey_count as usize {
            return Err(Error::corrupt_cell(
                nk.subkeys,
                format!(
                    "subkey list holds {} entries, the key node says {}",
                    out.len(),
                    nk.subkey_count
                ),
            ));
        }
        Ok(out)
    }

    /// Value (vk) offsets of a key node.
    pub(crate) fn value_offsets(&self, nk: &Nk) -> Result<Vec<u32>> {
        if nk.value_count == 0 {
            return Ok(Vec::new());
        }
        let c = self.cell(nk.values)?;
        let n = nk.value_count as usize;
        if n.saturating_mul(4) > c.len() {
            return Err(Error::corrupt_cell(
                nk.values,
                format!("value list of {n} entries exceeds the cell"),
            ));
        }
        Ok((0..n).map(|i| le32(c, i * 4)).collect())
    }

    /// Raw data of a value record.
    pub(crate) fn vk_data(&self, vk_off: u32, vk: &Vk) -> Result<Vec<u8>> {
        if vk.size_raw & 0x8000_0000 != 0 {
            let n = (vk.size_raw & 0x7FFF_FFFF) as usize;
            if n > 4 {
                return Err(Error::corrupt_cell(
                    vk_off,
                    format!("inline value data of {n} bytes, at most 4 fit"),
                ));
            }
            return Ok(vk.data_off.to_le_bytes()[..n].to_vec());
        }
        let n = vk.size_raw as usize;
        if n == 0 {
            return Ok(Vec::new());
        }
        let c = self.cell(vk.data_off)?;
        if n > BIG_DATA_SEGMENT && self.minor_version() >= 4 && c.len() >= 8 && &c[0..2] == b"db" {
            return self.big_data(vk.data_off, n);
        }
        if n > c.len() {
            return Err(Error::corrupt_cell(
                vk.data_off,
                format!("value data of {n} bytes exceeds its {}-byte cell", c.len()),
            ));
        }
        Ok(c[..n].to_vec())
    }

    /// Cells of a big data record: (segment list offset, segment offsets).
    pub(crate) fn db_segments(&self, db_off: u32) -> Result<(u32, Vec<u32>)> {
        let c = self.cell(db_off)?;
        if c.len() < 8 || &c[0..2] != b"db" {
            return Err(Error::corrupt_cell(
                db_off,
                "expected a big data record (db)",
            ));
        }
        let n = le16(c, 2) as usize;
        let list = le32(c, 4);
        let l = self.cell(list)?;
        if n * 4 > l.len() {
            return Err(Error::corrupt_cell(
                list,
                "big data segment list exceeds its cell",
            ));
        }
        Ok((list, (0..n).map(|i| le32(l, i * 4)).collect()))
    }

    fn big_data(&self, db_off: u32, n: usize) -> Result<Vec<u8>> {
        let (_, segs) = self.db_segments(db_off)?;
        if segs.len() != n.div_ceil(BIG_DATA_SEGMENT) {
            return Err(Error::corrupt_cell(
                db_off,
                format!(
                    "big data has {} segments, {} bytes need {}",
                    segs.len(),
                    n,
                    n.div_ceil(BIG_DATA_SEGMENT)
                ),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for s in segs {
            let want = (n - out.len()).min(BIG_DATA_SEGMENT);
            let c = self.cell(s)?;
            if c.len() < want {
                return Err(Error::corrupt_cell(
                    s,
                    "big data segment shorter than expected",
                ));
            }
            out.extend_from_slice(&c[..want]);
        }
        Ok(out)
    }

    /// Find a subkey by name (case-insensitive).
    pub(crate) fn find_subkey(&self, nk: &Nk, name: &[u16]) -> Result<Option<u32>> {
        if nk.subkey_count == 0 {
            return Ok(None);
        }
        let hash = names::lh_hash(name);
        let leaves: Vec<u32> = {
            let c = self.cell(nk.subkeys)?;
            if c.len() >= 4 && &c[0..2] == b"ri" {
                let n = le16(c, 2) as usize;
                if 4 + n * 4 > c.len() {
                    return Err(Error::corrupt_cell(
                        nk.subkeys,
                        "index root count exceeds the cell",
                    ));
                }
                (0..n).map(|i| le32(c, 4 + i * 4)).collect()
            } else {
                vec![nk.subkeys]
            }
        };
        for l in leaves {
            let (kind, entries) = self.leaf(l)?;
            for (off, h) in entries {
                if kind == ListKind::Lh && h != hash {
                    continue;
                }
                let sub = self.nk(off)?;
                if names::eq(&sub.name, name) {
                    return Ok(Some(off));
                }
            }
        }
        Ok(None)
    }

    /// Resolve a path to an nk offset.
    pub(crate) fn resolve(&self, path: &str) -> Result<Option<u32>> {
        let mut off = self.root_offset();
        for comp in names::split_path(path) {
            let nk = self.nk(off)?;
            match self.find_subkey(&nk, &names::units(comp))? {
                Some(o) => off = o,
                None => return Ok(None),
            }
        }
        Ok(Some(off))
    }

    /// The root key.
    pub fn root(&self) -> Key<'_> {
        Key {
            hive: self,
            off: self.root_offset(),
        }
    }

    /// The key at `path` (components separated by `\`, case-insensitive,
    /// relative to the root); error if missing.
    pub fn key(&self, path: &str) -> Result<Key<'_>> {
        self.get_key(path)?
            .ok_or_else(|| Error::not_found(format!("key {path}")))
    }

    /// The key at `path`, or `None`.
    pub fn get_key(&self, path: &str) -> Result<Option<Key<'_>>> {
        Ok(self.resolve(path)?.map(|off| Key { hive: self, off }))
    }

    /// The current control set of a SYSTEM hive (`ControlSet00N` from
    /// `Select\Current`), or `None` if the hive has no `Select` key.
    pub fn current_control_set(&self) -> Result<Option<String>> {
        let Some(sel) = self.get_key("Select")? else {
            return Ok(None);
        };
        let Some(v) = sel.value("Current")? else {
            return Ok(None);
        };
        match v.data()? {
            Value::Dword(n) if (1..=999).contains(&n) => Ok(Some(format!("ControlSet{n:03}"))),
            other => Err(Error::corrupt_cell(
                v.offset(),
                format!("Select\\Current is {other:?}, expected a DWORD 1..999"),
            )),
        }
    }
}

/// A key of a hive (borrowed).
#[derive(Clone, Copy)]
pub struct Key<'h> {
    pub(crate) hive: &'h Hive,
    pub(crate) off: u32,
}

impl std::fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key@{:#x}", self.off)
    }
}

impl<'h> Key<'h> {
    /// Cell offset of the key node.
    pub fn offset(&self) -> u32 {
        self.off
    }
    /// Key name (lossy for invalid UTF-16).
    pub fn name(&self) -> Result<String> {
        Ok(names::to_string(&self.hive.nk(self.off)?.name))
    }
    /// Key name as UTF-16 code units (exact).
    pub fn name_units(&self) -> Result<Vec<u16>> {
        Ok(self.hive.nk(self.off)?.name)
    }
    /// Last written time (FILETIME).
    pub fn last_written(&self) -> Result<u64> {
        Ok(self.hive.nk(self.off)?.timestamp)
    }
    /// Key flags (KEY_COMP_NAME, KEY_HIVE_ENTRY, KEY_SYM_LINK, ...).
    pub fn flags(&self) -> Result<u16> {
        Ok(self.hive.nk(self.off)?.flags)
    }
    /// Subkeys in on-disk (sorted) order.
    pub fn subkeys(&self) -> Result<Vec<Key<'h>>> {
        let nk = self.hive.nk(self.off)?;
        Ok(self
            .hive
            .subkey_offsets(&nk)?
            .into_iter()
            .map(|off| Key {
                hive: self.hive,
                off,
            })
            .collect())
    }
    /// A direct subkey by name (case-insensitive).
    pub fn subkey(&self, name: &str) -> Result<Option<Key<'h>>> {
        let nk = self.hive.nk(self.off)?;
        Ok(self
            .hive
            .find_subkey(&nk, &names::units(name))?
            .map(|off| Key {
                hive: self.hive,
                off,
            }))
    }
    /// Values in on-disk order.
    pub fn values(&self) -> Result<Vec<ValueRef<'h>>> {
        let nk = self.hive.nk(self.off)?;
        Ok(self
            .hive
            .value_offsets(&nk)?
            .into_iter()
            .map(|off| ValueRef {
                hive: self.hive,
                off,
            })
            .collect())
    }
    /// A value by name (case-insensitive; `""` is the default value).
    pub fn value(&self, name: &str) -> Result<Option<ValueRef<'h>>> {
        let want = names::units(name);
        for v in self.values()? {
            if names::eq(&self.hive.vk(v.off)?.name, &want) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
    /// Class name, if any.
    pub fn class_name(&self) -> Result<Option<String>> {
        let nk = self.hive.nk(self.off)?;
        if nk.class_len == 0 || nk.class == NONE {
            return Ok(None);
        }
        let c = self.hive.cell(nk.class)?;
        let n = nk.class_len as usize;
        if n > c.len() {
            return Err(Error::corrupt_cell(nk.class, "class name exceeds its cell"));
        }
        Ok(Some(names::to_string(&names::decode_units(&c[..n], false))))
    }
    /// The self-relative security descriptor of the key.
    pub fn security_descriptor(&self) -> Result<Vec<u8>> {
        let nk = self.hive.nk(self.off)?;
        let c = self.hive.sk(nk.sk)?;
        Ok(c.descriptor)
    }
    /// Parent key (`None` for the root).
    pub fn parent(&self) -> Result<Option<Key<'h>>> {
        let nk = self.hive.nk(self.off)?;
        if nk.flags & KEY_HIVE_ENTRY != 0 || self.off == self.hive.root_offset() {
            return Ok(None);
        }
        self.hive.nk(nk.parent)?;
        Ok(Some(Key {
            hive: self.hive,
            off: nk.parent,
        }))
    }
}

/// A value of a key (borrowed).
#[derive(Clone, Copy)]
pub struct ValueRef<'h> {
    pub(crate) hive: &'h Hive,
    pub(crate) off: u32,
}

impl ValueRef<'_> {
    /// Cell offset of the value record.
    pub fn offset(&self) -> u32 {
        self.off
    }
    /// Value name (`""` for the default value).
    pub fn name(&self) -> Result<String> {
        Ok(names::to_string(&self.hive.vk(self.off)?.name))
    }
    /// Value name as UTF-16 code units.
    pub fn name_units(&self) -> Result<Vec<u16>> {
        Ok(self.hive.vk(self.off)?.name)
    }
    /// Registry type number (REG_SZ = 1, ...).
    pub fn kind(&self) -> Result<u32> {
        Ok(self.hive.vk(self.off)?.kind)
    }
    /// Raw data bytes.
    pub fn raw(&self) -> Result<Vec<u8>> {
        let vk = self.hive.vk(self.off)?;
        self.hive.vk_data(self.off, &vk)
    }
    /// Decoded data.
    pub fn data(&self) -> Result<Value> {
        let vk = self.hive.vk(self.off)?;
        Ok(Value::from_raw(vk.kind, self.hive.vk_data(self.off, &vk)?))
    }
}
