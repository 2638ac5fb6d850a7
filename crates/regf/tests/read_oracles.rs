//! Every key and value we read equals what hivexregedit (libhivex) reads,
//! byte for byte, on real hives; regipy agrees on the tree shape.
mod support;

use regf::{Hive, ReplayPolicy};
use support::*;

fn open_any(p: &std::path::Path) -> Hive {
    // The Windows 10 SYSTEM sample is dirty with no logs: the explicit
    // choice to take the primary as it is.
    regf::open_file_with_logs(p, ReplayPolicy::IgnoreLogs)
        .unwrap()
        .0
}

#[test]
fn bcd_matches_hivex_and_regipy() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "BCD");
    let h = Hive::from_file(&p).unwrap();
    assert_same(&listing(&h), &hivex_listing(&p), "BCD vs hivexregedit");
    assert_same_as_regipy(&h, &p, "BCD vs regipy");
    assert_clean(&h, "BCD");
    assert_eq!(h.current_control_set().unwrap(), None);
}

#[test]
fn win7_system_matches_hivex() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win7");
    let h = Hive::from_file(&p).unwrap();
    assert_same(
        &listing(&h),
        &hivex_listing(&p),
        "win7 SYSTEM vs hivexregedit",
    );
    assert_clean(&h, "win7");
    assert_eq!(
        h.current_control_set().unwrap().as_deref(),
        Some("ControlSet001")
    );
    // Case-insensitive path lookups.
    let cdd = h
        .key("controlset001\\CONTROL\\CriticalDeviceDatabase")
        .unwrap();
    assert!(!cdd.subkeys().unwrap().is_empty());
    let k = h.key("CONTROLSET001\\services\\DISK").unwrap();
    assert_eq!(k.name().unwrap(), "Disk");
}

#[test]
fn win10_system_matches_hivex() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win10-1709");
    // Dirty without logs: the strict default refuses with a clear error.
    let e = Hive::from_file(&p).unwrap_err();
    assert_eq!(e.kind, regf::ErrorKind::Dirty, "{e}");
    let e = regf::open_file_with_logs(&p, ReplayPolicy::Strict).unwrap_err();
    assert!(e.to_string().contains("IgnoreLogs"), "{e}");
    let h = open_any(&p);
    assert_same(
        &listing(&h),
        &hivex_listing(&p),
        "win10 SYSTEM vs hivexregedit",
    );
    assert_clean(&h, "win10");
    assert!(h
        .get_key("DriverDatabase\\DriverPackages")
        .unwrap()
        .is_some());
}

/// regipy on the two big SYSTEM hives takes minutes of CPU (pure Python), so
/// it is opt-in: `cargo test -p regf --test read_oracles -- --ignored`.
#[test]
#[ignore = "minutes of CPU in regipy; run with --ignored"]
fn big_system_hives_match_regipy() {
    let d = tempfile::tempdir().unwrap();
    for name in ["SYSTEM-win7", "SYSTEM-win10-1709"] {
        let p = unxz(d.path(), name);
        let h = open_any(&p);
        assert_same_as_regipy(&h, &p, name);
    }
}
