//! Shared by the reader tests: a source tree shaped like a real `/boot`
//! (given to `mkfs.* -d/-p/--rootdir`), a walk that checks a reader holds
//! exactly that tree, and opening images through the block layer.
#![allow(dead_code)]

use linuxfs::{FileType, LinuxFs};
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const KVER: &str = "6.1.0-28-amd64";
pub const MANY: usize = 3000;

/// Deterministic pseudo-random bytes (xorshift), so content is not
/// compressible or self-similar.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Build the /boot-like tree under `dir`.
pub fn boot_tree(dir: &Path) {
    write(&dir.join(format!("vmlinuz-{KVER}")), &noise(3 << 20, 1));
    write(
        &dir.join(format!("initrd.img-{KVER}")),
        &noise((5 << 20) + 123, 2),
    );
    write(
        &dir.join(format!("config-{KVER}")),
        b"CONFIG_VIRTIO_BLK=m\nCONFIG_VIRTIO_PCI=y\n"
            .repeat(500)
            .as_slice(),
    );
    write(&dir.join(format!("System.map-{KVER}")), &noise(70_001, 3));
    write(&dir.join("grub/grub.cfg"), format!("set default=0\nmenuentry 'Debian' {{\n  linux /vmlinuz-{KVER} root=/dev/sda1 ro quiet\n  initrd /initrd.img-{KVER}\n}}\n").as_bytes());
    let mut env = b"# GRUB Environment Block\nsaved_entry=0\n".to_vec();
    env.resize(1024, b'#');
    write(&dir.join("grub/grubenv"), &env);
    write(&dir.join("grub/i386-pc/normal.mod"), &noise(40_000, 4));
    write(&dir.join(format!("loader/entries/0123456789abcdef-{KVER}.conf")), format!("title Debian\nversion {KVER}\nlinux /vmlinuz-{KVER}\ninitrd /initrd.img-{KVER}\noptions root=UUID=1234 ro\n").as_bytes());
    write(&dir.join("tiny"), b"x");
    write(&dir.join("empty"), b"");
    std::fs::create_dir_all(dir.join("emptydir")).unwrap();
    for i in 0..MANY {
        write(
            &dir.join(format!("many/module-{i:05}.ko")),
            format!("module {i}\n").repeat(i % 7 + 1).as_bytes(),
        );
    }
    // A sparse file: data at both ends, 8 MiB hole in between.
    let f = std::fs::File::create(dir.join("sparse")).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", 8 << 20).unwrap();
    let link =
        |target: &str, name: &str| std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    link(&format!("vmlinuz-{KVER}"), "vmlinuz");
    link(&format!("initrd.img-{KVER}"), "initrd.img");
    link("grub", "grub-link");
    link("/grub/grub.cfg", "abs-link");
    link("../vmlinuz", "grub/up-link");
    let long = format!("{}grub/../grub/grub.cfg", "./".repeat(40));
    link(&long, "long-link");
    link("loop-b", "loop-a");
    link("loop-a", "loop-b");
    link("does-not-exist", "dangling");
}

/// Check that `fs` holds exactly the tree at `src` (names, types, sizes,
/// bytes, link targets), recursively from `path`.
pub fn assert_holds(fs: &dyn LinuxFs, src: &Path, path: &str) {
    let mut want = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap() {
        want.insert(e.unwrap().file_name().to_string_lossy().into_owned());
    }
    let got_entries = fs
        .read_dir(path)
        .unwrap_or_else(|e| panic!("read_dir {path}: {e}"));
    // mke2fs adds lost+found at the root.
    let got_entries: Vec<_> = got_entries
        .into_iter()
        .filter(|e| !(path == "/" && e.name == "lost+found"))
        .collect();
    let got: BTreeSet<String> = got_entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(got.len(), got_entries.len(), "duplicate names in {path}");
    assert_eq!(got, want, "listing of {path}");
    for e in &got_entries {
        let child = if path == "/" {
            format!("/{}", e.name)
        } else {
            format!("{path}/{}", e.name)
        };
        let sp = src.join(&e.name);
        let sm = std::fs::symlink_metadata(&sp).unwrap();
        let m = fs
            .stat(&child)
            .unwrap_or_else(|err| panic!("stat {child}: {err}"));
        assert_eq!(m.ino, e.ino, "{child}");
        assert_eq!(m.file_type, e.file_type, "{child}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.mode, sm.mode() & 0o7777, "{child} mode");
        if sm.is_symlink() {
            assert_eq!(m.file_type, FileType::Symlink, "{child}");
            let t = std::fs::read_link(&sp).unwrap();
            assert_eq!(
                fs.read_link(&child).unwrap(),
                t.to_str().unwrap(),
                "{child}"
            );
        } else if sm.is_dir() {
            assert_eq!(m.file_type, FileType::Directory, "{child}");
            assert_holds(fs, &sp, &child);
        } else {
            assert_eq!(m.file_type, FileType::Regular, "{child}");
            assert_eq!(m.size, sm.len(), "{child} size");
            let data = fs
                .read_file(&child, 64 << 20)
                .unwrap_or_else(|err| panic!("read {child}: {err}"));
            assert!(data == std::fs::read(&sp).unwrap(), "{child}: bytes differ");
        }
    }
}

/// Symlink behaviour every reader must share on the boot tree.
pub fn assert_links(fs: &dyn LinuxFs, src: &Path) {
    let kernel = std::fs::read(src.join(format!("vmlinuz-{KVER}"))).unwrap();
    assert!(fs.read_file("/vmlinuz", 64 << 20).unwrap() == kernel);
    assert!(fs.read_file("/grub/up-link", 64 << 20).unwrap() == kernel);
    let cfg = std::fs::read(src.join("grub/grub.cfg")).unwrap();
    assert_eq!(fs.read_file("/abs-link", 1 << 20).unwrap(), cfg);
    assert_eq!(fs.read_file("/long-link", 1 << 20).unwrap(), cfg);
    assert_eq!(fs.read_file("/grub-link/grub.cfg", 1 << 20).unwrap(), cfg);
    assert_eq!(fs.read_file("/grub-link/../tiny", 10).unwrap(), b"x");
    assert_eq!(
        fs.read_dir("/grub-link").unwrap(),
        fs.read_dir("/grub").unwrap()
    );
    assert_eq!(fs.stat("/vmlinuz").unwrap().file_type, FileType::Symlink);
    assert!(matches!(
        fs.read_file("/loop-a", 10),
        Err(linuxfs::Error::TooManyLinks { .. })
    ));
    assert!(matches!(
        fs.read_file("/dangling", 10),
        Err(linuxfs::Error::NotFound { .. })
    ));
    assert!(matches!(
        fs.read_file("/nope/x", 10),
        Err(linuxfs::Error::NotFound { .. })
    ));
    assert!(matches!(
        fs.read_file("/tiny/x", 10),
        Err(linuxfs::Error::NotADirectory { .. })
    ));
    assert!(matches!(
        fs.read_file("/grub", 10),
        Err(linuxfs::Error::NotAFile { .. })
    ));
    assert!(matches!(
        fs.read_link("/tiny"),
        Err(linuxfs::Error::NotASymlink { .. })
    ));
    assert!(matches!(
        fs.read_file("vmlinuz", 10),
        Err(linuxfs::Error::InvalidPath { .. })
    ));
    assert!(matches!(
        fs.read_file("/vmlinuz", 1 << 20),
        Err(linuxfs::Error::TooLarge { size, .. }) if size == 3 << 20
    ));
}

/// Open an image file (any format the block layer reads) as a filesystem.
pub fn open_image(path: &Path) -> Box<dyn LinuxFs> {
    let disk = vdisk::open(path).unwrap_or_else(|e| panic!("vdisk::open {}: {e}", path.display()));
    linuxfs::open(disk).unwrap_or_else(|e| panic!("linuxfs::open {}: {e}", path.display()))
}

/// Run a tool, panicking with its stderr on failure; returns stdout.
pub fn run(prog: &str, args: &[&str]) -> Vec<u8> {
    testkit::run_tool(prog, args)
}

/// A hostile-image run: for `cases` seeded cases, change 1..8 random
/// bytes inside `ranges` (byte ranges of metadata) of `img`, open and walk
/// the result: every call must return (Ok or Err), never panic. Returns
/// how many cases opened and how many were refused at open.
pub fn flip_and_walk(
    img: std::sync::Arc<dyn vdisk::Disk>,
    ranges: &[(u64, u64)],
    cases: u64,
    seed: u64,
) -> (usize, usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut opened, mut failed, mut errors) = (0, 0, 0);
    for _ in 0..cases {
        let mut patches = Vec::new();
        for _ in 0..rng.gen_range(1..=8) {
            let (a, b) = ranges[rng.gen_range(0..ranges.len())];
            let off = rng.gen_range(a..b);
            let v: u8 = if rng.gen_bool(0.5) {
                rng.gen()
            } else {
                1 << rng.gen_range(0..8)
            };
            patches.push((off, v, rng.gen_bool(0.5)));
        }
        match linuxfs::open(Box::new(Patched {
            base: img.clone(),
            patches,
        })) {
            Ok(fs) => {
                opened += 1;
                errors += walk(&*fs, "/", 0);
            }
            Err(_) => failed += 1,
        }
    }
    eprintln!("{cases} hostile cases: {opened} opened, {failed} refused at open, {errors} errors while walking");
    (opened, failed)
}

/// A disk with a few bytes changed: (offset, value, xor instead of set).
#[derive(Debug)]
pub struct Patched {
    pub base: std::sync::Arc<dyn vdisk::Disk>,
    pub patches: Vec<(u64, u8, bool)>,
}

impl vdisk::Disk for Patched {
    fn size(&self) -> u64 {
        self.base.size()
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> vdisk::Result<()> {
        self.base.read_at(buf, off)?;
        for &(p, v, xor) in &self.patches {
            if p >= off && p - off < buf.len() as u64 {
                let b = &mut buf[(p - off) as usize];
                *b = if xor { *b ^ v } else { v };
            }
        }
        Ok(())
    }
    fn layer(&self) -> vdisk::LayerInfo {
        self.base.layer()
    }
}

/// Visit everything reachable (bounded); returns how many calls failed.
pub fn walk(fs: &dyn LinuxFs, path: &str, depth: usize) -> usize {
    if depth > 4 {
        return 0;
    }
    let entries = match fs.read_dir(path) {
        Ok(e) => e,
        Err(_) => return 1,
    };
    let mut errors = 0;
    for e in entries.iter().take(50) {
        let child = if path == "/" {
            format!("/{}", e.name)
        } else {
            format!("{path}/{}", e.name)
        };
        errors += usize::from(fs.stat(&child).is_err());
        match e.file_type {
            FileType::Directory => errors += walk(fs, &child, depth + 1),
            FileType::Symlink => errors += usize::from(fs.read_link(&child).is_err()),
            _ => errors += usize::from(fs.read_file(&child, 16 << 20).is_err()),
        }
    }
    errors
}

/// Modification times and owners of a few entries equal the source's
/// (for tools that copy them: mke2fs -d, mkfs.btrfs --rootdir).
pub fn assert_mtimes(fs: &dyn LinuxFs, src: &Path) {
    use std::os::unix::fs::MetadataExt;
    for p in [
        format!("vmlinuz-{KVER}"),
        "grub/grub.cfg".into(),
        "many".into(),
        "vmlinuz".into(),
    ] {
        let sm = std::fs::symlink_metadata(src.join(&p)).unwrap();
        let m = fs.stat(&format!("/{p}")).unwrap();
        assert_eq!(m.mtime, sm.mtime(), "{p} mtime");
        assert_eq!((m.uid, m.gid), (0, 0), "{p} owner");
        if sm.is_file() {
            assert_eq!(m.nlink, 1, "{p} links");
        }
    }
}

/// The chunks `btrfs inspect-internal dump-tree -t chunk` lists:
/// (logical, length, physical offset of the first stripe).
pub fn btrfs_chunk_map(img: &Path) -> Vec<(u64, u64, u64)> {
    let chunks = String::from_utf8(run(
        "btrfs",
        &[
            "inspect-internal",
            "dump-tree",
            "-t",
            "chunk",
            img.to_str().unwrap(),
        ],
    ))
    .unwrap();
    let lines: Vec<&str> = chunks.lines().collect();
    let mut map = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 5 && f[3] == "(FIRST_CHUNK_TREE" && f[4] == "CHUNK_ITEM" {
            let logical: u64 = f[5].trim_end_matches(')').parse().unwrap();
            let len: u64 = lines[n + 1]
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            let stripe = lines[n + 4].split_whitespace().collect::<Vec<_>>();
            assert_eq!(stripe[0], "stripe", "{}", lines[n + 4]);
            map.push((logical, len, stripe[5].parse::<u64>().unwrap()));
        }
    }
    assert!(!map.is_empty(), "{chunks}");
    map
}
