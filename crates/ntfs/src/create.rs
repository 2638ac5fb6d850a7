//! File-level writes: create files and directories, write/resize data,
//! delete, rename; DOS 8.3 names as Windows generates them.

use crate::dir::{split_path, I30};
use crate::error::{Error, Result};
use crate::index::{ns, FileName, IEntry, RootHeader, FN_DIRECTORY};
use crate::record::{build_resident, ty, Body, Record, REC_DIRECTORY, REC_IN_USE};
use crate::util::{align, filetime_now, put16, put32, put64, u32le, utf16_units};
use crate::volume::{sys, Inode, Volume};
use vdisk::DiskWrite;

/// FILE_ATTRIBUTE_ARCHIVE.
const ATTR_ARCHIVE: u32 = 0x20;

/// An unused FILE record (fixups not applied, USN 0).
pub(crate) fn blank_record(no: u64, size: usize, seq: u16) -> Vec<u8> {
    let mut b = vec![0u8; size];
    let usa_cnt = size / 512 + 1;
    let first = align(0x30 + 2 * usa_cnt, 8);
    b[0..4].copy_from_slice(b"FILE");
    put16(&mut b, 4, 0x30);
    put16(&mut b, 6, usa_cnt as u16);
    put16(&mut b, 0x10, seq);
    put16(&mut b, 0x14, first as u16);
    put32(&mut b, 0x18, (first + 8) as u32);
    put32(&mut b, 0x1c, size as u32);
    put32(&mut b, 0x2c, no as u32);
    put32(&mut b, first, 0xffff_ffff);
    b
}

/// Characters Windows refuses in names.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && n.encode_utf16().count() <= 255
        && !n
            .chars()
            .any(|c| (c as u32) < 0x20 || "/\\:*?\"<>|".contains(c))
}

/// Is `n` already a valid upper-case 8.3 name?
fn is_dos_name(n: &str) -> bool {
    let ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.chars().all(|c| {
                c.is_ascii_uppercase() || c.is_ascii_digit() || "!#$%&'()-@^_`{}~".contains(c)
            })
    };
    match n.rsplit_once('.') {
        Some((b, e)) => ok(b, 8) && ok(e, 3) && !b.contains('.'),
        None => ok(n, 8),
    }
}

/// Base and extension for a generated 8.3 name ("PROGRA", "TXT").
fn dos_parts(n: &str) -> (String, String) {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != ' ' && *c != '.')
            .map(|c| {
                if c.is_ascii_alphanumeric() || "!#$%&'()-@^_`{}~".contains(c) {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    let trimmed = n.trim_start_matches('.');
    let (b, e) = match trimmed.rsplit_once('.') {
        Some((b, e)) => (clean(b), clean(e)),
        None => (clean(trimmed), String::new()),
    };
    (b, e.chars().take(3).collect())
}

impl<D: DiskWrite> Volume<D> {
    fn parent_and_name(&self, path: &str) -> Result<(u64, String)> {
        let parts = split_path(path);
        let (name, dir) = parts
            .split_last()
            .ok_or_else(|| Error::Invalid(format!("{path:?} names the root directory")))?;
        if !valid_name(name) {
            return Err(Error::Invalid(format!(
                "{name:?} is not a valid NTFS file name"
            )));
        }
        let p = self.lookup(&dir.join("/"))?;
        let pi = self.inode(p)?;
        if !pi.base().is_dir() {
            return Err(Error::NotADirectory(dir.join("/")));
        }
        Ok((p, name.to_string()))
    }

    /// Generate "BASE~N.EXT" unique in the directory.
    fn make_dos_name(&self, dir: &Inode, name: &str) -> Result<Option<String>> {
        if is_dos_name(name) {
            return Ok(None);
        }
        let di = self.dir_index(dir)?;
        // an 8.3 name in lower or mixed case gets its upper-case form as
        // the DOS alias, without a ~N tail (as Windows does)
        let up = name.to_ascii_uppercase();
        if name.is_ascii() && is_dos_name(&up) {
            let u: Vec<u16> = up.encode_utf16().collect();
            if self.find_entry(&di, &u)?.is_none() {
                return Ok(Some(up));
            }
        }
        let (b, e) = dos_parts(name);
        if b.is_empty() {
            return Ok(None);
        }
        for n in 1..1000u32 {
            let suffix = format!("~{n}");
            let keep = 8 - suffix.len();
            let base: String = b.chars().take(keep).collect();
            let cand = if e.is_empty() {
                format!("{base}{suffix}")
            } else {
                format!("{base}{suffix}.{e}")
            };
            let u: Vec<u16> = cand.encode_utf16().collect();
            if self.find_entry(&di, &u)?.is_none() {
                return Ok(Some(cand));
            }
        }
        Ok(None)
    }

    fn touch_dir(&mut self, dir: &mut Inode) -> Result<()> {
        if let Some(si) = dir.value(ty::STANDARD_INFORMATION, &[]).map(|v| v.to_vec()) {
            if si.len() >= 0x20 {
                let mut si = si;
                let now = filetime_now();
                put64(&mut si, 8, now);
                put64(&mut si, 0x10, now);
                self.set_resident(dir, ty::STANDARD_INFORMATION, &[], &si)?;
            }
        }
        Ok(())
    }

    /// Create an empty file (`dir == false`) or directory.
    pub fn create(&mut self, path: &str, is_dir: bool) -> Result<u64> {
        self.prepare()?;
        let (pno, name) = self.parent_and_name(path)?;
        let mut parent = self.inode(pno)?;
        let di = self.dir_index(&parent)?;
        let uname: Vec<u16> = name.encode_utf16().collect();
        if self.find_entry(&di, &uname)?.is_some() {
            return Err(Error::Exists(path.to_string()));
        }
        let dos = self.make_dos_name(&parent, &name)?;
        let no = self.alloc_record()?;
        let rs = self.boot.record_size as usize;
        let seq = {
            let pos = self.record_pos(no)?;
            let mut raw = vec![0u8; rs];
            self.disk.read_at(&mut raw, pos)?;
            let old = if &raw[0..4] == b"FILE" {
                u16::from_le_bytes([raw[0x10], raw[0x11]])
            } else {
                0
            };
            match old.wrapping_add(1) {
                0 => 1,
                s => s,
            }
        };
        let now = filetime_now();
        let psi = parent.value(ty::STANDARD_INFORMATION, &[]).unwrap_or(&[]);
        let sec_id = if psi.len() >= 0x38 {
            u32le(psi, 0x34)
        } else {
            0
        };
        let fattr = if is_dir { 0 } else { ATTR_ARCHIVE };
        let mut si = vec![0u8; if self.info.major >= 3 { 0x48 } else { 0x30 }];
        for o in [0, 8, 0x10, 0x18] {
            put64(&mut si, o, now);
        }
        put32(&mut si, 0x20, fattr);
        if si.len() >= 0x38 {
            put32(&mut si, 0x34, sec_id);
        }
        let mut rec = Record {
            no,
            buf: blank_record(no, rs, seq),
            pos: self.record_pos(no)?,
        };
        rec.insert_attr(build_resident(ty::STANDARD_INFORMATION, &[], &si, false))?;
        let fref = no | u64::from(seq) << 48;
        let mk = |n: &str, nsp: u8| FileName {
            parent: parent.fileref(),
            ctime: now,
            mtime: now,
            mft_time: now,
            atime: now,
            alloc: 0,
            size: 0,
            flags: fattr | if is_dir { FN_DIRECTORY } else { 0 },
            reparse: 0,
            namespace: nsp,
            name: n.encode_utf16().collect(),
        };
        let mut names = vec![mk(
            &name,
            if dos.is_some() {
                ns::WIN32
            } else {
                ns::WIN32_DOS
            },
        )];
        if let Some(d) = &dos {
            names.push(mk(d, ns::DOS));
        }
        for f in &names {
            rec.insert_attr(build_resident(ty::FILE_NAME, &[], &f.to_bytes(), true))?;
        }
        if is_dir {
            let hdr = RootHeader { ..di.hdr.clone() };
            let root = crate::index::build_root(&hdr, &[IEntry::end(None)]);
            rec.insert_attr(build_resident(ty::INDEX_ROOT, &I30, &root, false))?;
        } else {
            rec.insert_attr(build_resident(ty::DATA, &[], &[], false))?;
        }
        // Windows counts every $FILE_NAME (a Win32 name + its DOS alias = 2)
        put16(&mut rec.buf, 0x12, names.len() as u16);
        put16(
            &mut rec.buf,
            0x16,
            REC_IN_USE | if is_dir { REC_DIRECTORY } else { 0 },
        );
        self.flush_bitmaps()?;
        self.write_record(&mut rec)?;
        for f in &names {
            self.index_insert(
                &mut parent,
                IEntry {
                    fileref: fref,
                    key: f.to_bytes(),
                    child: None,
                    end: false,
                },
            )?;
        }
        self.touch_dir(&mut parent)?;
        self.commit(&mut parent)?;
        self.flush_bitmaps()?;
        Ok(no)
    }

    /// Create a directory.
    pub fn mkdir(&mut self, path: &str) -> Result<u64> {
        self.create(path, true)
    }

    /// Create `path` if missing and replace its contents with `data`.
    pub fn write_file(&mut self, path: &str, data: &[u8]) -> Result<()> {
        match self.lookup(path) {
            Ok(_) => {}
            Err(Error::NotFound(_)) => {
                self.create(path, false)?;
            }
            Err(e) => return Err(e),
        }
        self.set_len(path, data.len() as u64)?;
        self.write_at(path, 0, data)
    }

    fn file_inode(&self, path: &str) -> Result<Inode> {
        let no = self.lookup(path)?;
        let ino = self.inode(no)?;
        if ino.base().is_dir() {
            return Err(Error::IsADirectory(path.to_string()));
        }
        if ino.value(ty::REPARSE_POINT, &[]).is_some() {
            return Err(Error::Unsupported(format!(
                "{path} is a reparse point (symlink/junction/dedup): not written"
            )));
        }
        // refuse before changing anything: writing these correctly needs
        // LZNT1 compression, hole filling or EFS keys
        if let Some((_, a)) = ino.find(ty::DATA, &[]) {
            use crate::record::{ATTR_COMPRESSED, ATTR_ENCRYPTED, ATTR_SPARSE};
            let what = if a.flags & ATTR_COMPRESSED != 0 {
                Some("NTFS-compressed")
            } else if a.flags & ATTR_ENCRYPTED != 0 {
                Some("EFS-encrypted")
            } else if a.flags & ATTR_SPARSE != 0 {
                Some("sparse")
            } else {
                None
            };
            if let Some(w) = what {
                return Err(Error::Unsupported(format!(
                    "{path} is {w}: writing such files is not supported (uncompress/unsparse it in Windows, or remove and recreate it)"
                )));
            }
        }
        Ok(ino)
    }

    /// Resize the unnamed data stream of `path`.
    pub fn set_len(&mut self, path: &str, len: u64) -> Result<()> {
        self.prepare()?;
        let mut ino = self.file_inode(path)?;
        let cur = self
            .stream(&ino, ty::DATA, &[])?
            .map(|s| s.size)
            .unwrap_or(0);
        if cur != len {
            self.resize_attr(&mut ino, ty::DATA, &[], len)?;
            self.flush_bitmaps()?;
        }
        self.after_data_change(&mut ino)
    }

    /// Write `data` at `off` of `path`, growing the file when needed.
    pub fn write_at(&mut self, path: &str, off: u64, data: &[u8]) -> Result<()> {
        self.prepare()?;
        let mut ino = self.file_inode(path)?;
        let end = off
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::Invalid("offset overflow".into()))?;
        let cur = self
            .stream(&ino, ty::DATA, &[])?
            .map(|s| s.size)
            .unwrap_or(0);
        if end > cur {
            self.resize_attr(&mut ino, ty::DATA, &[], end)?;
            self.flush_bitmaps()?;
        }
        if !data.is_empty() {
            self.write_attr_bytes(&mut ino, ty::DATA, &[], off, data)?;
        }
        self.after_data_change(&mut ino)
    }

    /// Update times in $STANDARD_INFORMATION and sizes in the parent's
    /// index entries; commit the inode.
    fn after_data_change(&mut self, ino: &mut Inode) -> Result<()> {
        let now = filetime_now();
        if let Some(mut si) = ino.value(ty::STANDARD_INFORMATION, &[]).map(|v| v.to_vec()) {
            if si.len() >= 0x20 {
                put64(&mut si, 8, now);
                put64(&mut si, 0x10, now);
                put64(&mut si, 0x18, now);
                self.set_resident(ino, ty::STANDARD_INFORMATION, &[], &si)?;
            }
        }
        self.commit(ino)?;
        let (size, alloc) = match self.stream(ino, ty::DATA, &[])? {
            Some(s) => (
                s.size,
                if s.resident.is_some() {
                    crate::util::align(s.size as usize, 8) as u64
                } else {
                    s.alloc
                },
            ),
            None => (0, 0),
        };
        let names: Vec<FileName> = ino
            .values(ty::FILE_NAME)
            .filter_map(|v| FileName::parse(v, 0).ok())
            .collect();
        for f in names {
            let mut dir = self.inode(f.parent_no())?;
            self.index_update(&mut dir, &f.name, &|k| {
                k.size = size;
                k.alloc = alloc;
                k.mtime = now;
                k.mft_time = now;
                k.atime = now;
            })?;
            self.commit(&mut dir)?;
        }
        Ok(())
    }

    /// Names of `ino` that belong together with `name` in `parent` (the
    /// Win32 name and its DOS alias).
    fn linked_names(ino: &Inode, parent: u64, name: &[u16]) -> Vec<FileName> {
        let all: Vec<FileName> = ino
            .values(ty::FILE_NAME)
            .filter_map(|v| FileName::parse(v, 0).ok())
            .filter(|f| f.parent_no() == parent)
            .collect();
        let Some(hit) = all.iter().find(|f| f.name == name) else {
            return Vec::new();
        };
        if hit.namespace == ns::WIN32 || hit.namespace == ns::DOS {
            all.into_iter()
                .filter(|f| f.namespace == ns::WIN32 || f.namespace == ns::DOS)
                .collect()
        } else {
            vec![hit.clone()]
        }
    }

    /// Remove `names` ($FILE_NAME attributes) from the inode's base record.
    fn drop_names(&self, ino: &mut Inode, names: &[FileName]) -> Result<()> {
        for f in names {
            let bytes = f.to_bytes();
            let hit = ino.attrs.iter().find(|(r, a)| {
                *r == 0 && a.ty == ty::FILE_NAME && {
                    let v = ino.recs[0].value(a);
                    v.len() >= 0x42
                        && FileName::parse(v, 0)
                            .map(|x| x.name == f.name && x.parent == f.parent)
                            .unwrap_or(false)
                }
            });
            let Some((_, a)) = hit.cloned() else { continue };
            let _ = bytes;
            ino.recs[0].splice(a.offset, a.len, &[])?;
            self.refresh(ino)?;
        }
        Ok(())
    }

    /// Delete a file or an empty directory.
    pub fn remove(&mut self, path: &str) -> Result<()> {
        self.prepare()?;
        let (pno, _) = self.parent_and_name(path)?;
        let mut parent = self.inode(pno)?;
        let di = self.dir_index(&parent)?;
        let last: Vec<u16> = split_path(path)
            .last()
            .map(|s| s.encode_utf16().collect())
            .unwrap_or_default();
        let e = self
            .find_entry(&di, &last)?
            .ok_or_else(|| Error::NotFound(path.to_string()))?;
        let no = e.fileref & 0xffff_ffff_ffff;
        if no < 24 {
            return Err(Error::Refused(format!("{path} is an NTFS system file")));
        }
        let mut ino = self.inode(no)?;
        if ino.base().is_dir() {
            let cdi = self.dir_index(&ino)?;
            let mut n = 0;
            self.walk_index(&cdi, &mut |_| {
                n += 1;
                Ok(())
            })?;
            if n > 0 {
                return Err(Error::NotEmpty(path.to_string()));
            }
        }
        let stored = utf16_units(e.name());
        let names = Self::linked_names(&ino, pno, &stored);
        for f in &names {
            self.index_remove(&mut parent, &f.name)?;
        }
        self.touch_dir(&mut parent)?;
        self.commit(&mut parent)?;
        self.drop_names(&mut ino, &names)?;
        let left = ino
            .values(ty::FILE_NAME)
            .filter_map(|v| FileName::parse(v, 0).ok())
            .filter(|f| f.namespace != ns::DOS)
            .count();
        if left > 0 {
            let links = ino.recs[0]
                .links()
                .saturating_sub(names.len() as u16)
                .max(1);
            put16(&mut ino.recs[0].buf, 0x12, links);
            self.commit(&mut ino)?;
            return Ok(());
        }
        // free clusters of every non-resident attribute, then the records
        let mut runs = Vec::new();
        for (r, a) in &ino.attrs {
            if let Body::NonResident { .. } = a.body {
                let rec = &ino.recs[*r];
                let sv = match a.body {
                    Body::NonResident { start_vcn, .. } => start_vcn,
                    _ => 0,
                };
                runs.extend(crate::runlist::decode(
                    rec.runs_bytes(a),
                    sv,
                    self.total_clusters(),
                    rec.pos,
                )?);
            }
        }
        for i in 0..ino.recs.len() {
            let r = &mut ino.recs[i];
            let flags = r.flags() & !(REC_IN_USE | REC_DIRECTORY);
            put16(&mut r.buf, 0x16, flags);
            let seq = match r.seq().wrapping_add(1) {
                0 => 1,
                s => s,
            };
            put16(&mut r.buf, 0x10, seq);
            put16(&mut r.buf, 0x12, 0);
        }
        self.commit(&mut ino)?;
        self.free_runs(&runs)?;
        let nos: Vec<u64> = ino.recs.iter().map(|r| r.no).collect();
        for n in nos {
            self.free_record_bit(n)?;
        }
        self.flush_bitmaps()
    }

    /// Rename or move `from` to `to` (which must not exist).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.prepare()?;
        let (op, _) = self.parent_and_name(from)?;
        let (np, nname) = self.parent_and_name(to)?;
        let no = self.lookup(from)?;
        if no < 24 {
            return Err(Error::Refused(format!("{from} is an NTFS system file")));
        }
        if self.lookup(to).is_ok() {
            return Err(Error::Exists(to.to_string()));
        }
        // refuse moving a directory below itself
        let mut cur = np;
        for _ in 0..1024 {
            if cur == no {
                return Err(Error::Invalid(format!("cannot move {from} inside itself")));
            }
            if cur == sys::ROOT {
                break;
            }
            let ci = self.inode(cur)?;
            cur = ci
                .values(ty::FILE_NAME)
                .filter_map(|v| FileName::parse(v, 0).ok())
                .map(|f| f.parent_no())
                .next()
                .unwrap_or(sys::ROOT);
        }
        let mut oparent = self.inode(op)?;
        let odi = self.dir_index(&oparent)?;
        let last: Vec<u16> = split_path(from)
            .last()
            .map(|s| s.encode_utf16().collect())
            .unwrap_or_default();
        let e = self
            .find_entry(&odi, &last)?
            .ok_or_else(|| Error::NotFound(from.to_string()))?;
        let mut ino = self.inode(no)?;
        let names = Self::linked_names(&ino, op, &utf16_units(e.name()));
        let template = names
            .first()
            .cloned()
            .ok_or_else(|| Error::NotFound(from.to_string()))?;
        for f in &names {
            self.index_remove(&mut oparent, &f.name)?;
        }
        self.touch_dir(&mut oparent)?;
        self.commit(&mut oparent)?;
        self.drop_names(&mut ino, &names)?;
        let mut nparent = self.inode(np)?;
        let dos = self.make_dos_name(&nparent, &nname)?;
        let now = filetime_now();
        let mk = |n: &str, nsp: u8| FileName {
            parent: nparent.fileref(),
            mft_time: now,
            namespace: nsp,
            name: n.encode_utf16().collect(),
            ..template.clone()
        };
        let mut new_names = vec![mk(
            &nname,
            if dos.is_some() {
                ns::WIN32
            } else {
                ns::WIN32_DOS
            },
        )];
        if let Some(d) = &dos {
            new_names.push(mk(d, ns::DOS));
        }
        for f in &new_names {
            ino.recs[0].insert_attr(build_resident(ty::FILE_NAME, &[], &f.to_bytes(), true))?;
        }
        self.refresh(&mut ino)?;
        let links = (ino.recs[0].links() + new_names.len() as u16)
            .saturating_sub(names.len() as u16)
            .max(1);
        put16(&mut ino.recs[0].buf, 0x12, links);
        self.commit(&mut ino)?;
        let fref = ino.fileref();
        for f in &new_names {
            self.index_insert(
                &mut nparent,
                IEntry {
                    fileref: fref,
                    key: f.to_bytes(),
                    child: None,
                    end: false,
                },
            )?;
        }
        self.touch_dir(&mut nparent)?;
        self.commit(&mut nparent)?;
        self.flush_bitmaps()
    }
}
