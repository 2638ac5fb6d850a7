//! Shared helpers: build a guest into a temporary directory, cut its
//! partitions out for the ntfs-3g tools, read hive values with hivex.
#![allow(dead_code)]

use phony::{Expected, Options, PartInfo};
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::{need, run, run_bytes, tool};

/// A built guest.
pub struct Guest {
    pub dir: tempfile::TempDir,
    pub img: PathBuf,
    pub e: Expected,
}

pub fn build(o: &Options) -> Guest {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let e = phony::build(o, &testkit::testdata(""), &img)
        .unwrap_or_else(|err| panic!("building {:?}: {err}", o.version));
    Guest { dir, img, e }
}

impl Guest {
    pub fn part(&self, role: &str) -> &PartInfo {
        self.e
            .partitions
            .iter()
            .find(|p| p.role == role)
            .unwrap_or_else(|| panic!("no {role} partition in {:?}", self.e.partitions))
    }

    /// The partition cut out to a sparse file (for ntfs-3g and mtools).
    pub fn extract(&self, role: &str) -> PathBuf {
        self.extract_from(&self.img, role)
    }

    pub fn extract_from(&self, img: &Path, role: &str) -> PathBuf {
        let p = self.part(role).clone();
        let out = self.dir.path().join(format!("{role}.part"));
        if !out.exists() {
            run(tool("dd")
                .arg(format!("if={}", img.display()))
                .arg(format!("of={}", out.display()))
                .args(["bs=512", "conv=sparse", "status=none"])
                .arg(format!("skip={}", p.start))
                .arg(format!("count={}", p.sectors)));
        }
        out
    }

    /// A file of the system volume read by ntfscat.
    pub fn ntfscat(&self, role: &str, path: &str) -> Vec<u8> {
        need("ntfscat");
        let part = self.extract(role);
        run_bytes(tool("ntfscat").arg(&part).arg(path))
    }

    /// A file of a volume, saved to the temporary directory.
    pub fn save(&self, role: &str, path: &str, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        std::fs::write(&out, self.ntfscat(role, path)).unwrap();
        out
    }

    /// Names in a directory of a volume (ntfsls).
    pub fn ntfsls(&self, role: &str, dir: &str) -> Vec<String> {
        need("ntfsls");
        let part = self.extract(role);
        run(tool("ntfsls").arg("-p").arg(dir).arg(&part))
            .lines()
            .map(|l| l.to_string())
            .collect()
    }

    pub fn system_hive(&self) -> PathBuf {
        self.save("system", &format!("/{}", self.e.system_hive), "SYSTEM.hive")
    }

    pub fn software_hive(&self) -> PathBuf {
        self.save(
            "system",
            &format!("/{}", self.e.software_hive),
            "SOFTWARE.hive",
        )
    }
}

/// `hivexget HIVE KEY NAME` (string values as text, others as hivex
/// prints them).
pub fn hivexget(hive: &Path, key: &str, name: &str) -> String {
    need("hivexget");
    run(Command::new("hivexget").arg(hive).arg(key).arg(name))
        .trim_end_matches('\n')
        .to_string()
}

/// A whole key exported by hivexregedit.
pub fn hivex_export(hive: &Path, key: &str) -> String {
    need("hivexregedit");
    run(Command::new("hivexregedit")
        .arg("--export")
        .arg(hive)
        .arg(key))
}

/// The bytes of a hex(N): value line in a hivexregedit export.
pub fn export_bytes(export: &str, value_name: &str) -> Vec<u8> {
    let joined = export.replace("\\\n", "");
    let line = joined
        .lines()
        .find(|l| l.starts_with(&format!("\"{value_name}\"=")))
        .unwrap_or_else(|| panic!("{value_name} missing in:\n{export}"));
    let hex = line
        .split_once("=hex(")
        .unwrap()
        .1
        .split_once("):")
        .unwrap()
        .1;
    hex.split(',')
        .map(|b| u8::from_str_radix(b.trim(), 16).unwrap())
        .collect()
}

/// `file -b` of some bytes.
pub fn file_type(dir: &Path, bytes: &[u8]) -> String {
    need("file");
    let p = dir.join("probe.bin");
    std::fs::write(&p, bytes).unwrap();
    run(tool("file").arg("-b").arg(&p)).trim().to_string()
}

/// sfdisk's dump: (label-id, [(start, size, type, bootable)]).
pub fn sfdisk_dump(img: &Path) -> (String, Vec<(u64, u64, String, bool)>) {
    need("sfdisk");
    let d = run(tool("sfdisk").arg("-d").arg(img));
    let mut id = String::new();
    let mut parts = vec![];
    for l in d.lines() {
        if let Some(v) = l.strip_prefix("label-id: ") {
            id = v.to_string();
        }
        if let Some((_, rest)) = l.split_once(" : ") {
            let field = |k: &str| {
                rest.split(',')
                    .map(str::trim)
                    .find_map(|f| f.strip_prefix(&format!("{k}=")))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            };
            parts.push((
                field("start").parse().unwrap(),
                field("size").parse().unwrap(),
                field("type"),
                rest.contains("bootable"),
            ));
        }
    }
    (id, parts)
}

/// Run a hivexsh script on a hive; its stdout.
pub fn hivexsh(hive: &Path, script: &str) -> String {
    use std::io::Write;
    need("hivexsh");
    let mut c = Command::new("hivexsh")
        .arg(hive)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "hivexsh {script:?} failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}
