//! Our writes read back by ntfs-3g (ntfsls/ntfscat, FUSE mount), sleuthkit
//! and ntfsfix; refusals leave the image untouched.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn open_rw(img: &Path) -> ntfs::Volume<vdisk::raw::RawDiskMut> {
    ntfs::Volume::open_rw(
        vdisk::raw::RawDiskMut::open(img).unwrap(),
        ntfs::WriteOptions::default(),
    )
    .unwrap()
}

fn ntfsfix_clean(img: &Path) {
    need("ntfsfix");
    let out = String::from_utf8_lossy(&run("ntfsfix", &["-n", img.to_str().unwrap()])).into_owned();
    assert!(out.contains("processed successfully"), "ntfsfix -n: {out}");
    assert!(
        !out.to_lowercase().contains("corrupt") && !out.contains("FAILED"),
        "ntfsfix -n: {out}"
    );
}

/// Every file of `want` read through the ntfs-3g FUSE mount.
fn mount_matches(img: &Path, want: &BTreeMap<String, Option<Vec<u8>>>) {
    with_mount(img, "ro", |m| {
        for (p, d) in want {
            let hp = m.join(p.trim_start_matches('/'));
            match d {
                Some(d) => assert_eq!(
                    &std::fs::read(&hp).unwrap_or_else(|e| panic!("{p}: {e}")),
                    d,
                    "fuse {p}"
                ),
                None => assert!(hp.is_dir(), "fuse {p} is a dir"),
            }
        }
    });
}

#[test]
fn create_write_grow_shrink_read_back() {
    let t = tempfile::tempdir().unwrap();
    let img = mkntfs(t.path(), "w.img", 32, 4096);
    let mut want: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    {
        let mut v = open_rw(&img);
        v.mkdir("/Windows").unwrap();
        v.mkdir("/Windows/System32").unwrap();
        v.mkdir("/Windows/System32/drivers").unwrap();
        want.insert("/Windows".into(), None);
        want.insert("/Windows/System32".into(), None);
        want.insert("/Windows/System32/drivers".into(), None);
        let small = b"tiny resident file".to_vec();
        v.write_file("/Windows/small.txt", &small).unwrap();
        want.insert("/Windows/small.txt".into(), Some(small));
        let drv = bytes(1, 300 * 1024);
        v.write_file("/Windows/System32/drivers/viostor.sys", &drv)
            .unwrap();
        want.insert("/Windows/System32/drivers/viostor.sys".into(), Some(drv));
        // grow resident -> non-resident, then shrink
        let mut g = bytes(2, 100);
        v.write_file("/grow.bin", &g).unwrap();
        g = bytes(3, 2 * 1024 * 1024 + 17);
        v.write_file("/grow.bin", &g).unwrap();
        g.truncate(5000);
        v.set_len("/grow.bin", 5000).unwrap();
        want.insert("/grow.bin".into(), Some(g));
        // partial overwrite past the end (zero gap)
        v.write_file("/gap.bin", b"abc").unwrap();
        v.set_len("/gap.bin", 0).unwrap();
        v.write_file("/gap.bin", &bytes(4, 9000)).unwrap();
        v.write_at("/gap.bin", 20000, b"END").unwrap();
        let mut gap = bytes(4, 9000);
        gap.resize(20000, 0);
        gap.extend_from_slice(b"END");
        want.insert("/gap.bin".into(), Some(gap));
        // a directory big enough for several index levels
        v.mkdir("/many").unwrap();
        want.insert("/many".into(), None);
        for i in 0..700 {
            let n = format!("/many/Entry number {i:04} with a long name.dat");
            let d = format!("{i}").into_bytes();
            v.write_file(&n, &d).unwrap();
            want.insert(n, Some(d));
        }
        for i in (0..700).step_by(3) {
            let n = format!("/many/Entry number {i:04} with a long name.dat");
            v.remove(&n).unwrap();
            want.remove(&n);
        }
        v.rename("/Windows/small.txt", "/Windows/System32/Renamed Small.txt")
            .unwrap();
        let s = want.remove("/Windows/small.txt").unwrap();
        want.insert("/Windows/System32/Renamed Small.txt".into(), s);
        v.flush().unwrap();
    }
    ntfsfix_clean(&img);
    // ntfs-3g tools
    for (p, d) in &want {
        if let Some(d) = d {
            assert_eq!(&ntfscat(&img, p), d, "ntfscat {p}");
        }
    }
    let mut many: Vec<String> = want
        .keys()
        .filter(|k| k.starts_with("/many/"))
        .map(|k| k[6..].to_string())
        .collect();
    many.sort();
    let mut theirs = ntfsls(&img, "/many");
    theirs.retain(|n| n != "." && n != "..");
    let theirs_long: Vec<String> = theirs.into_iter().filter(|n| !n.contains('~')).collect();
    assert_eq!(theirs_long, many);
    mount_matches(&img, &want);
    // our reader agrees too
    let v = open_ro(&img);
    for (p, d) in &want {
        if let Some(d) = d {
            assert_eq!(&v.read(p).unwrap(), d, "ours {p}");
        }
    }
    let st = v.stat("/Windows/System32/drivers/viostor.sys").unwrap();
    assert_eq!(st.dos_name.as_deref(), Some("VIOSTOR.SYS"));
    let st = v.stat("/Windows/System32/Renamed Small.txt").unwrap();
    assert_eq!(st.dos_name.as_deref(), Some("RENAME~1.TXT"));
}

#[test]
fn compressed_and_sparse_files_refused_untouched() {
    need("python3");
    let t = tempfile::tempdir().unwrap();
    let img = mkntfs(t.path(), "c.img", 16, 4096);
    with_mount(&img, "", |m| {
        std::fs::create_dir(m.join("comp")).unwrap();
        let attr = (0x800u32 | 0x10).to_be_bytes();
        let script = format!(
            "import os; os.setxattr('{}', 'system.ntfs_attrib_be', bytes({:?}))",
            m.join("comp").display(),
            attr.to_vec()
        );
        run("python3", &["-c", &script]);
        std::fs::write(
            m.join("comp/c.txt"),
            b"hello compressed world ".repeat(2000),
        )
        .unwrap();
        let f = std::fs::File::create(m.join("sparse.bin")).unwrap();
        f.set_len(4 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"tail", (4 << 20) - 4).unwrap();
    });
    let before = std::fs::read(&img).unwrap();
    let mut v = open_rw(&img);
    for p in ["/comp/c.txt", "/sparse.bin"] {
        match v.write_file(p, b"new") {
            Err(ntfs::Error::Unsupported(m)) => assert!(m.contains("not supported"), "{m}"),
            other => panic!("{p}: expected a refusal, got {other:?}"),
        }
        assert!(matches!(v.set_len(p, 1), Err(ntfs::Error::Unsupported(_))));
    }
    drop(v);
    // the refusals changed nothing but the journal reset done on the first
    // write attempt (mkntfs leaves an already empty journal: no change)
    assert!(before == std::fs::read(&img).unwrap(), "image changed");
    // and we still read them right
    let v = open_ro(&img);
    assert_eq!(v.read("/comp/c.txt").unwrap(), ntfscat(&img, "/comp/c.txt"));
    assert_eq!(v.read("/sparse.bin").unwrap(), ntfscat(&img, "/sparse.bin"));
}
