//! Hostile images: seeded byte changes (500 cases each) in the superblock, group
//! descriptors / AG headers, inodes, extent headers, B+tree and directory
//! blocks of real `mke2fs`/`mkfs.xfs`/`mkfs.btrfs` images. Every case must end in Ok or
//! a clean error (never a panic, never an unbounded allocation); a fair
//! share must still open, so the walk reaches the damaged structures.

mod common;
use common::*;
use std::path::Path;
use std::sync::Arc;

const CASES: u64 = 500;

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
    let isz: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("Inode size:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut ranges = vec![(1024, 2048), (2048, 3072)];
    // The inodes in use (one group: 8 MiB of 1 KiB blocks).
    for p in [
        "/",
        "/many",
        "/vmlinuz-6.1",
        "/long",
        "/grub",
        "/grub/grub.cfg",
        "/tiny",
        "/many/f0001",
    ] {
        let ino = fs.stat(p).unwrap().ino;
        let off = a * 1024 + (ino - 1) * isz;
        assert!(off < (b + 1) * 1024);
        ranges.push((off, off + isz));
    }
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

/// btrfs: the superblock (with its system chunk array) and every tree
/// node `btrfs inspect-internal dump-tree` reports (chunk, root, fs trees).
#[test]
fn btrfs_hostile() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    small_tree(&src);
    let img = d.path().join("fs.img");
    testkit::sparse_file(&img, 128 << 20);
    run(
        "mkfs.btrfs",
        &[
            "-q",
            "-f",
            "-m",
            "single",
            "-n",
            "4096",
            "-r",
            testkit::s(&src),
            testkit::s(&img),
        ],
    );
    let fs = open_image(&img);
    assert_eq!(fs.read_dir("/many").unwrap().len(), 400);
    // Node logical addresses, mapped through the (single) chunks.
    let map = btrfs_chunk_map(&img);
    let mut ranges = vec![(0x10000u64, 0x10000 + 4096)];
    for t in ["root", "chunk", "fs"] {
        let out = String::from_utf8(run(
            "btrfs",
            &["inspect-internal", "dump-tree", "-t", t, testkit::s(&img)],
        ))
        .unwrap();
        for l in out
            .lines()
            .filter(|l| l.starts_with("leaf ") || l.starts_with("node "))
        {
            let lg: u64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
            let &(c, _, p) = map
                .iter()
                .find(|(c, len, _)| lg >= *c && lg < c + len)
                .unwrap();
            let phys = p + (lg - c);
            ranges.push((phys, phys + 4096));
        }
    }
    assert!(ranges.len() > 4, "{ranges:?}");
    let (opened, refused) = flip_and_walk(raw(&img), &ranges, CASES, 5);
    assert!(opened > 50, "opened {opened}, refused {refused}");
}

/// A journal that needs recovery (two transactions, one revoke), with
/// bytes changed in its superblock, descriptor, data, revoke and commit
/// blocks.
#[test]
fn ext4_journal_hostile() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    small_tree(&src);
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
            "16M",
        ],
    );
    let blocks = |p: &str| -> Vec<u64> {
        String::from_utf8(run(
            "debugfs",
            &["-R", &format!("blocks {p}"), testkit::s(&img)],
        ))
        .unwrap()
        .split_whitespace()
        .map(|b| b.parse().unwrap())
        .collect()
    };
    let (b1, b2) = (blocks("/grub/grub.cfg")[0], blocks("/tiny")[0]);
    let data = d.path().join("data");
    std::fs::write(&data, noise(4096, 7)).unwrap();
    let cmds = d.path().join("cmds");
    let dp = data.display();
    std::fs::write(
        &cmds,
        format!("jo\njw -b {b1} {dp}\njw -b {b2} {dp}\njw -r {b1}\njc\n"),
    )
    .unwrap();
    run(
        "debugfs",
        &["-w", "-f", testkit::s(&cmds), testkit::s(&img)],
    );
    let journal = blocks("<8>");
    let ranges: Vec<(u64, u64)> = journal
        .iter()
        .take(12)
        .map(|b| (b * 4096, b * 4096 + 4096))
        .collect();
    let fs = open_image(&img);
    assert_eq!(fs.read_file("/tiny", 10).unwrap(), &noise(4096, 7)[..1]);
    let (opened, refused) = flip_and_walk(raw(&img), &ranges, CASES, 6);
    assert!(opened > 50, "opened {opened}, refused {refused}");
}
