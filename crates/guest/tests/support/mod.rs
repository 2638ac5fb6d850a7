//! Helpers shared by guest's integration tests.
#![allow(dead_code)]

pub mod hives;
