//! The executor on a dirty hive: a real NTUSER.DAT whose transaction
//! logs hold changes not in the primary file sits on an NTFS volume with
//! its `.LOG1`/`.LOG2`; a plan edits it. The written hive must hold the
//! logged changes (as regipy recovers them, listed by hivexregedit) plus
//! exactly the planned edit, its logs must be empty, and a second run
//! must change nothing.

use guest::apply::{execute, host_files};
use guest::plan::{Action, HiveRef, PlannedAction, RegData, VolumeRef};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use testkit::{need, s, sparse_file, testdata};

fn run(prog: &str, args: &[&str]) -> Vec<u8> {
    need(prog);
    let o = Command::new(prog).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn unxz(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let bytes = run(
        "xz",
        &["-dc", s(&testdata("hives").join(format!("{name}.xz")))],
    );
    std::fs::write(&out, bytes).unwrap();
    out
}

/// hivexregedit's export as a set of lines.
fn export(hive: &Path) -> BTreeSet<String> {
    let out = run("hivexregedit", &["--export", s(hive), "\\"]);
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// regipy's recovery of `primary` from `log` (its base block checksum
/// fixed: regipy rewrites the sequence numbers without it).
fn regipy_recover(primary: &Path, log: &Path, out: &Path) {
    need("python3");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../regf/tests/support/regipy_dump.py"
    );
    run("python3", &[script, s(primary), s(log), s(out)]);
    let mut b = std::fs::read(out).unwrap();
    let c = regf::checksum(&b);
    b[508..512].copy_from_slice(&c.to_le_bytes());
    std::fs::write(out, b).unwrap();
}

#[test]
fn a_dirty_hive_is_replayed_edited_committed_once_and_its_logs_reset() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let primary = unxz(d, "dirty-NTUSER.DAT");
    let log1 = unxz(d, "dirty-NTUSER.DAT.LOG1");
    let log2 = unxz(d, "dirty-NTUSER.DAT.LOG2");
    // A whole-volume NTFS image holding the hive and its logs.
    let vol_img = d.join("vol.img");
    sparse_file(&vol_img, 32 << 20);
    run("mkntfs", &["-F", "-Q", "-q", s(&vol_img)]);
    {
        let mut fs = guest::fs::open_image_rw(&vol_img, None, false).unwrap();
        fs.mkdir_p("Users/u").unwrap();
        for (p, name) in [
            (&primary, "NTUSER.DAT"),
            (&log1, "ntuser.dat.LOG1"),
            (&log2, "ntuser.dat.LOG2"),
        ] {
            fs.write(&format!("Users/u/{name}"), &std::fs::read(p).unwrap())
                .unwrap();
        }
        fs.flush().unwrap();
    }
    let hive = HiveRef {
        volume: VolumeRef {
            disk: 0,
            partition: None,
        },
        path: "Users/u/NTUSER.DAT".into(),
    };
    let plan = vec![
        PlannedAction::new(
            "test",
            "a value only the plan sets",
            Action::SetValue {
                hive: hive.clone(),
                key: r"Software\h2k-test".into(),
                name: "planned".into(),
                data: RegData::Sz("yes".into()),
            },
        ),
        PlannedAction::new(
            "test",
            "the same key again: no second commit",
            Action::CreateKey {
                hive: hive.clone(),
                key: r"Software\h2k-test".into(),
            },
        ),
    ];
    let open = || -> Vec<Arc<dyn vdisk::DiskWrite>> {
        vec![Arc::new(vdisk::raw::RawDiskMut::open(&vol_img).unwrap())]
    };
    let rep = execute(&plan, &open(), &host_files).unwrap();
    assert_eq!(rep.lines.len(), 2, "{:?}", rep.lines);
    assert!(
        rep.lines[0].contains(r"set Software\h2k-test\planned"),
        "{:?}",
        rep.lines
    );
    assert!(rep.lines[1].contains("already so"), "{:?}", rep.lines);
    assert!(
        rep.checks
            .iter()
            .any(|c| c.contains("after replaying its logs")),
        "{:?}",
        rep.checks
    );

    // Read back with ntfs-3g; compare with regipy's recovery.
    let ours = d.join("ours.dat");
    std::fs::write(
        &ours,
        run("ntfscat", &["-f", s(&vol_img), "/Users/u/NTUSER.DAT"]),
    )
    .unwrap();
    let theirs = d.join("theirs.dat");
    regipy_recover(&primary, &log1, &theirs);
    let (a, b) = (export(&ours), export(&theirs));
    let only_ours: Vec<&String> = a.difference(&b).collect();
    let only_theirs: Vec<&String> = b.difference(&a).collect();
    assert!(
        only_theirs.is_empty(),
        "logged changes lost: {only_theirs:?}"
    );
    // hivexregedit writes REG_SZ as hex(1): UTF-16LE "yes" and its NUL.
    assert_eq!(
        only_ours,
        [
            r#""planned"=hex(1):79,00,65,00,73,00,00,00"#,
            r"[\Software\h2k-test]"
        ]
    );
    // The primary alone (without the logs) is not what we wrote.
    let raw = export(&primary);
    assert_ne!(raw, b, "the logs hold nothing: the test proves nothing");
    for l in ["ntuser.dat.LOG1", "ntuser.dat.LOG2"] {
        let bytes = run("ntfscat", &["-f", s(&vol_img), &format!("/Users/u/{l}")]);
        assert!(bytes.is_empty(), "{l} not reset");
    }
    run("ntfsfix", &["-n", s(&vol_img)]);

    // Again: nothing to do, nothing written.
    let again = execute(&plan, &open(), &host_files).unwrap();
    assert_eq!(again.changed, 0, "{:?}", again.lines);
    assert!(
        again.checks.iter().any(|c| c.contains("unchanged")),
        "{:?}",
        again.checks
    );
    // The hive was not rewritten.
    assert_eq!(
        run("ntfscat", &["-f", s(&vol_img), "/Users/u/NTUSER.DAT"]),
        std::fs::read(&ours).unwrap()
    );
}
