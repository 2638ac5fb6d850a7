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
