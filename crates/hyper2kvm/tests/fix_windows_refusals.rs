//! `hyper2kvm fix-windows` refuses guests that must not be edited offline,
//! on phony Windows guests (`crates/phony`): hibernated, Fast Startup, a
//! dirty NTFS volume (the `$Volume` dirty flag set in the image's bytes), a
//! dirty SYSTEM hive whose transaction log is damaged, and a BitLocker
//! system volume. Each run must fail (non-zero exit), say that nothing was
//! written and what to do on the source VM, and leave the image
//! byte-identical (sha256). The counter-case: a dirty hive whose logs are
//! intact is replayed and fixed, and hivex reads the logged change in the
//! result.

mod support;

use phony::{Expected, Options, PartInfo, Version};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{bin, fake_virtio_win, sha};

fn media(dir: &Path) -> PathBuf {
    fake_virtio_win(&dir.join("vw"), "iso-list.txt", &[]).join("cd")
}

fn build(dir: &Path, o: &mut Options) -> (PathBuf, Expected) {
    o.size = phony::min_size(o);
    let img = dir.join("guest.img");
    let e = phony::build(o, &testkit::testdata(""), &img).unwrap();
    (img, e)
}

fn fix(img: &Path, media: &Path) -> Output {
    Command::new(bin())
        .arg("fix-windows")
        .arg(img)
        .arg("--virtio-win")
        .arg(media)
        .output()
        .unwrap()
}

fn system(e: &Expected) -> &PartInfo {
    e.partitions
        .iter()
        .find(|p| p.number == e.system_partition)
        .unwrap()
}

/// Run fix-windows on `img`: it must fail with every one of `want` in its
/// message, write nothing and leave the image byte-identical.
fn refused(img: &Path, media: &Path, want: &[&str]) -> String {
    let before = sha(img);
    let o = fix(img, media);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "not refused: {out}{err}");
    for w in want {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
    assert!(!out.contains("done "), "{out}");
    assert_eq!(sha(img), before, "a refused run changed the image");
    err
}

fn read_at(f: &mut std::fs::File, at: u64, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b
}

fn le16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Set the NTFS volume-dirty flag (`VOLUME_IS_DIRTY`, bit 0 of the flags
/// of `$VOLUME_INFORMATION` in MFT record 3, `$Volume`) of the volume at
/// sector `start`, as Windows leaves it after a crash. Written straight
/// into the image's bytes from the on-disk format (boot sector → MFT →
/// record 3 → attribute 0x70), outside any code under test.
fn set_ntfs_dirty(img: &Path, start: u64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    let base = start * 512;
    let boot = read_at(&mut f, base, 512);
    assert_eq!(&boot[3..11], b"NTFS    ", "not NTFS at sector {start}");
    let cluster = (le16(&boot, 0x0b) * boot[0x0d] as usize) as u64;
    let mft = u64::from_le_bytes(boot[0x30..0x38].try_into().unwrap()) * cluster;
    let rec_size = match boot[0x40] as i8 {
        n if n < 0 => 1u64 << (-n),
        n => n as u64 * cluster,
    };
    let at = base + mft + 3 * rec_size;
    let rec = read_at(&mut f, at, rec_size as usize);
    assert_eq!(&rec[..4], b"FILE", "MFT record 3 at byte {at}");
    let mut off = le16(&rec, 0x14);
    loop {
        let kind = le32(&rec, off);
        assert_ne!(kind, 0xffff_ffff, "$Volume has no $VOLUME_INFORMATION");
        if kind == 0x70 {
            assert_eq!(rec[off + 8], 0, "$VOLUME_INFORMATION is resident");
            let flags = off + le16(&rec, off + 0x14) + 0x0a;
            // The update sequence replaces the last two bytes of each
            // sector: the flags must not be there.
            assert!(flags % 512 < 510, "flags at a fixup position");
            let v = le16(&rec, flags) as u16 | 1;
            f.seek(SeekFrom::Start(at + flags as u64)).unwrap();
            f.write_all(&v.to_le_bytes()).unwrap();
            return;
        }
        off += le32(&rec, off + 4) as usize;
    }
}

/// The first byte of a file's data on the NTFS volume at sector `start`,
/// as sleuthkit maps it (`ifind`, `istat`, `fsstat`).
fn tsk_data_offset(img: &Path, start: u64, path: &str) -> u64 {
    let off = start.to_string();
    let inode = testkit::run(
        Command::new("ifind")
            .args(["-o", &off, "-n", path])
            .arg(img),
    );
    let istat = testkit::run(
        Command::new("istat")
            .args(["-o", &off])
            .arg(img)
            .arg(inode.trim()),
    );
    let mut lines = istat.lines().skip_while(|l| !l.starts_with("Type: $DATA"));
    assert!(
        lines.next().is_some_and(|l| l.contains("Non-Resident")),
        "{istat}"
    );
    let first: u64 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no cluster for {path}: {istat}"));
    let fsstat = testkit::run(Command::new("fsstat").args(["-o", &off]).arg(img));
    let cluster: u64 = fsstat
        .lines()
        .find_map(|l| l.strip_prefix("Cluster Size: "))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{fsstat}"));
    start * 512 + first * cluster
}

#[test]
fn hibernated_windows_7_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win7);
    o.arch = Some(guest::drivers::Arch::Amd64);
    o.hibernated = true;
    let (img, _) = build(d.path(), &mut o);
    refused(
        &img,
        &media(d.path()),
        &[
            "nothing was written",
            "[hibernated]",
            "resume the source VM and shut it down fully",
        ],
    );
}

#[test]
fn fast_startup_windows_10_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win10);
    o.fast_startup = true;
    let (img, _) = build(d.path(), &mut o);
    refused(
        &img,
        &media(d.path()),
        &[
            "nothing was written",
            "[fast-startup]",
            "On the source VM run `shutdown /s /t 0`",
        ],
    );
}

#[test]
fn dirty_ntfs_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win2019);
    let (img, e) = build(d.path(), &mut o);
    let m = media(d.path());
    set_ntfs_dirty(&img, system(&e).start);
    refused(
        &img,
        &m,
        &[
            "nothing was written",
            "[dirty-ntfs]",
            "dirty flag is set",
            "Boot the source VM and shut it down fully",
        ],
    );
}

#[test]
fn dirty_hive_with_a_damaged_log_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win2008R2);
    o.dirty_hive = true;
    let (img, e) = build(d.path(), &mut o);
    let m = media(d.path());
    // Damage the first log entry (`HvLE` at 512 in the log): its hash no
    // longer matches, so the change it holds cannot be replayed.
    let log = format!("/{}.LOG1", e.system_hive);
    let at = tsk_data_offset(&img, system(&e).start, &log);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&img)
        .unwrap();
    assert_eq!(read_at(&mut f, at + 512, 4), b"HvLE", "{log} at byte {at}");
    f.seek(SeekFrom::Start(at + 512 + 0x40)).unwrap();
    f.write_all(&[0x55; 16]).unwrap();
    drop(f);
    refused(
        &img,
        &m,
        &[
            "nothing was written",
            "[dirty-hive]",
            "cannot be replayed",
            "Boot the source VM and shut it down cleanly",
        ],
    );
}

#[test]
fn dirty_hive_with_intact_logs_is_replayed_then_fixed() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win2008R2);
    o.dirty_hive = true;
    let (img, e) = build(d.path(), &mut o);
    let o = fix(&img, &media(d.path()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = system(&e);
    let part = testkit::winimg::extract(&img, p.start, p.sectors, &d.path().join("sys.part"));
    let hive = d.path().join("SYSTEM");
    std::fs::write(&hive, testkit::winimg::ntfscat(&part, &e.system_hive)).unwrap();
    let change = e.logged_change.unwrap();
    assert_eq!(
        testkit::winimg::hivexget(&hive, &format!("\\{}", change.key), &change.name),
        change.after,
        "the logged change is in the fixed hive"
    );
    assert_eq!(
        testkit::winimg::hivexget(&hive, "\\ControlSet001\\Services\\viostor", "Start"),
        "0"
    );
}

#[test]
fn bitlocker_system_volume_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win10);
    let (img, e) = build(d.path(), &mut o);
    let m = media(d.path());
    // A BitLocker volume's boot sector carries `-FVE-FS-` where NTFS has
    // its OEM id: Windows cannot be read on it.
    let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.seek(SeekFrom::Start(system(&e).start * 512 + 3)).unwrap();
    f.write_all(b"-FVE-FS-").unwrap();
    drop(f);
    // The message names the encrypted volume and what to do on the source.
    refused(
        &img,
        &m,
        &[
            "no Windows install found",
            &format!(
                "disk0 partition {} is BitLocker-encrypted",
                e.system_partition
            ),
            "manage-bde -off",
        ],
    );
}

/// A BitLocker *data* volume does not stop the fix (the system volume is
/// readable), but fix-windows says it will not unlock by itself on the new
/// VM.
#[test]
fn bitlocker_data_volume_is_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Options::new(Version::Win10);
    o.bitlocker = true;
    let (img, e) = build(d.path(), &mut o);
    let m = media(d.path());
    let o = fix(&img, &m);
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{err}");
    let data = e
        .partitions
        .iter()
        .find(|p| p.fs == "bitlocker")
        .expect("phony's BitLocker data volume");
    assert!(
        err.contains(&format!(
            "disk0 partition {} is BitLocker-encrypted",
            data.number
        )) && err.contains("recovery key"),
        "{err}"
    );
}
