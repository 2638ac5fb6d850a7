//! Shared test helpers: oracle lookup, image creation, XML queries.
#![allow(dead_code, unused_imports)]

use domain::xml::Element;
use std::path::Path;
use std::process::Command;

pub use testkit::{need, qemu_img_create, run, run_all};

/// A tiny ISO made with xorriso.
pub fn make_iso(dir: &Path) -> std::path::PathBuf {
    need("xorriso");
    let src = dir.join("isosrc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("README.TXT"), b"virtio-win stand-in\n").unwrap();
    let iso = dir.join("virtio-win.iso");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "VIRTIO", "-o"])
        .arg(&iso)
        .arg(&src));
    iso
}

/// Parse XML text with the crate's quick-xml based tree.
pub fn parse_xml(text: &str) -> Element {
    domain::xml::parse(Path::new("test.xml"), text.as_bytes()).expect("well-formed XML")
}

/// All elements at a `/`-separated path of local names (last step may
/// match several siblings).
pub fn all<'a>(root: &'a Element, path: &str) -> Vec<&'a Element> {
    let mut cur = vec![root];
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = cur
            .into_iter()
            .flat_map(|e| e.children.iter().filter(move |c| c.name == part))
            .collect();
    }
    cur
}

/// The single element at `path`.
pub fn one<'a>(root: &'a Element, path: &str) -> &'a Element {
    let v = all(root, path);
    assert_eq!(
        v.len(),
        1,
        "expected exactly one <{path}>, found {}",
        v.len()
    );
    v[0]
}
