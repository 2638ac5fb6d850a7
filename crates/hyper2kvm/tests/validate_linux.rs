//! Validation of a real Debian guest built by `tests/fixtures/linux-guest.sh`
//! (debootstrap, GRUB, systemd; cached under $H2K_FIXTURE_CACHE): with a
//! generic initramfs it reaches `login:` on virtio-blk; with a host-only
//! initramfs lacking virtio_blk it must fail with the initramfs' own
//! "root device does not exist" message, while the same image boots on
//! SATA (the positive control: the failure is the driver, nothing else).
//! Booted under TCG.

use hyper2kvm::validate::{boot, Accel, BootOutcome, BootSpec};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Build (or copy from the cache) the fixture into `dir`.
fn fixture(dir: &Path, host_only: bool) -> PathBuf {
    let out = dir.join(if host_only {
        "hostonly.raw"
    } else {
        "guest.raw"
    });
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("tests/fixtures/linux-guest.sh"))
        .arg(&out);
    if host_only {
        cmd.arg("--host-only-initramfs");
    }
    let res = cmd.output().expect("running tests/fixtures/linux-guest.sh");
    assert!(
        res.status.success(),
        "tests/fixtures/linux-guest.sh failed (needs root, debootstrap via apt, loop devices):\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

fn sha256_file(p: &Path) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_vec()
}

fn virtio_spec(disk: &Path, out: &Path) -> BootSpec {
    let argv = vec![
        "qemu-system-x86_64".to_string(),
        "-machine".into(),
        "pc".into(),
        "-m".into(),
        "512".into(),
        "-drive".into(),
        format!("file={},format=raw,if=virtio", disk.display()),
    ];
    let mut s = BootSpec::new(argv, "final", out);
    s.accel = Accel::Tcg;
    // ~30-50 s on an idle machine; generous for a loaded CI box.
    s.timeout = Duration::from_secs(400);
    s
}

#[test]
fn debian_guest_reaches_login_on_virtio() {
    let dir = tempfile::tempdir().unwrap();
    let disk = fixture(dir.path(), false);
    let before = sha256_file(&disk);
    let r = boot(&virtio_spec(&disk, &dir.path().join("out"))).unwrap();
    eprintln!("debian virtio: {} in {:.1} s", r.reason, r.seconds);
    assert!(
        matches!(r.outcome, BootOutcome::Success { ref marker, .. } if marker == "login_prompt"),
        "{r:#?}"
    );
    for p in ["firmware", "bootloader", "kernel", "initramfs", "userspace"] {
        assert!(
            r.progress.iter().any(|x| x == p),
            "no {p} in {:?}",
            r.progress
        );
    }
    // A booted systemd writes to its root filesystem; the validator's
    // throw-away overlay kept the image untouched.
    assert_eq!(
        sha256_file(&disk),
        before,
        "validation changed the disk image"
    );
}

#[test]
fn host_only_initramfs_fails_on_virtio_with_named_reason() {
    let dir = tempfile::tempdir().unwrap();
    let disk = fixture(dir.path(), true);
    let r = boot(&virtio_spec(&disk, &dir.path().join("out"))).unwrap();
    eprintln!(
        "debian host-only virtio: {} in {:.1} s",
        r.reason, r.seconds
    );
    match &r.outcome {
        BootOutcome::Failure { id, line, .. } => {
            assert_eq!(id, "root_device_missing", "{r:#?}");
            assert!(
                line.contains("UUID=") && line.contains("does not exist"),
                "{line}"
            );
        }
        o => panic!("{o:?}\n{r:#?}"),
    }
    assert!(
        r.hits.iter().any(|h| h.id == "root_wait_timeout"),
        "no 'Gave up waiting for root file system device': {:?}",
        r.hits
    );
    assert!(
        r.progress.iter().any(|x| x == "initramfs"),
        "{:?}",
        r.progress
    );
}

#[test]
fn host_only_initramfs_boots_on_sata() {
    let dir = tempfile::tempdir().unwrap();
    let disk = fixture(dir.path(), true);
    let argv = vec![
        "qemu-system-x86_64".to_string(),
        "-machine".into(),
        "q35".into(),
        "-m".into(),
        "512".into(),
        "-drive".into(),
        format!("file={},format=raw,if=none,id=d0", disk.display()),
        "-device".into(),
        "ahci,id=ahci0".into(),
        "-device".into(),
        "ide-hd,drive=d0,bus=ahci0.0".into(),
    ];
    let mut s = BootSpec::new(argv, "bootstrap", &dir.path().join("out"));
    s.accel = Accel::Tcg;
    s.timeout = Duration::from_secs(400);
    let r = boot(&s).unwrap();
    eprintln!("debian host-only sata: {} in {:.1} s", r.reason, r.seconds);
    assert!(r.ok, "{r:#?}");
}
