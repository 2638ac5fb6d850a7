//! They write, we read: XFS v5 images made by `mkfs.xfs -p protofile` from
//! a /boot-like tree, read back through the block layer and compared with
//! the source tree, with `xfs_db ls` listings and with the block maps
//! `xfs_db bmap` reports (bytes read at those blocks).

mod common;
use common::*;
use linuxfs::LinuxFs;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use vdisk::mem::MemDisk;

/// The protofile lines for the directory `src` (its entries, then `$`).
fn proto_dir(src: &Path, out: &mut String) {
    let mut names: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        let perm = m.mode() & 0o777;
        if m.is_symlink() {
            let t = std::fs::read_link(&p).unwrap();
            writeln!(out, "{name} l--{perm:o} 0 0 {}", t.display()).unwrap();
        } else if m.is_dir() {
            writeln!(out, "{name} d--{perm:o} 0 0").unwrap();
            proto_dir(&p, out);
        } else {
            writeln!(out, "{name} ---{perm:o} 0 0 {}", p.display()).unwrap();
        }
    }
    out.push_str("$\n");
}

/// mkfs.xfs an image of the boot tree plus `extra` (name, bytes) files at
/// the root; returns (image, tree).
fn make(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    if !src.exists() {
        boot_tree(&src);
    }
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    proto_dir(&src, &mut proto);
    let pf = dir.join("proto");
    std::fs::write(&pf, proto).unwrap();
    let img = dir.join("fs.img");
    let _ = std::fs::remove_file(&img);
    let spec = format!("file,name={},size=300m", img.display());
    let mut a = vec!["-q", "-f", "-p", testkit::s(&pf), "-d", &spec];
    a.extend(args);
    run("mkfs.xfs", &a);
    (img, src)
}

fn xfs_db(img: &Path, cmds: &[&str]) -> String {
    let mut a = vec!["-r"];
    for c in cmds {
        a.extend(["-c", c]);
    }
    a.push(testkit::s(img));
    String::from_utf8(run("xfs_db", &a)).unwrap()
}

/// Listings against `xfs_db ls` (name, inode, type) for every directory.
fn assert_matches_xfs_db(fs: &dyn LinuxFs, img: &Path) {
    for dir in [
        "/",
        "/grub",
        "/grub/i386-pc",
        "/loader/entries",
        "/many",
        "/emptydir",
    ] {
        let out = xfs_db(img, &[&format!("ls {dir}")]);
        let want: BTreeSet<(String, u64, String)> = out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 6 && f[5] != "." && f[5] != "..")
                    .then(|| (f[5].to_string(), f[1].parse().unwrap(), f[2].to_string()))
            })
            .collect();
        let got: BTreeSet<(String, u64, String)> = fs
            .read_dir(dir)
            .unwrap()
            .into_iter()
            .map(|e| {
                let t = match e.file_type {
                    linuxfs::FileType::Directory => "directory",
                    linuxfs::FileType::Symlink => "symlink",
                    _ => "regular",
                };
                (e.name, e.ino, t.to_string())
            })
            .collect();
        // Without ftype, xfs_db says "unknown"; we read the inode.
        let got: BTreeSet<_> = if want.iter().any(|w| w.2 == "unknown") {
            got.into_iter()
                .map(|(n, i, _)| (n, i, "unknown".to_string()))
                .collect()
        } else {
            got
        };
        assert_eq!(got, want, "{dir} vs xfs_db ls");
    }
}

/// The bytes of `path` as located by `xfs_db bmap` (AG/block pairs) must
/// be what we read.
fn assert_bmap_bytes(fs: &dyn LinuxFs, img: &Path, path: &str) -> usize {
    let m = fs.stat(path).unwrap();
    let sb = xfs_db(img, &["sb 0", "print blocksize agblocks"]);
    let num = |k: &str| -> u64 {
        sb.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split(" = ")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (bs, agblocks) = (num("blocksize"), num("agblocks"));
    let map = xfs_db(img, &[&format!("inode {}", m.ino), "bmap"]);
    let raw = std::fs::read(img).unwrap();
    let mut want = vec![0u8; m.size as usize];
    let mut n = 0;
    for l in map.lines() {
        // data offset 0 startblock 24 (0/24) count 768 flag 0
        let f: Vec<&str> = l.split_whitespace().collect();
        let off: u64 = f[2].parse().unwrap();
        let (ag, agb) = f[5]
            .trim_matches(|c| c == '(' || c == ')')
            .split_once('/')
            .unwrap();
        let phys = (ag.parse::<u64>().unwrap() * agblocks + agb.parse::<u64>().unwrap()) * bs;
        let count: u64 = f[7].parse().unwrap();
        let a = (off * bs).min(m.size) as usize;
        let b = ((off + count) * bs).min(m.size) as usize;
        if f[9] == "0" {
            want[a..b].copy_from_slice(&raw[phys as usize..phys as usize + (b - a)]);
        }
        n += 1;
    }
    assert!(
        fs.read_file(path, 64 << 20).unwrap() == want,
        "{path} vs xfs_db bmap"
    );
    n
}

fn inode_format(img: &Path, ino: u64) -> String {
    xfs_db(img, &[&format!("inode {ino}"), "print core.format"])
}

#[test]
fn xfs_v5_boot_tree() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), &[]);
    let fs = open_image(&img);
    assert_eq!(fs.fs_type(), "xfs");
    assert_holds(&*fs, &src, "/");
    assert_links(&*fs, &src);
    assert_matches_xfs_db(&*fs, &img);
    for p in [
        format!("/vmlinuz-{KVER}"),
        format!("/initrd.img-{KVER}"),
        "/sparse".into(),
    ] {
        assert_bmap_bytes(&*fs, &img, &p);
    }
    // Shortform (/loader), and /many in node form with its extents in a
    // bmap B+tree (its blocks interleave with its files' data).
    assert!(inode_format(&img, fs.stat("/loader").unwrap().ino).contains("local"));
    let many = inode_format(&img, fs.stat("/many").unwrap().ino);
    assert!(many.contains("btree"), "{many}");
}

/// 1 KiB filesystem blocks, 16 KiB directory blocks (16 filesystem
/// blocks each) and 64-bit extent counters (`nrext64`).
#[test]
fn xfs_1k_blocks_16k_dir_blocks() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(
        d.path(),
        &["-n", "size=16384", "-b", "size=1024", "-i", "nrext64=1"],
    );
    let v = xfs_db(&img, &["version"]);
    assert!(v.contains("NREXT64"), "{v}");
    let fs = open_image(&img);
    assert_holds(&*fs, &src, "/");
    assert_matches_xfs_db(&*fs, &img);
    assert_bmap_bytes(&*fs, &img, &format!("/initrd.img-{KVER}"));
}

#[test]
fn xfs_in_qcow2_partition() {
    let d = tempfile::tempdir().unwrap();
    let (img, src) = make(d.path(), &[]);
    let raw = d.path().join("disk.raw");
    testkit::sparse_file(&raw, 302 << 20);
    testkit::sfdisk(&raw, "start=2048, size=614400, type=83\n");
    let fsb = std::fs::read(&img).unwrap();
    testkit::patch(&raw, 1 << 20, &fsb);
    let q = d.path().join("disk.qcow2");
    testkit::qemu_convert(&raw, "raw", "qcow2", &[], &q);
    let disk: &'static dyn vdisk::Disk = Box::leak(vdisk::open(&q).unwrap());
    assert_eq!(disk.layer().format, "qcow2");
    let part = vdisk::window::Window::new(disk, 1 << 20, 300 << 20).unwrap();
    let fs = linuxfs::open(Box::new(part)).unwrap();
    assert_holds(&*fs, &src, "/");
    assert_links(&*fs, &src);
}

/// v4 (pre-CRC, as RHEL/CentOS 7.0 made it): version 2 inodes, BMAP
/// B+tree blocks, XD2B/XD2D directory blocks, with and without ftype.
#[test]
fn xfs_v4_boot_tree() {
    for ftype in ["ftype=1", "ftype=0"] {
        let d = tempfile::tempdir().unwrap();
        let (img, src) = make(d.path(), &["-m", "crc=0", "-i", "size=256", "-n", ftype]);
        let v = xfs_db(&img, &["version"]);
        assert!(v.contains("= V4,"), "{v}");
        let fs = open_image(&img);
        assert_eq!(fs.fs_type(), "xfs");
        assert_holds(&*fs, &src, "/");
        assert_links(&*fs, &src);
        assert_matches_xfs_db(&*fs, &img);
        assert_bmap_bytes(&*fs, &img, &format!("/initrd.img-{KVER}"));
        let many = inode_format(&img, fs.stat("/many").unwrap().ino);
        assert!(many.contains("btree"), "{many}");
    }
}

#[test]
fn xfs_refusals_are_named() {
    let d = tempfile::tempdir().unwrap();
    let (img, _) = make(d.path(), &[]);
    let mut b = vec![0u8; 1 << 20];
    use std::os::unix::fs::FileExt;
    std::fs::File::open(&img)
        .unwrap()
        .read_exact_at(&mut b, 0)
        .unwrap();
    let mut bad = b.clone();
    bad[216..220].copy_from_slice(&0x10u32.to_be_bytes());
    let e = linuxfs::open(Box::new(MemDisk(bad))).unwrap_err();
    assert!(e.to_string().contains("NEEDSREPAIR"), "{e}");
    let mut bad = b.clone();
    bad[219] |= 0x80;
    bad[218] |= 0x10;
    let e = linuxfs::open(Box::new(MemDisk(bad))).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown incompatible feature bit 0x1000"),
        "{e}"
    );
    // Geometry whose byte offsets overflow 64 bits: an error, not a panic.
    let mut bad = b.clone();
    bad[84..88].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    bad[88..92].copy_from_slice(&u32::MAX.to_be_bytes());
    bad[124] = 31;
    bad[56..64].copy_from_slice(&(1u64 << 63).to_be_bytes());
    let fs = linuxfs::open(Box::new(MemDisk(bad))).unwrap();
    let e = fs.read_dir("/").unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
    let mut bad = b;
    bad[101] = (bad[101] & 0xF0) | 3;
    let e = linuxfs::open(Box::new(MemDisk(bad))).unwrap_err();
    assert!(e.to_string().contains("XFS v3"), "{e}");
}

/// More mkfs.xfs layouts, each read back whole against the source tree.
#[test]
fn xfs_feature_matrix() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["-i", "size=2048", "-m", "bigtime=0"][..],
        &["-i", "sparse=0", "-m", "finobt=0,reflink=0,rmapbt=1"],
        &["-b", "size=65536", "-n", "size=65536"],
        &["-b", "size=2048", "-n", "size=8192", "-d", "agcount=2"],
    ] {
        let (img, src) = make(d.path(), args);
        let fs = open_image(&img);
        assert_holds(&*fs, &src, "/");
        assert_links(&*fs, &src);
        assert_matches_xfs_db(&*fs, &img);
    }
}
