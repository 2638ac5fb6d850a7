//! The VMDK disk: extents concatenated in descriptor order, unallocated
//! sparse grains falling through to the parent of a snapshot delta.

use super::descriptor::{Access, Descriptor, ExtentLine, ExtentType, NO_PARENT_CID};
use super::header::{SparseHeader, COWD_MAGIC, KDMV_MAGIC};
use super::sparse::{Grain, SparseExtent, MAX_CAPACITY_BYTES};
use super::{embedded_descriptor, read_descriptor, text_descriptor};
use crate::disk::{
    check_range, extent_backing, read_backing, Disk, Extent, ExtentKind, GeometryHints, LayerInfo,
};
use crate::error::{Error, ErrorKind, Result};
use crate::file::{le, ImageFile};
use crate::gate::OpenCtx;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug)]
enum Backing {
    Zero,
    NoAccess,
    Flat { file: Arc<ImageFile>, start: u64 },
    Sparse(Box<SparseExtent>),
}

#[derive(Debug)]
struct VExtent {
    /// Start in the virtual disk, bytes.
    start: u64,
    /// Length, bytes.
    len: u64,
    backing: Backing,
    /// Descriptor line (0 for a bare sparse file), for messages.
    line: usize,
}

/// An open VMDK image (one layer of a chain, plus its parent).
#[derive(Debug)]
pub struct VmdkDisk {
    path: PathBuf,
    size: u64,
    extents: Vec<VExtent>,
    parent: Option<Box<dyn Disk>>,
    descriptor: Option<Descriptor>,
    subformat: Option<String>,
    extra_files: Vec<PathBuf>,
    file_size: u64,
    warnings: Vec<String>,
    geometry: GeometryHints,
}

/// Extent files opened so far (an extent file named twice is opened once).
struct Files {
    main: PathBuf,
    opened: Vec<(PathBuf, Arc<ImageFile>)>,
}

impl Files {
    fn open(&mut self, ctx: &OpenCtx, line: &ExtentLine) -> Result<Arc<ImageFile>> {
        let name = line.file.as_deref().unwrap_or_default();
        let path = ctx.resolve(&self.main, name)?;
        if let Some((_, f)) = self.opened.iter().find(|(p, _)| *p == path) {
            return Ok(f.clone());
        }
        if !path.exists() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "extent file {name:?} (descriptor line {}) not found (looked for {})",
                    line.line,
                    path.display()
                ),
            )
            .with_path(&self.main));
        }
        let f = Arc::new(ImageFile::open(&path)?);
        self.opened.push((path, f.clone()));
        Ok(f)
    }
}

impl VmdkDisk {
    /// Open a VMDK from its main file (sparse extent, `COWD` or text
    /// descriptor), its extents and its parent chain.
    pub fn open(file: Arc<ImageFile>, ctx: &OpenCtx) -> Result<Self> {
        let mut head = [0u8; 512];
        file.read_at_padded(&mut head, 0)?;
        let mut warnings = Vec::new();
        let main = file.path().to_path_buf();
        let (extents, descriptor, subformat, files) = match le::u32(&head, 0) {
            KDMV_MAGIC => {
                let h0 = SparseHeader::parse(&head).expect("magic checked");
                if h0.capacity == 0 && h0.descriptor_offset != 0 {
                    // A KDMV file used only as a container for a descriptor.
                    let (d, latin1) = embedded_descriptor(&file, &h0)?.ok_or_else(|| {
                        Error::corrupt(&main, 28, "capacity 0 and no usable embedded descriptor")
                    })?;
                    note_latin1(&mut warnings, &main, latin1);
                    let (ext, files) = Self::extents_from(&d, &main, ctx, &mut warnings)?;
                    let sub = d.create_type.clone();
                    (ext, Some(d), sub, files)
                } else {
                    let (sp, h) = SparseExtent::open_kdmv(file.clone())?;
                    let desc = embedded_descriptor(&file, &h)?;
                    let desc = desc.map(|(d, latin1)| {
                        note_latin1(&mut warnings, &main, latin1);
                        d
                    });
                    if let Some(total) = desc
                        .as_ref()
                        .and_then(|d| (!d.extents.is_empty()).then(|| d.total_sectors()).flatten())
                    {
                        if total != h.capacity {
                            warnings.push(format!(
                                "{}: embedded descriptor extents total {total} sectors, header capacity is {}",
                                main.display(),
                                h.capacity
                            ));
                        }
                    }
                    let sub = desc
                        .as_ref()
                        .and_then(|d| d.create_type.clone())
                        .or_else(|| {
                            Some(
                                if sp.compressed() {
                                    "streamOptimized"
                                } else {
                                    "monolithicSparse"
                                }
                                .into(),
                            )
                        });
                    warnings.extend(sp.warnings.iter().cloned());
                    let ext = vec![VExtent {
                        start: 0,
                        len: sp.capacity(),
                        backing: Backing::Sparse(Box::new(sp)),
                        line: 0,
                    }];
                    (ext, desc, sub, Vec::new())
                }
            }
            COWD_MAGIC => {
                let sp = SparseExtent::open_cowd(file.clone())?;
                let ext = vec![VExtent {
                    start: 0,
                    len: sp.capacity(),
                    backing: Backing::Sparse(Box::new(sp)),
                    line: 0,
                }];
                (ext, None, Some("vmfsSparse".into()), Vec::new())
            }
            _ => {
                let (d, latin1) = text_descriptor(&file)?;
                note_latin1(&mut warnings, &main, latin1);
                let (ext, files) = Self::extents_from(&d, &main, ctx, &mut warnings)?;
                let sub = d.create_type.clone();
                (ext, Some(d), sub, files)
            }
        };
        let size = extents.last().map_or(0, |e| e.start + e.len);
        let extra_files: Vec<PathBuf> = files
            .iter()
            .filter(|(p, _)| *p != main)
            .map(|(p, _)| p.clone())
            .collect();
        let file_size = file.len()
            + files
                .iter()
                .filter(|(p, _)| *p != main)
                .map(|(_, f)| f.len())
                .sum::<u64>();
        let geometry = descriptor
            .as_ref()
            .map(Descriptor::geometry)
            .unwrap_or_default();
        let parent = match &descriptor {
            Some(d) => Self::open_parent(d, &main, size, ctx, &mut warnings)?,
            None => None,
        };
        Ok(VmdkDisk {
            path: main,
            size,
            extents,
            parent,
            descriptor,
            subformat,
            extra_files,
            file_size,
            warnings,
            geometry,
        })
    }

    /// The descriptor (text file or embedded), when there is one.
    pub fn descriptor(&self) -> Option<&Descriptor> {
        self.descriptor.as_ref()
    }

    #[allow(clippy::type_complexity)]
    fn extents_from(
        d: &Descriptor,
        main: &Path,
        ctx: &OpenCtx,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<VExtent>, Vec<(PathBuf, Arc<ImageFile>)>)> {
        if d.extents.is_empty() {
            return Err(Error::corrupt(main, 0, "descriptor lists no extents"));
        }
        let mut files = Files {
            main: main.to_path_buf(),
            opened: Vec::new(),
        };
        let mut out = Vec::with_capacity(d.extents.len());
        let mut start = 0u64;
        for l in &d.extents {
            if l.sectors == 0 {
                warnings.push(format!(
                    "{}: descriptor line {}: empty extent ignored",
                    main.display(),
                    l.line
                ));
                continue;
            }
            let len = l
                .sectors
                .checked_mul(512)
                .and_then(|len| start.checked_add(len).map(|end| (len, end)))
                .filter(|(_, end)| *end <= MAX_CAPACITY_BYTES)
                .ok_or_else(|| {
                    Error::corrupt(
                        main,
                        0,
                        format!(
                            "descriptor line {}: extents add up to more than {MAX_CAPACITY_BYTES} bytes",
                            l.line
                        ),
                    )
                })?
                .0;
            let backing = Self::open_extent(l, len, &mut files, ctx, warnings)?;
            out.push(VExtent {
                start,
                len,
                backing,
                line: l.line,
            });
            start += len;
        }
        if out.is_empty() {
            return Err(Error::corrupt(
                main,
                0,
                "descriptor lists only empty extents",
            ));
        }
        Ok((out, files.opened))
    }

    fn open_extent(
        l: &ExtentLine,
        len: u64,
        files: &mut Files,
        ctx: &OpenCtx,
        warnings: &mut Vec<String>,
    ) -> Result<Backing> {
        let main = files.main.clone();
        if l.access == Access::NoAccess {
            return Ok(Backing::NoAccess);
        }
        Ok(match l.kind {
            ExtentType::Zero => Backing::Zero,
            ExtentType::SeSparse => {
                return Err(Error::unsupported(
                    &main,
                    format!(
                        "descriptor line {}: seSparse extent {:?} (ESXi snapshot on VMFS 6) is not supported; \
                         consolidate the snapshots in vSphere first",
                        l.line,
                        l.file.as_deref().unwrap_or_default()
                    ),
                ))
            }
            ExtentType::Flat | ExtentType::Vmfs | ExtentType::VmfsRdm | ExtentType::VmfsRaw => {
                let f = files.open(ctx, l)?;
                if matches!(l.kind, ExtentType::VmfsRdm | ExtentType::VmfsRaw) {
                    warnings.push(format!(
                        "{}: descriptor line {}: raw device mapping {} read as a flat file",
                        main.display(),
                        l.line,
                        f.path().display()
                    ));
                }
                let start = l.offset.saturating_mul(512);
                let need = start.saturating_add(len);
                if f.len() < need {
                    return Err(Error::corrupt(
                        f.path(),
                        f.len(),
                        format!(
                            "flat extent (descriptor line {}) needs {need} bytes (offset {} + {} sectors) but the file has {}",
                            l.line,
                            l.offset,
                            l.sectors,
                            f.len()
                        ),
                    ));
                }
                Backing::Flat { file: f, start }
            }
            ExtentType::Sparse | ExtentType::VmfsSparse => {
                let f = files.open(ctx, l)?;
                let mut m = [0u8; 4];
                f.read_at_padded(&mut m, 0)?;
                let sp = match le::u32(&m, 0) {
                    KDMV_MAGIC => SparseExtent::open_kdmv(f.clone())?.0,
                    COWD_MAGIC => SparseExtent::open_cowd(f.clone())?,
                    _ => {
                        return Err(Error::corrupt(
                            f.path(),
                            0,
                            format!(
                                "sparse extent (descriptor line {}) has neither the KDMV nor the COWD magic",
                                l.line
                            ),
                        ))
                    }
                };
                if sp.capacity() != len {
                    warnings.push(format!(
                        "{}: capacity {} sectors differs from the descriptor's {} (line {})",
                        f.path().display(),
                        sp.capacity() / 512,
                        l.sectors,
                        l.line
                    ));
                }
                warnings.extend(sp.warnings.iter().cloned());
                Backing::Sparse(Box::new(sp))
            }
        })
    }

    fn open_parent(
        d: &Descriptor,
        main: &Path,
        size: u64,
        ctx: &OpenCtx,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Box<dyn Disk>>> {
        let pcid = d.parent_cid.unwrap_or(NO_PARENT_CID);
        let Some(hint) = d.parent_file_name_hint.as_deref().filter(|h| !h.is_empty()) else {
            if pcid != NO_PARENT_CID {
                warnings.push(format!(
                    "{}: parentCID is {pcid:08x} but no parentFileNameHint names the parent; \
                     unallocated grains read as zeros",
                    main.display()
                ));
            }
            return Ok(None);
        };
        let parent = ctx.open_referenced(main, hint)?;
        if parent.size() != size {
            warnings.push(format!(
                "{}: parent {hint:?} is {} bytes, this delta is {size}",
                main.display(),
                parent.size()
            ));
        }
        if pcid == NO_PARENT_CID {
            warnings.push(format!(
                "{}: parentFileNameHint {hint:?} is set but parentCID is ffffffff",
                main.display()
            ));
        } else {
            let ppath = ctx.resolve(main, hint)?;
            match read_descriptor(&ppath) {
                Ok(Some(pd)) => match pd.cid {
                    Some(cid) if cid != pcid => warnings.push(format!(
                        "{}: parentCID {pcid:08x} does not match the CID {cid:08x} of parent {hint:?}: \
                         the parent virtual disk has been modified since the child was created",
                        main.display()
                    )),
                    Some(_) => {}
                    None => warnings.push(format!(
                        "{}: parent {hint:?} has no CID to check against parentCID {pcid:08x}",
                        main.display()
                    )),
                },
                Ok(None) => warnings.push(format!(
                    "{}: parent {hint:?} has no descriptor; its CID cannot be checked",
                    main.display()
                )),
                Err(e) => warnings.push(format!(
                    "{}: cannot read the descriptor of parent {hint:?} to check its CID: {e}",
                    main.display()
                )),
            }
        }
        Ok(Some(parent))
    }

    fn find(&self, pos: u64) -> &VExtent {
        let i = self.extents.partition_point(|e| e.start + e.len <= pos);
        &self.extents[i.min(self.extents.len() - 1)]
    }

    fn no_access(&self, e: &VExtent, pos: u64) -> Error {
        Error::new(
            ErrorKind::Refused,
            format!(
                "virtual offset {pos:#x} lies in a NOACCESS extent (descriptor line {})",
                e.line
            ),
        )
        .with_path(&self.path)
    }
}

fn note_latin1(warnings: &mut Vec<String>, path: &Path, latin1: bool) {
    if latin1 {
        warnings.push(format!(
            "{}: descriptor is not valid UTF-8; decoded as Latin-1",
            path.display()
        ));
    }
}

impl Disk for VmdkDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.size, offset, buf.len() as u64)?;
        let parent = self.parent.as_deref();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let e = self.find(pos);
            let rel = pos - e.start;
            let n = ((e.len - rel) as usize).min(buf.len() - done);
            let chunk = &mut buf[done..done + n];
            match &e.backing {
                Backing::Zero => chunk.fill(0),
                Backing::NoAccess => return Err(self.no_access(e, pos)),
                Backing::Flat { file, start } => file.read_exact_at(chunk, start + rel)?,
                Backing::Sparse(sp) => sp.read(chunk, rel, &mut |b: &mut [u8], r: u64| {
                    read_backing(parent, b, e.start + r)
                })?,
            }
            done += n;
        }
        Ok(())
    }

    fn extent(&self, offset: u64, max_len: u64) -> Result<Extent> {
        check_range(self.size, offset, max_len.min(1))?;
        let e = self.find(offset);
        let rel = offset - e.start;
        let limit = max_len.min(e.len - rel);
        let data = |len| Extent {
            kind: ExtentKind::Data,
            offset,
            len,
        };
        let Backing::Sparse(sp) = &e.backing else {
            return Ok(match e.backing {
                Backing::Zero => Extent {
                    kind: ExtentKind::Zero,
                    offset,
                    len: limit,
                },
                _ => data(limit),
            });
        };
        let (first, len) = sp.run(rel, limit)?;
        Ok(match first {
            Grain::Data(_) => data(len),
            Grain::Zero => Extent {
                kind: ExtentKind::Zero,
                offset,
                len,
            },
            Grain::Unallocated => extent_backing(self.parent.as_deref(), offset, len)?,
        })
    }

    fn layer(&self) -> LayerInfo {
        LayerInfo {
            path: self.path.clone(),
            format: "vmdk".into(),
            subformat: self.subformat.clone(),
            virtual_size: self.size,
            file_size: self.file_size,
            extra_files: self.extra_files.clone(),
            warnings: self.warnings.clone(),
            geometry: self.geometry.clone(),
        }
    }

    fn backing(&self) -> Option<&dyn Disk> {
        self.parent.as_deref()
    }
}
