//! Geometry fixes: the [`GeometryPlan`] (pin or rewrite, chosen
//! automatically from an [`Audit`], overridable) and its application.
//!
//! * **pin** gives the target disk an explicit logical BIOS geometry with
//!   QEMU's `lcyls`/`lheads`/`lsecs` device properties (handed to SeaBIOS
//!   through fw_cfg `bios-geometry`; works for `ide-hd` on IDE and AHCI,
//!   `virtio-blk-pci` and `scsi-hd`). Nothing on disk changes. libvirt
//!   has no element for them: they need a `<qemu:override>`.
//! * **rewrite** changes the output image: BPB heads, sectors per track
//!   and hidden sectors of every FAT/NTFS volume (and its backup boot
//!   sector), and the CHS fields of the MBR/EBR entries, to the geometry
//!   the final bus presents. End CHS fields are written as the last
//!   sector of the partition's final cylinder (the DOS convention):
//!   QEMU guesses the geometry from them assuming exactly that, so the
//!   guess stays equal to the target geometry.
//!
//! Automatic choice: rewrite when a BPB's hidden sectors are wrong (pin
//! cannot help) or the BPB geometry is not a valid INT 13h geometry;
//! else pin when the BIOS would present another geometry than the BPB
//! expects on any requested bus; else nothing.

use crate::audit::{expected_cylinders, Audit, FindingKind};
use crate::bpb::{Bpb, OFF_HEADS, OFF_HIDDEN, OFF_SPT};
use crate::geometry::{self, bios_geometry, BiosGeometry, Bus, Chs, DeviceGeometry};
use crate::partition::{RawChs, SECTOR};
use serde::Serialize;
use vdisk::{Disk, DiskWrite, Result};

/// How to fix a geometry mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FixMode {
    /// Pin the BIOS geometry with QEMU device properties.
    Pin,
    /// Rewrite BPB and MBR CHS fields on the output image.
    Rewrite,
}

impl FixMode {
    /// Parse "pin" or "rewrite".
    pub fn parse(s: &str) -> Option<FixMode> {
        match s {
            "pin" => Some(FixMode::Pin),
            "rewrite" => Some(FixMode::Rewrite),
            _ => None,
        }
    }
}

/// A logical BIOS geometry pinned on the QEMU device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PinnedChs {
    /// `lcyls` (SeaBIOS clips to 1024).
    pub cylinders: u32,
    /// `lheads` (1..=255).
    pub heads: u32,
    /// `lsecs` (1..=63).
    pub sectors: u32,
}

impl PinnedChs {
    /// The QEMU device property string `lcyls=..,lheads=..,lsecs=..`.
    pub fn qemu_props(&self) -> String {
        format!(
            "lcyls={},lheads={},lsecs={}",
            self.cylinders, self.heads, self.sectors
        )
    }
    /// As a [`Chs`].
    pub fn chs(&self) -> Chs {
        Chs {
            cylinders: self.cylinders,
            heads: self.heads,
            sectors: self.sectors,
        }
    }
    /// The libvirt `<qemu:override>` block for a disk whose `<disk>`
    /// element carries `<alias name='{alias}'/>` (user aliases start with
    /// `ua-`); the `<domain>` element needs
    /// `xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'`.
    pub fn libvirt_override(&self, alias: &str) -> String {
        let prop = |n: &str, v: u32| {
            format!("        <qemu:property name='{n}' type='unsigned' value='{v}'/>\n")
        };
        format!(
            "<qemu:override>\n  <qemu:device alias='{alias}'>\n    <qemu:frontend>\n{}{}{}    </qemu:frontend>\n  </qemu:device>\n</qemu:override>\n",
            prop("lcyls", self.cylinders),
            prop("lheads", self.heads),
            prop("lsecs", self.sectors)
        )
    }
}

/// The geometry decision for one disk, consumed by the migration pipeline
/// (rewrite on the output) and the domain writer (pin).
#[derive(Debug, Clone, Serialize)]
pub struct GeometryPlan {
    /// The fix, None when nothing needs fixing.
    pub mode: Option<FixMode>,
    /// True when `mode` was chosen by [`plan`] rather than requested.
    pub automatic: bool,
    /// Why, one line each.
    pub reasons: Vec<String>,
    /// Buses the plan was made for (bootstrap first, final last).
    pub buses: Vec<Bus>,
    /// The geometry the guest's boot volume expects (BPB).
    pub expected: Option<Chs>,
    /// Geometry to pin on every bus (pin mode, or rewrite when the buses
    /// would otherwise disagree).
    pub pin: Option<PinnedChs>,
    /// `-device` property string for the pin.
    pub qemu_device_props: Option<String>,
    /// libvirt snippet for the pin (see [`PinnedChs::libvirt_override`]).
    pub libvirt_override: Option<String>,
    /// Heads/sectors the rewrite writes into BPBs and MBR CHS fields.
    pub rewrite_geometry: Option<Chs>,
    /// What each bus presents once the plan is applied.
    pub after: Vec<BiosGeometry>,
    /// Caveats (portability, what the mode cannot fix).
    pub notes: Vec<String>,
}

/// Alias used in libvirt snippets.
pub const LIBVIRT_ALIAS: &str = "ua-h2k-disk0";

/// Decide how to fix the geometry of the disk audited in `a` for the
/// given buses (bootstrap first, final last; empty = virtio-blk).
pub fn plan(
    disk: &dyn Disk,
    a: &Audit,
    requested: Option<FixMode>,
    buses: &[Bus],
) -> Result<GeometryPlan> {
    let buses: Vec<Bus> = if buses.is_empty() {
        vec![Bus::VirtioBlk]
    } else {
        buses.to_vec()
    };
    let sectors = disk.size() / SECTOR;
    let mut reasons = vec![];
    let mut notes = vec![];
    let relevant = |f: &&crate::audit::Finding| f.bus.is_none_or(|b| buses.contains(&b));
    let hidden_bad = a
        .findings
        .iter()
        .filter(relevant)
        .any(|f| f.kind == FindingKind::HiddenSectors);
    let geo_bad = a
        .findings
        .iter()
        .filter(relevant)
        .any(|f| f.kind == FindingKind::BpbGeometry);
    for f in a.findings.iter().filter(relevant).filter(|f| {
        matches!(
            f.kind,
            FindingKind::HiddenSectors | FindingKind::BpbGeometry
        )
    }) {
        reasons.push(f.message.clone());
    }
    let expected = a.expected;
    let pinnable =
        expected.filter(|e| (1..=255).contains(&e.heads) && (1..=63).contains(&e.sectors));
    let auto = if hidden_bad || (geo_bad && pinnable.is_none()) {
        Some(FixMode::Rewrite)
    } else if geo_bad {
        Some(FixMode::Pin)
    } else {
        None
    };
    let mode = requested.or(auto);
    let mut p = GeometryPlan {
        mode,
        automatic: requested.is_none(),
        reasons,
        buses: buses.clone(),
        expected,
        pin: None,
        qemu_device_props: None,
        libvirt_override: None,
        rewrite_geometry: None,
        after: vec![],
        notes: vec![],
    };
    let mut mbr = [0u8; 512];
    if sectors > 0 {
        disk.read_at(&mut mbr, 0)?;
    }
    match mode {
        None => {
            p.reasons.push(
                "the BIOS geometry matches what the boot code expects on every requested bus"
                    .into(),
            );
            p.after = buses
                .iter()
                .map(|&b| bios_geometry(&mbr, sectors, b, &DeviceGeometry::default()))
                .collect();
        }
        Some(FixMode::Pin) => {
            let Some(e) = pinnable else {
                notes.push(
                    "no FAT/NTFS boot volume with a valid BPB geometry: nothing to pin".into(),
                );
                p.mode = None;
                p.notes = notes;
                return Ok(p);
            };
            let pin = pin_from(e, a, sectors);
            if hidden_bad {
                notes.push("pin does not fix wrong BPB hidden sectors: the guest will still fail to boot; use rewrite".into());
            }
            notes.push(format!(
                "pin needs QEMU device properties {} on every bus the disk is attached to \
                 (bootstrap and final); libvirt can only pass them through <qemu:override>, \
                 which other hypervisors and tools ignore: rewrite is the more portable choice",
                pin.qemu_props()
            ));
            apply_pin(&mut p, pin, &mbr, sectors);
        }
        Some(FixMode::Rewrite) => {
            let final_bus = *buses.last().unwrap_or(&Bus::VirtioBlk);
            // The geometry the final bus presents once our MBR CHS fields
            // are in place: QEMU's default path (no guess / guess > 16 heads).
            let target = if geo_bad || expected.is_none() {
                let mut zero = mbr;
                for i in 0..4 {
                    zero[0x1BE + i * 16 + 5..0x1BE + i * 16 + 8].fill(0);
                }
                bios_geometry(&zero, sectors, final_bus, &DeviceGeometry::default()).logical
            } else {
                expected.unwrap_or_default_chs()
            };
            p.rewrite_geometry = Some(target);
            let new_mbr = rewritten_mbr(&mbr, target);
            p.after = buses
                .iter()
                .map(|&b| bios_geometry(&new_mbr, sectors, b, &DeviceGeometry::default()))
                .collect();
            let disagree = p
                .after
                .iter()
                .any(|g| (g.logical.heads, g.logical.sectors) != (target.heads, target.sectors));
            if disagree {
                let pin = PinnedChs {
                    cylinders: expected_cylinders(sectors, target.heads, target.sectors),
                    heads: target.heads,
                    sectors: target.sectors,
                };
                notes.push(format!(
                    "the buses would present different geometries after the rewrite; {} is also pinned on every bus",
                    pin.qemu_props()
                ));
                apply_pin(&mut p, pin, &new_mbr, sectors);
            }
            notes.push(format!(
                "rewrite sets BPB heads/sectors per track to {}/{} and hidden sectors to each partition's start, \
                 in the boot sector and its backup, and the MBR CHS fields to the same geometry",
                target.heads, target.sectors
            ));
        }
    }
    p.notes = notes;
    Ok(p)
}

trait OrDefault {
    fn unwrap_or_default_chs(self) -> Chs;
}
impl OrDefault for Option<Chs> {
    fn unwrap_or_default_chs(self) -> Chs {
        self.unwrap_or(Chs {
            cylinders: 1024,
            heads: 255,
            sectors: 63,
        })
    }
}

/// The pinned geometry for expected heads/sectors: cylinders from the
/// container hint with the same heads/sectors when there is one (VMDK
/// ddb.geometry*), else computed from the disk size (≤ 1024).
fn pin_from(e: Chs, a: &Audit, sectors: u64) -> PinnedChs {
    let hint = [a.hints.bios, a.hints.physical]
        .into_iter()
        .flatten()
        .find(|h| (h.heads, h.sectors) == (e.heads, e.sectors) && h.cylinders > 0);
    PinnedChs {
        cylinders: hint
            .map(|h| h.cylinders)
            .unwrap_or_else(|| expected_cylinders(sectors, e.heads, e.sectors)),
        heads: e.heads,
        sectors: e.sectors,
    }
}

fn apply_pin(p: &mut GeometryPlan, pin: PinnedChs, mbr: &[u8], sectors: u64) {
    let dev = DeviceGeometry {
        physical: None,
        logical: Some(pin.chs()),
    };
    p.after = p
        .buses
        .iter()
        .map(|&b| bios_geometry(mbr, sectors, b, &dev))
        .collect();
    p.qemu_device_props = Some(pin.qemu_props());
    p.libvirt_override = Some(pin.libvirt_override(LIBVIRT_ALIAS));
    p.pin = Some(pin);
}

/// Sector 0 with every non-protective entry's CHS fields rewritten for
/// `g` (primaries only; EBRs are handled by [`apply`]).
pub fn rewritten_mbr(mbr: &[u8; 512], g: Chs) -> [u8; 512] {
    let mut out = *mbr;
    for i in 0..4 {
        let o = 0x1BE + i * 16;
        rewrite_entry(&mut out[o..o + 16], 0, g);
    }
    out
}

/// Rewrite the CHS fields of one 16-byte entry whose LBA field is
/// relative to `base`.
fn rewrite_entry(e: &mut [u8], base: u64, g: Chs) -> bool {
    let ptype = e[4];
    let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
    let count = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
    if ptype == 0 || ptype == 0xEE || count == 0 {
        return false;
    }
    let abs = base + start;
    let s = RawChs::from_lba(abs, g.heads, g.sectors);
    let last = RawChs::from_lba(abs + count - 1, g.heads, g.sectors);
    let end = RawChs {
        cylinder: last.cylinder,
        head: (g.heads - 1) as u8,
        sector: g.sectors as u8,
    };
    let before = e[1..8].to_vec();
    e[1..4].copy_from_slice(&s.to_bytes());
    e[5..8].copy_from_slice(&end.to_bytes());
    before != e[1..8]
}

/// One change made on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Byte offset of the changed sector on the disk.
    pub offset: u64,
    /// What changed, before → after.
    pub what: String,
}

/// Apply the rewrite part of `plan` to `disk` (pin changes nothing on
/// disk). Returns every change made.
pub fn apply(disk: &dyn DiskWrite, a: &Audit, plan: &GeometryPlan) -> Result<Vec<Change>> {
    let Some(g) = plan
        .rewrite_geometry
        .filter(|_| plan.mode == Some(FixMode::Rewrite))
    else {
        return Ok(vec![]);
    };
    let mut changes = vec![];
    for v in &a.volumes {
        let Some(b) = &v.bpb else { continue };
        let hidden = if v.partition == 0 {
            b.hidden_sectors
        } else {
            v.start_lba.min(u32::MAX as u64) as u32
        };
        let mut targets = vec![(v.start_lba, "boot sector")];
        if let Some(bk) = b.backup_sector.filter(|&bk| bk < v.sectors) {
            targets.push((v.start_lba + bk, "backup boot sector"));
        }
        for (lba, label) in targets {
            let off = lba * SECTOR;
            let mut s = [0u8; 512];
            disk.read_at(&mut s, off)?;
            let Some(cur) = Bpb::parse(&s) else { continue };
            if cur.fs != b.fs {
                continue;
            }
            if let Some(c) = patch_bpb(&mut s, &cur, g, hidden) {
                disk.write_at(&s, off)?;
                changes.push(Change {
                    offset: off,
                    what: format!("partition {} {label}: {c}", v.partition),
                });
            }
        }
    }
    // MBR and EBR chain.
    let mut tables: Vec<(u64, u64)> = vec![(0, 0)];
    for p in a.table.partitions() {
        if let Some(e) = &p.mbr_entry {
            if e.table_lba != 0 && !tables.iter().any(|t| t.0 == e.table_lba) {
                tables.push((e.table_lba, 0));
            }
        }
    }
    let ext_start = a
        .table
        .partitions()
        .iter()
        .find(|p| p.is_container())
        .map(|p| p.start_lba);
    for (lba, _) in tables {
        let off = lba * SECTOR;
        let mut s = [0u8; 512];
        disk.read_at(&mut s, off)?;
        if s[510] != 0x55 || s[511] != 0xAA {
            continue;
        }
        let before: Vec<String> = (0..4).map(|i| entry_chs_text(&s, i)).collect();
        let mut changed = false;
        for i in 0..4 {
            let o = 0x1BE + i * 16;
            let base = if lba == 0 {
                0
            } else if crate::partition::mbr_is_extended(s[o + 4]) {
                ext_start.unwrap_or(0)
            } else {
                lba
            };
            changed |= rewrite_entry(&mut s[o..o + 16], base, g);
        }
        if changed {
            disk.write_at(&s, off)?;
            for (i, was) in before.iter().enumerate() {
                let after = entry_chs_text(&s, i);
                if after != *was {
                    changes.push(Change {
                        offset: off + 0x1BE + i as u64 * 16,
                        what: format!(
                            "{} entry {}: C/H/S {} -> {}",
                            if lba == 0 {
                                "MBR".to_string()
                            } else {
                                format!("EBR at LBA {lba}")
                            },
                            i + 1,
                            was,
                            after
                        ),
                    });
                }
            }
        }
    }
    disk.flush()?;
    Ok(changes)
}

fn entry_chs_text(s: &[u8], i: usize) -> String {
    let o = 0x1BE + i * 16;
    format!(
        "{}..{}",
        RawChs::from_bytes(&s[o + 1..o + 4]),
        RawChs::from_bytes(&s[o + 5..o + 8])
    )
}

fn patch_bpb(s: &mut [u8; 512], cur: &Bpb, g: Chs, hidden: u32) -> Option<String> {
    let mut parts = vec![];
    let (h, spt) = (g.heads as u16, g.sectors as u16);
    if cur.heads != h {
        parts.push(format!("heads {} -> {h}", cur.heads));
        s[OFF_HEADS..OFF_HEADS + 2].copy_from_slice(&h.to_le_bytes());
    }
    if cur.sectors_per_track != spt {
        parts.push(format!(
            "sectors per track {} -> {spt}",
            cur.sectors_per_track
        ));
        s[OFF_SPT..OFF_SPT + 2].copy_from_slice(&spt.to_le_bytes());
    }
    if cur.hidden_sectors != hidden {
        parts.push(format!("hidden sectors {} -> {hidden}", cur.hidden_sectors));
        s[OFF_HIDDEN..OFF_HIDDEN + 4].copy_from_slice(&hidden.to_le_bytes());
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Describe the plan's effect per bus in one line each (for the CLI).
pub fn describe_after(p: &GeometryPlan) -> Vec<String> {
    p.after
        .iter()
        .map(|g| {
            format!(
                "{}: BIOS geometry {} ({:?})",
                g.bus.name(),
                geometry::fmt(g.logical),
                g.translation
            )
        })
        .collect()
}
