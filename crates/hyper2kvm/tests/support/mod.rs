//! Helpers shared by the CLI integration tests: the binary under test, the
//! oracle tools (which must be installed: a missing one fails the test) and
//! checksums of source directories.
#![allow(dead_code, unused_imports)]

use std::path::Path;

/// The `hyper2kvm` binary built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hyper2kvm")
}

pub use testkit::{dir_sums, need, run, tool};

/// SHA-256 of a file.
pub fn sha(p: &Path) -> Vec<u8> {
    testkit::sha256(p)
}

/// A fake virtio-win tree under `dir`: every path of `list` (a listing in
/// the shared testdata's `virtio-win-layout/`, e.g. `iso-list.txt`, whose
/// ISO root is `cd/`) plus `extra`, INF files from the shared virtio-win
/// INF templates. Returns `dir`.
pub fn fake_virtio_win(dir: &Path, list: &str, extra: &[&str]) -> std::path::PathBuf {
    guest::drivers::fixture::build_fake_virtio_win(
        &testkit::testdata("virtio-win-layout").join(list),
        &testkit::testdata("virtio-win-inx"),
        dir,
        extra,
    )
    .unwrap();
    dir.to_path_buf()
}
