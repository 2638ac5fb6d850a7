//! Copy-on-write overlay and the conversion pipeline against qemu-io and
//! qemu-img: the same writes done by qemu-io on a copy of the source and by
//! us through an overlay must give identical disks, and the source must not
//! change.

use rand::{RngCore, SeedableRng};
use std::path::Path;
use testkit::{run, tool};
use vdisk::convert::{convert, ConvertOptions};
use vdisk::overlay::Overlay;
use vdisk::writer::{Compression, Qcow2Options, Qcow2Writer, RawWriter};
use vdisk::{Disk, DiskWrite};

fn pattern(path: &Path, size: usize) {
    let mut d = vec![0u8; size];
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    rng.fill_bytes(&mut d[..size / 3]);
    rng.fill_bytes(&mut d[size / 2..size / 2 + 4096]);
    std::fs::write(path, d).unwrap();
}

#[test]
fn overlay_writes_equal_qemu_io_writes_and_source_is_untouched() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let raw = d.join("p.raw");
    pattern(&raw, 5 << 20);
    let src = d.join("src.qcow2");
    run(tool("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&src));
    let before = std::fs::read(&src).unwrap();
    let copy = d.join("copy.qcow2");
    std::fs::copy(&src, &copy).unwrap();

    // (offset, len, byte): unaligned, spanning chunks, in data and in holes.
    let writes = [
        (100u64, 10usize, 0xa1u8),
        (65_530, 20, 0xb2),
        (3 << 20, 70_000, 0xc3),
        ((5 << 20) - 7, 7, 0xd4),
    ];
    let ov = Overlay::new(vdisk::open(&src).unwrap(), 16 << 20);
    for (off, len, b) in writes {
        ov.write_at(&vec![b; len], off).unwrap();
        run(tool("qemu-io")
            .args(["-f", "qcow2", "-c", &format!("write -P {b} {off} {len}")])
            .arg(&copy));
    }
    assert!(ov.dirty_bytes() > 0 && ov.dirty_bytes() <= 6 * 65536);

    // Read back through the overlay equals qemu's view of its copy.
    let expect = d.join("expect.raw");
    run(tool("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&copy)
        .arg(&expect));
    let want = std::fs::read(&expect).unwrap();
    let mut got = vec![0u8; want.len()];
    ov.read_at(&mut got, 0).unwrap();
    assert!(got == want, "overlay read differs from qemu-io's result");

    // Convert the overlay: qcow2 (plain, zlib, zstd) and raw outputs.
    for (name, comp) in [
        ("o.qcow2", None),
        ("z.qcow2", Some(Compression::Zlib)),
        ("s.qcow2", Some(Compression::Zstd)),
    ] {
        let out = d.join(name);
        let w = Qcow2Writer::create(
            &out,
            ov.size(),
            Qcow2Options {
                compression: comp,
                ..Default::default()
            },
            false,
        )
        .unwrap();
        let opts = ConvertOptions {
            threads: 3,
            compression: comp,
        };
        let (_, stats) = convert(&ov, Box::new(w), &opts, &|_| {}).unwrap();
        assert_eq!(stats.virtual_size, 5 << 20);
        assert!(run(tool("qemu-img").arg("check").arg(&out)).contains("No errors were found"));
        let cmp = run(tool("qemu-img")
            .args(["compare", "-f", "raw", "-F", "qcow2"])
            .arg(&expect)
            .arg(&out));
        assert!(cmp.contains("Images are identical"), "{name}: {cmp}");
        if comp.is_some() {
            assert!(stats.compressed_clusters > 0);
        }
    }
    let out = d.join("o.raw");
    let w = RawWriter::create(&out, ov.size(), false).unwrap();
    convert(&ov, Box::new(w), &ConvertOptions::default(), &|_| {}).unwrap();
    assert!(std::fs::read(&out).unwrap() == want);

    assert!(std::fs::read(&src).unwrap() == before, "source modified");
}

#[test]
fn overlay_refuses_beyond_its_memory_limit() {
    let t = tempfile::tempdir().unwrap();
    let raw = t.path().join("p.raw");
    pattern(&raw, 1 << 20);
    let ov = Overlay::new(vdisk::open(&raw).unwrap(), 128 * 1024);
    ov.write_at(&[1; 10], 0).unwrap();
    ov.write_at(&[1; 10], 70_000).unwrap();
    let e = ov.write_at(&[1; 10], 300_000).unwrap_err();
    assert_eq!(e.kind, vdisk::ErrorKind::Refused);
    assert!(e.to_string().contains("overlay limit"));
    // Out-of-range writes are refused too.
    assert_eq!(
        ov.write_at(&[1; 10], (1 << 20) - 5).unwrap_err().kind,
        vdisk::ErrorKind::OutOfRange
    );
}

#[test]
fn zero_detection_and_sizes_that_are_not_cluster_multiples() {
    let t = tempfile::tempdir().unwrap();
    for size in [512u64, 65_536 + 512, (2 << 20) + 1024, (4 << 20) - 512] {
        let raw = t.path().join(format!("p{size}.raw"));
        let mut d = vec![0u8; size as usize];
        d[size as usize - 1] = 7;
        std::fs::write(&raw, &d).unwrap();
        let out = t.path().join(format!("o{size}.qcow2"));
        let w = Qcow2Writer::create(&out, size, Qcow2Options::default(), false).unwrap();
        let (_, st) = convert(
            &*vdisk::open(&raw).unwrap(),
            Box::new(w),
            &ConvertOptions::default(),
            &|_| {},
        )
        .unwrap();
        assert_eq!(st.data_clusters, 1, "size {size}");
        assert!(run(tool("qemu-img").arg("check").arg(&out)).contains("No errors were found"));
        let cmp = run(tool("qemu-img")
            .args(["compare", "-f", "raw"])
            .arg(&raw)
            .arg(&out));
        assert!(cmp.contains("identical"), "size {size}");
    }
}
