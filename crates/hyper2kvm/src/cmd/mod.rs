//! One module per subcommand; each exposes `Args` and `run`.

pub mod convert;
pub mod driver_disk;
pub mod fix_geometry;
pub mod fix_windows;
pub mod fs;
pub mod hive;
pub mod info;
pub mod inspect;
pub mod migrate;
pub mod validate;
