//! Shared helpers: build NTFS volumes with mkntfs and populate them with
//! ntfs-3g (the oracles), compare with ntfsls/ntfscat.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub use testkit::need;

/// Run an installed tool, insist on success, return its stdout.
pub fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    testkit::run_tool(cmd, args)
}

/// Make a fresh NTFS volume file of `mib` MiB with cluster size `cs`.
pub fn mkntfs(dir: &Path, name: &str, mib: u64, cs: u32) -> PathBuf {
    need("mkntfs");
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(mib << 20).unwrap();
    run(
        "mkntfs",
        &["-F", "-q", "-c", &cs.to_string(), p.to_str().unwrap()],
    );
    p
}

/// Mount `img` with ntfs-3g at a fresh dir, run `f`, unmount.
pub fn with_mount(img: &Path, opts: &str, f: impl FnOnce(&Path)) {
    need("ntfs-3g");
    let mnt = tempfile::tempdir().unwrap();
    let mut args = vec![img.to_str().unwrap(), mnt.path().to_str().unwrap()];
    if !opts.is_empty() {
        args.push("-o");
        args.push(opts);
    }
    run("ntfs-3g", &args);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(mnt.path())));
    let _ = Command::new("fusermount")
        .args(["-u", mnt.path().to_str().unwrap()])
        .status();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Names ntfsls prints for a directory (long names, no system files).
pub fn ntfsls(img: &Path, path: &str) -> Vec<String> {
    need("ntfsls");
    let out = run("ntfsls", &["-a", "-p", path, img.to_str().unwrap()]);
    let mut v: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v
}

/// ntfscat output.
pub fn ntfscat(img: &Path, path: &str) -> Vec<u8> {
    need("ntfscat");
    run("ntfscat", &[img.to_str().unwrap(), path])
}

/// Open a volume image read-only through the block layer.
pub fn open_ro(img: &Path) -> ntfs::Volume<Box<dyn vdisk::Disk>> {
    ntfs::Volume::open(vdisk::probe::open(img).unwrap()).unwrap()
}
