//! Hive helpers shared by the Windows fix tests: the real corpus hives
//! decompressed and written clean, plan actions applied with the executor's
//! registry core, and `hivexregedit --export` read into a map for exact
//! before/after diffs.

use guest::apply::apply_registry;
use guest::plan::{HiveRef, PlannedAction};
use regf::Hive;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::testdata;

pub use testkit::regexport::{export, val, Export};

pub fn unxz(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name.trim_end_matches(".xz"));
    let bytes = testkit::run_bytes(
        Command::new("xz")
            .arg("-dc")
            .arg(testdata(&format!("hives/{name}"))),
    );
    std::fs::write(&out, bytes).unwrap();
    // The win10 hive is dirty without its logs: take the primary as it is
    // and write it clean, as the executor does after replaying logs.
    let (mut h, _) = regf::open_file_with_logs(&out, regf::ReplayPolicy::IgnoreLogs).unwrap();
    h.write_to(&out).unwrap();
    out
}

/// Apply the plan's actions on `hive_ref` to `path`, write to `out`;
/// returns the number of changes.
pub fn apply(path: &Path, hive_ref: &HiveRef, plan: &[PlannedAction], out: &Path) -> usize {
    let mut h = Hive::from_file(path).unwrap();
    let mut n = 0;
    for a in plan {
        if a.action.hive() == Some(hive_ref) && apply_registry(&mut h, &a.action).unwrap().is_some()
        {
            n += 1;
        }
    }
    h.write_to(out).unwrap();
    n
}
