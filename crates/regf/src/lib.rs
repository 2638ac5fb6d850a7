//! Windows registry hive engine: read, edit in place, create, transaction-log
//! replay, `.reg` import/export. Works on bytes; no disk layer needed.
//!
//! - Open: [`Hive::open`] (clean primary bytes), [`Hive::from_file`],
//!   [`Hive::open_with_logs`] / [`open_file_with_logs`] (replays `.LOG`,
//!   `.LOG1`, `.LOG2` under a [`ReplayPolicy`]; [`ReplayReport::rule`] says
//!   which [`ReplayRule`] applied, [`Refusal`] why logs were not usable),
//!   [`Hive::new_empty`].
//! - Read: [`Hive::root`], [`Hive::key`] (case-insensitive `A\B\C` paths),
//!   [`Key::subkeys`], [`Key::values`], [`ValueRef::data`] ([`Value`]) and
//!   [`ValueRef::raw`], [`Hive::current_control_set`], [`Hive::walk`].
//! - Edit: [`Hive::create_key`], [`Hive::delete_key`], [`Hive::set_value`],
//!   [`Hive::set_value_raw`], [`Hive::delete_value`]; cells are edited in
//!   place (free cells reused, split and coalesced; new bins appended).
//! - Write: [`Hive::commit`] (bytes) / [`Hive::write_to`] (temp + rename);
//!   then truncate the files from [`log_files`] when writing into a guest.
//! - Check: [`Hive::check`] / [`check_bytes`] list every broken invariant.
//! - Text: [`Hive::export_reg`], [`Hive::import_reg`], [`Hive::export_json`].
//!
//! ```no_run
//! # fn main() -> regf::Result<()> {
//! let mut hive = regf::Hive::from_file("SYSTEM")?;
//! let ccs = hive.current_control_set()?.unwrap_or("ControlSet001".into());
//! let svc = format!("{ccs}\\Services\\viostor");
//! hive.create_key(&svc)?;
//! hive.set_value(&svc, "Start", &regf::Value::Dword(0))?;
//! assert!(hive.check().is_empty());
//! hive.write_to("SYSTEM")?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod base;
mod check;
mod edit;
mod error;
mod hive;
mod log;
mod marvin;
mod names;
mod read;
mod regtext;
mod security;
mod value;

pub use base::{checksum, BaseBlock};
pub use check::{check_bytes, Problem, Severity};
pub use error::{Error, ErrorKind, Result};
pub use hive::{write_atomic, Hive};
pub use log::{
    log_files, open_file_with_logs, reset_logs, LogFile, Refusal, ReplayPolicy, ReplayReport,
    ReplayRule,
};
pub use marvin::{marvin32, LOG_SEED};
pub use read::{Key, ValueRef, BIG_DATA_SEGMENT};
pub use regtext::{decode_reg_bytes, ImportStats};
pub use security::default_descriptor;
pub use value::*;
