//! The proof under a real BIOS: test disks reproducing Launchpad 586175
//! and QEMU 1745312 fail to boot under QEMU + SeaBIOS with the default
//! geometry and print `BOOT OK` after each fix mode.
//!
//! Oracles: qemu-system-x86_64 + SeaBIOS (the INT 13h implementation),
//! syslinux's mbr.bin (a real MBR boot program), nasm. KVM is never used
//! (`-accel tcg`); every boot has a 20 s limit.

use guest::audit::{audit, FindingKind};
use guest::fixgeo::{self, FixMode};
use guest::geometry::{Bus, Chs, DeviceGeometry};
use guest::testdisk::{boot, write_flat_vmdk, BootDisk, BootOutcome, QemuBoot};
use std::path::Path;

fn chs(c: u32, h: u32, s: u32) -> Chs {
    Chs {
        cylinders: c,
        heads: h,
        sectors: s,
    }
}

fn run(q: QemuBoot) -> BootOutcome {
    let what = format!("{:?} on {:?} pin {:?}", q.image, q.bus, q.lchs);
    let out = boot(&q).unwrap_or_else(|e| panic!("cannot boot {what}: {e}"));
    assert!(
        !out.timed_out,
        "{what}: QEMU hit the time limit; COM1: {}",
        out.serial
    );
    out
}

fn assert_fails(q: QemuBoot) -> BootOutcome {
    let what = format!("{:?} on {:?}", q.image, q.bus);
    let out = run(q);
    assert!(
        out.disk_error() && !out.booted(),
        "{what}: expected 'A disk read error occurred', COM1: {}",
        out.serial
    );
    out
}

fn assert_boots(q: QemuBoot) -> BootOutcome {
    let what = format!("{:?} on {:?} pin {:?}", q.image, q.bus, q.lchs);
    let out = run(q);
    assert!(
        out.booted(),
        "{what}: expected BOOT OK, COM1: {}",
        out.serial
    );
    out
}

/// Apply `mode` to a copy of `src` through the library, return the copy.
fn rewrite_copy(src: &Path, dst: &Path, buses: &[Bus]) -> Vec<fixgeo::Change> {
    let status = std::process::Command::new("cp")
        .args(["--sparse=always"])
        .arg(src)
        .arg(dst)
        .status()
        .expect("cp");
    assert!(status.success());
    let d = vdisk::raw::RawDiskMut::open(dst).unwrap();
    let a = audit(&d, &DeviceGeometry::default()).unwrap();
    let p = fixgeo::plan(&d, &a, Some(FixMode::Rewrite), buses).unwrap();
    fixgeo::apply(&d, &a, &p).unwrap()
}

#[test]
fn lp586175_255_heads_fails_then_boots_after_pin_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("seed1.img");
    BootDisk::vmware_255_heads().write_raw(&img).unwrap();

    // Before: SeaBIOS presents 406/16/63 (AH=08 maxima 404/15/63).
    let out = assert_fails(QemuBoot::new(&img, "raw", Bus::Ide));
    assert_eq!(
        out.int13_geometry(),
        Some((404, 15, 63)),
        "COM1: {:?}",
        out.serial
    );
    assert_eq!(out.seabios_lchs(), Some(chs(406, 16, 63)));
    assert_fails(QemuBoot::new(&img, "raw", Bus::VirtioBlk));

    // Audit: predicts what SeaBIOS printed, and the failing read.
    let disk = vdisk::open(&img).unwrap();
    let a = audit(&*disk, &DeviceGeometry::default()).unwrap();
    assert_eq!(a.target(Bus::Ide).unwrap().logical, chs(406, 16, 63));
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::BpbGeometry && f.bus == Some(Bus::Ide))
        .expect("BPB geometry finding");
    assert!(f.message.contains("255 heads"), "{}", f.message);

    // Automatic plan: pin 25/255/63 (the BPB geometry).
    let p = fixgeo::plan(&*disk, &a, None, &[Bus::Sata, Bus::VirtioBlk]).unwrap();
    assert_eq!(p.mode, Some(FixMode::Pin));
    let pin = p.pin.unwrap();
    assert_eq!(pin.qemu_props(), "lcyls=25,lheads=255,lsecs=63");
    for bus in [Bus::Ide, Bus::Sata, Bus::VirtioBlk] {
        let out = assert_boots(QemuBoot::new(&img, "raw", bus).pinned(pin.chs()));
        assert_eq!(
            out.int13_geometry(),
            Some((23, 254, 63)),
            "COM1: {:?}",
            out.serial
        );
    }

    // Rewrite: BPB and MBR CHS to the geometry virtio presents.
    let fixed = dir.path().join("seed1-rewritten.img");
    let changes = rewrite_copy(&img, &fixed, &[Bus::Sata, Bus::VirtioBlk]);
    assert!(
        changes.iter().any(|c| c.what.contains("heads 255 -> 16")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.what.contains("backup boot sector")),
        "{changes:?}"
    );
    for bus in [Bus::Ide, Bus::Sata, Bus::VirtioBlk] {
        assert_boots(QemuBoot::new(&fixed, "raw", bus));
    }
    let d = vdisk::open(&fixed).unwrap();
    let a = audit(&*d, &DeviceGeometry::default()).unwrap();
    assert!(
        !a.findings.iter().any(|f| matches!(
            f.kind,
            FindingKind::BpbGeometry | FindingKind::HiddenSectors | FindingKind::MbrChs
        )),
        "{:#?}",
        a.findings
    );
}

#[test]
fn qemu1745312_vmdk_geometry_fails_when_guessed_boots_when_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("nt4-flat.vmdk");
    let desc = dir.path().join("nt4.vmdk");
    let spec = BootDisk::nt4_750m();
    spec.write_raw(&flat).unwrap();
    write_flat_vmdk(
        &desc,
        &flat,
        spec.size / 512,
        chs(1523, 16, 63),
        chs(761, 32, 63),
    )
    .unwrap();

    // QEMU left to guess (MBR CHS zeroed): 1523/16/63 physical, LARGE → 761/32/63.
    let out = assert_fails(QemuBoot::new(&desc, "vmdk", Bus::Ide));
    assert_eq!(out.seabios_lchs(), Some(chs(761, 32, 63)));
    assert_fails(QemuBoot::new(&desc, "vmdk", Bus::VirtioBlk));

    let disk = vdisk::open(&desc).unwrap();
    let hints = disk.geometry_hints();
    assert_eq!(hints.physical, Some(chs(1523, 16, 63)));
    assert_eq!(hints.bios, Some(chs(761, 32, 63)));
    let a = audit(&*disk, &DeviceGeometry::default()).unwrap();
    for bus in Bus::ALL {
        assert_eq!(a.target(bus).unwrap().logical, chs(761, 32, 63), "{bus:?}");
    }
    assert!(a
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::ContainerHint));
    let p = fixgeo::plan(&*disk, &a, None, &[Bus::Sata, Bus::VirtioBlk]).unwrap();
    assert_eq!(p.mode, Some(FixMode::Pin));
    let pin = p.pin.unwrap();
    // Derived from the descriptor's ddb.geometry (the BPB's 16/63).
    assert_eq!(pin.chs(), chs(1523, 16, 63));
    for bus in [Bus::Ide, Bus::Sata, Bus::VirtioBlk, Bus::VirtioScsi] {
        let out = assert_boots(QemuBoot::new(&desc, "vmdk", bus).pinned(pin.chs()));
        // SeaBIOS clips the pinned cylinders to 1024.
        assert_eq!(out.seabios_lchs(), Some(chs(1024, 16, 63)));
    }
}

#[test]
fn lp586175_hidden_sectors_fails_then_boots_after_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("seed3.img");
    BootDisk::hidden_mismatch().write_raw(&img).unwrap();
    assert_fails(QemuBoot::new(&img, "raw", Bus::Ide));

    let disk = vdisk::open(&img).unwrap();
    let a = audit(&*disk, &DeviceGeometry::default()).unwrap();
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::HiddenSectors)
        .expect("hidden sectors finding");
    assert!(f.message.contains("hidden sectors 63"), "{}", f.message);
    let p = fixgeo::plan(&*disk, &a, None, &[Bus::VirtioBlk]).unwrap();
    assert_eq!(p.mode, Some(FixMode::Rewrite));

    let fixed = dir.path().join("seed3-rewritten.img");
    let changes = rewrite_copy(&img, &fixed, &[Bus::Sata, Bus::VirtioBlk]);
    assert!(
        changes
            .iter()
            .any(|c| c.what.contains("hidden sectors 63 -> 2048")),
        "{changes:?}"
    );
    for bus in [Bus::Ide, Bus::Sata, Bus::VirtioBlk] {
        assert_boots(QemuBoot::new(&fixed, "raw", bus));
    }
}
