//! The geometry model against SeaBIOS itself: for disk sizes across the
//! translation boundaries, MBR CHS layouts and all four buses, the
//! geometry `guest::geometry::bios_geometry` predicts equals the `LCHS=`
//! SeaBIOS logs on its debug port and what INT 13h AH=08 returns to the
//! boot sector (max cylinder = cylinders - 2, max head = heads - 1).

use guest::geometry::{bios_geometry, Bus, DeviceGeometry};
use guest::testdisk::{boot, BootDisk, MbrChs, QemuBoot};

fn check(name: &str, spec: BootDisk, buses: &[Bus]) {
    check_with(name, spec, buses, |_| {})
}

fn check_with(name: &str, spec: BootDisk, buses: &[Bus], tweak: impl Fn(&std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join(format!("{name}.img"));
    spec.write_raw(&img).unwrap();
    tweak(&img);
    let mut mbr = [0u8; 512];
    {
        use std::os::unix::fs::FileExt;
        std::fs::File::open(&img)
            .unwrap()
            .read_exact_at(&mut mbr, 0)
            .unwrap();
    }
    for &bus in buses {
        let want = bios_geometry(&mbr, spec.size / 512, bus, &DeviceGeometry::default());
        let out = boot(&QemuBoot::new(&img, "raw", bus)).unwrap();
        assert!(
            !out.timed_out,
            "{name} {bus:?}: timeout, COM1: {}",
            out.serial
        );
        assert_eq!(
            out.seabios_lchs(),
            Some(want.logical),
            "{name} on {bus:?}: model {:#?}\nSeaBIOS log:\n{}",
            want,
            out.bios_log
        );
        let l = want.logical;
        assert_eq!(
            out.int13_geometry(),
            Some((l.cylinders - 2, l.heads - 1, l.sectors)),
            "{name} on {bus:?}: COM1 {}",
            out.serial
        );
    }
}

fn disk(size: u64, mbr_chs: MbrChs) -> BootDisk {
    BootDisk {
        size,
        mbr_chs,
        ..BootDisk::vmware_255_heads()
    }
}

const ALL: [Bus; 4] = [Bus::Ide, Bus::Sata, Bus::VirtioBlk, Bus::VirtioScsi];
const EXACT_255: MbrChs = MbrChs::Exact {
    heads: 255,
    sectors: 63,
};

#[test]
fn small_disk_200m_all_buses() {
    check("200m", disk(200 << 20, EXACT_255), &ALL);
}

#[test]
fn boundary_504m_all_buses() {
    check("504m", disk(1024 * 16 * 63 * 512, MbrChs::Zeroed), &ALL);
}

#[test]
fn disk_750m_all_buses() {
    check("750m", disk(750 << 20, MbrChs::Zeroed), &ALL);
}

#[test]
fn disk_2g_large_translation() {
    check("2g", disk(2 << 30, EXACT_255), &ALL);
}

#[test]
fn disk_8g_lba_translation() {
    check("8g", disk(8 << 30, EXACT_255), &ALL);
}

/// A 16-head partition table on a 750 MiB disk: IDE keeps QEMU's
/// translation NONE (1024/16/63) while SATA and virtio-blk apply SeaBIOS's
/// heuristic (761/32/63): the buses disagree.
#[test]
fn sixteen_head_table_makes_buses_disagree() {
    let spec = disk(
        750 << 20,
        MbrChs::Exact {
            heads: 16,
            sectors: 63,
        },
    );
    check("750m-16h", spec, &[Bus::Ide, Bus::Sata, Bus::VirtioBlk]);
}

/// A partition not ending on a cylinder boundary: QEMU's guess takes odd
/// heads/sectors (here 6/37) from the end CHS.
#[test]
fn odd_guess_from_unaligned_partition_end() {
    let spec = disk(
        200 << 20,
        MbrChs::Exact {
            heads: 16,
            sectors: 63,
        },
    );
    let end = 409599u64; // last sector of the disk: head 5, sector 37
    check_with("200m-odd", spec, &[Bus::Ide, Bus::VirtioBlk], |img| {
        use std::os::unix::fs::FileExt;
        let chs = guest::partition::RawChs::from_lba(end, 16, 63);
        assert_eq!((chs.head, chs.sector), (5, 37));
        let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
        f.write_all_at(&chs.to_bytes(), 0x1BE + 5).unwrap();
        f.write_all_at(&((end + 1 - 63) as u32).to_le_bytes(), 0x1BE + 12)
            .unwrap();
    });
}
