//! Windows guests: inspection of an install found on the VM's disks, and
//! the offline fixes planned from it.

pub mod storage;

use crate::inspect::{DiskInfo, WindowsInstall};
use vdisk::Disk;

/// Find and inspect every Windows install on the VM's disks (`disks[i]`
/// is described by `infos[i]`). Problems that do not stop inspection go
/// to `warnings`.
pub fn inspect(
    disks: &[&dyn Disk],
    infos: &[DiskInfo],
    warnings: &mut Vec<String>,
) -> Vec<WindowsInstall> {
    let _ = (disks, infos, warnings);
    vec![]
}
