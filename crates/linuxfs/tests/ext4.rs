//! They write, we read: ext2/3/4 images made by `mke2fs -d` from a
//! /boot-like tree (and fragmented with `debugfs -w`), read back through
//! the block layer and compared with the source tree and with `debugfs`
//! (`ls -p` listings, `cat` bytes, `stat` extent depth).

mod common;
use common::*;
use linuxfs::LinuxFs;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use vdisk::mem::MemDisk;

/// mke2fs `args` an image of `size` from the boot tree; returns (image, tree).
fn make(dir: &Path, prog: &str, args: &[&str], size: &str) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    if !src.exists() {
        boot_tree(&src);
    }
    let img = dir.join("fs.img");
    let _ = std::fs::remove_file(&img);
    let mut a = vec!["-F", "-q", "-E", "root_owner=0:0", "-d", testkit::s(&src)];
    a.extend(args);
    a.extend([testkit::s(&img), size]);
    run(prog, &a);
    (img, src)
}

fn debugfs(img: &Path, cmd: &str) -> Vec<u8> {
    run("debugfs", &["-R", cmd, testkit::s(img)])
}

/// Every directory's listing against `debugfs ls -p` (name, inode, mode),
/// and the big files' bytes against `debugfs cat`.
fn assert_matches_debugfs(fs: &dyn LinuxFs, img: &Path) {
    for dir in [
        "/",
        "/grub",
        "/grub/i386-pc",
        "/loader/entries",
        "/many",
        "/emptydir",
    ] {
        let out = String::from_utf8(debugfs(img, &format!("ls -p {dir}"))).unwrap();
        let want: BTreeSet<(String, u64, u32)> = out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('/').collect();
                (f.len() >= 7 && !["", ".", ".."].contains(&f[5]) && f[1] != "0").then(|| {
                    (
                        f[5].to_string(),
                        f[1].parse().unwrap(),
                        u32::from_str_radix(f[2], 8).unwrap(),
                    )
                })
            })
            .collect();
        let got: BTreeSet<(String, u64, u32)> = fs
            .read_dir(dir)
            .unwrap()
            .into_iter()
            .map(|e| {
                let p = if dir == "/" {
                    format!("/{}", e.name)
                } else {
                    format!("{dir}/{}", e.name)
                };
                let m = fs.stat(&p).unwrap();
                let ft = match m.file_type {
                    linuxfs::FileType::Directory => 0o040000,
                    linuxfs::FileType::Symlink => 0o120000,
                    _ => 0o100000,
                };
                (e.name, e.ino, ft | m.mode)
            })
            .collect();
        assert_eq!(got, want, "{dir} vs debugfs ls -p");
        if dir == "/many" {
            assert_eq!(got.len(), MANY);
        }
    }
    for f in [
        format!("/vmlinuz-{KVER}"),
        format!("/initrd.img-{KVER}"),
        "/sparse".into(),
        "/grub/grub.cfg".into(),
    ] {
        let theirs = debugfs(img, &format!("cat {f}"));
        assert!(
            fs.read_file(&f, 64 << 20).unwrap() == theirs,
            "{f} vs debugfs cat"
        );
    }
}

fn check(img: &Path, src: &Path, kind: &str) -> Box<dyn LinuxFs> {
    let fs = open_image(img);
    assert_eq!(fs.fs_type(), kind);
    assert_holds(&*fs, src, "/");
    assert_links(&*fs, src);
    assert_matches_debugfs(&*fs, img);
    assert_mtimes(&*fs, src);
    fs
}

#[test]
fn ext4_default_features() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), "mkfs.ext4", &[], "64M");
    // mke2fs -d writes linear directories; e2fsck -D indexes them (htree).
    let _ = std::process::Command::new("e2fsck")
        .args(["-fyD", testkit::s(&img)])
        .output()
        .unwrap();
    let st = String::from_utf8(debugfs(&img, "stat /many")).unwrap();
    assert!(st.contains("Flags: 0x81000"), "{st}");
    let fs = check(&img, &src, "ext4");
    assert_eq!(fs.stat("/tiny").unwrap().size, 1);
}

#[test]
fn ext3_block_maps_1k_blocks() {
    let d = tempfile::tempdir().unwrap();
    // 1 KiB blocks: the 5 MiB initrd needs double-indirect blocks.
    let (img, src) = make(d.path(), "mkfs.ext3", &["-b", "1024"], "64M");
    let st = String::from_utf8(debugfs(&img, &format!("stat /initrd.img-{KVER}"))).unwrap();
    assert!(st.contains("(DIND)"), "{st}");
    check(&img, &src, "ext3");
}

#[test]
fn ext2_without_filetype() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), "mkfs.ext2", &["-O", "^filetype"], "64M");
    check(&img, &src, "ext2");
}

/// Clusters of 4 blocks (`bigalloc`) and 128-byte inodes (no extra
/// fields: no high timestamp bits, no in-inode attributes).
#[test]
fn ext4_bigalloc_small_inodes() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(
        d.path(),
        "mkfs.ext4",
        &["-O", "bigalloc", "-C", "16384", "-I", "128"],
        "128M",
    );
    let h = String::from_utf8(run("dumpe2fs", &["-h", testkit::s(&img)])).unwrap();
    assert!(
        h.contains("bigalloc") && h.contains("Inode size:\t          128"),
        "{h}"
    );
    check(&img, &src, "ext4");
}

#[test]
fn ext4_inline_data() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(
        d.path(),
        "mkfs.ext4",
        &["-O", "inline_data", "-I", "512"],
        "64M",
    );
    let st = String::from_utf8(debugfs(&img, "stat /tiny")).unwrap();
    assert!(st.contains("Size of inline data"), "{st}");
    check(&img, &src, "ext4");
}

#[test]
fn ext4_64bit_meta_bg_no_csum() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(
        d.path(),
        "mkfs.ext4",
        &[
            "-O",
            "64bit,meta_bg,^resize_inode,^metadata_csum",
            "-b",
            "1024",
            "-g",
            "1024",
        ],
        "64M",
    );
    check(&img, &src, "ext4");
}

/// A file written by `debugfs -w` into the holes left by deleted files:
/// hundreds of extents, so the extent tree has depth > 0.
#[test]
fn ext4_fragmented_extent_tree() {
    let d = tempfile::tempdir().unwrap();
    let (img, _src) = make(d.path(), "mkfs.ext4", &["-b", "1024"], "64M");
    let small = d.path().join("small");
    std::fs::write(&small, noise(1024, 9)).unwrap();
    let big = d.path().join("big");
    let want = noise(600 * 1024 + 77, 10);
    std::fs::write(&big, &want).unwrap();
    let mut cmds = String::from("mkdir /frag\n");
    for i in 0..1200 {
        cmds += &format!("write {} /frag/s{i}\n", small.display());
    }
    for i in (0..1200).step_by(2) {
        cmds += &format!("rm /frag/s{i}\n");
    }
    cmds += &format!("write {} /frag/big\n", big.display());
    let script = d.path().join("cmds");
    std::fs::write(&script, cmds).unwrap();
    run(
        "debugfs",
        &["-w", "-f", testkit::s(&script), testkit::s(&img)],
    );
    let ex = String::from_utf8(debugfs(&img, "ex /frag/big")).unwrap();
    assert!(ex.lines().any(|l| l.trim_start().starts_with("1/")), "{ex}");
    let fs = open_image(&img);
    let got = fs.read_file("/frag/big", 1 << 20).unwrap();
    assert!(got == want, "fragmented file bytes");
    assert!(got == debugfs(&img, "cat /frag/big"));
    assert_eq!(fs.read_dir("/frag").unwrap().len(), 601);
}

/// The filesystem in a partition of an MBR disk in a sparse qcow2, read
/// through `vdisk::open` and a partition window.
#[test]
fn ext4_in_qcow2_partition() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), "mkfs.ext4", &[], "48M");
    let raw = d.path().join("disk.raw");
    testkit::sparse_file(&raw, 64 << 20);
    testkit::sfdisk(&raw, "start=2048, size=98304, type=83\n");
    let fsb = std::fs::read(&img).unwrap();
    testkit::patch(&raw, 1 << 20, &fsb);
    let q = d.path().join("disk.qcow2");
    testkit::qemu_convert(&raw, "raw", "qcow2", &[], &q);
    let disk: &'static dyn vdisk::Disk = Box::leak(vdisk::open(&q).unwrap());
    assert_eq!(disk.layer().format, "qcow2");
    let part = vdisk::window::Window::new(disk, 1 << 20, 48 << 20).unwrap();
    let fs = linuxfs::open(Box::new(part)).unwrap();
    assert_holds(&*fs, &src, "/");
    assert_links(&*fs, &src);
}

#[test]
fn refused_features_are_named() {
    let d = tempfile::tempdir().unwrap();
    let (img, _) = make(d.path(), "mkfs.ext4", &[], "16M");
    let mut b = std::fs::read(&img).unwrap();
    let inc = u32::from_le_bytes(b[0x460..0x464].try_into().unwrap());
    b[0x460..0x464].copy_from_slice(&(inc | 0x1000).to_le_bytes());
    let e = linuxfs::open(Box::new(MemDisk(b.clone()))).unwrap_err();
    assert!(e.to_string().contains("INCOMPAT_DIRDATA"), "{e}");
    b[0x460..0x464].copy_from_slice(&(inc | 0x1).to_le_bytes());
    let e = linuxfs::open(Box::new(MemDisk(b))).unwrap_err();
    assert!(e.to_string().contains("INCOMPAT_COMPRESSION"), "{e}");
    // A 64-bit block count whose byte size overflows: refused at open.
    let mut big = std::fs::read(&img).unwrap();
    big[0x550..0x554].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = linuxfs::open(Box::new(MemDisk(big))).unwrap_err();
    assert!(e.to_string().contains("expected at most 1 EiB"), "{e}");
    let e = linuxfs::open(Box::new(MemDisk(vec![0; 1 << 20]))).unwrap_err();
    assert!(matches!(e, linuxfs::Error::UnknownFilesystem { .. }), "{e}");
}

/// A filesystem with `needs_recovery` (a running VM's snapshot): three
/// transactions written with `debugfs jw` (one block starting with the
/// jbd2 magic, so escaped) and a fourth revoking the second. We read what
/// e2fsck's own journal replay leaves, without writing anything.
#[test]
fn ext4_journal_replayed_in_memory() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("grub")).unwrap();
    std::fs::write(src.join("grub/grub.cfg"), "set default=0\n").unwrap();
    std::fs::write(src.join("b.conf"), "second file\n").unwrap();
    std::fs::write(src.join("c.conf"), "third file, longer than the magic\n").unwrap();
    let img = d.path().join("fs.img");
    run(
        "mkfs.ext4",
        &[
            "-F",
            "-q",
            "-b",
            "4096",
            "-d",
            testkit::s(&src),
            testkit::s(&img),
            "32M",
        ],
    );
    let block = |p: &str| {
        String::from_utf8(debugfs(&img, &format!("blocks {p}")))
            .unwrap()
            .trim()
            .to_string()
    };
    let (b1, b2, b3) = (block("/grub/grub.cfg"), block("/b.conf"), block("/c.conf"));
    let n1 = d.path().join("n1");
    let n2 = d.path().join("n2");
    let n3 = d.path().join("n3");
    let mut v = b"NEW grub\n".to_vec();
    v.resize(4096, b'1');
    std::fs::write(&n1, &v).unwrap();
    let mut v = b"NEW b\n".to_vec();
    v.resize(4096, b'2');
    std::fs::write(&n2, &v).unwrap();
    let mut v = 0xC03B_3998u32.to_be_bytes().to_vec();
    v.extend(b"escaped block\n");
    v.resize(4096, b'3');
    std::fs::write(&n3, &v).unwrap();
    let cmds = format!(
        "jo\njw -b {b1} {}\njw -b {b2} {}\njw -b {b3} {}\njw -r {b2}\njc\n",
        n1.display(),
        n2.display(),
        n3.display()
    );
    let script = d.path().join("cmds");
    std::fs::write(&script, cmds).unwrap();
    run(
        "debugfs",
        &["-w", "-f", testkit::s(&script), testkit::s(&img)],
    );
    let h = String::from_utf8(run("dumpe2fs", &["-h", testkit::s(&img)])).unwrap();
    assert!(h.contains("needs_recovery"), "{h}");
    let before = std::fs::read(&img).unwrap();

    let fs = open_image(&img);
    let ours: Vec<Vec<u8>> = ["/grub/grub.cfg", "/b.conf", "/c.conf"]
        .iter()
        .map(|p| fs.read_file(p, 1 << 20).unwrap())
        .collect();
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the image was written"
    );
    // Unreplayed, the blocks are the old ones.
    assert_eq!(debugfs(&img, "cat /grub/grub.cfg"), b"set default=0\n");

    let replayed = d.path().join("replayed.img");
    std::fs::copy(&img, &replayed).unwrap();
    let _ = std::process::Command::new("e2fsck")
        .args(["-fy", testkit::s(&replayed)])
        .output()
        .unwrap();
    for (p, got) in ["/grub/grub.cfg", "/b.conf", "/c.conf"].iter().zip(&ours) {
        assert_eq!(
            got,
            &debugfs(&replayed, &format!("cat {p}")),
            "{p} vs e2fsck's replay"
        );
    }
    assert_eq!(ours[0], b"NEW grub\n11111");
    assert_eq!(ours[1], b"second file\n");
    assert_eq!(&ours[2][..4], &0xC03B_3998u32.to_be_bytes());
}

/// More mke2fs layouts, each read back whole against the source tree.
#[test]
fn ext4_feature_matrix() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["-b", "2048"][..],
        &["-O", "^64bit,^flex_bg,^metadata_csum,uninit_bg"],
        &["-O", "sparse_super2", "-E", "num_backup_sb=1"],
        &["-O", "^sparse_super,^dir_index,^resize_inode"],
        &["-O", "casefold,encrypt"],
        &["-O", "^has_journal,^resize_inode,meta_bg", "-b", "1024"],
        &["-O", "ea_inode,large_dir", "-I", "1024"],
    ] {
        let (img, src) = make(d.path(), "mkfs.ext4", args, "64M");
        let fs = open_image(&img);
        assert_eq!(fs.fs_type(), "ext4", "{args:?}");
        assert_holds(&*fs, &src, "/");
        assert_links(&*fs, &src);
    }
}
