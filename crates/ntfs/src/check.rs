//! Consistency checker.
