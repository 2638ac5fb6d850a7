//! The CHS geometry QEMU + SeaBIOS present to INT 13h, per bus.
//!
//! Boot code of the NT era (MBR code, FAT/NTFS volume boot records) turns
//! an LBA into cylinder/head/sector with the geometry written in the BPB
//! (heads at 0x1A, sectors per track at 0x18) and reads it with INT 13h
//! AH=02. If the BIOS presents another geometry, it reads the wrong
//! sector (or the BIOS rejects the head number) and the guest stops with
//! "A disk read error occurred" or hangs at "Booting from Hard Disk".
//! This module computes the geometry the BIOS will present.
//!
//! # Rules (QEMU 10.0 hw/block/hd-geometry.c, SeaBIOS src/block.c)
//!
//! **Step 1, QEMU's physical geometry** (unless `cyls/heads/secs` are set
//! on the device):
//! 1. *Guess from the MBR* (`guess_disk_lchs`): sector 0 must end in
//!    0x55AA; the first of the four primary entries with a non-zero
//!    sector count and a non-zero *end head* gives `heads = end_head + 1`,
//!    `sectors = end_sector & 63` (entry skipped when 0), `cylinders =
//!    disk_sectors / (heads * sectors)` (entry skipped unless 1..=16383).
//! 2. No guess → default `16383 ≥ cyls = disk_sectors / 1008 ≥ 2`, 16
//!    heads, 63 sectors, translation *auto*: NONE when cyls ≤ 1024, else
//!    LARGE when cyls·heads ≤ 131072, else LBA.
//! 3. Guess with heads > 16 → the default geometry of step 2, translation
//!    LARGE when cyls·heads ≤ 131072 else LBA.
//! 4. Guess with heads ≤ 16 → the guess itself is the physical geometry,
//!    translation NONE.
//!
//! **Step 2, what SeaBIOS gets per bus**:
//! * `ide-hd` on the PIIX IDE bus (i440fx `pc`): physical CHS from ATA
//!   IDENTIFY and QEMU's translation from CMOS byte 0x39.
//! * `ide-hd` on q35's AHCI (SATA), `virtio-blk-pci`: physical CHS from
//!   IDENTIFY / virtio config; translation by SeaBIOS's heuristic
//!   (`get_translation`): NONE when cyls ≤ 1024, heads ≤ 16, spt ≤ 63;
//!   else LARGE when cyls·heads ≤ 131072; else LBA; LBA also when the
//!   physical CHS is absent or larger than the disk.
//! * `scsi-hd` on virtio-scsi: no physical CHS (0/0/0) → LBA.
//! * Any of them with QEMU's `lcyls`/`lheads`/`lsecs` set: QEMU hands the
//!   logical geometry to SeaBIOS through the fw_cfg file `bios-geometry`
//!   and SeaBIOS uses it as is ("host-supplied"); this is the *pin*.
//!
//! **Step 3, SeaBIOS's logical geometry** (`setup_translation`):
//! * NONE: the physical geometry.
//! * LARGE: halve cylinders and double heads while cylinders > 1024 and
//!   heads ≤ 127.
//! * LBA: 63 sectors; disks > 1024·255·63 sectors get 1024/255/63; else
//!   `c = sectors/63`, heads = 16, 32, 64, 128 or 255 (the smallest of
//!   those ≥ c/1024, 255 above 128), cylinders = c / heads.
//! * Finally cylinders are clipped to 1024 (INT 13h AH=08 reports at most
//!   1024 cylinders).
//!
//! # Sizes → geometry (no partition table, or one whose end heads are
//! > 16; verified against SeaBIOS's own log in `tests/geometry_seabios.rs`)
//!
//! | disk | QEMU physical | IDE (pc) | SATA (q35 AHCI) / virtio-blk | virtio-scsi |
//! |------|---------------|----------|------------------------------|-------------|
//! | 200 MiB | 406/16/63 | 406/16/63 | 406/16/63 | 406/16/63 (LBA) |
//! | 504 MiB (1024 cyl) | 1024/16/63 | 1024/16/63 | 1024/16/63 | 1024/16/63 (LBA) |
//! | 750 MiB (1536000 s) | 1523/16/63 | 761/32/63 (LARGE) | 761/32/63 (LARGE) | 761/32/63 (LBA) |
//! | 2 GiB | 4161/16/63 | 520/128/63 (LARGE) | 520/128/63 (LARGE) | 520/128/63 (LBA) |
//! | 8 GiB | 16383/16/63 | 1024/255/63 (LBA) | 1024/255/63 (LBA) | 1024/255/63 (LBA) |
//!
//! A partition table whose entries end on head 15 (heads ≤ 16) instead
//! makes the guess the physical geometry with translation NONE on IDE,
//! while SATA/virtio apply the heuristic: a 750 MiB disk then shows
//! 1024/16/63 on IDE but 761/32/63 on SATA/virtio — the two phases of a
//! migration disagree unless the geometry is pinned.

use crate::partition::RawChs;
use serde::Serialize;
pub use vdisk::Chs;

/// The disk bus the target VM attaches the disk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bus {
    /// `ide-hd` on the PIIX IDE controller of the i440fx `pc` machine.
    Ide,
    /// `ide-hd` on the AHCI controller of the q35 machine.
    Sata,
    /// `virtio-blk-pci`.
    VirtioBlk,
    /// `scsi-hd` behind `virtio-scsi-pci`.
    VirtioScsi,
}

impl Bus {
    /// All buses, in the order reports list them.
    pub const ALL: [Bus; 4] = [Bus::Ide, Bus::Sata, Bus::VirtioBlk, Bus::VirtioScsi];
    /// Short name (ide, sata, virtio-blk, virtio-scsi).
    pub fn name(self) -> &'static str {
        match self {
            Bus::Ide => "ide",
            Bus::Sata => "sata",
            Bus::VirtioBlk => "virtio-blk",
            Bus::VirtioScsi => "virtio-scsi",
        }
    }
    /// Parse a bus name; "virtio" means virtio-blk.
    pub fn parse(s: &str) -> Option<Bus> {
        Some(match s {
            "ide" => Bus::Ide,
            "sata" | "ahci" => Bus::Sata,
            "virtio" | "virtio-blk" => Bus::VirtioBlk,
            "virtio-scsi" | "scsi" => Bus::VirtioScsi,
            _ => return None,
        })
    }
    /// The QEMU device model for a disk on this bus.
    pub fn qemu_device(self) -> &'static str {
        match self {
            Bus::Ide | Bus::Sata => "ide-hd",
            Bus::VirtioBlk => "virtio-blk-pci",
            Bus::VirtioScsi => "scsi-hd",
        }
    }
}

/// BIOS translation modes (SeaBIOS names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Translation {
    /// Logical = physical.
    None,
    /// LBA-assisted.
    Lba,
    /// Bit-shift (ECHS).
    Large,
    /// Given by the host through fw_cfg `bios-geometry` (lcyls/lheads/lsecs).
    HostSupplied,
}

/// Geometry settings given explicitly to the QEMU device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeviceGeometry {
    /// Physical geometry (`cyls/heads/secs`, libvirt `<geometry>`).
    pub physical: Option<Chs>,
    /// Logical BIOS geometry (`lcyls/lheads/lsecs`).
    pub logical: Option<Chs>,
}

/// What the BIOS presents for one disk on one bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BiosGeometry {
    /// The bus.
    pub bus: Bus,
    /// Physical geometry as SeaBIOS sees it (None for virtio-scsi).
    pub physical: Option<Chs>,
    /// Translation in effect.
    pub translation: Translation,
    /// The INT 13h geometry (cylinders clipped to 1024).
    pub logical: Chs,
    /// How it was derived, one step per line.
    pub derivation: Vec<String>,
}

fn chs(c: u64, h: u64, s: u64) -> Chs {
    Chs {
        cylinders: c as u32,
        heads: h as u32,
        sectors: s as u32,
    }
}

/// QEMU's `guess_disk_lchs`: the geometry implied by the first MBR entry
/// with a non-zero end head. `mbr` is sector 0.
pub fn qemu_guess_from_mbr(mbr: &[u8], disk_sectors: u64) -> Option<Chs> {
    if mbr.len() < 512 || mbr[510] != 0x55 || mbr[511] != 0xAA {
        return None;
    }
    for i in 0..4 {
        let e = &mbr[0x1BE + i * 16..0x1BE + i * 16 + 16];
        let nr = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        let end = RawChs::from_bytes(&e[5..8]);
        if nr != 0 && end.head != 0 {
            let heads = end.head as u64 + 1;
            let secs = (e[6] & 63) as u64;
            if secs == 0 {
                continue;
            }
            let cyls = disk_sectors / (heads * secs);
            if !(1..=16383).contains(&cyls) {
                continue;
            }
            return Some(chs(cyls, heads, secs));
        }
    }
    None
}

/// QEMU's `guess_chs_for_size`: 16 heads, 63 sectors, 2..=16383 cylinders.
pub fn qemu_default_chs(disk_sectors: u64) -> Chs {
    chs((disk_sectors / (16 * 63)).clamp(2, 16383), 16, 63)
}

/// QEMU's automatic translation for a physical geometry
/// (`hd_bios_chs_auto_trans`; also SeaBIOS's heuristic for valid CHS).
pub fn auto_translation(p: Chs) -> Translation {
    if p.cylinders <= 1024 && p.heads <= 16 && p.sectors <= 63 {
        Translation::None
    } else if p.cylinders as u64 * p.heads as u64 <= 131072 {
        Translation::Large
    } else {
        Translation::Lba
    }
}

/// QEMU's `hd_geometry_guess`: physical geometry and the translation QEMU
/// would choose, with the reasoning.
pub fn qemu_physical(mbr: &[u8], disk_sectors: u64, lines: &mut Vec<String>) -> (Chs, Translation) {
    match qemu_guess_from_mbr(mbr, disk_sectors) {
        None => {
            let p = qemu_default_chs(disk_sectors);
            lines.push(format!(
                "QEMU: no MBR entry with a non-zero end head: default {} physical",
                fmt(p)
            ));
            (p, auto_translation(p))
        }
        Some(g) if g.heads > 16 => {
            let p = qemu_default_chs(disk_sectors);
            let t = if p.cylinders as u64 * p.heads as u64 <= 131072 {
                Translation::Large
            } else {
                Translation::Lba
            };
            lines.push(format!(
                "QEMU: MBR end head implies {} heads (> 16): default {} physical, translation {:?}",
                g.heads,
                fmt(p),
                t
            ));
            (p, t)
        }
        Some(g) => {
            lines.push(format!(
                "QEMU: MBR end head implies {}: used as physical geometry, translation None",
                fmt(g)
            ));
            (g, Translation::None)
        }
    }
}

/// SeaBIOS's heuristic translation (`get_translation` for non-IDE disks).
pub fn seabios_translation(p: Option<Chs>, disk_sectors: u64) -> Translation {
    match p {
        Some(p)
            if p.cylinders != 0
                && p.heads != 0
                && p.sectors != 0
                && p.cylinders as u64 * p.heads as u64 * p.sectors as u64 <= disk_sectors =>
        {
            auto_translation(p)
        }
        _ => Translation::Lba,
    }
}

/// SeaBIOS's `setup_translation`: the logical geometry for a physical
/// geometry and a translation.
pub fn seabios_logical(p: Option<Chs>, t: Translation, disk_sectors: u64) -> Chs {
    let p = p.unwrap_or(chs(0, 0, 0));
    let (mut c, mut h, mut s) = (p.cylinders as u64, p.heads as u64, p.sectors as u64);
    match t {
        Translation::None | Translation::HostSupplied => {}
        Translation::Lba => {
            s = 63;
            if disk_sectors > 63 * 255 * 1024 {
                h = 255;
                c = 1024;
            } else {
                let sect = disk_sectors / 63;
                h = match sect / 1024 {
                    x if x > 128 => 255,
                    x if x > 64 => 128,
                    x if x > 32 => 64,
                    x if x > 16 => 32,
                    _ => 16,
                };
                c = sect / h;
            }
        }
        Translation::Large => {
            while c > 1024 {
                c >>= 1;
                h <<= 1;
                if h > 127 {
                    break;
                }
            }
        }
    }
    chs(c.min(1024), h, s)
}

/// The geometry INT 13h will report for a disk of `disk_sectors` sectors
/// whose sector 0 is `mbr`, attached to `bus` with `dev` settings.
pub fn bios_geometry(
    mbr: &[u8],
    disk_sectors: u64,
    bus: Bus,
    dev: &DeviceGeometry,
) -> BiosGeometry {
    let mut lines = vec![];
    // Physical geometry and QEMU's own translation.
    let (phys, qemu_trans) = match dev.physical {
        Some(p) => {
            lines.push(format!(
                "device: physical geometry {} given explicitly",
                fmt(p)
            ));
            (p, auto_translation(p))
        }
        None => qemu_physical(mbr, disk_sectors, &mut lines),
    };
    let physical = (bus != Bus::VirtioScsi).then_some(phys);
    if let Some(l) = dev.logical {
        if (1..=255).contains(&l.heads) && (1..=63).contains(&l.sectors) && l.cylinders > 0 {
            lines.push(format!(
                "fw_cfg bios-geometry: lcyls/lheads/lsecs {} used as is (host-supplied)",
                fmt(l)
            ));
            let logical = chs(
                l.cylinders.min(1024) as u64,
                l.heads as u64,
                l.sectors as u64,
            );
            return BiosGeometry {
                bus,
                physical,
                translation: Translation::HostSupplied,
                logical,
                derivation: lines,
            };
        }
        lines.push(format!(
            "fw_cfg bios-geometry {} ignored by SeaBIOS (heads must be 1..=255, sectors 1..=63)",
            fmt(l)
        ));
    }
    let t = match bus {
        Bus::Ide => {
            lines.push(format!(
                "IDE: SeaBIOS takes QEMU's translation {qemu_trans:?} from CMOS"
            ));
            qemu_trans
        }
        Bus::Sata | Bus::VirtioBlk => {
            let t = seabios_translation(physical, disk_sectors);
            lines.push(format!(
                "{}: SeaBIOS heuristic on physical {} gives translation {t:?}",
                bus.name(),
                fmt(phys)
            ));
            t
        }
        Bus::VirtioScsi => {
            lines.push("virtio-scsi: no physical CHS, SeaBIOS uses LBA translation".into());
            Translation::Lba
        }
    };
    let logical = seabios_logical(physical, t, disk_sectors);
    lines.push(format!("SeaBIOS logical geometry {}", fmt(logical)));
    BiosGeometry {
        bus,
        physical,
        translation: t,
        logical,
        derivation: lines,
    }
}

/// `c/h/s` text.
pub fn fmt(c: Chs) -> String {
    format!("{}/{}/{}", c.cylinders, c.heads, c.sectors)
}

/// The CHS address boot code computes for `lba` with `heads`/`spt`
/// (cylinder not clipped; callers check the 1024 limit).
pub fn lba_to_chs(lba: u64, heads: u32, spt: u32) -> (u64, u32, u32) {
    let (h, s) = (heads.max(1) as u64, spt.max(1) as u64);
    let track = lba / s;
    ((track / h), (track % h) as u32, (lba % s + 1) as u32)
}

/// What a BIOS with geometry `bios` does with the CHS address `(c,h,s)`:
/// the LBA it reads, or None when it rejects the address.
pub fn bios_read_lba(c: u64, h: u32, s: u32, bios: Chs) -> Option<u64> {
    if c >= bios.cylinders.min(1024) as u64 || h >= bios.heads || s == 0 || s > bios.sectors {
        return None;
    }
    Some((c * bios.heads as u64 + h as u64) * bios.sectors as u64 + s as u64 - 1)
}
