//! They write, we read: images made by `xorriso -as mkisofs` and by
//! `genisoimage` (plain, Joliet, Rock Ridge, both) hold exactly the tree
//! that went in, as our reader sees it; plain ISO names are checked
//! against `isoinfo -f` and `isoinfo -x`.

mod common;
use common::*;
use iso9660::{Iso, NameSource};
use std::path::{Path, PathBuf};

/// Make an image of `t` with `tool` (`xorriso` in mkisofs mode or
/// `genisoimage`); Rock Ridge only when `args` has `-R`.
fn make(tool: &str, args: &[&str], t: &Tree, dir: &Path) -> PathBuf {
    let src = dir.join("src");
    t.materialize(&src);
    let out = dir.join("out.iso");
    let (o, s) = (out.to_str().unwrap(), src.to_str().unwrap());
    let mut a: Vec<&str> = Vec::new();
    if tool == "xorriso" {
        a.extend(["-as", "mkisofs"]);
        // xorriso writes Rock Ridge unless told not to.
        if !args.contains(&"-R") {
            a.push("--norock");
        }
    }
    a.extend(["-quiet", "-V", "virtio-win-0.1.240"]);
    a.extend(args);
    a.extend(["-o", o, s]);
    run(tool, &a);
    out
}

#[test]
fn xorriso_plain_level1_names() {
    let d = tempfile::tempdir().unwrap();
    let t = level1_tree();
    let iso = Iso::open(make("xorriso", &[], &t, d.path())).unwrap();
    assert_eq!(iso.name_source(), NameSource::Iso9660);
    assert_eq!(iso.available_name_sources(), [NameSource::Iso9660]);
    assert_eq!(iso.joliet_volume_id(), None);
    assert_iso_holds(&iso, &t);
}

/// Plain ISO names of a tree whose names had to be mangled: our listing
/// and bytes must agree with isoinfo's.
#[test]
fn xorriso_plain_mangled_names_match_isoinfo() {
    let d = tempfile::tempdir().unwrap();
    let path = make("xorriso", &[], &mixed_tree(), d.path());
    let p = path.to_str().unwrap();
    let listing = String::from_utf8(run("isoinfo", &["-i", p, "-f"])).unwrap();
    let mut want: Vec<String> = listing
        .lines()
        .map(|l| {
            let l = l.trim_start_matches('/');
            let l = l.split_once(';').map_or(l, |(n, _)| n);
            l.strip_suffix('.').unwrap_or(l).to_string()
        })
        .collect();
    want.sort();
    let iso = Iso::open(&path).unwrap();
    assert_eq!(iso.name_source(), NameSource::Iso9660);
    let entries = iso.entries().unwrap();
    let mut got: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    got.sort();
    assert_eq!(got, want);
    assert!(got.len() > 130, "{}", got.len());
    // Bytes of every file as extracted by isoinfo (by its ISO name with the version).
    let with_version: Vec<&str> = listing.lines().filter(|l| l.contains(';')).collect();
    assert!(with_version.len() > 120);
    for iso_path in with_version {
        let ours = iso_path.trim_start_matches('/');
        let ours = ours.split_once(';').unwrap().0;
        let ours = ours.strip_suffix('.').unwrap_or(ours);
        let e = iso.find(ours).unwrap().unwrap();
        let theirs = run("isoinfo", &["-i", p, "-x", iso_path]);
        assert!(iso.read(&e, 16 << 20).unwrap() == theirs, "{iso_path}");
    }
}

#[test]
fn xorriso_joliet() {
    let d = tempfile::tempdir().unwrap();
    let t = mixed_tree();
    let iso = Iso::open(make("xorriso", &["-J"], &t, d.path())).unwrap();
    assert_eq!(iso.name_source(), NameSource::Joliet);
    assert_eq!(iso.volume_id(), "virtio-win-0.1.240");
    assert_eq!(iso.joliet_volume_id(), Some("virtio-win-0.1.2"));
    assert_iso_holds(&iso, &t);
}

#[test]
fn xorriso_rock_ridge() {
    let d = tempfile::tempdir().unwrap();
    let t = mixed_tree();
    let iso = Iso::open(make("xorriso", &["-R"], &t, d.path())).unwrap();
    assert_eq!(iso.name_source(), NameSource::RockRidge);
    assert_iso_holds(&iso, &t);
}

#[test]
fn xorriso_joliet_and_rock_ridge() {
    let d = tempfile::tempdir().unwrap();
    let t = mixed_tree();
    let mut iso = Iso::open(make("xorriso", &["-J", "-R"], &t, d.path())).unwrap();
    assert_eq!(
        iso.available_name_sources(),
        [
            NameSource::RockRidge,
            NameSource::Joliet,
            NameSource::Iso9660
        ]
    );
    assert_eq!(iso.name_source(), NameSource::RockRidge);
    assert_iso_holds(&iso, &t);
    iso.set_name_source(NameSource::Joliet).unwrap();
    assert_iso_holds(&iso, &t);
}

#[test]
fn genisoimage_joliet_and_rock_ridge() {
    let d = tempfile::tempdir().unwrap();
    let t = mixed_tree();
    let mut iso = Iso::open(make("genisoimage", &["-J", "-R"], &t, d.path())).unwrap();
    assert_eq!(iso.name_source(), NameSource::RockRidge);
    assert_eq!(iso.volume_id(), "virtio-win-0.1.240");
    assert_iso_holds(&iso, &t);
    iso.set_name_source(NameSource::Joliet).unwrap();
    assert_iso_holds(&iso, &t);
}

fn deep_tree() -> Tree {
    let mut t = Tree::default();
    t.add(
        "a/b/c/d/e/f/g/h/i/j/Deep File.txt",
        b"ten levels\n".to_vec(),
    );
    t.add("a/b/c/d/e/f/g/h/side.txt", b"eight\n".to_vec());
    t.add("a/top.txt", b"top\n".to_vec());
    t
}

/// genisoimage moves directories deeper than eight levels into `rr_moved`
/// and links them back with Rock Ridge CL/RE entries: the Rock Ridge view
/// shows them in their real place (`rr_moved` stays, empty).
#[test]
fn genisoimage_relocated_deep_directories() {
    let d = tempfile::tempdir().unwrap();
    let t = deep_tree();
    let iso = Iso::open(make("genisoimage", &["-R"], &t, d.path())).unwrap();
    assert_eq!(iso.name_source(), NameSource::RockRidge);
    let mut with_moved = t.clone();
    with_moved.empty_dirs.push("rr_moved".into());
    assert_iso_holds(&iso, &with_moved);
}

/// xorriso records deep directories in place (no relocation).
#[test]
fn xorriso_deep_directories() {
    let d = tempfile::tempdir().unwrap();
    let t = deep_tree();
    let mut iso = Iso::open(make("xorriso", &["-J", "-R"], &t, d.path())).unwrap();
    assert_iso_holds(&iso, &t);
    iso.set_name_source(NameSource::Joliet).unwrap();
    assert_iso_holds(&iso, &t);
}

/// A directory of long Rock Ridge names that spill into continuation
/// areas (names of 200 bytes do not fit in the record).
#[test]
fn rock_ridge_long_names_in_continuation_areas() {
    let d = tempfile::tempdir().unwrap();
    let mut t = Tree::default();
    for i in 0..30 {
        let name = format!("{}-{i:02}.bin", "x".repeat(200));
        t.add(&format!("long/{name}"), noise(i, 100 + i as usize));
    }
    for tool in ["xorriso", "genisoimage"] {
        let sub = d.path().join(tool);
        let iso = Iso::open(make(tool, &["-R"], &t, &sub)).unwrap();
        assert_eq!(iso.name_source(), NameSource::RockRidge);
        assert_iso_holds(&iso, &t);
    }
}

/// The layout of a real virtio-win ISO (shared test data: every path on
/// it), built the way that ISO is (genisoimage -J -R), reads back whole.
#[test]
fn virtio_win_layout() {
    let list = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/virtio-win-layout/iso-list.txt");
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("{}: {e} (shared test data missing)", list.display()));
    let mut t = Tree::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let p = line.trim().strip_prefix("cd/").unwrap_or(line.trim());
        t.add(p, p.as_bytes().to_vec());
    }
    assert!(t.files.len() > 1000);
    let d = tempfile::tempdir().unwrap();
    let mut iso = Iso::open(make("genisoimage", &["-J", "-R"], &t, d.path())).unwrap();
    assert_eq!(iso.name_source(), NameSource::RockRidge);
    assert_iso_holds(&iso, &t);
    iso.set_name_source(NameSource::Joliet).unwrap();
    assert_iso_holds(&iso, &t);
    let e = iso.find("/VIOSTOR/W10/AMD64/VIOSTOR.INF").unwrap().unwrap();
    assert_eq!(e.path, "viostor/w10/amd64/viostor.inf");
}
