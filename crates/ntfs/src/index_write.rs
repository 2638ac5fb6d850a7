//! Write side of directory indexes: insert, remove and update entries.
//!
//! Strategy: a change that fits the node it lands in is written in place
//! (one INDX block, or the $INDEX_ROOT in the directory's record). When a
//! node would overflow, or a removal would leave an empty non-root node or
//! touch an internal node, the whole directory B+tree is rebuilt bottom-up
//! from its ordered entries: leaves filled to ~75%, separators pushed up a
//! level until a level fits in $INDEX_ROOT. Blocks are reused from VCN 0
//! and $INDEX_ALLOCATION / its $BITMAP grow as needed. The result is
//! exactly what a sequence of node splits yields in shape (a valid,
//! balanced NTFS B+tree), with fewer code paths to get wrong.

use crate::dir::{DirIndex, I30};
use crate::error::{corrupt, Error, Result};
use crate::index::{build_indx, build_root, entries_len, indx_capacity, IEntry};
use crate::record::{build_nonresident, build_resident, protect, ty, Body};
use crate::util::utf16_units;
use crate::volume::{Inode, Volume};
use std::cmp::Ordering;
use vdisk::DiskWrite;

/// Where an entry was found: node VCN (None = root), node entries, index.
type Loc = (Option<u64>, Vec<IEntry>, usize);

impl<D: DiskWrite> Volume<D> {
    fn root_capacity(&self, dir: &Inode) -> Result<usize> {
        let (ri, a) = dir
            .find(ty::INDEX_ROOT, &I30)
            .cloned()
            .ok_or_else(|| Error::NotADirectory(format!("record {}", dir.no)))?;
        let Body::Resident { value_off, .. } = a.body else {
            return Err(corrupt(dir.recs[ri].pos, "$INDEX_ROOT is not resident"));
        };
        let rec = &dir.recs[ri];
        let avail = rec.buf.len() - (rec.bytes_used() - a.len);
        Ok(avail.saturating_sub(value_off - a.offset + 0x20 + 8))
    }

    fn write_block(&mut self, dir: &Inode, di: &DirIndex, vcn: u64, e: &[IEntry]) -> Result<bool> {
        let bs = di.hdr.block_size as usize;
        let Some(mut b) = build_indx(bs, vcn, e) else {
            return Ok(false);
        };
        let s = self
            .stream(dir, ty::INDEX_ALLOCATION, &I30)?
            .ok_or_else(|| corrupt(0, "no $INDEX_ALLOCATION"))?;
        let img = protect(&mut b);
        self.write_runs(&s.runs, vcn << self.vcn_bits(di.hdr.block_size), &img)?;
        Ok(true)
    }

    /// Store a node in place; false when it does not fit.
    fn store_node(
        &mut self,
        dir: &mut Inode,
        di: &DirIndex,
        vcn: Option<u64>,
        e: &[IEntry],
    ) -> Result<bool> {
        match vcn {
            None => {
                if entries_len(e) > self.root_capacity(dir)? {
                    return Ok(false);
                }
                let v = build_root(&di.hdr, e);
                match self.set_resident(dir, ty::INDEX_ROOT, &I30, &v) {
                    Ok(()) => Ok(true),
                    Err(Error::NoSpace(_)) => Ok(false),
                    Err(x) => Err(x),
                }
            }
            Some(v) => {
                if entries_len(e) > indx_capacity(di.hdr.block_size as usize) {
                    return Ok(false);
                }
                self.write_block(dir, di, v, e)
            }
        }
    }

    /// Find the entry with exactly this name (full collation).
    fn locate(&self, di: &DirIndex, name: &[u16]) -> Result<Option<Loc>> {
        let mut node = di.root.clone();
        let mut vcn = None;
        for _ in 0..33 {
            let mut next = None;
            for (i, x) in node.iter().enumerate() {
                if x.end {
                    next = x.child;
                    break;
                }
                match self.upcase.collate(name, &utf16_units(x.name())) {
                    Ordering::Equal => return Ok(Some((vcn, node, i))),
                    Ordering::Less => {
                        next = x.child;
                        break;
                    }
                    Ordering::Greater => {}
                }
            }
            match next {
                None => return Ok(None),
                Some(c) => {
                    vcn = Some(c);
                    node = self.index_node(di, c)?;
                }
            }
        }
        Err(corrupt(0, "directory index deeper than 32 levels"))
    }

    fn collect(&self, di: &DirIndex) -> Result<Vec<IEntry>> {
        let mut all = Vec::new();
        self.walk_index(di, &mut |e| {
            let mut x = e.clone();
            x.child = None;
            all.push(x);
            Ok(())
        })?;
        Ok(all)
    }

    /// Insert an entry into a directory index (the caller commits `dir`).
    pub(crate) fn index_insert(&mut self, dir: &mut Inode, e: IEntry) -> Result<()> {
        let di = self.dir_index(dir)?;
        let name = utf16_units(e.name());
        let mut node = di.root.clone();
        let mut vcn = None;
        for _ in 0..33 {
            let mut pos = node.len() - 1;
            for (i, x) in node.iter().enumerate() {
                if x.end {
                    pos = i;
                    break;
                }
                match self.upcase.collate(&name, &utf16_units(x.name())) {
                    Ordering::Equal => return Err(Error::Exists(String::from_utf16_lossy(&name))),
                    Ordering::Less => {
                        pos = i;
                        break;
                    }
                    Ordering::Greater => {}
                }
            }
            if let Some(c) = node[pos].child {
                vcn = Some(c);
                node = self.index_node(&di, c)?;
                continue;
            }
            node.insert(pos, e.clone());
            if self.store_node(dir, &di, vcn, &node)? {
                return Ok(());
            }
            let mut all = self.collect(&di)?;
            let at = all.partition_point(|x| {
                self.upcase.collate(&utf16_units(x.name()), &name) == Ordering::Less
            });
            all.insert(at, e);
            return self.rebuild(dir, &di, all);
        }
        Err(corrupt(0, "directory index deeper than 32 levels"))
    }

    /// Remove the entry with exactly this name.
    pub(crate) fn index_remove(&mut self, dir: &mut Inode, name: &[u16]) -> Result<()> {
        let di = self.dir_index(dir)?;
        let (vcn, mut node, i) = self
            .locate(&di, name)?
            .ok_or_else(|| Error::NotFound(String::from_utf16_lossy(name)))?;
        let real = node.iter().filter(|x| !x.end).count();
        if node[i].child.is_none() && (vcn.is_none() || real > 1) {
            node.remove(i);
            if self.store_node(dir, &di, vcn, &node)? {
                return Ok(());
            }
        }
        let mut all = self.collect(&di)?;
        all.retain(|x| utf16_units(x.name()) != name);
        self.rebuild(dir, &di, all)
    }

    /// Update the key of the entry with exactly this name in place.
    pub(crate) fn index_update(
        &mut self,
        dir: &mut Inode,
        name: &[u16],
        f: &dyn Fn(&mut crate::index::FileName),
    ) -> Result<()> {
        let di = self.dir_index(dir)?;
        let Some((vcn, mut node, i)) = self.locate(&di, name)? else {
            return Ok(());
        };
        let mut fname = node[i].file_name()?;
        f(&mut fname);
        node[i].key = fname.to_bytes();
        if !self.store_node(dir, &di, vcn, &node)? {
            return Err(corrupt(0, "index entry grew during an in-place update"));
        }
        Ok(())
    }

    /// Zero index blocks that were in use before a rebuild and are free
    /// after it, so that no stale (deleted) names stay readable in them
    /// (forensic tools such as sleuthkit report such names as live).
    fn wipe_freed_blocks(&mut self, dir: &Inode, di: &DirIndex, keep: usize) -> Result<()> {
        let Some(s) = self.stream(dir, ty::INDEX_ALLOCATION, &I30)? else {
            return Ok(());
        };
        let bs = di.hdr.block_size as usize;
        let zero = vec![0u8; bs];
        for i in keep..di.bitmap.len() * 8 {
            if di.bitmap[i / 8] & (1 << (i % 8)) != 0 && ((i + 1) * bs) as u64 <= s.size {
                self.write_runs(&s.runs, (i * bs) as u64, &zero)?;
            }
        }
        Ok(())
    }

    /// Rebuild the whole directory B+tree from ordered entries.
    fn rebuild(&mut self, dir: &mut Inode, di: &DirIndex, items: Vec<IEntry>) -> Result<()> {
        let bs = di.hdr.block_size as usize;
        let end_len = 0x18;
        if entries_len(&items) + end_len <= self.root_capacity(dir)? {
            let mut root = items;
            root.push(IEntry::end(None));
            self.set_resident(dir, ty::INDEX_ROOT, &I30, &build_root(&di.hdr, &root))?;
            if let Some(s) = self.stream(dir, ty::BITMAP, &I30)? {
                let z = vec![0u8; s.size as usize];
                self.write_attr_bytes(dir, ty::BITMAP, &I30, 0, &z)?;
            }
            self.wipe_freed_blocks(dir, di, 0)?;
            return Ok(());
        }
        // shrink the root first so the record has room for the new
        // attributes and a longer runlist (nothing is written until the
        // caller commits the record)
        self.set_resident(
            dir,
            ty::INDEX_ROOT,
            &I30,
            &build_root(&di.hdr, &[IEntry::end(None)]),
        )?;
        // make sure $INDEX_ALLOCATION and $BITMAP exist
        if dir.find(ty::INDEX_ALLOCATION, &I30).is_none() {
            let a = build_nonresident(ty::INDEX_ALLOCATION, &I30, &[0], u64::MAX, 0, 0, 0);
            dir.recs[0].insert_attr(a)?;
            self.refresh(dir)?;
        }
        if dir.find(ty::BITMAP, &I30).is_none() {
            let a = build_resident(ty::BITMAP, &I30, &[0u8; 8], false);
            dir.recs[0].insert_attr(a)?;
            self.refresh(dir)?;
        }
        let cap = indx_capacity(bs);
        let target = (cap * 3 / 4)
            .max(cap.saturating_sub(1300))
            .min(cap.saturating_sub(700));
        if target < 1200 {
            return Err(Error::Unsupported(format!(
                "index block size {bs} too small to rebuild"
            )));
        }
        let root_cap = self.root_capacity(dir)?.saturating_sub(64);
        let mut nodes: Vec<Vec<IEntry>> = Vec::new();
        let mut level = items;
        let mut tail: Option<u64> = None;
        let vbits = self.vcn_bits(di.hdr.block_size);
        let vcn_of = |i: usize| ((i * bs) as u64) >> vbits;
        loop {
            let n = level.len();
            let mut seps = Vec::new();
            let mut cur: Vec<IEntry> = Vec::new();
            let mut cur_len = 0;
            for (i, mut e) in level.into_iter().enumerate() {
                let el = e.disk_len();
                if !cur.is_empty() && cur_len + el + end_len > target && i + 1 < n {
                    let id = nodes.len();
                    cur.push(IEntry::end(e.child));
                    nodes.push(std::mem::take(&mut cur));
                    e.child = Some(vcn_of(id));
                    seps.push(e);
                    cur_len = 0;
                    continue;
                }
                cur_len += el;
                cur.push(e);
            }
            let id = nodes.len();
            cur.push(IEntry::end(tail));
            nodes.push(cur);
            tail = Some(vcn_of(id));
            level = seps;
            if entries_len(&level) + end_len <= root_cap {
                break;
            }
            if nodes.len() > 1 << 20 {
                return Err(Error::Unsupported("directory too large to rebuild".into()));
            }
        }
        let nb = nodes.len();
        let cur_alloc = self
            .stream(dir, ty::INDEX_ALLOCATION, &I30)?
            .map(|s| s.size)
            .unwrap_or(0);
        if cur_alloc < (nb * bs) as u64 {
            self.resize_attr(dir, ty::INDEX_ALLOCATION, &I30, (nb * bs) as u64)?;
        }
        let alloc_blocks = (self
            .stream(dir, ty::INDEX_ALLOCATION, &I30)?
            .map(|s| s.size)
            .unwrap_or(0) as usize)
            / bs;
        let bytes = crate::util::align(alloc_blocks.div_ceil(8), 8);
        let cur_bm = self
            .stream(dir, ty::BITMAP, &I30)?
            .map(|s| s.size)
            .unwrap_or(0);
        if cur_bm != bytes as u64 {
            self.resize_attr(dir, ty::BITMAP, &I30, bytes as u64)?;
        }
        let mut bm = vec![0u8; bytes];
        for i in 0..nb {
            bm[i / 8] |= 1 << (i % 8);
        }
        self.write_attr_bytes(dir, ty::BITMAP, &I30, 0, &bm)?;
        self.wipe_freed_blocks(dir, di, nb)?;
        let di2 = DirIndex {
            hdr: di.hdr.clone(),
            root: Vec::new(),
            alloc: None,
            bitmap: Vec::new(),
        };
        for (i, node) in nodes.iter().enumerate() {
            if !self.write_block(dir, &di2, vcn_of(i), node)? {
                return Err(corrupt(0, "rebuilt index node does not fit its block"));
            }
        }
        let mut root = level;
        root.push(IEntry::end(tail));
        self.set_resident(dir, ty::INDEX_ROOT, &I30, &build_root(&di.hdr, &root))
    }
}
