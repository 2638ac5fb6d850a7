//! NTFS and FAT engine over the block layer: read and write offline guest volumes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
