//! Hostile images: truncation, missing or broken descriptors, extents past
//! the end, directory loops, absurd sizes, SUSP continuation loops and
//! random corruption give clear errors and never panic.

mod common;
use common::*;
use iso9660::{ErrorKind, Iso, IsoBuilder, NameSource};

fn sample() -> Vec<u8> {
    let mut b = IsoBuilder::new("HOSTILE").unwrap();
    b.set_timestamp(0);
    b.add_file("A/B/file.txt", b"inside B\n".to_vec()).unwrap();
    b.add_file("A/x.bin", noise(7, 5000)).unwrap();
    b.add_file("top.txt", b"top\n".to_vec()).unwrap();
    b.build().unwrap()
}

/// Open `img` reading primary names (the hierarchy the tests patch).
fn primary(img: &[u8]) -> iso9660::Result<Iso<&[u8]>> {
    let mut iso = Iso::from_reader(img, img.len() as u64)?;
    iso.set_name_source(NameSource::Iso9660)?;
    Ok(iso)
}

/// The error of `r`, without printing a (possibly huge) success value.
fn err<T>(r: iso9660::Result<T>) -> iso9660::Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn set_both32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    img[at + 4..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Byte offset of the record named `id` in the primary directory at `lba`.
fn record(img: &[u8], lba: u32, id: &[u8]) -> usize {
    let start = lba as usize * 2048;
    let size = u32::from_le_bytes(img[start + 10..start + 14].try_into().unwrap()) as usize;
    let mut p = start;
    while p < start + size {
        let len = img[p] as usize;
        if len == 0 {
            p = (p / 2048 + 1) * 2048;
            continue;
        }
        let n = img[p + 32] as usize;
        if &img[p + 33..p + 33 + n] == id {
            return p;
        }
        p += len;
    }
    panic!("no record {:?}", String::from_utf8_lossy(id));
}

fn root_lba(img: &[u8]) -> u32 {
    u32::from_le_bytes(img[16 * 2048 + 158..16 * 2048 + 162].try_into().unwrap())
}

fn lba_of(img: &[u8], rec: usize) -> u32 {
    u32::from_le_bytes(img[rec + 2..rec + 6].try_into().unwrap())
}

#[test]
fn truncated_images() {
    let img = sample();
    // Inside the system area or the descriptors: open fails.
    for cut in [0usize, 100, 16 * 2048, 16 * 2048 + 10, 18 * 2048] {
        let e = err(Iso::from_reader(&img[..cut], cut as u64));
        assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("volume descriptor"), "{e}");
    }
    // Through a file system on the host: the error names the file.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("cut.iso");
    std::fs::write(&path, &img[..17 * 2048]).unwrap();
    let e = err(Iso::open(&path));
    assert!(
        e.to_string().starts_with(&format!("{}: ", path.display())),
        "{e}"
    );
    // Cut inside the file data: listing names the file whose extent is gone.
    let cut = img.len() - 2048 + 3;
    std::fs::write(&path, &img[..cut]).unwrap();
    let iso = Iso::open(&path).unwrap();
    let e = err(iso.entries());
    let s = e.to_string();
    assert!(s.contains("past the end of the image"), "{s}");
    assert!(s.contains(&path.display().to_string()), "{s}");
    assert!(s.contains("\"A/B/file.txt\""), "{s}");
    // Every cut that loses a byte of metadata or data fails cleanly; one
    // that only loses the last sector's padding still lists.
    let full = Iso::from_reader(img.as_slice(), img.len() as u64).unwrap();
    let used = full
        .entries()
        .unwrap()
        .iter()
        .map(|e| u64::from(e.lba) * 2048 + e.size)
        .max()
        .unwrap() as usize;
    assert_eq!(used, img.len() - 2048 + 9, "file.txt (9 bytes) is last");
    for cut in (0..=img.len()).step_by(256).chain([used - 1, used]) {
        let r = Iso::from_reader(&img[..cut], cut as u64).and_then(|i| i.entries());
        assert_eq!(r.is_ok(), cut >= used, "cut at {cut} of {}", img.len());
    }
}

#[test]
fn missing_or_broken_descriptors() {
    let img = sample();
    let mut v = img.clone();
    v[16 * 2048] = 0; // the primary descriptor becomes a boot record
    let e = err(Iso::from_reader(v.as_slice(), v.len() as u64));
    assert!(
        e.to_string().contains("no primary volume descriptor"),
        "{e}"
    );

    let mut v = img.clone();
    v[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"XXXXX");
    let e = err(Iso::from_reader(v.as_slice(), v.len() as u64));
    let s = e.to_string();
    assert!(s.contains("expected identifier \"CD001\""), "{s}");
    assert!(s.contains("at byte offset 0x8001"), "{s}");
    assert!(s.starts_with("<image>: "), "{s}");

    let mut v = img.clone();
    v[18 * 2048] = 3; // no terminator anywhere: the descriptor scan runs into other data
    let e = err(Iso::from_reader(v.as_slice(), v.len() as u64));
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");

    let mut v = img.clone();
    v[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&4096u16.to_le_bytes());
    let e = err(Iso::from_reader(v.as_slice(), v.len() as u64));
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("logical block size 4096"), "{e}");
}

#[test]
fn directory_extent_past_the_end() {
    let img = sample();
    let mut v = img.clone();
    set_both32(&mut v, 16 * 2048 + 156 + 2, 0x00FF_FFFF);
    let e = err(Iso::from_reader(v.as_slice(), v.len() as u64));
    let s = e.to_string();
    assert!(s.contains("directory \"/\" has its extent at byte"), "{s}");
    assert!(s.contains("past the end of the image"), "{s}");

    let mut v = img.clone();
    let a = record(&v, root_lba(&v), b"A");
    let b = record(&v, lba_of(&v, a), b"B");
    set_both32(&mut v, b + 2, 0x0010_0000);
    let iso = primary(&v).unwrap();
    let e = err(iso.entries());
    assert!(
        e.to_string().contains("directory \"A/B\" has its extent"),
        "{e}"
    );
    assert!(iso.find("A/B/FILE.TXT").is_err());
    // What does not go through B still works.
    let top = iso.find("TOP.TXT").unwrap().unwrap();
    assert_eq!(iso.read(&top, 100).unwrap(), b"top\n");
}

#[test]
fn directory_loops() {
    let img = sample();
    let root = root_lba(&img);
    // A points back at the root.
    let mut v = img.clone();
    let a = record(&v, root, b"A");
    let a_lba = lba_of(&v, a);
    set_both32(&mut v, a + 2, root);
    let e = err(primary(&v).unwrap().entries());
    assert!(e.to_string().contains("directory loop"), "{e}");
    // B (inside A) points at A.
    let mut v = img.clone();
    let b = record(&v, a_lba, b"B");
    set_both32(&mut v, b + 2, a_lba);
    let e = err(primary(&v).unwrap().entries());
    assert!(e.to_string().contains("\"A/B\" points at block"), "{e}");
    // Lookups through the loop are bounded by the path length.
    let iso = primary(&v).unwrap();
    assert!(iso.find("A/B/B/B/B/X.BIN").unwrap().is_some());
    assert!(iso.find(&"A/".repeat(1000)).unwrap().is_none());
}

#[test]
fn absurd_sizes_and_records() {
    let img = sample();
    let root = root_lba(&img);
    let a = record(&img, root, b"A");
    let top = record(&img, root, b"TOP.TXT;1");

    let mut v = img.clone();
    set_both32(&mut v, a + 10, 0xFFFF_FFF0);
    let e = err(primary(&v).unwrap().entries());
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");

    let mut v = img.clone();
    set_both32(&mut v, top + 10, 0xFFFF_FFFF);
    let e = err(primary(&v).unwrap().entries());
    assert!(
        e.to_string().contains("file \"TOP.TXT\" has its extent"),
        "{e}"
    );

    let mut v = img.clone();
    v[top] = 20;
    let e = err(primary(&v).unwrap().entries());
    assert!(e.to_string().contains("record length 20 is below"), "{e}");
    assert!(e.to_string().contains(&format!("{top:#x}")), "{e}");

    let mut v = img.clone();
    v[top + 32] = 200;
    let e = err(primary(&v).unwrap().entries());
    assert!(e.to_string().contains("file identifier length 200"), "{e}");

    let mut v = img.clone();
    v[top + 25] |= 0x80;
    let e = err(primary(&v).unwrap().entries());
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        e.to_string()
            .contains("\"TOP.TXT\" is recorded in several extents"),
        "{e}"
    );

    let mut v = img.clone();
    v[top + 33..top + 36].copy_from_slice(b"A/B");
    let e = err(primary(&v).unwrap().entries());
    assert!(e.to_string().contains("not a usable file name"), "{e}");

    // read() honours its cap.
    let iso = primary(&img).unwrap();
    let x = iso.find("a/x.bin").unwrap().unwrap();
    let e = err(iso.read(&x, 4999));
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
    assert_eq!(iso.read(&x, 5000).unwrap(), noise(7, 5000));
}

/// A directory of 4 MiB of records (all naming one file) exceeds the
/// entry limit instead of growing without bound.
#[test]
fn too_many_entries() {
    let mut v = sample();
    let root = root_lba(&v);
    let top = record(&v, root, b"TOP.TXT;1");
    let rec = v[top..top + v[top] as usize].to_vec();
    let a = record(&v, root, b"A");
    let start = v.len();
    let sectors = 3000;
    for _ in 0..sectors {
        let mut s = Vec::new();
        while s.len() + rec.len() <= 2048 {
            s.extend_from_slice(&rec);
        }
        s.resize(2048, 0);
        v.extend_from_slice(&s);
    }
    set_both32(&mut v, a + 2, (start / 2048) as u32);
    set_both32(&mut v, a + 10, (sectors * 2048) as u32);
    let e = err(primary(&v).unwrap().entries());
    assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
    assert!(e.to_string().contains("more than 100000"), "{e}");
}

/// A Rock Ridge image (xorriso) whose NM entry is replaced by a CE entry
/// pointing back at its own System Use area.
#[test]
fn susp_continuation_loop() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let long = "a-name-long-enough-for-a-ce-entry.txt";
    std::fs::write(src.join(long), b"payload").unwrap();
    let out = d.path().join("rr.iso");
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-R",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let mut v = std::fs::read(&out).unwrap();
    let iso = Iso::from_reader(v.as_slice(), v.len() as u64).unwrap();
    assert_eq!(iso.name_source(), NameSource::RockRidge);
    assert!(iso.find(long).unwrap().is_some());
    let mut nm = b"NM".to_vec();
    nm.extend_from_slice(&[5 + long.len() as u8, 1, 0]);
    nm.extend_from_slice(long.as_bytes());
    let at = v.windows(nm.len()).position(|w| w == nm).expect("NM entry");
    let len = nm.len() as u32;
    let mut ce = vec![b'C', b'E', len as u8, 1];
    for x in [(at / 2048) as u32, (at % 2048) as u32, len] {
        ce.extend_from_slice(&x.to_le_bytes());
        ce.extend_from_slice(&x.to_be_bytes());
    }
    ce.resize(nm.len(), 0);
    v[at..at + ce.len()].copy_from_slice(&ce);
    let iso = Iso::from_reader(v.as_slice(), v.len() as u64).unwrap();
    let e = err(iso.entries());
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("CE loop"), "{e}");
}

/// Random byte damage in the metadata of a few valid images never panics,
/// and whatever still lists can be read (with a cap).
#[test]
fn random_corruption_never_panics() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let mut t = Tree::default();
    t.add("Dir One/Sub/file.txt", b"abc".to_vec());
    t.add(&format!("{}.txt", "L".repeat(150)), b"long".to_vec());
    t.add("x/y/z/w.bin", noise(8, 3000));
    t.materialize(&src);
    let rr = d.path().join("rr.iso");
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-J",
            "-R",
            "-o",
            rr.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    let images = [sample(), std::fs::read(&rr).unwrap()];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 16) as usize
    };
    let mut listed = 0;
    for round in 0..6000 {
        let mut v = images[round % 2].clone();
        let span = v.len().min(64 * 2048);
        for _ in 0..1 + next() % 8 {
            let at = 16 * 2048 + next() % (span - 16 * 2048);
            v[at] = next() as u8;
        }
        if round % 7 == 0 {
            v.truncate(next() % v.len());
        }
        let Ok(iso) = Iso::from_reader(v.as_slice(), v.len() as u64) else {
            continue;
        };
        for src in iso.available_name_sources() {
            let mut iso = Iso::from_reader(v.as_slice(), v.len() as u64).unwrap();
            iso.set_name_source(src).unwrap();
            if let Ok(entries) = iso.entries() {
                listed += 1;
                for e in entries.iter().filter(|e| !e.is_dir) {
                    let _ = iso.read(e, 1 << 20);
                    let _ = iso.find(&e.path);
                }
            }
        }
    }
    assert!(
        listed > 100,
        "corruption too destructive to exercise the walk ({listed})"
    );
}
