//! Small Windows-shaped disk images built with the oracle tools, shared by
//! the Windows inspection and `fix-windows` tests: tables by `sfdisk`,
//! NTFS by `mkntfs` populated through an `ntfs-3g` mount, the ESP by
//! `mkfs.fat` + mtools, SOFTWARE hives by `hivexregedit --merge` on the
//! minimal hive, and readers (`ntfscat`, `hivexget`, `hivexregedit`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn run_tool(prog: &str, args: &[&str]) {
    crate::run_tool(prog, args);
}

/// Decompress `hives/<name>.xz` of the shared corpus into `dir`.
pub fn unxz(dir: &Path, name: &str) -> PathBuf {
    crate::need("xz");
    let out = crate::run_bytes(
        Command::new("xz")
            .arg("-dc")
            .arg(crate::testdata(&format!("hives/{name}.xz"))),
    );
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
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
    crate::need("hivexregedit");
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
    std::fs::copy(crate::testdata("phony-windows/minimal-hive"), &hive).unwrap();
    let mut perm = std::fs::metadata(&hive).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&hive, perm).unwrap();
    run_tool(
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
    crate::need("mkntfs");
    crate::need("ntfs-3g");
    let img = dir.join(name);
    crate::sparse_file(&img, mib << 20);
    let p = start.to_string();
    run_tool(
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
    run_tool("ntfs-3g", &[img.to_str().unwrap(), mnt.to_str().unwrap()]);
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
    crate::need("mkfs.fat");
    crate::need("mcopy");
    let img = dir.join("esp.img");
    crate::sparse_file(&img, mib << 20);
    run_tool(
        "mkfs.fat",
        &["-F", "16", "-n", "ESP", img.to_str().unwrap()],
    );
    let i = img.to_str().unwrap();
    for d in ["::EFI", "::EFI/Microsoft", "::EFI/Microsoft/Boot"] {
        run_tool("mmd", &["-i", i, d]);
    }
    for (to, from) in files {
        run_tool(
            "mcopy",
            &["-i", i, from.to_str().unwrap(), &format!("::{to}")],
        );
    }
    img
}

/// A sparse raw disk of `mib` MiB partitioned by `script`, the partition
/// images copied in at their sectors.
pub fn assemble_raw(path: &Path, mib: u64, script: &str, parts: &[(u64, &Path)]) {
    crate::sparse_file(path, mib << 20);
    crate::sfdisk(path, script);
    for (start, img) in parts {
        run_tool(
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
    run_tool(
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
    crate::need("ntfscat");
    crate::run_bytes(Command::new("ntfscat").arg(part).arg(path))
}

/// `hivexget HIVE KEY NAME` (trailing newline removed).
pub fn hivexget(hive: &Path, key: &str, name: &str) -> String {
    crate::need("hivexget");
    crate::run(Command::new("hivexget").arg(hive).arg(key).arg(name))
        .trim_end()
        .to_string()
}

/// `hivexregedit --export HIVE KEY`.
pub fn export(hive: &Path, key: &str) -> String {
    crate::need("hivexregedit");
    crate::run(
        Command::new("hivexregedit")
            .arg("--export")
            .arg(hive)
            .arg(key),
    )
}

/// Partition a sparse scratch disk of `mib` MiB with `script`, then
/// describe the disk as a VMDK whose extents are the scratch disk
/// (tables, gaps) and the partition images at their sectors.
pub fn assemble_vmdk(dir: &Path, mib: u64, script: &str, parts: &[(u64, &Path)]) -> PathBuf {
    let scratch = dir.join("scratch.raw");
    crate::sparse_file(&scratch, mib << 20);
    crate::sfdisk(&scratch, script);
    let total = (mib << 20) / 512;
    let mut lines = Vec::new();
    let mut at = 0u64;
    for (start, img) in parts {
        if *start > at {
            lines.push(format!("RW {} FLAT \"scratch.raw\" {at}", start - at));
        }
        let n = std::fs::metadata(img).unwrap().len() / 512;
        lines.push(format!(
            "RW {n} FLAT \"{}\" 0",
            img.file_name().unwrap().to_str().unwrap()
        ));
        at = start + n;
    }
    if at < total {
        lines.push(format!("RW {} FLAT \"scratch.raw\" {at}", total - at));
    }
    let desc = dir.join("disk.vmdk");
    std::fs::write(
        &desc,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n{}\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    desc
}
