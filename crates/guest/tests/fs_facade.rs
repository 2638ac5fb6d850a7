//! The guest filesystem facade against real tools: FAT volumes made by
//! mkfs.vfat (checked by fsck.fat and mtools), an NTFS volume inside a
//! partition of a raw disk (ntfs-3g reads our edits; the MBR and the other
//! partition are untouched), and floppy creation.

use guest::fs::{make_floppy, open_image, open_image_rw, FsKind};
use std::path::Path;
use std::process::Command;
use testkit::{run_tool as run, sha256_bytes as sha};

fn mkfat(dir: &Path, name: &str, mib: u64, fat: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    run("mkfs.vfat", &["-F", fat, p.to_str().unwrap()]);
    p
}

fn fat_roundtrip(img: &Path) {
    // tools write, we read
    let local = img.with_extension("src");
    std::fs::write(&local, b"written by mtools\r\n").unwrap();
    run("mmd", &["-i", img.to_str().unwrap(), "::/EFI"]);
    run(
        "mcopy",
        &[
            "-i",
            img.to_str().unwrap(),
            local.to_str().unwrap(),
            "::/EFI/note.txt",
        ],
    );
    let fs = open_image(img, None).unwrap();
    assert_eq!(fs.kind(), FsKind::Fat);
    assert_eq!(fs.read("/EFI/note.txt").unwrap(), b"written by mtools\r\n");
    drop(fs);
    // we write, tools read
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let mut fs = open_image_rw(img, None, false).unwrap();
        fs.mkdir_p("/EFI/Boot/virtio").unwrap();
        fs.write("/EFI/Boot/virtio/viostor.inf", b"[Version]\r\n")
            .unwrap();
        fs.write("/EFI/Boot/big.bin", &big).unwrap();
        fs.rename("/EFI/note.txt", "/EFI/renamed.txt").unwrap();
        fs.flush().unwrap();
    }
    let o = Command::new("fsck.fat")
        .args(["-n", img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsck.fat -n: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        run(
            "mtype",
            &[
                "-i",
                img.to_str().unwrap(),
                "::/EFI/Boot/virtio/viostor.inf"
            ]
        ),
        b"[Version]\r\n"
    );
    assert_eq!(
        run(
            "mtype",
            &["-i", img.to_str().unwrap(), "::/EFI/renamed.txt"]
        ),
        b"written by mtools\r\n"
    );
    let out = img.with_extension("out");
    run(
        "mcopy",
        &[
            "-i",
            img.to_str().unwrap(),
            "::/EFI/Boot/big.bin",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), big);
    let dir =
        String::from_utf8(run("mdir", &["-b", "-i", img.to_str().unwrap(), "::/EFI"])).unwrap();
    assert!(
        dir.contains("renamed.txt") && !dir.contains("note.txt"),
        "{dir}"
    );
}

#[test]
fn fat12_fat16_fat32_read_write() {
    let t = tempfile::tempdir().unwrap();
    fat_roundtrip(&mkfat(t.path(), "f12.img", 2, "12"));
    fat_roundtrip(&mkfat(t.path(), "f16.img", 32, "16"));
    fat_roundtrip(&mkfat(t.path(), "f32.img", 40, "32"));
}

#[test]
fn floppy_made_for_mtools() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("drivers.vfd");
    make_floppy(
        &p,
        "VIRTIO",
        &[
            ("viostor/viostor.sys", b"MZ driver"),
            ("readme.txt", b"hello"),
        ],
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 1_474_560);
    let o = Command::new("fsck.fat")
        .args(["-n", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsck.fat: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        run(
            "mtype",
            &["-i", p.to_str().unwrap(), "::/viostor/viostor.sys"]
        ),
        b"MZ driver"
    );
    let info = String::from_utf8(run("minfo", &["-i", p.to_str().unwrap(), "::"])).unwrap();
    assert!(
        info.contains("sectors per track: 18") && info.contains("heads: 2"),
        "{info}"
    );
    assert!(String::from_utf8(run("file", &[p.to_str().unwrap()]))
        .unwrap()
        .contains("FAT (12 bit)"));
}

#[test]
fn ntfs_in_a_partition_of_a_raw_disk() {
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("disk.raw");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    // p1: 1 MiB..33 MiB NTFS, p2: 33 MiB..end (FAT16)
    testkit::sfdisk(
        &disk,
        "label: dos\nstart=2048, size=65536, type=7\nstart=67584, type=6\n",
    );
    let p1 = t.path().join("p1.img");
    std::fs::File::create(&p1)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    run(
        "mkntfs",
        &[
            "-F",
            "-q",
            "-p",
            "2048",
            "-H",
            "16",
            "-S",
            "63",
            p1.to_str().unwrap(),
        ],
    );
    let mut whole = std::fs::read(&disk).unwrap();
    whole[1 << 20..33 << 20].copy_from_slice(&std::fs::read(&p1).unwrap());
    for (i, b) in whole[33 << 20..].iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    std::fs::write(&disk, &whole).unwrap();
    let mbr = sha(&whole[..1 << 20]);
    let other = sha(&whole[33 << 20..]);
    {
        let mut fs = open_image_rw(&disk, Some(1), false).unwrap();
        assert_eq!(fs.kind(), FsKind::Ntfs);
        fs.mkdir_p("/Windows/System32/drivers").unwrap();
        fs.write(
            "/Windows/System32/drivers/viostor.sys",
            &vec![0x5a; 300 * 1024],
        )
        .unwrap();
        fs.flush().unwrap();
    }
    let after = std::fs::read(&disk).unwrap();
    assert_eq!(sha(&after[..1 << 20]), mbr, "MBR/gap changed");
    assert_eq!(sha(&after[33 << 20..]), other, "partition 2 changed");
    std::fs::write(&p1, &after[1 << 20..33 << 20]).unwrap();
    assert_eq!(
        run(
            "ntfscat",
            &[
                p1.to_str().unwrap(),
                "/Windows/System32/drivers/viostor.sys"
            ]
        ),
        vec![0x5a; 300 * 1024]
    );
    let fix = String::from_utf8(run("ntfsfix", &["-n", p1.to_str().unwrap()])).unwrap();
    assert!(fix.contains("processed successfully"), "{fix}");
    // read back through the facade; whole-disk open names the partitions
    let fs = open_image(&disk, Some(1)).unwrap();
    assert_eq!(
        fs.stat("/windows/system32/drivers/VIOSTOR.SYS")
            .unwrap()
            .size,
        300 * 1024
    );
    let e = open_image(&disk, None).unwrap_err().to_string();
    assert!(e.contains("IMAGE:N"), "{e}");
    assert!(open_image(&disk, Some(7))
        .unwrap_err()
        .to_string()
        .contains("no partition 7"));
}
