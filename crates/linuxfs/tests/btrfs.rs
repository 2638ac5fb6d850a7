//! They write, we read: btrfs images made by `mkfs.btrfs --rootdir` from a
//! /boot-like tree, read back through the block layer and compared with
//! the source tree and with what `btrfs restore` (btrfs-progs' own
//! offline reader) extracts from the same image.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use vdisk::mem::MemDisk;

/// mkfs.btrfs `args` a 256 MiB image of the boot tree; returns (image, tree).
fn make(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    if !src.exists() {
        boot_tree(&src);
    }
    let img = dir.join("fs.img");
    let _ = std::fs::remove_file(&img);
    testkit::sparse_file(&img, 256 << 20);
    let mut a = vec!["-q", "-f", "-r", testkit::s(&src)];
    a.extend(args);
    a.push(testkit::s(&img));
    run("mkfs.btrfs", &a);
    (img, src)
}

/// Our reading equals the source tree and `btrfs restore`'s extraction.
fn check(img: &Path, src: &Path, dir: &Path) {
    let fs = open_image(img);
    assert_eq!(fs.fs_type(), "btrfs");
    assert_holds(&*fs, src, "/");
    assert_links(&*fs, src);
    assert_mtimes(&*fs, src);
    let out = dir.join("restored");
    std::fs::create_dir_all(&out).unwrap();
    run(
        "btrfs",
        &["restore", "-S", "-m", testkit::s(img), testkit::s(&out)],
    );
    assert_holds(&*fs, &out, "/");
}

#[test]
fn btrfs_default_profiles() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), &[]);
    let dump = String::from_utf8(run(
        "btrfs",
        &[
            "inspect-internal",
            "dump-tree",
            "-t",
            "chunk",
            testkit::s(&img),
        ],
    ))
    .unwrap();
    assert!(dump.contains("METADATA|DUP"), "{dump}");
    check(&img, &src, d.path());
}

#[test]
fn btrfs_single_mixed_small_nodes() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(
        d.path(),
        &["-M", "-m", "single", "-d", "single", "-n", "4096"],
    );
    check(&img, &src, d.path());
}

#[test]
fn btrfs_in_qcow2_partition() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), &[]);
    let raw = d.path().join("disk.raw");
    testkit::sparse_file(&raw, 258 << 20);
    testkit::sfdisk(&raw, "start=2048, size=524288, type=83\n");
    let fsb = std::fs::read(&img).unwrap();
    testkit::patch(&raw, 1 << 20, &fsb);
    let q = d.path().join("disk.qcow2");
    testkit::qemu_convert(&raw, "raw", "qcow2", &[], &q);
    let disk: &'static dyn vdisk::Disk = Box::leak(vdisk::open(&q).unwrap());
    let part = vdisk::window::Window::new(disk, 1 << 20, 256 << 20).unwrap();
    let fs = linuxfs::open(Box::new(part)).unwrap();
    assert_holds(&*fs, &src, "/");
    assert_links(&*fs, &src);
}

/// A two-device RAID1 filesystem and an lzo-compressed extent are refused
/// by name.
#[test]
fn btrfs_refusals_are_named() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.img"), d.path().join("b.img"));
    testkit::sparse_file(&a, 256 << 20);
    testkit::sparse_file(&b, 256 << 20);
    run(
        "mkfs.btrfs",
        &[
            "-q",
            "-f",
            "-d",
            "raid1",
            "-m",
            "raid1",
            testkit::s(&a),
            testkit::s(&b),
        ],
    );
    let e = linuxfs::open(vdisk::open(&a).unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("multi-device filesystem (2 devices)"),
        "{e}"
    );

    // The kernel's file extent items (mkfs writes 1 MiB extents): ram_bytes 1 MiB, uncompressed,
    // unencrypted, regular; mark it lzo-compressed (in both DUP copies).
    let (img, _) = make(d.path(), &[]);
    let mut bytes = std::fs::read(&img).unwrap();
    let pat = [0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let hits: Vec<usize> = bytes
        .windows(pat.len())
        .enumerate()
        .filter(|(_, w)| *w == pat)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty());
    for h in hits {
        bytes[h + 8] = 2;
    }
    let fs = linuxfs::open(Box::new(MemDisk(bytes))).unwrap();
    let e = fs
        .read_file(&format!("/vmlinuz-{KVER}"), 64 << 20)
        .unwrap_err();
    assert!(e.to_string().contains("compressed extent (lzo)"), "{e}");
}

/// Compressed extents made by hand (btrfs-progs' mkfs cannot compress):
/// the kernel's first 1 MiB extent rewritten as zstd, its second as zlib,
/// each holding new text. We must read what `btrfs restore` (which
/// decompresses both codecs) extracts.
#[test]
fn btrfs_zstd_and_zlib_extents() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), &[]);
    let kernel = format!("/vmlinuz-{KVER}");
    let ino = open_image(&img).stat(&kernel).unwrap().ino;
    let dump = String::from_utf8(run(
        "btrfs",
        &[
            "inspect-internal",
            "dump-tree",
            "-t",
            "fs",
            testkit::s(&img),
        ],
    ))
    .unwrap();
    let lines: Vec<&str> = dump.lines().collect();
    // Disk bytenr of the kernel's extents at file offsets 0 and 1 MiB.
    let bytenr = |off: u64| -> u64 {
        let key = format!("key ({ino} EXTENT_DATA {off})");
        let n = lines
            .iter()
            .position(|l| l.contains(&key))
            .unwrap_or_else(|| panic!("{key}"));
        let f: Vec<&str> = lines[n + 2].split_whitespace().collect();
        assert_eq!(&f[..3], ["extent", "data", "disk"], "{}", lines[n + 2]);
        f[4].parse().unwrap()
    };
    let map = btrfs_chunk_map(&img);
    let phys = |lg: u64| {
        let &(c, _, p) = map
            .iter()
            .find(|(c, len, _)| lg >= *c && lg < c + len)
            .unwrap();
        p + (lg - c)
    };
    let mut bytes = std::fs::read(&img).unwrap();
    let text = |codec: &str| -> Vec<u8> {
        let mut v: Vec<u8> = (0..)
            .map(|i| format!("{codec} line {i}\n"))
            .take(100_000)
            .collect::<String>()
            .into_bytes();
        v.truncate(1 << 20);
        v
    };
    let (p1, p2) = (text("zstd"), text("zlib"));
    let c1 = zstd::encode_all(&p1[..], 3).unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &p2).unwrap();
    let c2 = z.finish().unwrap();
    for (off, codec, data) in [(0u64, 3u8, &c1), (1 << 20, 1u8, &c2)] {
        let lg = bytenr(off);
        let at = phys(lg) as usize;
        bytes[at..at + data.len()].copy_from_slice(data);
        // The item: generation, ram_bytes = 1 MiB, compression 0, encryption
        // 0, other 0, type regular, disk bytenr; in every metadata copy.
        let mut pat = (1u64 << 20).to_le_bytes().to_vec();
        pat.extend([0, 0, 0, 0, 1]);
        pat.extend(lg.to_le_bytes());
        let hits: Vec<usize> = bytes
            .windows(pat.len())
            .enumerate()
            .filter(|(_, w)| *w == &pat[..])
            .map(|(i, _)| i - 8)
            .collect();
        assert!(!hits.is_empty(), "extent item for {lg}");
        for h in hits {
            bytes[h + 16] = codec;
            let disk = (data.len() as u64).div_ceil(4096) * 4096;
            bytes[h + 29..h + 37].copy_from_slice(&disk.to_le_bytes());
            // The leaf's crc32c (16 KiB nodes, chunks 16 KiB aligned), so
            // that btrfs restore accepts it.
            let leaf = h / 16384 * 16384;
            let crc = crc32c::crc32c(&bytes[leaf + 32..leaf + 16384]);
            bytes[leaf..leaf + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }
    std::fs::write(&img, &bytes).unwrap();
    let fs = open_image(&img);
    let ours = fs.read_file(&kernel, 64 << 20).unwrap();
    let orig = std::fs::read(src.join(&kernel[1..])).unwrap();
    assert!(ours[..1 << 20] == p1[..], "zstd extent");
    assert!(ours[1 << 20..2 << 20] == p2[..], "zlib extent");
    assert!(ours[2 << 20..] == orig[2 << 20..]);
    let out = d.path().join("restored");
    std::fs::create_dir_all(&out).unwrap();
    run("btrfs", &["restore", testkit::s(&img), testkit::s(&out)]);
    assert!(
        std::fs::read(out.join(&kernel[1..])).unwrap() == ours,
        "vs btrfs restore"
    );
}

/// More mkfs.btrfs layouts, each read back whole against the source tree.
#[test]
fn btrfs_feature_matrix() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["-n", "65536", "--csum", "xxhash"][..],
        &["-O", "^no-holes,^skinny-metadata"],
        &["-d", "dup", "-m", "dup"],
    ] {
        let (img, src) = make(d.path(), args);
        let fs = open_image(&img);
        assert_holds(&*fs, &src, "/");
        assert_links(&*fs, &src);
    }
}

/// A root in the subvolume `@` of the top level (Debian's and Ubuntu's
/// installers; made by the kernel: mount, `btrfs subvolume create`, copy):
/// the default view lists `@` as a subvolume and does not enter it; the
/// subvolume opened by its id holds the tree, byte for byte what
/// `btrfs restore -r ID` extracts.
#[test]
fn btrfs_subvolume_opened_by_id() {
    testkit::need("mount");
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    boot_tree(&src);
    let img = d.path().join("fs.img");
    testkit::sparse_file(&img, 256 << 20);
    run("mkfs.btrfs", &["-q", "-f", testkit::s(&img)]);
    let mnt = d.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run("mount", &["-o", "loop", testkit::s(&img), testkit::s(&mnt)]);
    /// Unmounts even when a step below panics.
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let mounted = Umount(&mnt);
    run(
        "btrfs",
        &["subvolume", "create", testkit::s(&mnt.join("@"))],
    );
    run(
        "cp",
        &[
            "-a",
            &format!("{}/.", src.display()),
            testkit::s(&mnt.join("@")),
        ],
    );
    std::fs::write(mnt.join("top-level-file"), b"not in @\n").unwrap();
    let made = run("btrfs", &["subvolume", "list", testkit::s(&mnt)]);
    drop(mounted);
    // "ID 256 gen 9 top level 5 path @"
    let list = String::from_utf8(made).unwrap();
    let id: u64 = list
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("btrfs subvolume list: {list}"));

    let top = open_image(&img);
    let entries = top.read_dir("/").unwrap();
    let at = entries
        .iter()
        .find(|e| e.name == "@")
        .expect("@ listed at the top level");
    assert_eq!(at.ino, linuxfs::btrfs::SUBVOL_BIT | id);
    assert!(top.stat("/@/etc").is_err(), "the default view enters @");
    assert_eq!(
        top.read_file("/top-level-file", 100).unwrap(),
        b"not in @\n"
    );

    let sub = linuxfs::open_btrfs_subvolume(vdisk::open(&img).unwrap(), id).unwrap();
    assert_holds(&*sub, &src, "/");
    assert_links(&*sub, &src);
    assert!(sub.stat("/top-level-file").is_err());
    let out = d.path().join("restored");
    std::fs::create_dir_all(&out).unwrap();
    run(
        "btrfs",
        &[
            "restore",
            "-S",
            "-r",
            &id.to_string(),
            testkit::s(&img),
            testkit::s(&out),
        ],
    );
    assert_holds(&*sub, &out, "/");

    // An id that is no subvolume is an error naming it.
    let e = linuxfs::open_btrfs_subvolume(vdisk::open(&img).unwrap(), 999).unwrap_err();
    assert!(e.to_string().contains("subvolume 999"), "{e}");
}
