//! Where a Linux guest's files are: every ext2/3/4, XFS and btrfs
//! filesystem of the VM's disks (on partitions, whole disks and LVM2
//! linear volumes), the other volumes fstab may name (the ESP, swap,
//! LUKS), and a root's mount layout from its `/etc/fstab`, through which
//! a guest path (`/boot/vmlinuz-…`) is read from the volume that holds it.

use crate::inspect::DiskInfo;
use crate::plan::VolumeRef;
use crate::windows::volume::Vol;
use linuxfs::lvm::{parse_metadata, read_label, VolumeGroup};
use linuxfs::{FsId, LinuxFs};
use std::collections::BTreeMap;
use std::sync::Arc;
use vdisk::window::Window;
use vdisk::Disk;

/// A Linux filesystem found on the VM's disks.
pub(crate) struct FsVolume<'a> {
    /// Its partition (for an LV: the PV holding its first extent).
    pub vref: VolumeRef,
    /// `VG/LV` for a logical volume.
    pub lv: Option<String>,
    /// The btrfs subvolume read when it is not the default one (`@`).
    pub subvol: Option<String>,
    /// The opened filesystem.
    pub fs: Box<dyn LinuxFs + 'a>,
    /// UUID and label.
    pub id: Option<FsId>,
    /// GPT unique GUID (lowercase) or MBR `SSSSSSSS-PP`.
    pub partuuid: Option<String>,
}

/// Another volume fstab or crypttab may name.
#[derive(Debug, Clone)]
pub(crate) struct OtherVolume {
    /// Where.
    pub vref: VolumeRef,
    /// Byte range on its disk.
    pub start: u64,
    /// Length.
    pub len: u64,
    /// `fat`, `swap`, `luks`, `ntfs`.
    pub fs: String,
    /// Its UUID (FAT: the `XXXX-XXXX` volume id).
    pub uuid: Option<String>,
    /// Partition UUID.
    pub partuuid: Option<String>,
}

/// Everything found.
pub(crate) struct Scan<'a> {
    pub disks: Vec<&'a dyn Disk>,
    pub fs: Vec<FsVolume<'a>>,
    pub other: Vec<OtherVolume>,
}

/// What a mount point is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `Scan::fs[i]`.
    Fs(usize),
    /// `Scan::other[i]` (a FAT ESP; swap and LUKS are resolved, not read).
    Other(usize),
}

/// A root's mounts, longest mount point first; `/` is always there.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub root: usize,
    pub mounts: Vec<(String, Target)>,
}

/// Top-level btrfs subvolumes opened when looking for a root.
const MAX_SUBVOLS: usize = 16;

/// Largest file read by inspection.
pub(crate) const MAX_FILE: u64 = 512 << 20;

/// Partition UUIDs of one disk, by partition index (GPT GUID lowercase,
/// MBR `signature-NN` as blkid prints them).
fn partuuids(disk: &dyn Disk) -> BTreeMap<u32, String> {
    let Ok(t) = crate::partition::read_table(disk) else {
        return BTreeMap::new();
    };
    let sig = t.mbr.as_ref().map(|m| m.disk_signature);
    t.data_partitions()
        .filter_map(|p| match (&p.guid, sig) {
            (Some(g), _) => Some((p.index, g.to_ascii_lowercase())),
            (None, Some(s)) if t.kind == crate::partition::TableKind::Mbr => {
                Some((p.index, format!("{s:08x}-{:02x}", p.index)))
            }
            _ => None,
        })
        .collect()
}

/// UUID of a swap area or LUKS header at the start of `d`.
fn other_uuid(d: &dyn Disk, fs: &str) -> Option<String> {
    let mut b = [0u8; 4096];
    if d.size() < 4096 || d.read_at(&mut b, 0).is_err() {
        return None;
    }
    match fs {
        "swap" => linuxfs::format_uuid(&b[1036..1052]),
        _ if &b[0..6] == b"LUKS\xba\xbe" => {
            let s = String::from_utf8_lossy(&b[168..208]);
            let s = s.trim_end_matches('\0').trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        "fat" => {
            // FAT32 volume id at 0x43, FAT12/16 at 0x27.
            let at = if &b[0x52..0x57] == b"FAT32" {
                0x43
            } else {
                0x27
            };
            let id = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            Some(format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF))
        }
        _ => None,
    }
}

/// A PV found: its UUID, its device, where it is, and its metadata.
struct FoundPv<'a> {
    uuid: String,
    dev: Arc<dyn Disk + 'a>,
    vref: VolumeRef,
    vg: Option<VolumeGroup>,
}

/// Scan every volume of `disks` (described by `infos`).
pub(crate) fn scan<'a>(
    disks: &[&'a dyn Disk],
    infos: &[DiskInfo],
    warnings: &mut Vec<String>,
) -> Scan<'a> {
    let mut s = Scan {
        disks: disks.to_vec(),
        fs: vec![],
        other: vec![],
    };
    let mut pvs = Vec::new();
    for info in infos {
        let Some(&disk) = disks.get(info.index) else {
            continue;
        };
        let puuids = partuuids(disk);
        for v in &info.volumes {
            let where_ = describe(&v.volume);
            let Ok(w) = Window::new(disk, v.start, v.len) else {
                continue;
            };
            let partuuid = v.volume.partition.and_then(|p| puuids.get(&p).cloned());
            match v.fs.as_str() {
                "ext" | "xfs" | "btrfs" => {
                    s.open_fs(Arc::new(w), v.volume.clone(), None, partuuid, warnings)
                }
                "lvm" => match read_label(&w) {
                    Ok(Some(l)) => {
                        let vg = l.metadata.as_deref().and_then(|t| {
                            parse_metadata(t)
                                .map_err(|e| warnings.push(format!("{where_}: LVM2 metadata: {e}")))
                                .ok()
                        });
                        pvs.push(FoundPv {
                            uuid: l.uuid,
                            dev: Arc::new(w),
                            vref: v.volume.clone(),
                            vg,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => warnings.push(format!("{where_}: LVM2 label: {e}")),
                },
                other => s.other.push(OtherVolume {
                    vref: v.volume.clone(),
                    start: v.start,
                    len: v.len,
                    fs: other.into(),
                    uuid: other_uuid(&w, other),
                    partuuid,
                }),
            }
        }
    }
    s.open_lvs(&pvs, warnings);
    s
}

/// `disk N partition M` / `disk N`.
pub(crate) fn describe(v: &VolumeRef) -> String {
    match v.partition {
        Some(p) => format!("disk {} partition {p}", v.disk),
        None => format!("disk {}", v.disk),
    }
}

impl<'a> Scan<'a> {
    fn open_fs(
        &mut self,
        dev: Arc<dyn Disk + 'a>,
        vref: VolumeRef,
        lv: Option<String>,
        partuuid: Option<String>,
        warnings: &mut Vec<String>,
    ) {
        let id = linuxfs::identify(&*dev).ok().flatten();
        let name = lv.clone().unwrap_or_else(|| describe(&vref));
        let fs = match linuxfs::open(Box::new(dev.clone())) {
            Ok(fs) => fs,
            Err(linuxfs::Error::UnknownFilesystem { .. }) if lv.is_some() => return,
            Err(e) => {
                warnings.push(format!("{name}: cannot read the filesystem: {e}"));
                return;
            }
        };
        // A btrfs whose default subvolume holds no root may hold one in a
        // subvolume of its top level (`@`, named by fstab's `subvol=`).
        let subvols: Vec<(String, u64)> =
            if fs.fs_type() == "btrfs" && fs.stat("/etc/fstab").is_err() {
                fs.read_dir("/")
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.ino & linuxfs::btrfs::SUBVOL_BIT != 0)
                    .take(MAX_SUBVOLS)
                    .map(|e| (e.name, e.ino & !linuxfs::btrfs::SUBVOL_BIT))
                    .collect()
            } else {
                vec![]
            };
        let mut add = |fs, subvol| {
            self.fs.push(FsVolume {
                vref: vref.clone(),
                lv: lv.clone(),
                subvol,
                fs,
                id: id.clone(),
                partuuid: partuuid.clone(),
            })
        };
        add(fs, None);
        for (sv, sid) in subvols {
            match linuxfs::open_btrfs_subvolume(Box::new(dev.clone()), sid) {
                Ok(fs) => add(fs, Some(sv)),
                Err(e) => warnings.push(format!("{name}: btrfs subvolume {sv}: {e}")),
            }
        }
    }

    /// Open every visible LV of every VG (the newest metadata per VG).
    fn open_lvs(&mut self, pvs: &[FoundPv<'a>], warnings: &mut Vec<String>) {
        let mut vgs: BTreeMap<String, &VolumeGroup> = BTreeMap::new();
        for p in pvs {
            if let Some(vg) = &p.vg {
                let key = if vg.id.is_empty() { &vg.name } else { &vg.id };
                if vgs.get(key).is_none_or(|o| vg.seqno > o.seqno) {
                    vgs.insert(key.clone(), vg);
                }
            }
        }
        let list: Vec<(String, Arc<dyn Disk + 'a>)> = pvs
            .iter()
            .map(|p| (p.uuid.clone(), p.dev.clone()))
            .collect();
        for vg in vgs.values() {
            for lv in vg.lvs.iter().filter(|l| l.visible()) {
                let full = format!("{}/{}", vg.name, lv.name);
                match vg.open_lv(&lv.name, &list) {
                    Ok(d) => {
                        let vref = first_pv(vg, lv, pvs).unwrap_or(VolumeRef {
                            disk: 0,
                            partition: None,
                        });
                        self.open_fs(Arc::new(d), vref, Some(full), None, warnings);
                    }
                    Err(e) => warnings.push(format!("{full}: {e}")),
                }
            }
        }
    }

    /// The filesystem at `root` (+ `lv`, + btrfs `subvol`).
    pub(crate) fn find(
        &self,
        vref: &VolumeRef,
        lv: Option<&str>,
        subvol: Option<&str>,
    ) -> Option<usize> {
        self.fs.iter().position(|v| {
            v.lv.as_deref() == lv
                && (lv.is_some() || v.vref == *vref)
                && v.subvol.as_deref() == subvol
        })
    }

    /// The volume an fstab/crypttab device spec names.
    pub(crate) fn resolve(&self, spec: &str) -> Option<Target> {
        let fs_by = |f: &dyn Fn(&FsVolume) -> bool| self.fs.iter().position(f).map(Target::Fs);
        let other_by =
            |f: &dyn Fn(&OtherVolume) -> bool| self.other.iter().position(f).map(Target::Other);
        let (kind, val) = if let Some((k, v)) = spec.split_once('=') {
            (k.to_ascii_uppercase(), v.trim_matches('"').to_string())
        } else if let Some(rest) = spec.strip_prefix("/dev/disk/by-") {
            let (k, v) = rest.split_once('/')?;
            match k {
                "path" => return self.resolve_slot(v),
                "id" => {
                    if let Some(name) = v.strip_prefix("dm-name-") {
                        return self.resolve_dev(&format!("/dev/mapper/{name}"));
                    }
                    return self.resolve_slot(v);
                }
                _ => (k.to_ascii_uppercase(), v.to_string()),
            }
        } else {
            return self.resolve_dev(spec);
        };
        let eq = |a: Option<&str>| a.is_some_and(|a| a.eq_ignore_ascii_case(&val));
        match kind.as_str() {
            "UUID" => fs_by(&|v| eq(v.id.as_ref().and_then(|i| i.uuid.as_deref())))
                .or_else(|| other_by(&|o| eq(o.uuid.as_deref()))),
            "LABEL" => fs_by(&|v| v.id.as_ref().and_then(|i| i.label.as_deref()) == Some(&val)),
            "PARTUUID" => fs_by(&|v| eq(v.partuuid.as_deref()))
                .or_else(|| other_by(&|o| eq(o.partuuid.as_deref()))),
            _ => None,
        }
    }

    /// `/dev/sdXN`, `/dev/vdXN`, `/dev/hdXN`, `/dev/xvdXN` (disk order =
    /// letter order), `/dev/mapper/VG-LV`, `/dev/VG/LV`.
    fn resolve_dev(&self, dev: &str) -> Option<Target> {
        if let Some(v) = dev_to_vref(dev) {
            return self.by_vref(&v);
        }
        let lv = lv_name_of_dev(dev)?;
        self.fs
            .iter()
            .position(|f| f.lv.as_deref() == Some(&lv))
            .map(Target::Fs)
    }

    /// A `/dev/disk/by-path/` or bus `/dev/disk/by-id/` name (`…-part2`:
    /// partition 2; no suffix: the whole disk). Which disk it names
    /// depends on the old hypervisor's bus, so it resolves only when the
    /// VM has one disk.
    fn resolve_slot(&self, name: &str) -> Option<Target> {
        if self.disks.len() != 1 {
            return None;
        }
        let partition = match name.rsplit_once("-part") {
            Some((_, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                Some(n.parse().ok()?)
            }
            _ => None,
        };
        self.by_vref(&VolumeRef { disk: 0, partition })
    }

    /// The volume on partition (or whole disk) `v`: its filesystem's
    /// default view, else another volume there.
    fn by_vref(&self, v: &VolumeRef) -> Option<Target> {
        self.fs
            .iter()
            .position(|f| f.lv.is_none() && f.subvol.is_none() && f.vref == *v)
            .map(Target::Fs)
            .or_else(|| {
                self.other
                    .iter()
                    .position(|o| o.vref == *v)
                    .map(Target::Other)
            })
    }

    /// The UUID of the volume at `t` (for `UUID=` rewrites).
    pub(crate) fn uuid(&self, t: Target) -> Option<String> {
        match t {
            Target::Fs(i) => self.fs[i].id.as_ref()?.uuid.clone(),
            Target::Other(i) => self.other[i].uuid.clone(),
        }
    }

    /// The mount layout of root `root` from its fstab text (mounts that
    /// name a volume we have; the root volume itself at another mount
    /// point, e.g. a btrfs subvolume, is not a separate mount).
    pub(crate) fn layout(&self, root: usize, fstab: Option<&str>) -> Layout {
        let mut mounts = vec![("/".to_string(), Target::Fs(root))];
        for line in fstab.unwrap_or("").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 || f[0].starts_with('#') || f[1] == "/" || !f[1].starts_with('/') {
                continue;
            }
            let Some(t) = self.resolve(f[0]) else {
                continue;
            };
            let Some(t) = self.subvol_of(t, f.get(3).copied().unwrap_or("")) else {
                continue;
            };
            let usable = match t {
                Target::Fs(i) => i != root,
                Target::Other(i) => self.other[i].fs == "fat",
            };
            if usable && !mounts.iter().any(|m| m.0 == f[1]) {
                mounts.push((f[1].trim_end_matches('/').to_string(), t));
            }
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Layout { root, mounts }
    }

    /// For a btrfs target, the view of the subvolume fstab's options name
    /// (`subvol=@home`; none: the default subvolume); `None` when that
    /// subvolume was not opened.
    fn subvol_of(&self, t: Target, opts: &str) -> Option<Target> {
        let Target::Fs(i) = t else { return Some(t) };
        if self.fs[i].fs.fs_type() != "btrfs" {
            return Some(t);
        }
        let want = opts
            .split(',')
            .find_map(|o| o.strip_prefix("subvol="))
            .map(|s| s.trim_matches('/'))
            .filter(|s| !s.is_empty());
        let same = |v: &FsVolume| {
            v.vref == self.fs[i].vref && v.lv == self.fs[i].lv && v.subvol.as_deref() == want
        };
        self.fs.iter().position(same).map(Target::Fs)
    }

    /// The mount holding `path` and the path inside it.
    fn locate(&self, layout: &Layout, path: &str) -> (Target, String) {
        for (mp, t) in &layout.mounts {
            let rest = if mp == "/" {
                Some(path)
            } else {
                path.strip_prefix(mp.as_str())
                    .filter(|r| r.is_empty() || r.starts_with('/'))
            };
            if let Some(r) = rest {
                let r = if r.is_empty() { "/" } else { r };
                return (*t, r.to_string());
            }
        }
        (Target::Fs(layout.root), path.to_string())
    }

    /// Read the guest file `path` through `layout` (at most `max_len`).
    pub(crate) fn read(
        &self,
        layout: &Layout,
        path: &str,
        max_len: u64,
    ) -> Result<Vec<u8>, ReadErr> {
        match self.locate(layout, path) {
            (Target::Fs(i), p) => Ok(self.fs[i].fs.read_file(&p, max_len)?),
            (Target::Other(i), p) => {
                let o = &self.other[i];
                let d = self.disks[o.vref.disk];
                let v = Vol::open(d, o.start, o.len, "fat")?.ok_or(ReadErr::NotFat)?;
                let size = v.file_size(&p).ok_or(ReadErr::Missing)?;
                if size > max_len {
                    return Err(ReadErr::Fs(linuxfs::Error::TooLarge {
                        what: path.into(),
                        size,
                        max: max_len,
                    }));
                }
                Ok(v.read(&p)?)
            }
        }
    }

    /// Read a text file (lossy UTF-8), `None` when it is missing or
    /// unreadable (other than missing: a warning).
    pub(crate) fn text(
        &self,
        layout: &Layout,
        path: &str,
        warnings: &mut Vec<String>,
    ) -> Option<String> {
        match self.read(layout, path, 16 << 20) {
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.is_missing() => None,
            Err(e) => {
                warnings.push(format!("{path}: {e}"));
                None
            }
        }
    }

    /// Names in the guest directory `path` (empty when missing).
    pub(crate) fn list(&self, layout: &Layout, path: &str) -> Vec<String> {
        match self.locate(layout, path) {
            (Target::Fs(i), p) => self.fs[i]
                .fs
                .read_dir(&p)
                .map(|v| v.into_iter().map(|e| e.name).collect())
                .unwrap_or_default(),
            (Target::Other(i), p) => {
                let o = &self.other[i];
                Vol::open(self.disks[o.vref.disk], o.start, o.len, "fat")
                    .ok()
                    .flatten()
                    .map(|v| v.list(&p))
                    .unwrap_or_default()
            }
        }
    }

    /// Whether the guest path exists (file, directory or link).
    pub(crate) fn exists(&self, layout: &Layout, path: &str) -> bool {
        match self.locate(layout, path) {
            (Target::Fs(i), p) => self.fs[i].fs.stat(&p).is_ok(),
            (Target::Other(i), p) => {
                let o = &self.other[i];
                Vol::open(self.disks[o.vref.disk], o.start, o.len, "fat")
                    .ok()
                    .flatten()
                    .is_some_and(|v| v.file_size(&p).is_some() || v.is_dir(&p))
            }
        }
    }
}

/// Errors reading a guest file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadErr {
    #[error(transparent)]
    Fs(#[from] linuxfs::Error),
    #[error(transparent)]
    Vol(#[from] crate::windows::volume::VolError),
    #[error("not a FAT filesystem")]
    NotFat,
    #[error("no such file")]
    Missing,
}

impl ReadErr {
    pub(crate) fn is_missing(&self) -> bool {
        matches!(
            self,
            ReadErr::Missing | ReadErr::Fs(linuxfs::Error::NotFound { .. })
        )
    }
}

/// The PV holding the first extent of `lv`.
fn first_pv(vg: &VolumeGroup, lv: &linuxfs::lvm::LvMeta, pvs: &[FoundPv]) -> Option<VolumeRef> {
    let seg = lv.segments.iter().min_by_key(|s| s.start_extent)?;
    let pv_name = &seg.stripes.first()?.0;
    let id: String = vg
        .pvs
        .iter()
        .find(|p| &p.name == pv_name)?
        .id
        .replace('-', "");
    pvs.iter().find(|p| p.uuid == id).map(|p| p.vref.clone())
}

/// `/dev/sdb2` → disk 1 partition 2 (the source's disk order is the
/// VM's); `/dev/vda` → disk 0, whole disk.
pub(crate) fn dev_to_vref(dev: &str) -> Option<VolumeRef> {
    let rest = ["/dev/sd", "/dev/hd", "/dev/vd", "/dev/xvd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    let n = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let disk = rest[..n]
        .bytes()
        .fold(0usize, |a, c| a * 26 + (c - b'a' + 1) as usize)
        - 1;
    let part = &rest[n..];
    let partition = if part.is_empty() {
        None
    } else {
        Some(part.parse().ok()?)
    };
    Some(VolumeRef { disk, partition })
}

/// `/dev/mapper/vg-root` or `/dev/vg/root` → `vg/root` (`--` in mapper
/// names is a literal `-`).
fn lv_name_of_dev(dev: &str) -> Option<String> {
    if let Some(m) = dev.strip_prefix("/dev/mapper/") {
        let b = m.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'-' {
                if b.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let (vg, lv) = (&m[..i], &m[i + 1..]);
                return Some(format!(
                    "{}/{}",
                    vg.replace("--", "-"),
                    lv.replace("--", "-")
                ));
            }
            i += 1;
        }
        return None;
    }
    let rest = dev.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    (!lv.contains('/') && !["disk", "mapper"].contains(&vg)).then(|| format!("{vg}/{lv}"))
}
