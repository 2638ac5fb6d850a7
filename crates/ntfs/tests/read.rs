//! Reading volumes made by mkntfs and populated by ntfs-3g: our listing
//! and contents must equal ntfsls/ntfscat (ntfs-3g) and fls/icat
//! (sleuthkit).

mod common;
use common::*;
use std::path::Path;

fn populated(dir: &Path, cs: u32) -> std::path::PathBuf {
    let img = mkntfs(dir, &format!("v{cs}.img"), 40, cs);
    need("python3");
    with_mount(&img, "", |m| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/populate.py");
        run("python3", &[script, m.to_str().unwrap()]);
    });
    img
}

/// Walk our tree and compare every directory listing with ntfsls and
/// every regular file with ntfscat.
fn compare_tree(img: &Path) {
    let v = open_ro(img);
    let mut dirs = vec![String::from("/")];
    let mut files = 0;
    while let Some(d) = dirs.pop() {
        let ours = v.list(&d).unwrap();
        let mut names: Vec<String> = ours
            .iter()
            .filter(|e| !(d == "/" && e.name.starts_with('$') && e.record < 16))
            .map(|e| e.name.clone())
            .collect();
        names.sort();
        let mut theirs = ntfsls(img, &d);
        theirs.retain(|n| n != "." && n != "..");
        assert_eq!(names, theirs, "listing of {d}");
        for e in &ours {
            if d == "/" && e.name.starts_with('$') {
                continue;
            }
            let p = if d == "/" {
                format!("/{}", e.name)
            } else {
                format!("{d}/{}", e.name)
            };
            let st = v.stat(&p).unwrap();
            if st.is_dir {
                dirs.push(p);
            } else if st.reparse_tag.is_none() && (d != "/big" || files % 97 == 0) {
                assert_eq!(v.read(&p).unwrap(), ntfscat(img, &p), "contents of {p}");
                files += 1;
            }
        }
    }
    assert!(files > 20);
}

#[test]
fn read_4k_clusters_matches_ntfs3g() {
    let t = tempfile::tempdir().unwrap();
    let img = populated(t.path(), 4096);
    compare_tree(&img);
    let v = open_ro(&img);
    // features
    let sp = v.stat("/sparse.bin").unwrap();
    assert!(sp.streams[0].sparse, "sparse flag");
    let c = v.stat("/comp/text.txt").unwrap();
    assert!(c.streams[0].compressed, "compressed flag");
    let st = v.stat("/streams.txt").unwrap();
    assert!(st
        .streams
        .iter()
        .any(|s| s.name == "Zone.Identifier" && s.size == 26));
    assert_eq!(
        v.read_named("/streams.txt", "Zone.Identifier").unwrap(),
        b"[ZoneTransfer]\r\nZoneId=3\r\n"
    );
    let a = v.stat("/a.txt").unwrap();
    assert_eq!(a.names.len(), 2, "hard link names: {:?}", a.names);
    assert!(v.stat("/link-to-a").unwrap().reparse_tag.is_some());
    let l = v.stat("/long file name.DOCUMENT").unwrap();
    assert_eq!(l.dos_name.as_deref(), Some("LONGFI~1.DOC"));
    // case-insensitive lookup with non-ASCII upcase
    assert_eq!(v.read("/ärger.TXT").unwrap(), v.read("/Ärger.txt").unwrap());
    assert_eq!(v.read("/ΣΊΣΥΦΟς").unwrap(), ntfscat(&img, "/σίσυφος"));
    assert_eq!(
        v.read("windows\\system32\\DRIVERS\\DRV007.SYS").unwrap(),
        ntfscat(&img, "/Windows/System32/drivers/drv007.sys")
    );
    assert_eq!(v.list("/big").unwrap().len(), 2500);
    assert_eq!(v.info().major, 3);
}

#[test]
fn read_small_and_large_clusters() {
    let t = tempfile::tempdir().unwrap();
    for cs in [512u32, 65536] {
        let img = populated(t.path(), cs);
        compare_tree(&img);
    }
}

#[test]
fn sleuthkit_agrees() {
    need("fls");
    need("icat");
    let t = tempfile::tempdir().unwrap();
    let img = populated(t.path(), 4096);
    let v = open_ro(&img);
    // fls -p -r lists "r/r 64-128-2:\tpath"
    let out = String::from_utf8(run("fls", &["-r", "-p", "-u", img.to_str().unwrap()])).unwrap();
    let mut checked = 0;
    for line in out.lines() {
        let Some((meta, path)) = line.split_once(":\t") else {
            continue;
        };
        if !meta.starts_with("r/r")
            || path.starts_with('$')
            || path.contains(':')
            || meta.contains('*')
        {
            continue;
        }
        let inode = meta.split_whitespace().nth(1).unwrap();
        let rec: u64 = inode.split('-').next().unwrap().parse().unwrap();
        assert_eq!(v.lookup(path).unwrap(), rec, "record of {path}");
        if checked % 50 == 0 && !path.starts_with("link-to") {
            assert_eq!(
                v.read(path).unwrap(),
                run("icat", &[img.to_str().unwrap(), inode]),
                "icat {path}"
            );
        }
        checked += 1;
    }
    assert!(checked > 2500);
}
