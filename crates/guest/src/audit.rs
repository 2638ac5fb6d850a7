//! Geometry audit: partitions, filesystems, BPB and MBR CHS fields,
//! container geometry hints and the geometry each target bus presents,
//! with every mismatch explained by its effect on the boot code.

use crate::bpb::{self, Bpb, FsKind};
use crate::geometry::{self, bios_geometry, BiosGeometry, Bus, Chs, DeviceGeometry};
use crate::partition::{self, Partition, PartitionTable, RawChs, SECTOR};
use serde::Serialize;
use vdisk::{Disk, GeometryHints, Result};

/// A volume found on the disk (a partition, or the whole disk when it has
/// no partition table).
#[derive(Debug, Clone, Serialize)]
pub struct VolumeAudit {
    /// Partition number (0 = whole disk).
    pub partition: u32,
    /// First sector on the disk.
    pub start_lba: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// Active (bootable) flag.
    pub bootable: bool,
    /// Filesystem found by signature.
    pub fs: Option<FsKind>,
    /// The BPB, for FAT/NTFS volumes.
    pub bpb: Option<Bpb>,
    /// Backup boot sector equal to the primary one (None: no backup or
    /// unreadable).
    pub backup_matches: Option<bool>,
}

/// What kind of problem a finding describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// BPB hidden sectors differ from the partition start.
    HiddenSectors,
    /// BPB heads/sectors per track differ from the BIOS geometry.
    BpbGeometry,
    /// MBR/EBR CHS fields do not match the BIOS geometry.
    MbrChs,
    /// QEMU derives an odd geometry from the partition table.
    QemuGuess,
    /// Buses present different geometries.
    BusDisagreement,
    /// Container metadata records another geometry.
    ContainerHint,
    /// Backup boot sector differs from the primary.
    BackupBootSector,
    /// Partition table warning.
    Table,
}

/// One problem, with a one-line explanation of its effect.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Category.
    pub kind: FindingKind,
    /// Bus concerned (None: all).
    pub bus: Option<Bus>,
    /// Partition concerned.
    pub partition: Option<u32>,
    /// The explanation.
    pub message: String,
}

/// The full audit of one disk.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// Disk size in bytes.
    pub disk_size: u64,
    /// The partition table.
    pub table: PartitionTable,
    /// Volumes and their boot sectors.
    pub volumes: Vec<VolumeAudit>,
    /// Container geometry hints (VMDK ddb.geometry*, VHD footer).
    pub hints: GeometryHints,
    /// Geometry each bus presents with the given device settings.
    pub targets: Vec<BiosGeometry>,
    /// The geometry the guest's boot volume expects (BPB heads/spt).
    pub expected: Option<Chs>,
    /// Every mismatch found.
    pub findings: Vec<Finding>,
}

impl Audit {
    /// The volume whose boot code runs first: the active partition with a
    /// FAT/NTFS BPB, else the first volume with one.
    pub fn boot_volume(&self) -> Option<&VolumeAudit> {
        let with_bpb = |v: &&VolumeAudit| v.bpb.is_some();
        self.volumes
            .iter()
            .filter(with_bpb)
            .find(|v| v.bootable)
            .or_else(|| self.volumes.iter().find(|v| v.bpb.is_some()))
    }
    /// The geometry presented on `bus`.
    pub fn target(&self, bus: Bus) -> Option<&BiosGeometry> {
        self.targets.iter().find(|t| t.bus == bus)
    }
}

fn read_volume(disk: &dyn Disk, p: Option<&Partition>) -> Result<VolumeAudit> {
    let (index, start_lba, sectors, bootable) = match p {
        Some(p) => (p.index, p.start_lba, p.sectors, p.bootable),
        None => (0, 0, disk.size() / SECTOR, false),
    };
    let mut v = VolumeAudit {
        partition: index,
        start_lba,
        sectors,
        bootable,
        fs: None,
        bpb: None,
        backup_matches: None,
    };
    let start = start_lba.saturating_mul(SECTOR);
    if p.is_some_and(|p| p.beyond_end || p.is_container()) || start >= disk.size() {
        return Ok(v);
    }
    v.fs = bpb::detect_fs(disk, start, sectors.saturating_mul(SECTOR))?;
    if v.fs.is_some_and(FsKind::has_chs_bpb) {
        let mut s = [0u8; 512];
        disk.read_at(&mut s, start)?;
        if let Some(b) = Bpb::parse(&s) {
            if let Some(bk) = b.backup_sector {
                let off = start.saturating_add(bk.saturating_mul(SECTOR));
                if bk < sectors && off.saturating_add(SECTOR) <= disk.size() {
                    let mut t = [0u8; 512];
                    disk.read_at(&mut t, off)?;
                    v.backup_matches = Some(t[..0x54] == s[..0x54]);
                }
            }
            v.bpb = Some(b);
        }
    }
    Ok(v)
}

/// Audit `disk` as it would boot with device settings `dev` on every bus.
pub fn audit(disk: &dyn Disk, dev: &DeviceGeometry) -> Result<Audit> {
    let table = partition::read_table(disk)?;
    let sectors = disk.size() / SECTOR;
    let mut mbr = [0u8; 512];
    if disk.size() >= SECTOR {
        disk.read_at(&mut mbr, 0)?;
    }
    let mut volumes = vec![];
    if table.kind == partition::TableKind::None {
        volumes.push(read_volume(disk, None)?);
    } else {
        for p in table.data_partitions() {
            volumes.push(read_volume(disk, Some(p))?);
        }
    }
    let targets: Vec<BiosGeometry> = Bus::ALL
        .iter()
        .map(|&b| bios_geometry(&mbr, sectors, b, dev))
        .collect();
    let mut a = Audit {
        disk_size: disk.size(),
        findings: table
            .warnings
            .iter()
            .map(|w| Finding {
                kind: FindingKind::Table,
                bus: None,
                partition: None,
                message: w.clone(),
            })
            .collect(),
        table,
        volumes,
        hints: disk.geometry_hints(),
        targets,
        expected: None,
    };
    a.expected = a.boot_volume().and_then(|v| v.bpb.as_ref()).map(|b| Chs {
        cylinders: expected_cylinders(sectors, b.heads as u32, b.sectors_per_track as u32),
        heads: b.heads as u32,
        sectors: b.sectors_per_track as u32,
    });
    check_volumes(&mut a);
    check_mbr_chs(&mut a);
    check_guess_and_buses(&mut a, &mbr, sectors);
    Ok(a)
}

/// Cylinders of a `heads`/`spt` geometry over `sectors`, clipped to the
/// 1024 cylinders INT 13h can address.
pub fn expected_cylinders(sectors: u64, heads: u32, spt: u32) -> u32 {
    let per_cyl = heads.max(1) as u64 * spt.max(1) as u64;
    (sectors / per_cyl).clamp(1, 1024) as u32
}

fn check_volumes(a: &mut Audit) {
    let mut out = vec![];
    for v in &a.volumes {
        let Some(b) = &v.bpb else { continue };
        if v.partition != 0 && b.hidden_sectors as u64 != v.start_lba {
            out.push(Finding {
                kind: FindingKind::HiddenSectors,
                bus: None,
                partition: Some(v.partition),
                message: format!(
                    "partition {}: BPB hidden sectors {} but the partition starts at LBA {}: \
                     boot code will read LBA {} instead of LBA {} for the volume's sector 1",
                    v.partition,
                    b.hidden_sectors,
                    v.start_lba,
                    b.hidden_sectors as u64 + 1,
                    v.start_lba + 1
                ),
            });
        }
        if v.backup_matches == Some(false) {
            out.push(Finding {
                kind: FindingKind::BackupBootSector,
                bus: None,
                partition: Some(v.partition),
                message: format!(
                    "partition {}: backup boot sector differs from the primary one",
                    v.partition
                ),
            });
        }
        if b.heads == 0 || b.sectors_per_track == 0 || b.sectors_per_track > 63 || b.heads > 255 {
            out.push(Finding {
                kind: FindingKind::BpbGeometry,
                bus: None,
                partition: Some(v.partition),
                message: format!(
                    "partition {}: BPB geometry {} heads / {} sectors per track is not a valid \
                     INT 13h geometry: CHS boot code cannot work with it on any BIOS",
                    v.partition, b.heads, b.sectors_per_track
                ),
            });
            continue;
        }
        for t in &a.targets {
            if let Some(m) = bpb_mismatch(v, b, t) {
                out.push(m);
            }
        }
    }
    a.findings.extend(out);
}

/// The first sector of the volume the boot code would read wrongly with
/// its BPB geometry on the BIOS geometry `t`.
fn bpb_mismatch(v: &VolumeAudit, b: &Bpb, t: &BiosGeometry) -> Option<Finding> {
    let (bh, bs) = (b.heads as u32, b.sectors_per_track as u32);
    if bh == t.logical.heads && bs == t.logical.sectors {
        return None;
    }
    let base = b.hidden_sectors as u64;
    let limit = v
        .sectors
        .min(1024 * bh as u64 * bs as u64)
        .min(3 * 255 * 63);
    for rel in 0..limit {
        let lba = base + rel;
        let (c, h, s) = geometry::lba_to_chs(lba, bh, bs);
        if c > 1023 {
            break;
        }
        let got = geometry::bios_read_lba(c, h, s, t.logical);
        if got == Some(lba) {
            continue;
        }
        let effect = match got {
            Some(n) => format!("which the BIOS maps to LBA {n}"),
            None => format!(
                "which the BIOS rejects (its geometry {} has heads 0..{} and sectors 1..{})",
                geometry::fmt(t.logical),
                t.logical.heads.saturating_sub(1),
                t.logical.sectors
            ),
        };
        return Some(Finding {
            kind: FindingKind::BpbGeometry,
            bus: Some(t.bus),
            partition: Some(v.partition),
            message: format!(
                "{}: partition {} BPB says {bh} heads / {bs} sectors per track but the BIOS \
                 presents {}: boot code will read C/H/S {c}/{h}/{s} for LBA {lba}, {effect}",
                t.bus.name(),
                v.partition,
                geometry::fmt(t.logical)
            ),
        });
    }
    None
}

fn check_mbr_chs(a: &mut Audit) {
    let mut out = vec![];
    for p in a.table.partitions() {
        let Some(e) = &p.mbr_entry else { continue };
        if e.ptype == 0xEE || e.start_chs.is_zero() {
            continue;
        }
        for t in &a.targets {
            let g = t.logical;
            let expect = RawChs::from_lba(p.start_lba, g.heads, g.sectors);
            if expect.cylinder == 1023 && e.start_chs.cylinder == 1023 {
                continue; // both say "beyond CHS reach"
            }
            if e.start_chs != expect {
                let read = e
                    .start_chs
                    .to_lba(g.heads, g.sectors)
                    .map(|n| format!("LBA {n}"))
                    .unwrap_or_else(|| "an address the BIOS rejects".into());
                out.push(Finding {
                    kind: FindingKind::MbrChs,
                    bus: Some(t.bus),
                    partition: Some(p.index),
                    message: format!(
                        "{}: partition {} start C/H/S {} is {read} under the BIOS geometry {}, \
                         not LBA {}: CHS-only MBR code would load the wrong boot sector",
                        t.bus.name(),
                        p.index,
                        e.start_chs,
                        geometry::fmt(g),
                        p.start_lba
                    ),
                });
            }
        }
    }
    a.findings.extend(out);
}

fn check_guess_and_buses(a: &mut Audit, mbr: &[u8], sectors: u64) {
    if let Some(g) = geometry::qemu_guess_from_mbr(mbr, sectors) {
        let d = geometry::qemu_default_chs(sectors);
        if g.heads <= 16 && (g.heads, g.sectors) != (d.heads, d.sectors) {
            a.findings.push(Finding {
                kind: FindingKind::QemuGuess,
                bus: None,
                partition: None,
                message: format!(
                    "QEMU takes {} as physical geometry from the first partition's end C/H/S \
                     (it assumes partitions end on a cylinder boundary): the BIOS will present \
                     {} heads / {} sectors per track",
                    geometry::fmt(g),
                    g.heads,
                    g.sectors
                ),
            });
        }
    }
    let ide = a.target(Bus::Ide).map(|t| t.logical);
    for t in &a.targets {
        if Some(t.logical) != ide {
            if let Some(i) = ide {
                a.findings.push(Finding {
                    kind: FindingKind::BusDisagreement,
                    bus: Some(t.bus),
                    partition: None,
                    message: format!(
                        "{} presents {} but ide presents {}: a guest moved between these buses \
                         sees a different geometry",
                        t.bus.name(),
                        geometry::fmt(t.logical),
                        geometry::fmt(i)
                    ),
                });
            }
        }
    }
    let hint_checks = [("BIOS", a.hints.bios), ("physical", a.hints.physical)];
    let src = a.hints.source.clone().unwrap_or_else(|| "container".into());
    for (what, h) in hint_checks {
        let Some(h) = h else { continue };
        if let Some(e) = a.expected {
            if (h.heads, h.sectors) == (e.heads, e.sectors) {
                for t in &a.targets {
                    if (t.logical.heads, t.logical.sectors) != (h.heads, h.sectors) {
                        a.findings.push(Finding {
                            kind: FindingKind::ContainerHint,
                            bus: Some(t.bus),
                            partition: None,
                            message: format!(
                                "{}: the {src} {what} geometry {} matches the boot volume's BPB \
                                 but the BIOS presents {}: the geometry the guest was installed \
                                 with is lost unless pinned",
                                t.bus.name(),
                                geometry::fmt(h),
                                geometry::fmt(t.logical)
                            ),
                        });
                    }
                }
            }
        }
    }
}
