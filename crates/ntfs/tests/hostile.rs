//! Hostile volumes: damaged records, runlists, indexes. Every case must
//! give a clear error (no panic, no endless loop) naming what is wrong.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn base(dir: &Path) -> PathBuf {
    let img = mkntfs(dir, "h.img", 16, 4096);
    with_mount(&img, "", |m| {
        std::fs::write(m.join("victim.bin"), bytes(9, 50_000)).unwrap();
        std::fs::create_dir(m.join("big")).unwrap();
        for i in 0..300 {
            std::fs::write(
                m.join(format!("big/entry number {i:04} with a long name")),
                b"x",
            )
            .unwrap();
        }
    });
    img
}

/// Offset of the 1 KiB MFT record holding `name` in a $FILE_NAME.
fn record_of(img: &[u8], name: &str) -> usize {
    let n: Vec<u8> = name.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
    let mut i = 0;
    while let Some(p) = img[i..].windows(n.len()).position(|w| w == n.as_slice()) {
        let at = i + p;
        let rec = at - at % 1024;
        if &img[rec..rec + 4] == b"FILE" {
            return rec;
        }
        i = at + 1;
    }
    panic!("no record for {name}");
}

/// Offset (in the record) of the first attribute of type `t`.
fn attr(img: &[u8], rec: usize, t: u32) -> usize {
    let mut o = u16::from_le_bytes([img[rec + 0x14], img[rec + 0x15]]) as usize;
    loop {
        let ty = u32::from_le_bytes(img[rec + o..rec + o + 4].try_into().unwrap());
        assert_ne!(ty, 0xffff_ffff, "attribute {t:#x} not found");
        if ty == t {
            return o;
        }
        o += u32::from_le_bytes(img[rec + o + 4..rec + o + 8].try_into().unwrap()) as usize;
    }
}

fn expect_err(img: &Path, path: &str, needle: &str) {
    let r = std::panic::catch_unwind(|| {
        let v = ntfs::Volume::open(vdisk::probe::open(img).unwrap())?;
        let _ = v.check();
        v.read(path).map(|_| ())
    });
    match r {
        Err(_) => panic!("panicked reading {path}"),
        Ok(Ok(())) => panic!("reading {path} succeeded on a damaged volume"),
        Ok(Err(e)) => assert!(e.to_string().contains(needle), "error {e} lacks {needle:?}"),
    }
}

#[test]
fn damaged_structures_give_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let img = base(t.path());
    let orig = std::fs::read(&img).unwrap();
    let rec = record_of(&orig, "victim.bin");
    let case = |name: &str, f: &dyn Fn(&mut Vec<u8>), path: &str, needle: &str| {
        let mut b = orig.clone();
        f(&mut b);
        let p = t.path().join(format!("{name}.img"));
        std::fs::write(&p, &b).unwrap();
        eprintln!("case {name}");
        expect_err(&p, path, needle);
    };
    // torn write: a sector's update sequence number does not match
    case("fixup", &|b| b[rec + 1022] ^= 0x55, "/victim.bin", "fixup");
    // attribute length running past the record
    let data = attr(&orig, rec, 0x80);
    case(
        "attrlen",
        &|b| b[rec + data + 5] = 0x40,
        "/victim.bin",
        "length",
    );
    // runlist pointing far past the end of the volume
    let runs =
        data + u16::from_le_bytes([orig[rec + data + 0x20], orig[rec + data + 0x21]]) as usize;
    case(
        "runlist",
        &|b| {
            let h = b[rec + runs];
            let ls = (h & 0xf) as usize;
            let os = (h >> 4) as usize;
            for k in 0..os {
                b[rec + runs + 1 + ls + k] = if k + 1 == os { 0x7f } else { 0xff };
            }
        },
        "/victim.bin",
        "outside the volume",
    );
    // an index block that claims another VCN (misplaced or cyclic tree)
    let needle: Vec<u8> = "entry number 0150"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let blks: Vec<usize> = orig
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle.as_slice())
        .map(|(i, _)| i - i % 4096)
        .filter(|b| &orig[*b..*b + 4] == b"INDX")
        .collect();
    assert!(!blks.is_empty(), "an INDX block holding the name");
    case(
        "indxvcn",
        &|b| blks.iter().for_each(|k| b[k + 0x10] ^= 0x3),
        "/big/entry number 0150 with a long name",
        "VCN",
    );
    // an index block whose signature is destroyed
    case(
        "indxsig",
        &|b| {
            blks.iter()
                .for_each(|k| b[*k..*k + 4].copy_from_slice(b"XXXX"))
        },
        "/big/entry number 0150 with a long name",
        "INDX",
    );
    // boot sector garbage
    case(
        "boot",
        &|b| b[0x0d] = 3,
        "/victim.bin",
        "sectors per cluster",
    );
}
