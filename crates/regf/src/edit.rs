//! Editing in place: keys, values, subkey lists, big data, new hives.

use std::collections::HashSet;

use crate::base::{self, le16, le32, put16, put32, put64, BASE_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::hive::{Hive, HBIN_HEADER};
use crate::names;
use crate::read::{ListKind, Nk, BIG_DATA_SEGMENT, KEY_COMP_NAME, NONE, VALUE_COMP_NAME};
use crate::security;
use crate::value::Value;

/// Most entries we put in one leaf list before splitting into an `ri`.
pub(crate) const MAX_LEAF: usize = 512;
/// Longest key name Windows accepts (characters).
const MAX_KEY_NAME: usize = 255;
/// Longest value name Windows accepts (characters).
const MAX_VALUE_NAME: usize = 16383;

/// nk field offsets (within the cell payload).
mod nkf {
    pub const FLAGS: usize = 2;
    pub const TIME: usize = 4;
    pub const PARENT: usize = 16;
    pub const SUBKEYS: usize = 20;
    pub const LIST: usize = 28;
    pub const VOL_LIST: usize = 32;
    pub const VALUES: usize = 36;
    pub const VALUE_LIST: usize = 40;
    pub const SK: usize = 44;
    pub const CLASS: usize = 48;
    pub const MAX_NAME: usize = 52;
    pub const MAX_VNAME: usize = 60;
    pub const MAX_VDATA: usize = 64;
    pub const NAME_LEN: usize = 72;
}

impl Hive {
    /// A new, empty hive whose root key is called `root_name` (format 1.5,
    /// one 4096-byte bin, a default security descriptor).
    pub fn new_empty(root_name: &str) -> Result<Hive> {
        let name = names::units(root_name);
        if name.len() > MAX_KEY_NAME {
            return Err(Error::invalid("root key name longer than 255 characters"));
        }
        let now = base::filetime_now();
        let mut b = vec![0u8; BASE_SIZE];
        b[0..4].copy_from_slice(b"regf");
        put32(&mut b, 4, 1);
        put32(&mut b, 8, 1);
        put64(&mut b, 12, now);
        put32(&mut b, 20, 1);
        put32(&mut b, 24, 5);
        put32(&mut b, 32, 1);
        put32(&mut b, 36, HBIN_HEADER);
        put32(&mut b, 40, 4096);
        put32(&mut b, 44, 1);
        for (i, u) in name.iter().take(31).enumerate() {
            put16(&mut b, 48 + i * 2, *u);
        }
        let c = base::checksum(&b);
        put32(&mut b, 508, c);
        let mut d = vec![0u8; 4096];
        d[0..4].copy_from_slice(b"hbin");
        put32(&mut d, 8, 4096);
        put64(&mut d, 20, now);
        put32(&mut d, HBIN_HEADER as usize, 4096 - HBIN_HEADER);
        // Temporary root: a placeholder nk is needed for open; build by hand.
        let mut bytes = b;
        bytes.extend(d);
        // Allocate the root as the very first cell so the root offset is 0x20.
        let nk_len = 76 + encode_len(&name);
        let nk_cell = round8(nk_len + 4);
        put32(&mut bytes, BASE_SIZE + 32, (-(nk_cell as i32)) as u32);
        put32(
            &mut bytes,
            BASE_SIZE + 32 + nk_cell,
            4096 - 32 - nk_cell as u32,
        );
        bytes[BASE_SIZE + 36..BASE_SIZE + 38].copy_from_slice(b"nk");
        let mut h = Hive::open_unchecked(bytes)?;
        let sk = h.sk_new(&security::default_descriptor(), None)?;
        put32(h.cell_mut(sk)?, 12, 1);
        h.init_nk(HBIN_HEADER, &name, 0, sk, 0x2C)?;
        h.modified = true;
        Ok(h)
    }

    fn init_nk(&mut self, off: u32, name: &[u16], parent: u32, sk: u32, flags: u16) -> Result<()> {
        let (nb, comp) = names::encode(name);
        let now = base::filetime_now();
        let c = self.cell_mut(off)?;
        c.fill(0);
        c[0..2].copy_from_slice(b"nk");
        put16(c, nkf::FLAGS, flags | if comp { KEY_COMP_NAME } else { 0 });
        put64(c, nkf::TIME, now);
        put32(c, nkf::PARENT, parent);
        put32(c, nkf::LIST, NONE);
        put32(c, nkf::VOL_LIST, NONE);
        put32(c, nkf::VALUE_LIST, NONE);
        put32(c, nkf::SK, sk);
        put32(c, nkf::CLASS, NONE);
        put16(c, nkf::NAME_LEN, nb.len() as u16);
        c[76..76 + nb.len()].copy_from_slice(&nb);
        Ok(())
    }

    fn touch(&mut self, off: u32) -> Result<()> {
        put64(self.cell_mut(off)?, nkf::TIME, base::filetime_now());
        Ok(())
    }

    fn bump_max(&mut self, off: u32, field: usize, v: u32, low16: bool) -> Result<()> {
        let c = self.cell_mut(off)?;
        let cur = le32(c, field);
        if low16 {
            let v = v.min(0xFFFF);
            if cur & 0xFFFF < v {
                put32(c, field, (cur & 0xFFFF_0000) | v);
            }
        } else if cur < v {
            put32(c, field, v);
        }
        Ok(())
    }

    /// Create the key at `path` and any missing parents (no error if it
    /// exists). New keys share their parent's security descriptor.
    pub fn create_key(&mut self, path: &str) -> Result<()> {
        self.create_key_off(path).map(|_| ())
    }

    pub(crate) fn create_key_off(&mut self, path: &str) -> Result<u32> {
        let mut off = self.root_offset();
        for comp in names::split_path(path) {
            let name = names::units(comp);
            let nk = self.nk(off)?;
            off = match self.find_subkey(&nk, &name)? {
                Some(o) => o,
                None => self.add_subkey(off, &nk, &name)?,
            };
        }
        Ok(off)
    }

    fn add_subkey(&mut self, parent: u32, pnk: &Nk, name: &[u16]) -> Result<u32> {
        if name.is_empty() || name.len() > MAX_KEY_NAME {
            return Err(Error::invalid(format!(
                "key name '{}' must be 1..=255 characters",
                names::to_string(name)
            )));
        }
        let off = self.alloc(76 + encode_len(name))?;
        self.init_nk(off, name, parent, pnk.sk, 0)?;
        self.sk_ref(pnk.sk, 1)?;
        // Insert into the parent's sorted list.
        let (kind, mut entries) = self.list_entries(pnk)?;
        let pos = self.search_pos(&entries, name)?;
        entries.insert(pos, (off, aux_for(kind, name)));
        self.store_list(parent, pnk, kind, &entries)?;
        let p = self.cell_mut(parent)?;
        put32(p, nkf::SUBKEYS, pnk.subkey_count + 1);
        self.bump_max(parent, nkf::MAX_NAME, name.len() as u32 * 2, true)?;
        self.touch(parent)?;
        Ok(off)
    }

    /// Position of `name` in a sorted entry list (binary search).
    fn search_pos(&self, entries: &[(u32, u32)], name: &[u16]) -> Result<usize> {
        let (mut lo, mut hi) = (0, entries.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let n = self.nk(entries[mid].0)?.name;
            match names::cmp(&n, name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Err(Error::new(ErrorKind::InvalidInput, "duplicate key name"))
                }
            }
        }
        Ok(lo)
    }

    /// Entries (nk offset, hash/hint) of a key's subkey list and the leaf
    /// kind to use when rewriting it.
    fn list_entries(&self, nk: &Nk) -> Result<(ListKind, Vec<(u32, u32)>)> {
        let default = match self.minor_version() {
            0..=2 => ListKind::Li,
            3 | 4 => ListKind::Lf,
            _ => ListKind::Lh,
        };
        if nk.subkey_count == 0 {
            return Ok((default, Vec::new()));
        }
        let c = self.cell(nk.subkeys)?;
        let leaves: Vec<u32> = if &c[0..2.min(c.len())] == b"ri" {
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
        };
        let mut kind = None;
        let mut out = Vec::new();
        for l in leaves {
            let (k, e) = self.leaf(l)?;
            kind.get_or_insert(k);
            if Some(k) != kind {
                // Mixed leaf kinds: recompute all aux values for the first kind.
                for (o, _) in e {
                    out.push((o, u32::MAX));
                }
            } else {
                out.extend(e);
            }
        }
        let kind = kind.unwrap_or(default);
        for e in out.iter_mut() {
            if e.1 == u32::MAX || kind == ListKind::Li {
                e.1 = aux_for(kind, &self.nk(e.0)?.name);
            }
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
        Ok((kind, out))
    }

    /// Rewrite a key's subkey list with `entries` (sorted); in place when
    /// the old single leaf is big enough.
    fn store_list(
        &mut self,
        nk_off: u32,
        nk: &Nk,
        kind: ListKind,
        entries: &[(u32, u32)],
    ) -> Result<()> {
        let step = if kind == ListKind::Li { 4 } else { 8 };
        let old = if nk.subkey_count > 0 {
            Some(nk.subkeys)
        } else {
            None
        };
        if let Some(o) = old {
            let c = self.cell(o)?;
            let sig = leaf_sig(kind);
            if entries.len() <= MAX_LEAF
                && &c[0..2] == sig
                && c.len() >= 4 + entries.len() * step
                && !entries.is_empty()
            {
                let c = self.cell_mut(o)?;
                write_leaf(c, kind, entries);
                return Ok(());
            }
            self.free_list(o)?;
        }
        let new = if entries.is_empty() {
            NONE
        } else if entries.len() <= MAX_LEAF {
            // Leave room to grow in place.
            let cap = (entries.len() + entries.len() / 4 + 1).min(MAX_LEAF);
            let l = self.alloc(4 + cap * step)?;
            write_leaf(self.cell_mut(l)?, kind, entries);
            l
        } else {
            let chunks: Vec<&[(u32, u32)]> = entries.chunks(MAX_LEAF / 2).collect();
            let mut leaves = Vec::new();
            for ch in &chunks {
                let l = self.alloc(4 + ch.len() * step)?;
                write_leaf(self.cell_mut(l)?, kind, ch);
                leaves.push(l);
            }
            let ri = self.alloc(4 + leaves.len() * 4)?;
            let c = self.cell_mut(ri)?;
            c[0..2].copy_from_slice(b"ri");
            put16(c, 2, leaves.len() as u16);
            for (i, l) in leaves.iter().enumerate() {
                put32(c, 4 + i * 4, *l);
            }
            ri
        };
        put32(self.cell_mut(nk_off)?, nkf::LIST, new);
        Ok(())
    }

    fn free_list(&mut self, off: u32) -> Result<()> {
        let c = self.cell(off)?;
        if &c[0..2] == b"ri" {
            let n = le16(c, 2) as usize;
            let leaves: Vec<u32> = (0..n)
                .filter(|i| 4 + i * 4 + 4 <= c.len())
                .map(|i| le32(c, 4 + i * 4))
                .collect();
            for l in leaves {
                self.free(l);
            }
        }
        self.free(off);
        Ok(())
    }

    /// Delete the key at `path`. With `recursive`, its whole subtree goes;
    /// otherwise a key with subkeys is refused. The root cannot be deleted.
    pub fn delete_key(&mut self, path: &str, recursive: bool) -> Result<()> {
        let comps = names::split_path(path);
        let Some((last, parents)) = comps.split_last() else {
            return Err(Error::invalid("the root key cannot be deleted"));
        };
        let parent = self
            .resolve(&parents.join("\\"))?
            .ok_or_else(|| Error::not_found(format!("key {path}")))?;
        let pnk = self.nk(parent)?;
        let name = names::units(last);
        let off = self
            .find_subkey(&pnk, &name)?
            .ok_or_else(|| Error::not_found(format!("key {path}")))?;
        let nk = self.nk(off)?;
        if nk.subkey_count > 0 && !recursive {
            return Err(Error::invalid(format!(
                "key {path} has subkeys; delete recursively"
            )));
        }
        // Unlink from the parent first, then free the subtree.
        let (kind, mut entries) = self.list_entries(&pnk)?;
        entries.retain(|e| e.0 != off);
        self.store_list(parent, &pnk, kind, &entries)?;
        put32(self.cell_mut(parent)?, nkf::SUBKEYS, entries.len() as u32);
        self.touch(parent)?;
        self.free_subtree(off)
    }

    fn free_subtree(&mut self, top: u32) -> Result<()> {
        let mut stack = vec![top];
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        while let Some(o) = stack.pop() {
            if !seen.insert(o) {
                return Err(Error::corrupt_cell(
                    o,
                    "key reachable twice (cycle in subkey lists)",
                ));
            }
            let nk = self.nk(o)?;
            stack.extend(self.subkey_offsets(&nk)?);
            order.push(o);
        }
        for o in order.into_iter().rev() {
            let nk = self.nk(o)?;
            for v in self.value_offsets(&nk)? {
                self.free_value(v)?;
            }
            if nk.value_count > 0 {
                self.free(nk.values);
            }
            if nk.subkey_count > 0 {
                self.free_list(nk.subkeys)?;
            }
            if nk.class != NONE && nk.class_len > 0 {
                self.free(nk.class);
            }
            self.sk_ref(nk.sk, -1)?;
            self.free(o);
        }
        Ok(())
    }

    fn free_value(&mut self, vk_off: u32) -> Result<()> {
        let vk = self.vk(vk_off)?;
        self.free_data(vk.size_raw, vk.data_off)?;
        self.free(vk_off);
        Ok(())
    }

    fn free_data(&mut self, size_raw: u32, off: u32) -> Result<()> {
        if size_raw & 0x8000_0000 != 0 || size_raw == 0 {
            return Ok(());
        }
        let c = self.cell(off)?;
        if size_raw as usize > BIG_DATA_SEGMENT
            && self.minor_version() >= 4
            && c.len() >= 8
            && &c[0..2] == b"db"
        {
            let (list, segs) = self.db_segments(off)?;
            for s in segs {
                self.free(s);
            }
            self.free(list);
        }
        self.free(off);
        Ok(())
    }

    /// Store data; returns (size field, offset field) for the vk.
    fn store_data(&mut self, data: &[u8]) -> Result<(u32, u32)> {
        if data.len() > 0x7FFF_FFF0 {
            return Err(Error::new(ErrorKind::Limit, "value data too large"));
        }
        if data.len() <= 4 {
            let mut b = [0u8; 4];
            b[..data.len()].copy_from_slice(data);
            return Ok((data.len() as u32 | 0x8000_0000, u32::from_le_bytes(b)));
        }
        if data.len() > BIG_DATA_SEGMENT && self.minor_version() >= 4 {
            let segs: Vec<&[u8]> = data.chunks(BIG_DATA_SEGMENT).collect();
            if segs.len() > 0xFFFF {
                return Err(Error::new(
                    ErrorKind::Limit,
                    "value data too large for big data",
                ));
            }
            let mut offs = Vec::new();
            for s in &segs {
                // Windows allocates every segment at full size, the last
                // one too (and hivex relies on it).
                let o = self.alloc(BIG_DATA_SEGMENT)?;
                self.cell_mut(o)?[..s.len()].copy_from_slice(s);
                offs.push(o);
            }
            let list = self.alloc(offs.len() * 4)?;
            let c = self.cell_mut(list)?;
            for (i, o) in offs.iter().enumerate() {
                put32(c, i * 4, *o);
            }
            let db = self.alloc(12)?;
            let c = self.cell_mut(db)?;
            c[0..2].copy_from_slice(b"db");
            put16(c, 2, offs.len() as u16);
            put32(c, 4, list);
            return Ok((data.len() as u32, db));
        }
        let o = self.alloc(data.len())?;
        self.cell_mut(o)?[..data.len()].copy_from_slice(data);
        Ok((data.len() as u32, o))
    }

    /// Set a value (created or replaced) from a decoded [`Value`]. `name`
    /// `""` is the key's default value. The key must exist.
    pub fn set_value(&mut self, path: &str, name: &str, value: &Value) -> Result<()> {
        self.set_value_raw(path, name, value.kind(), &value.to_bytes())
    }

    /// Set a value from its type number and exact bytes.
    pub fn set_value_raw(&mut self, path: &str, name: &str, kind: u32, data: &[u8]) -> Result<()> {
        let key = self
            .resolve(path)?
            .ok_or_else(|| Error::not_found(format!("key {path}")))?;
        let uname = names::units(name);
        if uname.len() > MAX_VALUE_NAME {
            return Err(Error::invalid("value name longer than 16383 characters"));
        }
        let nk = self.nk(key)?;
        let vals = self.value_offsets(&nk)?;
        let mut existing = None;
        for v in &vals {
            if names::eq(&self.vk(*v)?.name, &uname) {
                existing = Some(*v);
                break;
            }
        }
        let vk_off = match existing {
            Some(v) => {
                let vk = self.vk(v)?;
                self.free_data(vk.size_raw, vk.data_off)?;
                v
            }
            None => {
                let (nb, comp) = names::encode(&uname);
                let v = self.alloc(20 + nb.len())?;
                let c = self.cell_mut(v)?;
                c[0..2].copy_from_slice(b"vk");
                put16(c, 2, nb.len() as u16);
                put16(
                    c,
                    16,
                    if comp && !nb.is_empty() {
                        VALUE_COMP_NAME
                    } else {
                        0
                    },
                );
                c[20..20 + nb.len()].copy_from_slice(&nb);
                self.append_value(key, &nk, v)?;
                v
            }
        };
        let (size, off) = self.store_data(data)?;
        let c = self.cell_mut(vk_off)?;
        put32(c, 4, size);
        put32(c, 8, off);
        put32(c, 12, kind);
        self.bump_max(key, nkf::MAX_VNAME, uname.len() as u32 * 2, false)?;
        self.bump_max(key, nkf::MAX_VDATA, data.len() as u32, false)?;
        self.touch(key)
    }

    fn append_value(&mut self, key: u32, nk: &Nk, vk: u32) -> Result<()> {
        let n = nk.value_count as usize;
        let list = if n == 0 {
            let l = self.alloc(4 * 4)?;
            put32(self.cell_mut(key)?, nkf::VALUE_LIST, l);
            l
        } else if self.cell(nk.values)?.len() >= (n + 1) * 4 {
            nk.values
        } else {
            let old: Vec<u8> = self.cell(nk.values)?[..n * 4].to_vec();
            let l = self.alloc((n + 1 + n / 2) * 4)?;
            self.cell_mut(l)?[..n * 4].copy_from_slice(&old);
            self.free(nk.values);
            put32(self.cell_mut(key)?, nkf::VALUE_LIST, l);
            l
        };
        put32(self.cell_mut(list)?, n * 4, vk);
        put32(self.cell_mut(key)?, nkf::VALUES, n as u32 + 1);
        Ok(())
    }

    /// Delete a value (`""` = default value).
    pub fn delete_value(&mut self, path: &str, name: &str) -> Result<()> {
        let key = self
            .resolve(path)?
            .ok_or_else(|| Error::not_found(format!("key {path}")))?;
        let nk = self.nk(key)?;
        let uname = names::units(name);
        let vals = self.value_offsets(&nk)?;
        let mut idx = None;
        for (i, v) in vals.iter().enumerate() {
            if names::eq(&self.vk(*v)?.name, &uname) {
                idx = Some(i);
                break;
            }
        }
        let i = idx.ok_or_else(|| Error::not_found(format!("value {path}\\{name}")))?;
        self.free_value(vals[i])?;
        let n = vals.len();
        if n == 1 {
            self.free(nk.values);
            put32(self.cell_mut(key)?, nkf::VALUE_LIST, NONE);
        } else {
            let c = self.cell_mut(nk.values)?;
            c.copy_within((i + 1) * 4..n * 4, i * 4);
            put32(c, (n - 1) * 4, 0);
        }
        put32(self.cell_mut(key)?, nkf::VALUES, n as u32 - 1);
        self.touch(key)
    }
}

fn round8(n: usize) -> usize {
    (n + 7) & !7
}

fn encode_len(name: &[u16]) -> usize {
    names::encode(name).0.len()
}

fn leaf_sig(kind: ListKind) -> &'static [u8; 2] {
    match kind {
        ListKind::Li => b"li",
        ListKind::Lf => b"lf",
        ListKind::Lh => b"lh",
    }
}

pub(crate) fn aux_for(kind: ListKind, name: &[u16]) -> u32 {
    match kind {
        ListKind::Li => 0,
        ListKind::Lf => u32::from_le_bytes(names::lf_hint(name)),
        ListKind::Lh => names::lh_hash(name),
    }
}

fn write_leaf(c: &mut [u8], kind: ListKind, entries: &[(u32, u32)]) {
    c[0..2].copy_from_slice(leaf_sig(kind));
    put16(c, 2, entries.len() as u16);
    let step = if kind == ListKind::Li { 4 } else { 8 };
    for (i, (o, a)) in entries.iter().enumerate() {
        put32(c, 4 + i * step, *o);
        if step == 8 {
            put32(c, 8 + i * step, *a);
        }
    }
}
