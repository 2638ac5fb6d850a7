//! They write, we read: btrfs images made by `mkfs.btrfs --rootdir` from a
//! /boot-like tree, read back through the block layer and compared with
//! the source tree and with what `btrfs restore` (btrfs-progs' own
//! offline reader) extracts from the same image.

mod common;
use common::*;
use std::path::{Path, PathBuf};

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

/// A two-device RAID1 filesystem and a compressed extent are refused by
/// name.
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
    // unencrypted, regular; mark it zstd-compressed (in both DUP copies).
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
        bytes[h + 8] = 3;
    }
    let fs = linuxfs::open(Box::new(MemDisk(bytes))).unwrap();
    let e = fs
        .read_file(&format!("/vmlinuz-{KVER}"), 64 << 20)
        .unwrap_err();
    assert!(e.to_string().contains("compressed extent (zstd)"), "{e}");
}
