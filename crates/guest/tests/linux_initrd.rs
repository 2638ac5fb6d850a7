//! Initrd reading and the cpio writer against GNU cpio, gzip, xz and zstd:
//! archives made by those tools (an early-microcode prefix plus a
//! compressed main archive, as the distributions build them) must list the
//! same names as `cpio -t`; an archive our writer made must extract with
//! GNU cpio to the same bytes.

use guest::linux::cpio::{self, Writer};
use guest::linux::initrd::{Compression, Generator, Initrd, Presence};
use std::path::Path;
use std::process::{Command, Stdio};
use testkit::need;

/// Run `cmd` with `input` on stdin, return stdout (panics on failure).
fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = c.stdin.take().unwrap();
    let data = input.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().unwrap();
    t.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// GNU cpio newc archive of `names` (relative to `dir`).
fn gnu_cpio(dir: &Path, names: &[&str]) -> Vec<u8> {
    let list = names.join("\n") + "\n";
    pipe(
        Command::new("cpio")
            .args(["-o", "-H", "newc", "--quiet"])
            .current_dir(dir),
        list.as_bytes(),
    )
}

fn cpio_t(archive: &[u8]) -> Vec<String> {
    let out = pipe(Command::new("cpio").args(["-t", "--quiet"]), archive);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A tree like an initramfs-tools initrd: scripts, a module dir with
/// virtio_pci and ahci but no virtio_blk, modules.builtin naming ext4.
fn main_tree(dir: &Path) -> Vec<&'static str> {
    let files = [
        ("init", "#!/bin/sh\n"),
        (
            "scripts/init-bottom/ORDER",
            "/scripts/init-bottom/udev \"$@\"\n",
        ),
        (
            "usr/lib/modules/6.1.0-test/kernel/drivers/ata/ahci.ko",
            "ko",
        ),
        (
            "usr/lib/modules/6.1.0-test/kernel/drivers/virtio/virtio_pci.ko",
            "ko",
        ),
        (
            "usr/lib/modules/6.1.0-test/kernel/drivers/scsi/sd_mod.ko",
            "ko",
        ),
        (
            "usr/lib/modules/6.1.0-test/modules.builtin",
            "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio.ko\n",
        ),
    ];
    for (n, c) in files {
        let p = dir.join(n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
    vec![
        "init",
        "lib",
        "scripts",
        "scripts/init-bottom",
        "scripts/init-bottom/ORDER",
        "usr",
        "usr/lib",
        "usr/lib/modules",
        "usr/lib/modules/6.1.0-test",
        "usr/lib/modules/6.1.0-test/kernel",
        "usr/lib/modules/6.1.0-test/kernel/drivers",
        "usr/lib/modules/6.1.0-test/kernel/drivers/ata",
        "usr/lib/modules/6.1.0-test/kernel/drivers/ata/ahci.ko",
        "usr/lib/modules/6.1.0-test/kernel/drivers/virtio",
        "usr/lib/modules/6.1.0-test/kernel/drivers/virtio/virtio_pci.ko",
        "usr/lib/modules/6.1.0-test/kernel/drivers/scsi",
        "usr/lib/modules/6.1.0-test/kernel/drivers/scsi/sd_mod.ko",
        "usr/lib/modules/6.1.0-test/modules.builtin",
    ]
}

fn microcode(dir: &Path) -> Vec<u8> {
    let p = dir.join("kernel/x86/microcode/GenuineIntel.bin");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, vec![0xAAu8; 1000]).unwrap();
    gnu_cpio(
        dir,
        &[
            "kernel",
            "kernel/x86",
            "kernel/x86/microcode",
            "kernel/x86/microcode/GenuineIntel.bin",
        ],
    )
}

#[test]
fn early_microcode_plus_compressed_main_lists_like_gnu_cpio() {
    need("cpio");
    let t = tempfile::tempdir().unwrap();
    let (ucode_dir, main_dir) = (t.path().join("u"), t.path().join("m"));
    std::fs::create_dir_all(&main_dir).unwrap();
    let early = microcode(&ucode_dir);
    let names = main_tree(&main_dir);
    let main = gnu_cpio(&main_dir, &names);
    let expect: Vec<String> = cpio_t(&early).into_iter().chain(cpio_t(&main)).collect();
    for (tool, args, comp) in [
        ("gzip", vec!["-9c"], Compression::Gzip),
        ("xz", vec!["--check=crc32", "-c"], Compression::Xz),
        ("zstd", vec!["-q", "-c"], Compression::Zstd),
    ] {
        need(tool);
        let z = pipe(Command::new(tool).args(&args), &main);
        let mut initrd = early.clone();
        initrd.extend_from_slice(&z);
        let got = Initrd::parse(&initrd).unwrap_or_else(|e| panic!("{tool}: {e}"));
        let names: Vec<String> = got.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, expect, "{tool}");
        assert_eq!(got.segments.len(), 2, "{tool}: {:?}", got.segments);
        assert_eq!(got.segments[0].compression, Compression::None);
        assert_eq!(got.segments[1].compression, comp);
        assert_eq!(got.segments[1].stored_len, z.len() as u64, "{tool}");
        let r = got.report();
        assert!(r.early_microcode, "{tool}");
        assert_eq!(r.generator, Generator::InitramfsTools);
        assert_eq!(r.kernel_versions, vec!["6.1.0-test".to_string()]);
        assert_eq!(r.presence("virtio_blk"), Presence::Absent);
        assert_eq!(r.presence("virtio_pci"), Presence::Module);
        assert_eq!(r.presence("ext4"), Presence::BuiltIn);
        assert_eq!(
            r.storage_drivers,
            vec!["ahci".to_string(), "sd_mod".to_string()]
        );
        assert!(!r.drives_virtio_blk(None));
        let lnk = got.get("lib").unwrap();
        assert_eq!(lnk.link.as_deref(), Some("usr/lib"));
    }
}

#[test]
fn appended_writer_archive_wins_and_gnu_cpio_extracts_it() {
    need("cpio");
    let mut w = Writer::new();
    w.dir("h2k", 0o755).unwrap();
    w.file("h2k/fix.sh", 0o755, b"#!/bin/sh\necho fix\n")
        .unwrap();
    w.file("h2k-init", 0o755, b"#!/bin/sh\nexec /init \"$@\"\n")
        .unwrap();
    w.symlink("h2k/link", "fix.sh").unwrap();
    w.file("init", 0o755, b"replaced\n").unwrap();
    let ours = w.finish();
    assert_eq!(ours.len() % 512, 0);
    // Deterministic.
    let mut w2 = Writer::new();
    w2.dir("h2k", 0o755).unwrap();
    w2.file("h2k/fix.sh", 0o755, b"#!/bin/sh\necho fix\n")
        .unwrap();
    w2.file("h2k-init", 0o755, b"#!/bin/sh\nexec /init \"$@\"\n")
        .unwrap();
    w2.symlink("h2k/link", "fix.sh").unwrap();
    w2.file("init", 0o755, b"replaced\n").unwrap();
    assert_eq!(w2.finish(), ours);
    // GNU cpio reads it back byte for byte.
    let t = tempfile::tempdir().unwrap();
    pipe(
        Command::new("cpio")
            .args(["-idm", "--quiet"])
            .current_dir(t.path()),
        &ours,
    );
    assert_eq!(
        std::fs::read(t.path().join("h2k/fix.sh")).unwrap(),
        b"#!/bin/sh\necho fix\n"
    );
    assert_eq!(std::fs::read(t.path().join("init")).unwrap(), b"replaced\n");
    assert_eq!(
        std::fs::read_link(t.path().join("h2k/link")).unwrap(),
        Path::new("fix.sh")
    );
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(t.path().join("h2k-init"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(m & 0o777, 0o755);
    assert_eq!(
        cpio_t(&ours),
        ["h2k", "h2k/fix.sh", "h2k-init", "h2k/link", "init"]
    );
    // Appended after a gzip initrd (padded to 4), as the bootstrap boot does.
    let dir = t.path().join("tree");
    std::fs::create_dir_all(&dir).unwrap();
    let names = main_tree(&dir);
    let mut initrd = pipe(Command::new("gzip").arg("-c"), &gnu_cpio(&dir, &names));
    initrd.resize(initrd.len().div_ceil(4) * 4, 0);
    initrd.extend_from_slice(&ours);
    let got = Initrd::parse(&initrd).unwrap();
    assert_eq!(got.segments.len(), 2);
    // The later archive's /init wins (9 bytes, not the main one's 10).
    assert_eq!(got.get("init").unwrap().size, 9);
    assert!(cpio::list(&ours)
        .unwrap()
        .iter()
        .any(|e| e.name == "h2k-init"));
}

#[test]
fn writer_refuses_bad_names_and_reader_reports_offsets() {
    let mut w = Writer::new();
    for bad in ["", "/abs", "a/../b", "a//b", "./x", "a\0b"] {
        assert!(w.file(bad, 0o644, b"").is_err(), "{bad:?}");
    }
    let mut w = Writer::new();
    w.file("a", 0o644, b"hello").unwrap();
    let mut good = w.finish();
    // Corrupt the size field of the first entry (offset 54).
    good[54..62].copy_from_slice(b"zzzzzzzz");
    let e = cpio::list(&good).unwrap_err().to_string();
    assert!(e.contains("offset 54") && e.contains("hex"), "{e}");
    // Truncated data.
    let mut w = Writer::new();
    w.file("a", 0o644, &[1u8; 600]).unwrap();
    let full = w.finish();
    let e = cpio::list(&full[..300]).unwrap_err().to_string();
    assert!(
        e.contains("offset 300") && e.contains("412 bytes early"),
        "{e}"
    );
    // A truncated header: the read error is kept as the cause.
    let e = cpio::list(&full[..50]).unwrap_err();
    let cause = std::error::Error::source(&e).map(|c| format!("{c:?}"));
    assert!(e.to_string().contains("offset 0"), "{e}");
    assert!(cause.is_some_and(|c| c.contains("UnexpectedEof")), "{e:?}");
    // Unsupported compression named.
    let e = Initrd::parse(b"BZh91AY&SY").unwrap_err().to_string();
    assert!(e.contains("bzip2"), "{e}");
    let e = Initrd::parse(b"garbage!").unwrap_err().to_string();
    assert!(e.contains("offset 0"), "{e}");
}
