//! Guest inspection: partition tables, boot sectors, CHS geometry, the
//! guest filesystem facade, OS detection and offline fixes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod audit;
pub mod bpb;
pub mod drivers;
pub mod fixgeo;
pub mod fs;
pub mod geometry;
pub mod inspect;
pub mod linux;
pub mod partition;
pub mod plan;
pub mod testdisk;
pub mod windows;
