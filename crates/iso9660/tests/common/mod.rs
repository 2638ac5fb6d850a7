//! Shared test support: the oracle tools, sample trees and comparisons.
#![allow(dead_code, unused_imports)]

use iso9660::{Iso, ReadAt};
use std::collections::BTreeMap;
use std::path::Path;

pub use testkit::need;

/// Run an installed tool, insist on success, return its stdout.
pub fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    testkit::run_tool(cmd, args)
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A set of files (path → content) and directories (including empty ones).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub files: BTreeMap<String, Vec<u8>>,
    pub empty_dirs: Vec<String>,
}

impl Tree {
    pub fn add(&mut self, path: &str, data: Vec<u8>) {
        self.files.insert(path.to_string(), data);
    }

    /// Every path the tree holds: files, their parent directories, empty directories.
    pub fn paths(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        for p in self.files.keys().chain(self.empty_dirs.iter()) {
            out.insert(p.clone());
            let mut cur = p.as_str();
            while let Some(i) = cur.rfind('/') {
                cur = &cur[..i];
                out.insert(cur.to_string());
            }
        }
        out.into_iter().collect()
    }

    /// Write the tree under `dir`.
    pub fn materialize(&self, dir: &Path) {
        for (p, data) in &self.files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, data).unwrap();
        }
        for d in &self.empty_dirs {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
    }

    /// The tree found under `dir` on the host.
    pub fn from_host(dir: &Path) -> Tree {
        fn walk(base: &Path, dir: &Path, t: &mut Tree) {
            let mut n = 0;
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                n += 1;
                let rel = e
                    .path()
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if e.file_type().unwrap().is_dir() {
                    walk(base, &e.path(), t);
                } else {
                    t.files.insert(rel, std::fs::read(e.path()).unwrap());
                }
            }
            if n == 0 && dir != base {
                let rel = dir
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                t.empty_dirs.push(rel);
            }
        }
        let mut t = Tree::default();
        walk(dir, dir, &mut t);
        t.empty_dirs.sort();
        t
    }
}

/// The mixed tree of the brief: nested directories, long mixed-case names,
/// an empty file, a file over 2 MiB, a directory of many entries spanning
/// several sectors, an empty directory, a path at the ISO depth limit.
pub fn mixed_tree() -> Tree {
    let mut t = Tree::default();
    t.add("Readme.TXT", b"hello from the readme\n".to_vec());
    t.add("empty.dat", Vec::new());
    t.add(
        "Drivers/viostor/w10/amd64/viostor.inf",
        b"[Version]\r\nSignature=\"$WINDOWS NT$\"\r\n".to_vec(),
    );
    t.add("Drivers/viostor/w10/amd64/viostor.sys", noise(1, 40_000));
    t.add(
        "Drivers/NetKVM/Windows Server 2019/amd64/netkvm.inf",
        b"[Version]\r\nClass=Net\r\n".to_vec(),
    );
    t.add(
        "big/Large Blob File.bin",
        noise(2, 2 * 1024 * 1024 + 12_345),
    );
    t.add(
        "A Rather Long Mixed-Case File Name With Spaces.inf",
        noise(3, 3000),
    );
    t.add("lower.case.multi.dots.tar.gz", noise(4, 777));
    t.add(
        "n1/n2/n3/n4/n5/n6/n7/deep.txt",
        b"seven levels down\n".to_vec(),
    );
    for i in 0..120 {
        let name = format!("many/Entry-With-A-Longish-Name-{i:03}.txt");
        let data = name.as_bytes().repeat(i % 5);
        t.add(&name, data);
    }
    t.empty_dirs.push("emptydir".to_string());
    t
}

/// Names that already are strict level-1 names (for plain ISO images).
pub fn level1_tree() -> Tree {
    let mut t = Tree::default();
    t.add("README.TXT", b"plain\n".to_vec());
    t.add("EMPTY.DAT", Vec::new());
    t.add("DIR1/SUB/FILE.BIN", noise(5, 5000));
    t.add("BIG/BLOB.BIN", noise(6, 2 * 1024 * 1024 + 1));
    for i in 0..100 {
        t.add(&format!("MANY/F{i:05}.TXT"), format!("{i}\n").into_bytes());
    }
    t.empty_dirs.push("EMPTYDIR".to_string());
    t
}

/// Assert that `iso` holds exactly `t`: the full path list, then every
/// file's bytes (found by a case-changed lookup, read both ways).
pub fn assert_iso_holds<R: ReadAt>(iso: &Iso<R>, t: &Tree) {
    let entries = iso.entries().unwrap();
    let mut got: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    got.sort();
    assert_eq!(got, t.paths(), "path list ({:?} names)", iso.name_source());
    for e in &entries {
        assert_eq!(e.is_dir, !t.files.contains_key(&e.path), "{}", e.path);
    }
    for (p, data) in &t.files {
        let e = iso
            .find(&p.to_uppercase())
            .unwrap()
            .unwrap_or_else(|| panic!("find({p:?}) found nothing"));
        assert_eq!(&e.path, p);
        assert_eq!(e.size, data.len() as u64, "{p}");
        let got = iso.read(&e, 16 << 20).unwrap();
        assert!(got == *data, "content of {p} differs");
        let mut streamed = Vec::new();
        assert_eq!(iso.copy_to(&e, &mut streamed).unwrap(), data.len() as u64);
        assert!(streamed == *data, "streamed content of {p} differs");
    }
}
