//! Phony Windows disk images built with the oracle tools, for the
//! `fix-windows` tests: tables by `sfdisk`, NTFS by `mkntfs` populated
//! through an `ntfs-3g` mount, the ESP by `mkfs.fat` + mtools, SOFTWARE
//! hives by `hivexregedit --merge` on the minimal hive, SYSTEM hives and the
//! BCD from the real corpus. Unlike the inspection tests (VMDK descriptors
//! over partition images), these are whole raw disks: `fix-windows` edits
//! raw or qcow2 images in place. The generic builders and readers live in
//! `testkit::winimg`, shared with the inspection tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub use testkit::winimg::*;

/// A hive written clean (the win10 SYSTEM is dirty and has no logs: take
/// the primary as it is, as Windows would without logs).
pub fn clean(p: &Path) {
    let (mut h, _) = regf::open_file_with_logs(p, regf::ReplayPolicy::IgnoreLogs).unwrap();
    h.write_to(p).unwrap();
}

/// Sectors of the Windows 7 layout: System Reserved, then the system
/// volume.
pub const W7_P1: (u64, u64) = (2048, 16384);
/// The system volume of the Windows 7 layout.
pub const W7_P2: (u64, u64) = (18432, 131072);

fn win7_software(dir: &Path) -> PathBuf {
    software_hive(
        dir,
        &[
            (
                "Microsoft\\Windows NT\\CurrentVersion",
                &[
                    "\"ProductName\"=\"Windows 7 Professional\"",
                    "\"CurrentVersion\"=\"6.1\"",
                    "\"CurrentBuildNumber\"=\"7601\"",
                    "\"InstallationType\"=\"Client\"",
                    "\"EditionID\"=\"Professional\"",
                ],
            ),
            (
                "Microsoft\\Windows\\CurrentVersion",
                &["\"DevicePath\"=hex(2):25,00,53,00,79,00,73,00,74,00,65,00,6d,00,52,00,6f,00,6f,00,74,00,25,00,5c,00,69,00,6e,00,66,00,00,00"],
            ),
        ],
    )
}

/// A Windows 7 x86 BIOS disk (MBR: System Reserved with the real BCD,
/// the system volume with the real win7 SYSTEM hive), `hibernated` adds a
/// `hiberfil.sys` with the `hibr` signature. Returns the raw image and
/// the BCD bytes.
pub fn win7_disk(dir: &Path, hibernated: bool) -> (PathBuf, Vec<u8>) {
    let system = unxz(dir, "SYSTEM-win7");
    let bcd = unxz(dir, "BCD");
    let software = win7_software(dir);
    let p1 = ntfs_part(dir, "w7p1.img", 8, W7_P1.0, |m| {
        put(m, "Boot/BCD", &std::fs::read(&bcd).unwrap());
        put(m, "bootmgr", &pe(0x14c));
    });
    let p2 = ntfs_part(dir, "w7p2.img", 64, W7_P2.0, |m| {
        put(
            m,
            "Windows/System32/config/SYSTEM",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "Windows/System32/config/SOFTWARE",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "Windows/System32/ntoskrnl.exe", &pe(0x14c));
        for f in [
            "atapi.sys",
            "intelide.sys",
            "pciide.sys",
            "pciidex.sys",
            "msahci.sys",
        ] {
            put(m, &format!("Windows/System32/drivers/{f}"), &pe(0x14c));
        }
        if hibernated {
            let mut hiber = b"hibr".to_vec();
            hiber.resize(8192, 0);
            put(m, "hiberfil.sys", &hiber);
        }
    });
    let disk = dir.join("win7.raw");
    assemble_raw(
        &disk,
        80,
        "label: dos\nlabel-id: 0x0badcafe\nstart=2048, size=16384, type=7, bootable\nstart=18432, size=131072, type=7\n",
        &[(W7_P1.0, &p1), (W7_P2.0, &p2)],
    );
    for p in [&p1, &p2] {
        std::fs::remove_file(p).unwrap();
    }
    (disk, std::fs::read(&bcd).unwrap())
}

/// Sectors of the Windows 10 UEFI layout: ESP, then the system volume.
pub const W10_ESP: (u64, u64) = (2048, 65536);
/// The system volume of the Windows 10 layout.
pub const W10_SYS: (u64, u64) = (67584, 131072);

/// A Windows 10 x64 UEFI disk (GPT: ESP with the real BCD and a
/// `bootmgfw.efi`, the system volume with the real win10-1709 SYSTEM hive
/// written clean). Returns the raw image and the boot manager's bytes.
pub fn win10_disk(dir: &Path) -> (PathBuf, Vec<u8>) {
    let system = unxz(dir, "SYSTEM-win10-1709");
    clean(&system);
    let bcd = unxz(dir, "BCD");
    let software = software_hive(
        dir,
        &[(
            "Microsoft\\Windows NT\\CurrentVersion",
            &[
                "\"ProductName\"=\"Windows 10 Pro\"",
                "\"CurrentVersion\"=\"6.3\"",
                "\"CurrentMajorVersionNumber\"=dword:0000000a",
                "\"CurrentMinorVersionNumber\"=dword:00000000",
                "\"CurrentBuildNumber\"=\"19045\"",
                "\"InstallationType\"=\"Client\"",
                "\"EditionID\"=\"Professional\"",
            ],
        )],
    );
    let mut bootmgfw = pe(0x8664);
    bootmgfw.extend_from_slice(b"bootmgfw");
    let bm = dir.join("bootmgfw.efi");
    std::fs::write(&bm, &bootmgfw).unwrap();
    let esp = esp_part(
        dir,
        32,
        &[
            ("EFI/Microsoft/Boot/BCD", &bcd),
            ("EFI/Microsoft/Boot/bootmgfw.efi", &bm),
        ],
    );
    let sys = ntfs_part(dir, "w10sys.img", 64, W10_SYS.0, |m| {
        put(
            m,
            "Windows/System32/config/SYSTEM",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "Windows/System32/config/SOFTWARE",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "Windows/System32/ntoskrnl.exe", &pe(0x8664));
        for f in ["storahci.sys", "stornvme.sys"] {
            put(m, &format!("Windows/System32/drivers/{f}"), &pe(0x8664));
        }
    });
    let disk = dir.join("win10.raw");
    assemble_raw(
        &disk,
        100,
        "label: gpt\nstart=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=67584, size=131072, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n",
        &[(W10_ESP.0, &esp), (W10_SYS.0, &sys)],
    );
    for p in [&esp, &sys] {
        std::fs::remove_file(p).unwrap();
    }
    (disk, bootmgfw)
}
