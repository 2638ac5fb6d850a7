//! Safety refusals: dirty volume (set by ntfsfix), unclean $LogFile (ntfs-3g
//! agrees it is unclean), hibernated Windows (hiberfil.sys with a `hibr`
//! header), BitLocker. Nothing may be written (image checksum unchanged).

mod common;
use common::*;
use std::path::Path;

use testkit::sha256 as sum;

/// Try an ntfs-3g mount of `img` (unmounting at once if it succeeds);
/// ntfs-3g's output tells whether and why it refused.
fn try_ntfs3g_mount(img: &Path) -> std::process::Output {
    let mnt = tempfile::tempdir().unwrap();
    let o = testkit::output_of(testkit::tool("ntfs-3g").arg(img).arg(mnt.path()));
    let _ = std::process::Command::new("fusermount")
        .arg("-u")
        .arg(mnt.path())
        .status();
    o
}

fn try_write(img: &Path, force: bool) -> Result<(), ntfs::Error> {
    let d = vdisk::raw::RawDiskMut::open(img).unwrap();
    let mut v = ntfs::Volume::open_rw(d, ntfs::WriteOptions { force })?;
    v.write_file("/new.txt", b"data")
}

fn assert_refused(img: &Path, needle: &str) {
    let before = sum(img);
    match try_write(img, false) {
        Err(ntfs::Error::Refused(m)) => {
            assert!(m.contains(needle), "message {m:?} lacks {needle:?}")
        }
        other => panic!("expected a refusal mentioning {needle:?}, got {other:?}"),
    }
    assert_eq!(before, sum(img), "refused write changed the image");
}

#[test]
fn dirty_volume_refused_then_forced() {
    need("ntfsfix");
    let t = tempfile::tempdir().unwrap();
    let img = mkntfs(t.path(), "d.img", 16, 4096);
    // ntfsfix marks the volume dirty so that Windows runs chkdsk
    run("ntfsfix", &[img.to_str().unwrap()]);
    let o = std::process::Command::new("ntfsinfo")
        .args(["-m", img.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("scheduled for check"),
        "ntfsinfo should see the dirty flag: {err}"
    );
    assert!(open_ro(&img).safety().unwrap().dirty);
    assert_refused(&img, "dirty");
    try_write(&img, true).unwrap();
    // the forced write keeps the dirty flag (chkdsk still runs in Windows)
    assert_eq!(
        run("ntfscat", &["-f", img.to_str().unwrap(), "/new.txt"]),
        b"data"
    );
    assert!(open_ro(&img).safety().unwrap().dirty);
}

fn with_logfile(dir: &Path, flags: u32) -> std::path::PathBuf {
    need("ntfscp");
    let img = mkntfs(dir, &format!("l{flags}.img"), 16, 4096);
    let size = ntfscat(&img, "/$LogFile").len();
    let log = dir.join(format!("log{flags}.bin"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/mkrstr.py");
    run(
        "python3",
        &[
            script,
            &size.to_string(),
            log.to_str().unwrap(),
            &flags.to_string(),
        ],
    );
    run(
        "ntfscp",
        &[
            "-f",
            img.to_str().unwrap(),
            log.to_str().unwrap(),
            "$LogFile",
        ],
    );
    img
}

#[test]
fn unclean_logfile_refused() {
    let t = tempfile::tempdir().unwrap();
    let img = with_logfile(t.path(), 0);
    // ntfs-3g agrees (read-only mount reports the unclean journal)
    let copy = t.path().join("copy.img");
    std::fs::copy(&img, &copy).unwrap();
    let o = try_ntfs3g_mount(&copy);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unclean"),
        "ntfs-3g: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(matches!(
        open_ro(&img).logfile_state().unwrap(),
        ntfs::safety::LogState::Unclean(_)
    ));
    assert_refused(&img, "$LogFile");
}

#[test]
fn clean_logfile_accepted_and_emptied() {
    let t = tempfile::tempdir().unwrap();
    let img = with_logfile(t.path(), 2);
    assert_eq!(
        open_ro(&img).logfile_state().unwrap(),
        ntfs::safety::LogState::Clean
    );
    try_write(&img, false).unwrap();
    // like ntfs-3g, the journal is emptied (all 0xFF) so Windows starts fresh
    assert!(ntfscat(&img, "/$LogFile").iter().all(|b| *b == 0xff));
    assert_eq!(ntfscat(&img, "/new.txt"), b"data");
}

#[test]
fn hibernated_windows_refused() {
    let t = tempfile::tempdir().unwrap();
    let img = mkntfs(t.path(), "h.img", 16, 4096);
    with_mount(&img, "", |m| {
        let mut d = b"hibr".to_vec();
        d.resize(64 * 1024, 7);
        std::fs::write(m.join("hiberfil.sys"), d).unwrap();
    });
    // ntfs-3g refuses a read-write mount too
    let o = try_ntfs3g_mount(&img);
    assert!(
        !o.status.success()
            || String::from_utf8_lossy(&o.stderr)
                .to_lowercase()
                .contains("hibernat"),
        "ntfs-3g should see hibernation"
    );
    assert_eq!(
        open_ro(&img).safety().unwrap().hibernated.as_deref(),
        Some("hibr")
    );
    assert_refused(&img, "Fast Startup");
}

#[test]
fn bitlocker_refused_at_open() {
    let t = tempfile::tempdir().unwrap();
    let img = mkntfs(t.path(), "b.img", 16, 4096);
    let mut b = std::fs::read(&img).unwrap();
    b[3..11].copy_from_slice(b"-FVE-FS-");
    std::fs::write(&img, &b).unwrap();
    let before = sum(&img);
    match try_write(&img, true) {
        Err(ntfs::Error::Refused(m)) => assert!(m.contains("BitLocker")),
        other => panic!("expected BitLocker refusal, got {other:?}"),
    }
    assert_eq!(before, sum(&img));
}
