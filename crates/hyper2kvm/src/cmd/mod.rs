//! One module per subcommand; each exposes `Args` and `run`.

pub mod completions;
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

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `p` made absolute against the current directory, once, at the CLI's
/// edge (links are not resolved: the open gate does that for names found
/// inside images). Every path handed to the library is absolute, so what
/// it writes (libvirt XML, scripts, QEMU's working directory) holds.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
}

/// Open a disk image under `opts`. The block layer's errors name the file
/// already; context is added only when one does not.
pub fn open_image(p: &Path, opts: vdisk::OpenOptions) -> Result<Box<dyn vdisk::Disk>> {
    vdisk::open_opts(p, opts).map_err(|e| {
        if e.path.is_some() {
            anyhow::Error::new(e)
        } else {
            anyhow::Error::new(e).context(format!("cannot open {}", p.display()))
        }
    })
}
