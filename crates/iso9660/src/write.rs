//! The writer: a primary hierarchy with level-1 names and a Joliet
//! hierarchy with the real names, sharing one copy of each file's data.
//!
//! Layout: 16 zero sectors (system area), the primary volume descriptor
//! (sector 16), the Joliet supplementary descriptor (17), the terminator
//! (18), the L and M path tables of the primary and then of the Joliet
//! hierarchy, the primary directories, the Joliet directories (both in
//! path-table order), then the file data in primary directory order.

use crate::error::{invalid, io, Result};
use crate::names::{self, cmp_ids};
use crate::record::{both16, both32, FLAG_DIRECTORY};
use crate::time::{dir_date, volume_date, volume_date_unset};
use crate::SECTOR;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const SECTOR_USIZE: usize = SECTOR as usize;
/// ISO 9660 allows eight directory levels, the root being the first.
const MAX_DIR_DEPTH: usize = 7;
/// Application identifier written into both descriptors.
const APPLICATION: &str = "HYPER2KVM";

/// Where a file's content comes from.
#[derive(Debug)]
enum Source {
    Bytes(Vec<u8>),
    Host(PathBuf, u64),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::Host(_, n) => *n,
        }
    }
}

#[derive(Debug)]
enum Node {
    Dir(BTreeMap<String, Node>),
    File(Source),
}

/// Builds a small ISO 9660 + Joliet image.
///
/// ```
/// let mut b = iso9660::IsoBuilder::new("DRIVERS").unwrap();
/// b.set_timestamp(0);
/// b.add_file("viostor/w10/amd64/viostor.inf", b"[Version]\r\n".to_vec()).unwrap();
/// let bytes = b.build().unwrap();
/// let iso = iso9660::Iso::from_reader(bytes.as_slice(), bytes.len() as u64).unwrap();
/// let e = iso.find("VIOSTOR/W10/AMD64/VIOSTOR.INF").unwrap().unwrap();
/// assert_eq!(iso.read(&e, 1 << 20).unwrap(), b"[Version]\r\n");
/// ```
#[derive(Debug)]
pub struct IsoBuilder {
    volume_id: String,
    timestamp: i64,
    root: BTreeMap<String, Node>,
}

impl IsoBuilder {
    /// A builder for a volume called `volume_id` (1 to 32 printable ASCII
    /// characters; the primary descriptor gets it upper-cased with other
    /// characters than A-Z, 0-9 and `_` replaced by `_`, the Joliet one its
    /// first 16 characters unchanged). The timestamp defaults to
    /// `SOURCE_DATE_EPOCH` when set, else the current time.
    pub fn new(volume_id: &str) -> Result<Self> {
        if volume_id.is_empty()
            || volume_id.len() > 32
            || !volume_id.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return Err(invalid(format!(
                "volume id {volume_id:?}: expected 1 to 32 printable ASCII characters"
            )));
        }
        let timestamp = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            });
        Ok(IsoBuilder {
            volume_id: volume_id.to_string(),
            timestamp,
            root: BTreeMap::new(),
        })
    }

    /// Use `secs` since the Unix epoch (UTC) for every date in the image.
    pub fn set_timestamp(&mut self, secs: i64) {
        self.timestamp = secs;
    }

    /// Add a file at `path` (`/`-separated) holding `data`; missing parent
    /// directories are created.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>) -> Result<()> {
        check_size(path, data.len() as u64)?;
        self.insert(path, Node::File(Source::Bytes(data)))
    }

    /// Add a file at `path` whose content is read from `host` when the
    /// image is written (its size is taken now and checked then).
    pub fn add_file_from(&mut self, path: &str, host: &Path) -> Result<()> {
        let len = std::fs::metadata(host)
            .map_err(|e| io(None, &format!("cannot stat {}", host.display()), e))?
            .len();
        check_size(path, len)?;
        self.insert(path, Node::File(Source::Host(host.to_path_buf(), len)))
    }

    /// Add an (empty) directory at `path`; existing directories are fine.
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Node::Dir(BTreeMap::new()))
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, dirs)) = parts.split_last() else {
            return Err(invalid(format!("path {path:?} names no file")));
        };
        for p in &parts {
            names::check_component(p, path)?;
        }
        let is_dir = matches!(node, Node::Dir(_));
        let depth = dirs.len() + usize::from(is_dir);
        if depth > MAX_DIR_DEPTH {
            return Err(invalid(format!(
                "path {path:?} is {depth} directories deep; ISO 9660 allows {MAX_DIR_DEPTH} below the root"
            )));
        }
        let mut cur = &mut self.root;
        for d in dirs {
            let next = cur
                .entry(d.to_string())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            cur = match next {
                Node::Dir(m) => m,
                Node::File(_) => {
                    return Err(invalid(format!("path {path:?}: {d:?} is already a file")))
                }
            };
        }
        match (cur.get(*last), is_dir) {
            (None, _) => {
                cur.insert(last.to_string(), node);
                Ok(())
            }
            (Some(Node::Dir(_)), true) => Ok(()),
            _ => Err(invalid(format!("path {path:?} was already added"))),
        }
    }

    /// The whole image in memory.
    pub fn build(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }

    /// Write the image to `w` sequentially; returns its size in bytes.
    pub fn write_to<W: Write>(&self, w: W) -> Result<u64> {
        let layout = Layout::new(self)?;
        let mut out = Out { w, pos: 0 };
        layout.emit(self, &mut out)?;
        Ok(out.pos)
    }
}

fn check_size(path: &str, len: u64) -> Result<()> {
    if len > u64::from(u32::MAX) {
        return Err(invalid(format!(
            "file {path:?} has {len} bytes; files of 4 GiB or more need multi-extent records, which are not written"
        )));
    }
    Ok(())
}

/// A directory flattened for layout.
struct FlatDir<'a> {
    parent: usize,
    /// Identifiers in each hierarchy (root: empty).
    ids: [Vec<u8>; 2],
    children: Vec<Child<'a>>,
    /// Each hierarchy's children, as indices into `children`, sorted.
    sorted: [Vec<usize>; 2],
    lba: [u32; 2],
    size: [u32; 2],
}

struct Child<'a> {
    ids: [Vec<u8>; 2],
    kind: ChildKind<'a>,
}

enum ChildKind<'a> {
    Dir(usize),
    File { src: &'a Source, lba: u32 },
}

const PRIMARY: usize = 0;
const JOLIET: usize = 1;

struct Layout<'a> {
    dirs: Vec<FlatDir<'a>>,
    /// Each hierarchy's directories in path-table order (breadth first).
    order: [Vec<usize>; 2],
    /// Path table sizes in bytes and their L / M locations.
    pt_size: [u32; 2],
    pt_l: [u32; 2],
    pt_m: [u32; 2],
    total: u32,
}

impl<'a> Layout<'a> {
    fn new(b: &'a IsoBuilder) -> Result<Self> {
        let mut dirs = Vec::new();
        flatten(&b.root, 0, [Vec::new(), Vec::new()], &mut dirs);
        if dirs.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "{} directories; path tables allow at most 65535",
                dirs.len()
            )));
        }
        let mut order = [Vec::new(), Vec::new()];
        for h in [PRIMARY, JOLIET] {
            for d in &mut dirs {
                let mut idx: Vec<usize> = (0..d.children.len()).collect();
                if h == PRIMARY {
                    idx.sort_by(|&x, &y| cmp_ids(&d.children[x].ids[h], &d.children[y].ids[h]));
                } else {
                    let units = |v: &[u8]| -> Vec<u16> {
                        v.chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]))
                            .collect()
                    };
                    idx.sort_by(|&x, &y| {
                        cmp_ids(&units(&d.children[x].ids[h]), &units(&d.children[y].ids[h]))
                    });
                }
                d.sorted[h] = idx;
            }
            let mut q = VecDeque::from([0usize]);
            while let Some(i) = q.pop_front() {
                order[h].push(i);
                for &c in &dirs[i].sorted[h] {
                    if let ChildKind::Dir(sub) = dirs[i].children[c].kind {
                        q.push_back(sub);
                    }
                }
            }
        }
        let mut l = Layout {
            dirs,
            order,
            pt_size: [0; 2],
            pt_l: [0; 2],
            pt_m: [0; 2],
            total: 0,
        };
        l.assign()?;
        Ok(l)
    }

    /// Give every table, directory and file its blocks.
    fn assign(&mut self) -> Result<()> {
        let mut cur: u64 = 19;
        for h in [PRIMARY, JOLIET] {
            let size: usize = self.order[h]
                .iter()
                .map(|&d| pt_record_len(self.dirs[d].ids[h].len().max(1)))
                .sum();
            self.pt_size[h] = size as u32;
            let secs = sectors(size as u64).max(1);
            self.pt_l[h] = cur as u32;
            self.pt_m[h] = (cur + secs) as u32;
            cur += 2 * secs;
        }
        for h in [PRIMARY, JOLIET] {
            for &d in &self.order[h] {
                let dir = &self.dirs[d];
                let lens = std::iter::repeat_n(34, 2).chain(
                    dir.sorted[h]
                        .iter()
                        .map(|&c| record_len(dir.children[c].ids[h].len())),
                );
                let bytes = packed_size(lens);
                self.dirs[d].lba[h] = cur as u32;
                self.dirs[d].size[h] = bytes as u32;
                cur += sectors(bytes);
            }
        }
        for &d in &self.order[PRIMARY].clone() {
            for c in self.dirs[d].sorted[PRIMARY].clone() {
                if let ChildKind::File { src, lba } = &mut self.dirs[d].children[c].kind {
                    *lba = cur as u32;
                    cur += sectors(src.len());
                }
            }
        }
        if cur > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "the image would need {cur} blocks; ISO 9660 addresses at most {}",
                u32::MAX
            )));
        }
        self.total = cur as u32;
        Ok(())
    }

    fn emit<W: Write>(&self, b: &IsoBuilder, out: &mut Out<W>) -> Result<()> {
        out.write(&[0u8; 16 * SECTOR_USIZE])?;
        out.write(&self.descriptor(b, PRIMARY))?;
        out.write(&self.descriptor(b, JOLIET))?;
        let mut term = [0u8; SECTOR_USIZE];
        term[0] = 255;
        term[1..6].copy_from_slice(b"CD001");
        term[6] = 1;
        out.write(&term)?;
        for h in [PRIMARY, JOLIET] {
            for big in [false, true] {
                let mut t = Vec::new();
                let mut number = vec![0u16; self.dirs.len()];
                for (n, &d) in self.order[h].iter().enumerate() {
                    number[d] = n as u16 + 1;
                    let dir = &self.dirs[d];
                    let id: &[u8] = if d == 0 { &[0] } else { &dir.ids[h] };
                    t.push(id.len() as u8);
                    t.push(0);
                    let (lba, parent) = (dir.lba[h], number[dir.parent]);
                    if big {
                        t.extend_from_slice(&lba.to_be_bytes());
                        t.extend_from_slice(&parent.to_be_bytes());
                    } else {
                        t.extend_from_slice(&lba.to_le_bytes());
                        t.extend_from_slice(&parent.to_le_bytes());
                    }
                    t.extend_from_slice(id);
                    if id.len() % 2 == 1 {
                        t.push(0);
                    }
                }
                out.write(&t)?;
                out.pad()?;
            }
        }
        let date = dir_date(b.timestamp);
        for h in [PRIMARY, JOLIET] {
            for &d in &self.order[h] {
                let dir = &self.dirs[d];
                let parent = &self.dirs[dir.parent];
                let mut ext = Vec::with_capacity(dir.size[h] as usize);
                let dot = dir_record(&[0], dir.lba[h], dir.size[h], true, date);
                let dotdot = dir_record(&[1], parent.lba[h], parent.size[h], true, date);
                push_packed(&mut ext, &dot);
                push_packed(&mut ext, &dotdot);
                for &c in &dir.sorted[h] {
                    let child = &dir.children[c];
                    let rec = match &child.kind {
                        ChildKind::Dir(sub) => {
                            let s = &self.dirs[*sub];
                            dir_record(&child.ids[h], s.lba[h], s.size[h], true, date)
                        }
                        ChildKind::File { src, lba } => {
                            dir_record(&child.ids[h], *lba, src.len() as u32, false, date)
                        }
                    };
                    push_packed(&mut ext, &rec);
                }
                ext.resize(dir.size[h] as usize, 0);
                out.write(&ext)?;
            }
        }
        for &d in &self.order[PRIMARY] {
            let dir = &self.dirs[d];
            for &c in &dir.sorted[PRIMARY] {
                if let ChildKind::File { src, .. } = &dir.children[c].kind {
                    write_source(src, out)?;
                    out.pad()?;
                }
            }
        }
        debug_assert_eq!(out.pos, u64::from(self.total) * SECTOR);
        Ok(())
    }

    /// The primary (`h == PRIMARY`) or Joliet supplementary descriptor.
    fn descriptor(&self, b: &IsoBuilder, h: usize) -> Vec<u8> {
        let joliet = h == JOLIET;
        let text = |s: &str, len: usize| -> Vec<u8> {
            if joliet {
                let mut v: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
                v.truncate(len & !1);
                while v.len() + 2 <= len {
                    v.extend_from_slice(&[0, b' ']);
                }
                v.resize(len, 0);
                v
            } else {
                let mut v = s.as_bytes().to_vec();
                v.truncate(len);
                v.resize(len, b' ');
                v
            }
        };
        let mut v = vec![0u8; SECTOR_USIZE];
        v[0] = if joliet { 2 } else { 1 };
        v[1..6].copy_from_slice(b"CD001");
        v[6] = 1;
        v[8..40].copy_from_slice(&text("", 32));
        let vid = if joliet {
            b.volume_id.chars().take(16).collect()
        } else {
            names::volume_id(&b.volume_id)
        };
        v[40..72].copy_from_slice(&text(&vid, 32));
        v[80..88].copy_from_slice(&both32(self.total));
        if joliet {
            v[88..91].copy_from_slice(b"%/E");
        }
        v[120..124].copy_from_slice(&both16(1));
        v[124..128].copy_from_slice(&both16(1));
        v[128..132].copy_from_slice(&both16(SECTOR as u16));
        v[132..140].copy_from_slice(&both32(self.pt_size[h]));
        v[140..144].copy_from_slice(&self.pt_l[h].to_le_bytes());
        v[148..152].copy_from_slice(&self.pt_m[h].to_be_bytes());
        let root = &self.dirs[0];
        let rec = dir_record(&[0], root.lba[h], root.size[h], true, dir_date(b.timestamp));
        v[156..190].copy_from_slice(&rec);
        v[190..318].copy_from_slice(&text("", 128));
        v[318..446].copy_from_slice(&text("", 128));
        v[446..574].copy_from_slice(&text("", 128));
        v[574..702].copy_from_slice(&text(APPLICATION, 128));
        v[702..739].copy_from_slice(&text("", 37));
        v[739..776].copy_from_slice(&text("", 37));
        v[776..813].copy_from_slice(&text("", 37));
        v[813..830].copy_from_slice(&volume_date(b.timestamp));
        v[830..847].copy_from_slice(&volume_date(b.timestamp));
        v[847..864].copy_from_slice(&volume_date_unset());
        v[864..881].copy_from_slice(&volume_date_unset());
        v[881] = 1;
        v
    }
}

/// Flatten the tree breadth-agnostically into `out`; returns the index.
fn flatten<'a>(
    tree: &'a BTreeMap<String, Node>,
    parent: usize,
    ids: [Vec<u8>; 2],
    out: &mut Vec<FlatDir<'a>>,
) -> usize {
    let me = out.len();
    out.push(FlatDir {
        parent: if me == 0 { 0 } else { parent },
        ids,
        children: Vec::new(),
        sorted: [Vec::new(), Vec::new()],
        lba: [0; 2],
        size: [0; 2],
    });
    let list: Vec<(&str, bool)> = tree
        .iter()
        .map(|(k, n)| (k.as_str(), matches!(n, Node::Dir(_))))
        .collect();
    let primary = names::level1_names(&list);
    for ((name, node), pid) in tree.iter().zip(primary) {
        let jid: Vec<u8> = name.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let ids = [pid.into_bytes(), jid];
        let kind = match node {
            Node::Dir(sub) => ChildKind::Dir(flatten(sub, me, ids.clone(), out)),
            Node::File(src) => ChildKind::File { src, lba: 0 },
        };
        out[me].children.push(Child { ids, kind });
    }
    me
}

fn sectors(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR)
}

fn record_len(id_len: usize) -> usize {
    33 + id_len + usize::from(id_len.is_multiple_of(2))
}

fn pt_record_len(id_len: usize) -> usize {
    8 + id_len + id_len % 2
}

/// Bytes taken by records of these lengths when none may cross a sector.
fn packed_size(lens: impl Iterator<Item = usize>) -> u64 {
    let mut pos = 0usize;
    for l in lens {
        if pos % SECTOR_USIZE + l > SECTOR_USIZE {
            pos = pos.next_multiple_of(SECTOR_USIZE);
        }
        pos += l;
    }
    (pos.next_multiple_of(SECTOR_USIZE)) as u64
}

fn push_packed(ext: &mut Vec<u8>, rec: &[u8]) {
    if ext.len() % SECTOR_USIZE + rec.len() > SECTOR_USIZE {
        let n = ext.len().next_multiple_of(SECTOR_USIZE);
        ext.resize(n, 0);
    }
    ext.extend_from_slice(rec);
}

fn dir_record(id: &[u8], lba: u32, size: u32, is_dir: bool, date: [u8; 7]) -> Vec<u8> {
    let len = record_len(id.len());
    let mut r = vec![0u8; len];
    r[0] = len as u8;
    r[2..10].copy_from_slice(&both32(lba));
    r[10..18].copy_from_slice(&both32(size));
    r[18..25].copy_from_slice(&date);
    r[25] = if is_dir { FLAG_DIRECTORY } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = id.len() as u8;
    r[33..33 + id.len()].copy_from_slice(id);
    r
}

fn write_source<W: Write>(src: &Source, out: &mut Out<W>) -> Result<()> {
    match src {
        Source::Bytes(b) => out.write(b),
        Source::Host(path, len) => {
            let f = File::open(path)
                .map_err(|e| io(None, &format!("cannot open {}", path.display()), e))?;
            let mut r = f.take(*len);
            let mut buf = vec![0u8; 256 << 10];
            let mut done = 0u64;
            loop {
                let n = r
                    .read(&mut buf)
                    .map_err(|e| io(None, &format!("reading {}", path.display()), e))?;
                if n == 0 {
                    break;
                }
                out.write(&buf[..n])?;
                done += n as u64;
            }
            if done != *len {
                return Err(invalid(format!(
                    "{} shrank from {len} to {done} bytes while the image was written",
                    path.display()
                )));
            }
            Ok(())
        }
    }
}

/// The output stream and how many bytes went into it.
struct Out<W> {
    w: W,
    pos: u64,
}

impl<W: Write> Out<W> {
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.w
            .write_all(b)
            .map_err(|e| io(Some(self.pos), "writing the image", e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Zero-fill to the next sector boundary.
    fn pad(&mut self) -> Result<()> {
        let n = (self.pos.next_multiple_of(SECTOR) - self.pos) as usize;
        self.write(&vec![0u8; n])
    }
}
