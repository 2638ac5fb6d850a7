//! Hostile and unsupported qcow2 inputs: every case must fail with the
//! right error kind and a message naming the offending offset, never panic.

mod qcow2_common;

use qcow2_common::*;
use std::path::{Path, PathBuf};
use vdisk::{Disk, Error, ErrorKind};

fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_be_bytes());
}

/// A small valid 64 KiB-cluster image of 1 MiB of data (optionally
/// compressed) and its bytes.
fn base(dir: &Path, name: &str, opts: &[&str]) -> (PathBuf, Vec<u8>) {
    let raw = dir.join(format!("{name}.raw"));
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8 ^ 0x5c).collect();
    std::fs::write(&raw, &data).unwrap();
    let img = dir.join(name);
    testkit::qemu_convert(&raw, "raw", "qcow2", opts, &img);
    let bytes = std::fs::read(&img).unwrap();
    (img, bytes)
}

fn open_err(p: &Path) -> Error {
    match vdisk::open(p) {
        Ok(d) => panic!("{} opened but should fail: {:?}", p.display(), d.layer()),
        Err(e) => e,
    }
}

/// Open must succeed; reading the first MiB must fail.
fn read_err(p: &Path) -> Error {
    let d = vdisk::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut b = vec![0u8; 1 << 20];
    match d.read_at(&mut b, 0) {
        Ok(()) => panic!("read of {} should fail", p.display()),
        Err(e) => e,
    }
}

fn assert_err(e: &Error, kind: ErrorKind, offset: Option<u64>, needles: &[&str]) {
    let msg = e.to_string();
    assert_eq!(e.kind, kind, "{msg}");
    if offset.is_some() {
        assert_eq!(e.offset, offset, "{msg}");
    }
    for n in needles {
        assert!(msg.contains(n), "message lacks {n:?}: {msg}");
    }
}

fn patched(dir: &Path, name: &str, bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = bytes.to_vec();
    f(&mut b);
    let p = dir.join(name);
    std::fs::write(&p, &b).unwrap();
    p
}

#[test]
fn header_fields_out_of_range() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "ok.qcow2", &[]);
    let d = t.path();

    let p = patched(d, "cb8", &b, |b| put32(b, 20, 8));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(20),
        &["cluster_bits 8"],
    );
    let p = patched(d, "cb22", &b, |b| put32(b, 20, 22));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(20),
        &["cluster_bits 22"],
    );
    let p = patched(d, "hl100", &b, |b| put32(b, 100, 100));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(100),
        &["header_length 100"],
    );
    let p = patched(d, "hl105", &b, |b| put32(b, 100, 105));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(100),
        &["header_length 105"],
    );
    let p = patched(d, "hlbig", &b, |b| put32(b, 100, 1 << 20));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(100),
        &["header_length"],
    );
    let p = patched(d, "bname", &b, |b| {
        put64(b, 8, 0x200);
        put32(b, 16, 1024);
    });
    assert_err(&open_err(&p), ErrorKind::Corrupt, Some(16), &["1024"]);
    let p = patched(d, "bname-off", &b, |b| {
        put64(b, 8, 0xfffffff0);
        put32(b, 16, 100);
    });
    assert_err(&open_err(&p), ErrorKind::Corrupt, Some(8), &["0xfffffff0"]);
    let p = patched(d, "ver4", &b, |b| put32(b, 4, 4));
    assert_err(&open_err(&p), ErrorKind::Unsupported, None, &["version 4"]);
    let p = patched(d, "rc7", &b, |b| put32(b, 96, 7));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(96),
        &["refcount_order 7"],
    );
    let p = patched(d, "hugesize", &b, |b| put64(b, 24, u64::MAX));
    assert_err(&open_err(&p), ErrorKind::Corrupt, None, &["virtual size"]);
    let p = patched(d, "bigsize", &b, |b| put64(b, 24, 1 << 40));
    assert_err(&open_err(&p), ErrorKind::Corrupt, Some(36), &["needs"]);
}

#[test]
fn l1_table_absurd_or_past_eof() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "ok.qcow2", &[]);
    let p = patched(t.path(), "l1huge", &b, |b| put32(b, 36, 0x1000_0000));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(36),
        &["exceeds the limit"],
    );
    // Within the 32 MiB cap but far beyond this small file.
    let p = patched(t.path(), "l1eof", &b, |b| put32(b, 36, 4 << 20));
    let l1 = be64(&b, 40);
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(l1),
        &["past the end of the file"],
    );
    let p = patched(t.path(), "l1off", &b, |b| put64(b, 40, 0x1_0000_0000));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(0x1_0000_0000),
        &["0x100000000"],
    );
    let p = patched(t.path(), "l1unal", &b, |b| put64(b, 40, l1 + 8));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(40),
        &["not aligned"],
    );
}

#[test]
fn l1_and_l2_entries_past_eof() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "ok.qcow2", &[]);
    let l1 = be64(&b, 40) as usize;
    let l2 = be64(&b, l1) & 0x00ff_ffff_ffff_fe00;
    assert_ne!(l2, 0);

    let p = patched(t.path(), "l1e", &b, |b| {
        put64(b, l1, (1 << 63) | 0x4000_0000)
    });
    assert_err(
        &read_err(&p),
        ErrorKind::Corrupt,
        Some(l1 as u64),
        &["0x40000000", "L2 table"],
    );
    let p = patched(t.path(), "l1e-unal", &b, |b| put64(b, l1, l2 + 512));
    assert_err(
        &read_err(&p),
        ErrorKind::Corrupt,
        Some(l1 as u64),
        &["not cluster-aligned"],
    );
    let p = patched(t.path(), "l2e", &b, |b| {
        put64(b, l2 as usize + 8, (1 << 63) | 0x4000_0000)
    });
    assert_err(
        &read_err(&p),
        ErrorKind::Corrupt,
        Some(l2 + 8),
        &["0x40000000", "data cluster"],
    );
    let p = patched(t.path(), "l2e-unal", &b, |b| {
        let e = be64(b, l2 as usize);
        put64(b, l2 as usize, e + 0x200)
    });
    assert_err(
        &read_err(&p),
        ErrorKind::Corrupt,
        Some(l2),
        &["not cluster-aligned"],
    );
    // Extents walk the same metadata and fail the same way.
    let p = t.path().join("l2e");
    let d = vdisk::open(&p).unwrap();
    let e = d.extent(65536, 1 << 20).unwrap_err();
    assert_err(&e, ErrorKind::Corrupt, Some(l2 + 8), &["0x40000000"]);
}

#[test]
fn truncated_files() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "ok.qcow2", &[]);
    let p = patched(t.path(), "t50", &b, |b| b.truncate(50));
    assert_err(&open_err(&p), ErrorKind::Corrupt, Some(0), &["at least 72"]);
    let p = patched(t.path(), "t100", &b, |b| b.truncate(100));
    assert_err(&open_err(&p), ErrorKind::Corrupt, Some(0), &["104"]);
    let l1 = be64(&b, 40);
    let p = patched(t.path(), "tl1", &b, |b| b.truncate(l1 as usize + 4));
    assert_err(
        &open_err(&p),
        ErrorKind::Corrupt,
        Some(l1),
        &["past the end"],
    );
    // Cut in the middle of the data: a read there names the cut cluster.
    let p = patched(t.path(), "tdata", &b, |b| b.truncate(b.len() - 65536 - 100));
    let e = read_err(&p);
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.offset.is_some(), "{e}");
}

fn first_compressed_entry(b: &[u8]) -> (usize, u64) {
    let l1 = be64(b, 40) as usize;
    let l2 = (be64(b, l1) & 0x00ff_ffff_ffff_fe00) as usize;
    for i in 0..8192 {
        let e = be64(b, l2 + i * 8);
        if e & (1 << 62) != 0 {
            return (l2 + i * 8, e);
        }
    }
    panic!("no compressed cluster in image");
}

#[test]
fn compressed_cluster_inflating_beyond_cluster_size() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    for ty in ["zlib", "zstd"] {
        let (_, b) = base(
            t.path(),
            &format!("{ty}.qcow2"),
            &["-c", "-o", &format!("compression_type={ty}")],
        );
        let (_, e) = first_compressed_entry(&b);
        // 64 KiB clusters: 62 - (16 - 8) = 54 offset bits.
        let coff = e & ((1 << 54) - 1);
        let nsect = ((e >> 54) & 0xff) + 1;
        let room = (nsect * 512 - (coff & 511)) as usize;
        let zeros = vec![0u8; 256 * 1024];
        let bomb = if ty == "zlib" {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&zeros).unwrap();
            enc.finish().unwrap()
        } else {
            zstd::bulk::compress(&zeros, 19).unwrap()
        };
        assert!(bomb.len() <= room, "{} > {room}", bomb.len());
        let p = patched(t.path(), &format!("{ty}-bomb"), &b, |b| {
            b[coff as usize..coff as usize + bomb.len()].copy_from_slice(&bomb)
        });
        let hex = format!("{coff:#x}");
        assert_err(
            &read_err(&p),
            ErrorKind::Corrupt,
            Some(coff),
            &["beyond the cluster size", &hex],
        );
        // Garbage instead of compressed data.
        let p = patched(t.path(), &format!("{ty}-garbage"), &b, |b| {
            b[coff as usize..coff as usize + 16].fill(0xff)
        });
        assert_err(&read_err(&p), ErrorKind::Corrupt, Some(coff), &[&hex]);
    }
}

#[test]
fn compressed_entry_past_eof() {
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "c.qcow2", &["-c"]);
    let (pos, e) = first_compressed_entry(&b);
    let p = patched(t.path(), "c-eof", &b, |b| {
        put64(b, pos, (e & !((1 << 54) - 1)) | 0x7000_0000)
    });
    let e = read_err(&p);
    assert_err(&e, ErrorKind::Corrupt, Some(pos as u64), &["0x70000000"]);
}

#[test]
fn unsupported_features_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (_, b) = base(d, "ok.qcow2", &[]);

    let p = patched(d, "aes", &b, |b| put32(b, 32, 1));
    assert_err(
        &open_err(&p),
        ErrorKind::Unsupported,
        None,
        &["encrypted", "AES"],
    );
    // A real qemu-made AES image (LUKS creation takes seconds of PBKDF
    // benchmarking, so LUKS is checked through the header field).
    let aes = d.join("aes.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "--object",
        "secret,id=sec0,data=hunter2",
        "-o",
        "encrypt.format=aes,encrypt.key-secret=sec0",
        s(&aes),
        "1M",
    ]);
    assert_err(
        &open_err(&aes),
        ErrorKind::Unsupported,
        None,
        &["encrypted", "AES"],
    );
    let p = patched(d, "luks", &b, |b| put32(b, 32, 2));
    assert_err(
        &open_err(&p),
        ErrorKind::Unsupported,
        None,
        &["encrypted", "LUKS"],
    );

    let ext = d.join("ext.qcow2");
    // An absolute data file name: qemu-img creates it relative to its cwd.
    let data_opt = format!("data_file={}", d.join("ext.data").display());
    qemu_img(&["create", "-f", "qcow2", "-o", &data_opt, s(&ext), "1M"]);
    assert_err(
        &open_err(&ext),
        ErrorKind::Unsupported,
        None,
        &["external data file"],
    );

    let p = patched(d, "bit5", &b, |b| b[79] |= 1 << 5);
    assert_err(
        &open_err(&p),
        ErrorKind::Unsupported,
        None,
        &["unknown incompatible", "bit 5"],
    );
    let p = patched(d, "bit40", &b, |b| b[74] |= 1);
    assert_err(&open_err(&p), ErrorKind::Unsupported, None, &["bit 40"]);

    let p = patched(d, "ctype2", &b, |b| {
        b[79] |= 1 << 3;
        b[104] = 2;
    });
    assert_err(
        &open_err(&p),
        ErrorKind::Unsupported,
        None,
        &["compression type 2"],
    );
    let p = patched(d, "ctype-nobit", &b, |b| b[104] = 1);
    assert_err(&open_err(&p), ErrorKind::Corrupt, Some(104), &["bit 3"]);
}

#[test]
fn feature_name_table_names_unknown_bits() {
    // qemu writes a feature name table; rename the entry for bit 4 to a
    // pretend bit 6 and set it: the error must use the recorded name.
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "ok.qcow2", &[]);
    let p = patched(t.path(), "named", &b, |b| {
        let i = b
            .windows(11)
            .position(|w| w == b"extended L2")
            .expect("qemu wrote no feature name table");
        assert_eq!(b[i - 2..i], [0, 4]);
        b[i - 1] = 6;
        b[79] |= 1 << 6;
    });
    assert_err(
        &open_err(&p),
        ErrorKind::Unsupported,
        None,
        &["bit 6 (extended L2 entries)"],
    );
}

#[test]
fn backing_names_outside_the_directory_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let sub = t.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(t.path().join("secret.raw"), vec![0x41u8; 1 << 20]).unwrap();
    let up = sub.join("up.qcow2");
    overlay_unchecked(&up, "../secret.raw", "raw");
    assert_err(&open_err(&up), ErrorKind::Refused, None, &["../secret.raw"]);
    let up2 = sub.join("up2.qcow2");
    overlay_unchecked(&up2, "../secret.raw", "qcow2");
    assert_err(
        &open_err(&up2),
        ErrorKind::Refused,
        None,
        &["leaves the image's directory"],
    );
    let abs = sub.join("abs.qcow2");
    let target = t.path().join("secret.raw");
    overlay_unchecked(&abs, s(&target), "raw");
    assert_err(&open_err(&abs), ErrorKind::Refused, None, &["absolute"]);
    // The same image opens when the policy allows it.
    let opts = vdisk::OpenOptions {
        allow_outside: true,
        ..Default::default()
    };
    let d = vdisk::open_opts(&abs, opts).unwrap();
    let mut buf = [0u8; 4];
    d.read_at(&mut buf, 4096).unwrap();
    assert_eq!(buf, [0x41; 4]);
}

/// A 1 MiB qcow2 at `img` over `backing` (of format `backing_fmt`), made
/// with `-u` so qemu-img does not open (or insist on) the backing file.
fn overlay_unchecked(img: &Path, backing: &str, backing_fmt: &str) {
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        backing,
        "-F",
        backing_fmt,
        s(img),
        "1M",
    ]);
}

#[test]
fn cyclic_and_missing_backing_chains() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a.qcow2");
    let b = t.path().join("b.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&a), "1M"]);
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "a.qcow2",
        "-F",
        "qcow2",
        s(&b),
    ]);
    qemu_img(&[
        "rebase",
        "-u",
        "-f",
        "qcow2",
        "-b",
        "b.qcow2",
        "-F",
        "qcow2",
        s(&a),
    ]);
    assert_err(&open_err(&a), ErrorKind::Refused, None, &["loops"]);
    assert_err(&open_err(&b), ErrorKind::Refused, None, &["loops"]);

    let selfref = t.path().join("self.qcow2");
    overlay_unchecked(&selfref, "self.qcow2", "qcow2");
    assert_err(&open_err(&selfref), ErrorKind::Refused, None, &["loops"]);

    let missing = t.path().join("missing.qcow2");
    overlay_unchecked(&missing, "nope.qcow2", "qcow2");
    assert_err(
        &open_err(&missing),
        ErrorKind::InvalidInput,
        None,
        &["nope.qcow2", "not found"],
    );

    // Declared qcow2, actually raw: not silently probed as something else.
    std::fs::write(t.path().join("plain.img"), vec![0u8; 1 << 20]).unwrap();
    let lie = t.path().join("lie.qcow2");
    overlay_unchecked(&lie, "plain.img", "qcow2");
    assert_err(
        &open_err(&lie),
        ErrorKind::Corrupt,
        None,
        &["declared as qcow2", "raw"],
    );

    // Declared raw, actually qcow2: read as raw bytes, never followed.
    let rawlie = t.path().join("rawlie.qcow2");
    overlay_unchecked(&rawlie, "b.qcow2", "raw");
    let d = vdisk::open(&rawlie).unwrap();
    assert_eq!(d.backing().unwrap().layer().format, "raw");
    let mut m = [0u8; 4];
    d.read_at(&mut m, 0).unwrap();
    assert_eq!(&m, b"QFI\xfb");
}

#[test]
fn random_corruption_never_panics() {
    use rand::{Rng, SeedableRng};
    let t = tempfile::tempdir().unwrap();
    let (_, b) = base(t.path(), "ok.qcow2", &["-c", "-o", "cluster_size=4096"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let p = t.path().join("fuzz.qcow2");
    let meta_end = (64 * 1024usize).min(b.len());
    for _ in 0..300 {
        let mut c = b.clone();
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(0..meta_end.min(c.len()));
            c[i] = rng.gen();
        }
        std::fs::write(&p, &c).unwrap();
        if let Ok(d) = vdisk::open(&p) {
            let size = d.size().min(1 << 20);
            let mut buf = vec![0u8; 65536];
            let mut off = 0;
            while off < size {
                let n = (size - off).min(65536) as usize;
                let _ = d.read_at(&mut buf[..n], off);
                let _ = d.extent(off, size - off);
                off += n as u64;
            }
        }
    }
}
