//! Hostile and broken VMDK inputs: every one must give a clear error (or a
//! documented fallback with a warning), never a panic or unbounded memory.

mod vmdk_util;

use std::path::Path;
use vdisk::{ErrorKind, OpenOptions};
use vmdk_util::*;

fn sparse_image(dir: &Path, name: &str) -> Vec<u8> {
    let raw = dir.join("pattern.raw");
    standard_pattern(&raw);
    convert(dir, "monolithicSparse", &[], name);
    file_bytes(&raw)
}

fn open_err(p: &Path) -> vdisk::Error {
    vdisk::open(p).expect_err("expected an error")
}

#[test]
fn truncated_kdmv() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    sparse_image(dir, "a.vmdk");
    let p = dir.join("a.vmdk");
    let full = file_bytes(&p);
    // Header only: the grain directory is missing.
    std::fs::write(&p, &full[..300]).unwrap();
    let e = open_err(&p);
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    // Metadata intact, the last grains missing: reads fail with an offset.
    std::fs::write(&p, &full[..full.len() - 100_000]).unwrap();
    let d = vdisk::open(&p).unwrap();
    let e = read_all(d.as_ref()).expect_err("grain past end of file");
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(
        e.offset.is_some() && e.path.as_deref() == Some(p.as_path()),
        "{e}"
    );
}

#[test]
fn grain_directory_past_eof_uses_redundant_copy_then_fails() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let want = sparse_image(dir, "a.vmdk");
    let p = dir.join("a.vmdk");
    let gd = read_u64(&p, kdmv::GD) * 512;
    let rgd = read_u64(&p, kdmv::RGD) * 512;
    assert_ne!(rgd, 0, "qemu writes a redundant grain directory");
    patch(&p, gd, &0xffff_ff00u32.to_le_bytes());
    let d = vdisk::open(&p).unwrap();
    let w = d.layer().warnings;
    assert!(
        w.iter().any(|w| w.contains("redundant grain directory")),
        "{w:?}"
    );
    assert_eq!(read_all(d.as_ref()).unwrap(), want);
    patch(&p, rgd, &0xffff_ff00u32.to_le_bytes());
    let e = open_err(&p);
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(e.message.contains("grain directory entry 0"), "{e}");
}

#[test]
fn grain_table_entry_past_eof() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    sparse_image(dir, "a.vmdk");
    let p = dir.join("a.vmdk");
    let gd = read_u64(&p, kdmv::GD) * 512;
    let gt = u64::from(read_u32(&p, gd)) * 512;
    patch(&p, gt, &0x7fff_0000u32.to_le_bytes());
    let d = vdisk::open(&p).unwrap();
    let mut b = [0u8; 512];
    let e = d.read_at(&mut b, 0).expect_err("grain beyond EOF");
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
}

#[test]
fn absurd_header_fields() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    sparse_image(dir, "orig.vmdk");
    let both_gd = [
        (kdmv::GD, (u64::MAX - 5).to_le_bytes().to_vec()),
        (kdmv::RGD, (u64::MAX >> 8).to_le_bytes().to_vec()),
    ];
    let cases: &[(&str, u64, Vec<u8>)] = &[
        ("capacity", kdmv::CAPACITY, u64::MAX.to_le_bytes().to_vec()),
        (
            "capacity",
            kdmv::CAPACITY,
            (1u64 << 50).to_le_bytes().to_vec(),
        ),
        ("grain size", kdmv::GRAIN_SIZE, 0u64.to_le_bytes().to_vec()),
        (
            "grain size",
            kdmv::GRAIN_SIZE,
            (1u64 << 40).to_le_bytes().to_vec(),
        ),
        (
            "grain table entries",
            kdmv::GTES,
            0u32.to_le_bytes().to_vec(),
        ),
        (
            "grain table entries",
            kdmv::GTES,
            u32::MAX.to_le_bytes().to_vec(),
        ),
        ("grain directories", both_gd[0].0, both_gd[0].1.clone()),
        ("newline", kdmv::NL, b"\r\n\n\n".to_vec()),
        ("version", 4, 9u32.to_le_bytes().to_vec()),
    ];
    for (i, (what, off, bytes)) in cases.iter().enumerate() {
        let p = dir.join(format!("c{i}.vmdk"));
        std::fs::copy(dir.join("orig.vmdk"), &p).unwrap();
        patch(&p, *off, bytes);
        if *what == "grain directories" {
            patch(&p, both_gd[1].0, &both_gd[1].1);
        }
        let e = open_err(&p);
        assert!(
            matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Unsupported),
            "{what}: {e}"
        );
        assert!(e.to_string().contains(&format!("c{i}.vmdk")), "{e}");
    }
}

fn write_desc(dir: &Path, name: &str, extents: &str, extra: &str) {
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n{extra}\n# Extent description\n{extents}\n"
    );
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn extent_names_outside_the_directory_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let dir = root.join("vm");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.join("outside.raw"), vec![7u8; 1 << 20]).unwrap();
    write_desc(&dir, "up.vmdk", "RW 2048 FLAT \"../outside.raw\" 0", "");
    let e = open_err(&dir.join("up.vmdk"));
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    let abs = root.join("outside.raw");
    write_desc(
        &dir,
        "abs.vmdk",
        &format!("RW 2048 FLAT \"{}\" 0", abs.display()),
        "",
    );
    let e = open_err(&dir.join("abs.vmdk"));
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    // Allowed explicitly: both read the file.
    let opts = OpenOptions {
        allow_outside: true,
        ..Default::default()
    };
    for n in ["up.vmdk", "abs.vmdk"] {
        let d = vdisk::open_opts(&dir.join(n), opts.clone()).unwrap();
        assert_eq!(read_all(d.as_ref()).unwrap(), vec![7u8; 1 << 20]);
    }
}

#[test]
fn missing_or_short_extent_files() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    write_desc(dir, "m.vmdk", "RW 2048 FLAT \"gone-flat.vmdk\" 0", "");
    let e = open_err(&dir.join("m.vmdk"));
    assert!(e.to_string().contains("gone-flat.vmdk"), "{e}");
    std::fs::write(dir.join("short.raw"), vec![1u8; 1000]).unwrap();
    write_desc(dir, "s.vmdk", "RW 2048 FLAT \"short.raw\" 0", "");
    let e = open_err(&dir.join("s.vmdk"));
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("short.raw"), "{e}");
}

#[test]
fn zero_noaccess_and_sesparse_extents() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    std::fs::write(dir.join("a.raw"), vec![9u8; 4096]).unwrap();
    write_desc(
        dir,
        "z.vmdk",
        "RW 8 FLAT \"a.raw\" 0\nRW 16 ZERO\nNOACCESS 8 FLAT \"a.raw\" 0\nRDONLY 4 FLAT \"a.raw\" 2",
        "",
    );
    let d = vdisk::open(&dir.join("z.vmdk")).unwrap();
    assert_eq!(d.size(), 36 * 512);
    let mut b = vec![0u8; 24 * 512];
    d.read_at(&mut b, 0).unwrap();
    assert!(b[..4096].iter().all(|&x| x == 9) && b[4096..].iter().all(|&x| x == 0));
    let e = d.extent(4096, 1 << 20).unwrap();
    assert_eq!((e.kind, e.len), (vdisk::ExtentKind::Zero, 16 * 512));
    let e = d.read_at(&mut b[..512], 24 * 512).expect_err("NOACCESS");
    assert_eq!(e.kind, ErrorKind::Refused);
    let mut tail = vec![0u8; 4 * 512];
    d.read_at(&mut tail, 32 * 512).unwrap();
    assert!(tail.iter().all(|&x| x == 9));
    assert_eq!(d.layer().extra_files, vec![dir.join("a.raw")]);

    write_desc(dir, "se.vmdk", "RW 8 SESPARSE \"a.raw\"", "");
    let e = open_err(&dir.join("se.vmdk"));
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.message.contains("seSparse"), "{e}");
}

#[test]
fn parent_loops_and_deep_chains_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    std::fs::write(dir.join("a.raw"), vec![0u8; 4096]).unwrap();
    write_desc(
        dir,
        "self.vmdk",
        "RW 8 FLAT \"a.raw\" 0",
        "parentFileNameHint=\"self.vmdk\"",
    );
    let e = open_err(&dir.join("self.vmdk"));
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.message.contains("loops"), "{e}");

    // base <- d1 <- d2 <- d3 <- d4 made by qemu-img.
    sparse_image(dir, "d0.vmdk");
    for i in 1..=4 {
        let (b, d) = (format!("d{}.vmdk", i - 1), format!("d{i}.vmdk"));
        qemu_img(dir, &["create", "-f", "vmdk", "-b", &b, "-F", "vmdk", &d]);
    }
    let full = vdisk::open(&dir.join("d4.vmdk")).unwrap();
    assert_eq!(vdisk::disk::chain(full.as_ref()).len(), 5);
    let opts = OpenOptions {
        max_chain_depth: 2,
        ..Default::default()
    };
    let e = vdisk::open_opts(&dir.join("d4.vmdk"), opts).expect_err("too deep");
    assert_eq!(e.kind, ErrorKind::Refused, "{e}");
    assert!(e.message.contains("deeper"), "{e}");
}

#[test]
fn missing_parent_names_the_file() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    sparse_image(dir, "base.vmdk");
    qemu_img(
        dir,
        &[
            "create",
            "-f",
            "vmdk",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "delta.vmdk",
        ],
    );
    std::fs::remove_file(dir.join("base.vmdk")).unwrap();
    let e = open_err(&dir.join("delta.vmdk"));
    assert!(e.to_string().contains("base.vmdk"), "{e}");
}

#[test]
fn stream_grain_inflating_beyond_grain_size() {
    use flate2::{write::ZlibEncoder, Compression};
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    sparse_image(dir, "unused.vmdk");
    convert(dir, "streamOptimized", &[], "s.vmdk");
    let p = dir.join("s.vmdk");
    let gd = read_u64(&p, kdmv::GD) * 512;
    let gt = u64::from(read_u32(&p, gd)) * 512;
    let marker = u64::from(read_u32(&p, gt)) * 512;
    assert_eq!(read_u64(&p, marker), 0, "first grain marker has LBA 0");
    // 128 KiB of zeros compress to a few hundred bytes: fits in place.
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&vec![0u8; 128 * 1024]).unwrap();
    let z = enc.finish().unwrap();
    patch(&p, marker + 8, &(z.len() as u32).to_le_bytes());
    patch(&p, marker + 12, &z);
    let d = vdisk::open(&p).unwrap();
    let mut b = [0u8; 512];
    let e = d.read_at(&mut b, 0).expect_err("oversized grain");
    assert_eq!(e.kind, ErrorKind::Corrupt);
    assert!(e.message.contains("beyond the grain size"), "{e}");
    // A wrong LBA in the marker is caught too.
    patch(&p, marker, &5u64.to_le_bytes());
    let d = vdisk::open(&p).unwrap();
    let e = d.read_at(&mut b, 0).expect_err("bad LBA");
    assert!(e.message.contains("LBA"), "{e}");
}

#[test]
fn oversized_descriptor_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("big.vmdk");
    let mut text =
        b"# Disk DescriptorFile\nversion=1\nCID=1\ncreateType=\"monolithicFlat\"\n".to_vec();
    text.resize(2 << 20, b' ');
    std::fs::write(&p, text).unwrap();
    let e = open_err(&p);
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
}
