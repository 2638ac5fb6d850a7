//! Hostile images: seeded byte changes in the superblock, group
//! descriptors / AG headers, inodes, extent headers, B+tree and directory
//! blocks of real `mke2fs`/`mkfs.xfs` images. Every case must end in Ok or
//! a clean error (never a panic, never an unbounded allocation); a fair
//! share must still open, so the walk reaches the damaged structures.

mod common;
use common::*;
use std::path::Path;
use std::sync::Arc;

const CASES: u64 = 300;

/// A small /boot-like tree: a few files, links, a 400-entry directory.
fn small_tree(dir: &Path) {
    let w = |p: &str, d: &[u8]| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    };
    w("vmlinuz-6.1", &noise(300_000, 1));
    w("grub/grub.cfg", b"set default=0\n");
    w("tiny", b"t");
    for i in 0..400 {
        w(&format!("many/f{i:04}"), format!("{i}\n").as_bytes());
    }
    std::os::unix::fs::symlink("vmlinuz-6.1", dir.join("vmlinuz")).unwrap();
    std::os::unix::fs::symlink(
        "./././././././././././././././././././././././././././grub/grub.cfg",
        dir.join("long"),
    )
    .unwrap();
}

fn raw(img: &Path) -> Arc<dyn vdisk::Disk> {
    Arc::from(vdisk::open(img).unwrap())
}

/// Device byte ranges of the blocks debugfs lists for `path`.
fn ext_blocks(img: &Path, path: &str, bs: u64) -> Vec<(u64, u64)> {
    let out = String::from_utf8(run(
        "debugfs",
        &["-R", &format!("blocks {path}"), testkit::s(img)],
    ))
    .unwrap();
    out.split_whitespace()
        .take(8)
        .map(|b| {
            let b: u64 = b.parse().unwrap();
            (b * bs, (b + 1) * bs)
        })
        .collect()
}

fn ext_case(args: &[&str], seed: u64) {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    small_tree(&src);
    let img = d.path().join("fs.img");
    let mut a = vec!["-F", "-q", "-b", "1024", "-d", testkit::s(&src)];
    a.extend(args);
    a.extend([testkit::s(&img), "8M"]);
    run("mkfs.ext4", &a);
    let _ = std::process::Command::new("e2fsck")
        .args(["-fyD", testkit::s(&img)])
        .output()
        .unwrap();
    let fs = open_image(&img);
    assert_eq!(fs.read_dir("/many").unwrap().len(), 400);
    // Superblock, descriptors, the first inode table, directory blocks.
    let stats = String::from_utf8(run("dumpe2fs", &[testkit::s(&img)])).unwrap();
    let itable = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("Inode table at "))
        .unwrap();
    let (a, b) = itable.split_once('-').unwrap();
    let b: u64 = b.split_whitespace().next().unwrap().parse().unwrap();
    let a: u64 = a.parse().unwrap();
    let mut ranges = vec![(1024, 2048), (2048, 3072), (a * 1024, (b + 1) * 1024)];
    for p in ["/", "/many", "/vmlinuz-6.1"] {
        ranges.extend(ext_blocks(&img, p, 1024));
    }
    let (opened, refused) = flip_and_walk(raw(&img), &ranges, CASES, seed);
    assert!(opened > 50, "opened {opened}, refused {refused}");
}

#[test]
fn ext4_extents_htree_hostile() {
    ext_case(&[], 1);
}

#[test]
fn ext3_block_maps_hostile() {
    ext_case(&["-t", "ext3"], 2);
}

#[test]
fn ext4_inline_data_hostile() {
    ext_case(&["-O", "inline_data", "-I", "256"], 3);
}

#[test]
fn xfs_hostile() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    small_tree(&src);
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    proto += "vmlinuz-6.1 ---644 0 0 ";
    proto += &format!(
        "{}\nvmlinuz l--777 0 0 vmlinuz-6.1\ntiny ---644 0 0 {}\n",
        src.join("vmlinuz-6.1").display(),
        src.join("tiny").display()
    );
    proto += "many d--755 0 0\n";
    for i in 0..400 {
        proto += &format!(
            "f{i:04} ---644 0 0 {}\n",
            src.join(format!("many/f{i:04}")).display()
        );
    }
    proto += "$\nsmall d--755 0 0\nx ---644 0 0 /dev/null\n$\n$\n";
    let pf = d.path().join("proto");
    std::fs::write(&pf, proto).unwrap();
    let img = d.path().join("fs.img");
    run(
        "mkfs.xfs",
        &[
            "-q",
            "-f",
            "-p",
            testkit::s(&pf),
            "-d",
            &format!("file,name={},size=300m", img.display()),
        ],
    );
    let fs = open_image(&img);
    assert_eq!(fs.read_dir("/many").unwrap().len(), 400);
    // Superblock, the root's inode chunk, /many's inode and blocks.
    let root = fs.stat("/").unwrap().ino;
    let many = fs.stat("/many").unwrap();
    let mut ranges = vec![(0u64, 512u64), (root / 8 * 4096, root / 8 * 4096 + 32768)];
    let out = String::from_utf8(run(
        "xfs_db",
        &[
            "-r",
            "-c",
            &format!("inode {}", many.ino),
            "-c",
            "bmap",
            testkit::s(&img),
        ],
    ))
    .unwrap();
    let sb = String::from_utf8(run(
        "xfs_db",
        &["-r", "-c", "sb 0", "-c", "print agblocks", testkit::s(&img)],
    ))
    .unwrap();
    let agblocks: u64 = sb
        .trim()
        .strip_prefix("agblocks = ")
        .unwrap()
        .parse()
        .unwrap();
    for l in out.lines().take(6) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (ag, agb) = f[5]
            .trim_matches(|c| c == '(' || c == ')')
            .split_once('/')
            .unwrap();
        let b = ag.parse::<u64>().unwrap() * agblocks + agb.parse::<u64>().unwrap();
        ranges.push((b * 4096, (b + 1) * 4096));
    }
    let (opened, refused) = flip_and_walk(raw(&img), &ranges, CASES, 4);
    assert!(opened > 50, "opened {opened}, refused {refused}");
}
