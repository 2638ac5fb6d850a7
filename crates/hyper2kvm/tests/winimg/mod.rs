//! Phony Windows disk images built with the oracle tools, for the
//! `fix-windows` tests: tables by `sfdisk`, NTFS by `mkntfs` populated
//! through an `ntfs-3g` mount, the ESP by `mkfs.fat` + mtools, SOFTWARE
//! hives by `hivexregedit --merge` on the minimal hive, SYSTEM hives and the
//! BCD from the real corpus. Unlike the inspection tests (VMDK descriptors
//! over partition images), these are whole raw disks: `fix-windows` edits
//! raw or qcow2 images in place. Copied in small part from
//! `crates/guest/tests/windows_inspect_image.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run(prog: &str, args: &[&str]) {
    testkit::run_tool(prog, args);
}

/// Decompress `hives/<name>.xz` of the shared corpus into `dir`.
pub fn unxz(dir: &Path, name: &str) -> PathBuf {
    testkit::need("xz");
    let out = testkit::run_bytes(
        Command::new("xz")
            .arg("-dc")
            .arg(testkit::testdata(&format!("hives/{name}.xz"))),
    );
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

/// A hive written clean (the win10 SYSTEM is dirty and has no logs: take
/// the primary as it is, as Windows would without logs).
pub fn clean(p: &Path) {
    let (mut h, _) = regf::open_file_with_logs(p, regf::ReplayPolicy::IgnoreLogs).unwrap();
    h.write_to(p).unwrap();
}

/// A minimal PE image: MZ, `e_lfanew` 0x80, `PE\0\0`, the machine type.
pub fn pe(machine: u16) -> Vec<u8> {
    let mut b = vec![0u8; 1024];
    b[..2].copy_from_slice(b"MZ");
    b[0x3c] = 0x80;
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b[0x84..0x86].copy_from_slice(&machine.to_le_bytes());
    b
}

/// A SOFTWARE hive: the minimal hive merged with `keys` (key path under
/// SOFTWARE, value lines in .reg syntax); parent keys are added.
pub fn software_hive(dir: &Path, keys: &[(&str, &[&str])]) -> PathBuf {
    testkit::need("hivexregedit");
    let mut paths: Vec<String> = Vec::new();
    for (k, _) in keys {
        let parts: Vec<&str> = k.split('\\').collect();
        for i in 1..parts.len() {
            let p = parts[..i].join("\\");
            if !paths.contains(&p) && !keys.iter().any(|(x, _)| *x == p) {
                paths.push(p);
            }
        }
    }
    let mut text = String::from("Windows Registry Editor Version 5.00\n\n");
    for p in &paths {
        text.push_str(&format!("[HKEY_LOCAL_MACHINE\\SOFTWARE\\{p}]\n\n"));
    }
    for (k, values) in keys {
        text.push_str(&format!("[HKEY_LOCAL_MACHINE\\SOFTWARE\\{k}]\n"));
        for v in *values {
            text.push_str(v);
            text.push('\n');
        }
        text.push('\n');
    }
    let reg = dir.join("software.reg");
    std::fs::write(&reg, text).unwrap();
    let hive = dir.join("SOFTWARE");
    std::fs::copy(testkit::testdata("phony-windows/minimal-hive"), &hive).unwrap();
    let mut perm = std::fs::metadata(&hive).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&hive, perm).unwrap();
    run(
        "hivexregedit",
        &[
            "--merge",
            "--prefix",
            "HKEY_LOCAL_MACHINE\\SOFTWARE",
            hive.to_str().unwrap(),
            reg.to_str().unwrap(),
        ],
    );
    hive
}

/// Make an NTFS partition image of `mib` MiB starting at sector `start`,
/// mount it with ntfs-3g and let `fill` populate it.
pub fn ntfs_part(
    dir: &Path,
    name: &str,
    mib: u64,
    start: u64,
    fill: impl FnOnce(&Path),
) -> PathBuf {
    testkit::need("mkntfs");
    testkit::need("ntfs-3g");
    let img = dir.join(name);
    testkit::sparse_file(&img, mib << 20);
    let p = start.to_string();
    run(
        "mkntfs",
        &[
            "-F",
            "-Q",
            "-q",
            "-p",
            &p,
            "-H",
            "255",
            "-S",
            "63",
            img.to_str().unwrap(),
        ],
    );
    let mnt = dir.join(format!("{name}.mnt"));
    std::fs::create_dir_all(&mnt).unwrap();
    run("ntfs-3g", &[img.to_str().unwrap(), mnt.to_str().unwrap()]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fill(&mnt)));
    let u = Command::new("fusermount")
        .args(["-u", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
    assert!(u.success(), "fusermount -u {}", mnt.display());
    img
}

/// Write `bytes` at `path` under a mounted volume `root`.
pub fn put(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A FAT16 ESP image holding `files` (path on the ESP, host file).
pub fn esp_part(dir: &Path, mib: u64, files: &[(&str, &Path)]) -> PathBuf {
    testkit::need("mkfs.fat");
    testkit::need("mcopy");
    let img = dir.join("esp.img");
    testkit::sparse_file(&img, mib << 20);
    run(
        "mkfs.fat",
        &["-F", "16", "-n", "ESP", img.to_str().unwrap()],
    );
    let i = img.to_str().unwrap();
    for d in ["::EFI", "::EFI/Microsoft", "::EFI/Microsoft/Boot"] {
        run("mmd", &["-i", i, d]);
    }
    for (to, from) in files {
        run(
            "mcopy",
            &["-i", i, from.to_str().unwrap(), &format!("::{to}")],
        );
    }
    img
}

/// A sparse raw disk of `mib` MiB partitioned by `script`, the partition
/// images copied in at their sectors.
pub fn assemble(path: &Path, mib: u64, script: &str, parts: &[(u64, &Path)]) {
    testkit::sparse_file(path, mib << 20);
    testkit::sfdisk(path, script);
    for (start, img) in parts {
        run(
            "dd",
            &[
                &format!("if={}", img.display()),
                &format!("of={}", path.display()),
                "bs=512",
                &format!("seek={start}"),
                "conv=notrunc,sparse",
                "status=none",
            ],
        );
    }
}

/// Copy `sectors` sectors at `start` of `disk` into a file (for ntfs-3g
/// tools, which take no offset).
pub fn extract(disk: &Path, start: u64, sectors: u64, out: &Path) -> PathBuf {
    run(
        "dd",
        &[
            &format!("if={}", disk.display()),
            &format!("of={}", out.display()),
            "bs=512",
            &format!("skip={start}"),
            &format!("count={sectors}"),
            "conv=sparse",
            "status=none",
        ],
    );
    out.to_path_buf()
}

/// A file on an NTFS partition image, by `ntfscat`.
pub fn ntfscat(part: &Path, path: &str) -> Vec<u8> {
    testkit::need("ntfscat");
    testkit::run_bytes(Command::new("ntfscat").arg(part).arg(path))
}

/// `hivexget HIVE KEY NAME` (trailing newline removed).
pub fn hivexget(hive: &Path, key: &str, name: &str) -> String {
    testkit::need("hivexget");
    testkit::run(Command::new("hivexget").arg(hive).arg(key).arg(name))
        .trim_end()
        .to_string()
}

/// `hivexregedit --export HIVE KEY`.
pub fn export(hive: &Path, key: &str) -> String {
    testkit::need("hivexregedit");
    testkit::run(
        Command::new("hivexregedit")
            .arg("--export")
            .arg(hive)
            .arg(key),
    )
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
    assemble(
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
    assemble(
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
