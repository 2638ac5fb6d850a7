//! Guest inspection: partition tables, boot sectors, CHS geometry, OS detection and offline fixes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
