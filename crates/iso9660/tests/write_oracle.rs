//! We write, they read: images from `IsoBuilder` listed by `isoinfo` (both
//! hierarchies), extracted by `isoinfo -x` and by xorriso, verified by
//! `isovfy`, and described by `isoinfo -d`; plus our own reader.

mod common;
use common::*;
use iso9660::{ErrorKind, Iso, IsoBuilder, NameSource};
use std::path::{Path, PathBuf};

const STAMP: i64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC

fn build(t: &Tree, volume_id: &str) -> Vec<u8> {
    let mut b = IsoBuilder::new(volume_id).unwrap();
    b.set_timestamp(STAMP);
    for (p, data) in &t.files {
        b.add_file(p, data.clone()).unwrap();
    }
    for d in &t.empty_dirs {
        b.add_dir(d).unwrap();
    }
    b.build().unwrap()
}

fn write_iso(dir: &Path, t: &Tree) -> PathBuf {
    let p = dir.join("ours.iso");
    std::fs::write(&p, build(t, "virtio-win drivers")).unwrap();
    p
}

/// Paths printed by `isoinfo -f` (one per line, leading `/`).
fn isoinfo_find(iso: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["-i", iso, "-f"];
    args.extend(extra);
    let out = String::from_utf8(run("isoinfo", &args)).unwrap();
    let mut v: Vec<String> = out
        .lines()
        .map(|l| l.trim_start_matches('/').to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn isoinfo_lists_joliet_names_and_extracts_identical_bytes() {
    let d = tempfile::tempdir().unwrap();
    let t = mixed_tree();
    let path = write_iso(d.path(), &t);
    let p = path.to_str().unwrap();
    assert_eq!(isoinfo_find(p, &["-J"]), t.paths());
    // The long listing shows the real names with their sizes.
    let long = String::from_utf8(run("isoinfo", &["-i", p, "-J", "-l"])).unwrap();
    assert!(long.contains("Directory listing of /Drivers/NetKVM/Windows Server 2019/amd64/"));
    let line = long
        .lines()
        .find(|l| l.ends_with(" Large Blob File.bin "))
        .unwrap_or_else(|| panic!("no Large Blob File.bin in:\n{long}"));
    assert!(
        line.contains(&format!(" {} ", 2 * 1024 * 1024 + 12_345)),
        "{line}"
    );
    assert!(long.contains(" A Rather Long Mixed-Case File Name With Spaces.inf "));
    for (name, data) in &t.files {
        let got = run("isoinfo", &["-i", p, "-J", "-x", &format!("/{name}")]);
        assert!(got == *data, "isoinfo -J -x /{name}: content differs");
    }
}

#[test]
fn isoinfo_lists_level1_primary_names() {
    let d = tempfile::tempdir().unwrap();
    let mut t = Tree::default();
    t.add("Setup.exe", b"one".to_vec());
    t.add("SETUP.EXE", b"two".to_vec());
    t.add("setup.exe", b"three".to_vec());
    t.add("readme", b"no extension".to_vec());
    t.add("archive.tar.gz", b"dots".to_vec());
    t.add("Windows Server 2019/amd64/netkvm.inf", b"inf".to_vec());
    t.add("Drivers.d/x", Vec::new());
    t.empty_dirs.push("a-very-long-directory-name".into());
    let path = write_iso(d.path(), &t);
    let p = path.to_str().unwrap();
    // Collisions take ~N in the order of the real names (byte order:
    // "SETUP.EXE" < "Setup.exe" < "setup.exe").
    assert_eq!(
        isoinfo_find(p, &[]),
        [
            "ARCHIVE_.GZ;1",
            "A_VERY_L",
            "DRIVERS_",
            "DRIVERS_/X.;1",
            "README.;1",
            "SETUP.EXE;1",
            "SETUP~1.EXE;1",
            "SETUP~2.EXE;1",
            "WINDOWS_",
            "WINDOWS_/AMD64",
            "WINDOWS_/AMD64/NETKVM.INF;1",
        ]
    );
    assert_eq!(run("isoinfo", &["-i", p, "-x", "/SETUP~1.EXE;1"]), b"one");
    assert_eq!(run("isoinfo", &["-i", p, "-x", "/SETUP~2.EXE;1"]), b"three");
    // Our reader sees the same primary names.
    let mut iso = Iso::open(&path).unwrap();
    iso.set_name_source(NameSource::Iso9660).unwrap();
    let e = iso.find("windows_/amd64/netkvm.inf").unwrap().unwrap();
    assert_eq!(iso.read(&e, 100).unwrap(), b"inf");
    let e = iso.find("SETUP.EXE").unwrap().unwrap();
    assert_eq!(iso.read(&e, 100).unwrap(), b"two");
}

#[test]
fn xorriso_extracts_identical_tree() {
    let d = tempfile::tempdir().unwrap();
    let t = mixed_tree();
    let path = write_iso(d.path(), &t);
    let out = d.path().join("extracted");
    need("xorriso");
    let o = std::process::Command::new("xorriso")
        .args(["-indev", path.to_str().unwrap(), "-osirrox", "on"])
        .args(["-extract", "/", out.to_str().unwrap()])
        .output()
        .unwrap();
    let msgs = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "xorriso failed:\n{msgs}");
    // xorriso reports what it dislikes while loading the tree.
    for word in ["WARNING", "SORRY", "FAILURE", "MISHAP"] {
        assert!(!msgs.contains(word), "xorriso complains:\n{msgs}");
    }
    assert!(
        msgs.contains("Volume id    : 'VIRTIO_WIN_DRIVERS'"),
        "{msgs}"
    );
    let got = Tree::from_host(&out);
    assert_eq!(got.paths(), t.paths());
    assert_eq!(got.empty_dirs, t.empty_dirs);
    for (p, data) in &t.files {
        assert!(
            got.files[p] == *data,
            "xorriso extracted {p} with other bytes"
        );
    }
}

#[test]
fn isovfy_finds_no_errors_and_isoinfo_shows_volume() {
    let d = tempfile::tempdir().unwrap();
    let path = write_iso(d.path(), &mixed_tree());
    let p = path.to_str().unwrap();
    let v = String::from_utf8(run("isovfy", &[p])).unwrap();
    assert!(v.contains("No errors found"), "isovfy:\n{v}");
    assert!(!v.contains("**"), "isovfy complains:\n{v}");
    let info = String::from_utf8(run("isoinfo", &["-d", "-i", p])).unwrap();
    assert!(info.contains("Volume id: VIRTIO_WIN_DRIVERS\n"), "{info}");
    assert!(info.contains("Joliet with UCS level 3 found"), "{info}");
    assert!(info.contains("Logical block size is: 2048"), "{info}");
    let blocks = std::fs::metadata(&path).unwrap().len() / 2048;
    assert!(
        info.contains(&format!("Volume size is: {blocks}\n")),
        "{info}"
    );
    let dbg = String::from_utf8(run("isoinfo", &["-d", "-debug", "-i", p])).unwrap();
    assert!(
        dbg.contains("Creation Date:     2023 11 14 22:13:20.00"),
        "{dbg}"
    );
    assert!(
        dbg.contains("Modification Date: 2023 11 14 22:13:20.00"),
        "{dbg}"
    );
    let listing = String::from_utf8(run("isoinfo", &["-i", p, "-l"])).unwrap();
    assert!(listing.contains(" Nov 14 2023 "), "{listing}");
}

#[test]
fn our_reader_round_trips_both_hierarchies() {
    let t = mixed_tree();
    let bytes = build(&t, "RT");
    let mut iso = Iso::from_reader(bytes.as_slice(), bytes.len() as u64).unwrap();
    assert_eq!(iso.volume_id(), "RT");
    assert_eq!(iso.joliet_volume_id(), Some("RT"));
    assert_eq!(
        iso.available_name_sources(),
        [NameSource::Joliet, NameSource::Iso9660]
    );
    assert_iso_holds(&iso, &t);
    // The primary hierarchy shares the file data.
    iso.set_name_source(NameSource::Iso9660).unwrap();
    let e = iso.find("big/large_bl.bin").unwrap().unwrap();
    assert!(iso.read(&e, 16 << 20).unwrap() == t.files["big/Large Blob File.bin"]);
    assert_eq!(iso.entries().unwrap().len(), t.paths().len());
}

#[test]
fn output_is_deterministic() {
    let t = mixed_tree();
    let a = build(&t, "SAME");
    let b = build(&t, "SAME");
    assert!(a == b, "two builds of the same input differ");
    // Insertion order does not matter either.
    let mut r = IsoBuilder::new("SAME").unwrap();
    r.set_timestamp(STAMP);
    for (p, data) in t.files.iter().rev() {
        r.add_file(p, data.clone()).unwrap();
    }
    r.add_dir("emptydir").unwrap();
    assert!(
        r.build().unwrap() == a,
        "insertion order changed the output"
    );
}

#[test]
fn files_from_the_host_are_streamed() {
    let d = tempfile::tempdir().unwrap();
    let host = d.path().join("payload.bin");
    let data = noise(9, 300_000);
    std::fs::write(&host, &data).unwrap();
    let mut b = IsoBuilder::new("HOST").unwrap();
    b.add_file_from("drv/payload.bin", &host).unwrap();
    let out = d.path().join("h.iso");
    let n = b.write_to(std::fs::File::create(&out).unwrap()).unwrap();
    assert_eq!(n, std::fs::metadata(&out).unwrap().len());
    let got = run(
        "isoinfo",
        &["-i", out.to_str().unwrap(), "-J", "-x", "/drv/payload.bin"],
    );
    assert!(got == data);
    // A host file that shrinks before the image is written is an error.
    std::fs::write(&host, &data[..10]).unwrap();
    let e = b.build().unwrap_err();
    assert!(e.to_string().contains("payload.bin shrank"), "{e}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let mut b = IsoBuilder::new("X").unwrap();
    let deep = "1/2/3/4/5/6/7/8/file";
    let e = b.add_file(deep, vec![]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.to_string().contains("8 directories deep"), "{e}");
    b.add_file("1/2/3/4/5/6/7/file", vec![]).unwrap();
    let long = "n".repeat(65);
    let e = b.add_file(&long, vec![]).unwrap_err();
    assert!(e.to_string().contains("65 characters"), "{e}");
    b.add_file(&"n".repeat(64), vec![]).unwrap();
    for bad in [
        "a:b",
        "a;1",
        "q?",
        "star*",
        "back\\slash",
        "tab\tname",
        "..",
        "x/./y",
    ] {
        assert!(b.add_file(bad, vec![]).is_err(), "{bad:?} accepted");
    }
    b.add_file("dup", vec![1]).unwrap();
    let e = b.add_file("dup", vec![2]).unwrap_err();
    assert!(e.to_string().contains("already added"), "{e}");
    let e = b.add_file("dup/under", vec![]).unwrap_err();
    assert!(e.to_string().contains("already a file"), "{e}");
    assert!(b.add_dir("dup").is_err());
    assert!(IsoBuilder::new("").is_err());
    assert!(IsoBuilder::new(&"v".repeat(33)).is_err());
    assert!(IsoBuilder::new("caf\u{e9}").is_err());
    // A 4 GiB file (sparse on the host) is refused before anything is read.
    let d = tempfile::tempdir().unwrap();
    let huge = d.path().join("huge");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let e = b.add_file_from("huge", &huge).unwrap_err();
    assert!(e.to_string().contains("4 GiB"), "{e}");
    // The accepted ones still make a valid image.
    let bytes = b.build().unwrap();
    let iso = Iso::from_reader(bytes.as_slice(), bytes.len() as u64).unwrap();
    let e = iso.find("1/2/3/4/5/6/7/file").unwrap().unwrap();
    assert_eq!(e.size, 0);
}

/// Directory extents as `isoinfo -l` shows them ("." line of each listing).
fn listing_extents(iso: &str, extra: &[&str]) -> std::collections::BTreeMap<String, u32> {
    let mut args = vec!["-i", iso, "-l"];
    args.extend(extra);
    let out = String::from_utf8(run("isoinfo", &args)).unwrap();
    let mut map = std::collections::BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in out.lines() {
        if let Some(d) = line.strip_prefix("Directory listing of /") {
            cur = Some(d.trim_end_matches('/').to_string());
        } else if line.ends_with("]  . ") {
            let inside = line.rsplit_once('[').unwrap().1;
            let lba: u32 = inside.split_whitespace().next().unwrap().parse().unwrap();
            map.insert(cur.take().expect("\".\" line after a heading"), lba);
        }
    }
    map
}

/// Path tables (which DOS-era CD drivers and early Windows setup use) as
/// printed by `isoinfo -p` agree with the directory hierarchy it lists,
/// in both hierarchies; the M table is the L table in big-endian form.
#[test]
fn path_tables_match_directories() {
    let d = tempfile::tempdir().unwrap();
    let path = write_iso(d.path(), &mixed_tree());
    let p = path.to_str().unwrap();
    for extra in [&[][..], &["-J"][..]] {
        let mut args = vec!["-i", p, "-p"];
        args.extend(extra);
        let out = String::from_utf8(run("isoinfo", &args)).unwrap();
        let mut paths: Vec<String> = Vec::new();
        let mut table = std::collections::BTreeMap::new();
        let mut last_parent = 0;
        for line in out.lines().skip(1) {
            let mut f = line.split_whitespace();
            let num: usize = f.next().unwrap().trim_end_matches(':').parse().unwrap();
            let parent: usize = f.next().unwrap().parse().unwrap();
            let lba = u32::from_str_radix(f.next().unwrap(), 16).unwrap();
            let name = f.collect::<Vec<_>>().join(" ");
            assert_eq!(num, paths.len() + 1, "{line}");
            assert!(
                parent >= last_parent && parent <= num,
                "path table order: {line}"
            );
            last_parent = parent;
            let full = if num == 1 {
                String::new()
            } else if parent == 1 {
                name
            } else {
                format!("{}/{name}", paths[parent - 1])
            };
            paths.push(full.clone());
            table.insert(full, lba);
        }
        assert_eq!(table, listing_extents(p, extra), "hierarchy {extra:?}");
        assert!(table.len() > 15);
    }
    // M tables mirror the L tables.
    let img = std::fs::read(&path).unwrap();
    for vd in [16usize, 17] {
        let v = &img[vd * 2048..(vd + 1) * 2048];
        let size = u32::from_le_bytes(v[132..136].try_into().unwrap()) as usize;
        let l = u32::from_le_bytes(v[140..144].try_into().unwrap()) as usize * 2048;
        let m = u32::from_be_bytes(v[148..152].try_into().unwrap()) as usize * 2048;
        let (lt, mt) = (&img[l..l + size], &img[m..m + size]);
        let mut i = 0;
        while i < size {
            let n = 8 + lt[i] as usize + (lt[i] as usize & 1);
            assert_eq!(lt[i..i + 2], mt[i..i + 2]);
            let (ll, ml) = (&lt[i + 2..i + 6], &mt[i + 2..i + 6]);
            assert!(ll.iter().eq(ml.iter().rev()), "extent at {i}");
            let (lp, mp) = (&lt[i + 6..i + 8], &mt[i + 6..i + 8]);
            assert!(lp.iter().eq(mp.iter().rev()), "parent at {i}");
            assert_eq!(lt[i + 8..i + n], mt[i + 8..i + n]);
            i += n;
        }
    }
}
