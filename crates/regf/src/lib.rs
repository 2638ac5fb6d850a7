//! Windows registry hive engine: read, edit in place, create, transaction-log replay, .reg import/export.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
