//! hyper2kvm's pipeline pieces that sit above the layer crates: migration
//! orchestration and validation by booting. The CLI (`main.rs`, `cmd/`) is a
//! thin front end over this library.
#![forbid(unsafe_code)]

pub mod cleanup;
pub mod diskconv;
pub mod driverdisk;
pub mod errors;
pub mod fixtures;
pub mod linuxfix;
pub mod migrate;
pub mod validate;
pub mod winfix;
