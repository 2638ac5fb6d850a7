//! Files of a whole-disk image read with sleuthkit, at a partition's
//! offset (no extraction): `ifind -n` for the MFT entry, then `icat`.
//! Included with `#[path = "support/tsk.rs"] mod tsk;`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// A file of the NTFS volume starting at sector `start` of `img`.
pub fn cat(img: &Path, start: u64, path: &str) -> Vec<u8> {
    testkit::need("ifind");
    testkit::need("icat");
    let off = start.to_string();
    let path = format!("/{}", path.trim_start_matches('/'));
    let inode = testkit::run(
        Command::new("ifind")
            .args(["-o", &off, "-n", &path])
            .arg(img),
    );
    let inode = inode.trim();
    assert!(
        !inode.is_empty() && !inode.contains("not found"),
        "sleuthkit finds no {path} at sector {start} of {}",
        img.display()
    );
    testkit::run_bytes(Command::new("icat").args(["-o", &off]).arg(img).arg(inode))
}
