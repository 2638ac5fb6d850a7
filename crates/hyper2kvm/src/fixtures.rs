//! Synthetic source VMs built from code, for the demo and the end-to-end
//! tests. Nothing here pretends to be a real guest OS: the disk holds a real
//! MBR boot program (syslinux) and a probe boot sector.

use guest::testdisk::BootDisk;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which geometry seed the demo disk reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// Launchpad 586175: BPB says 255 heads, SeaBIOS presents 16.
    Heads255,
    /// Launchpad 586175's 0x1C workaround: hidden sectors != partition start.
    HiddenSectors,
}

/// Write a VMware-style VM into `dir`: `demo-xp.vmx` (LSI Logic SCSI disk,
/// an e1000 NIC with a static MAC, Windows XP guest type) and a split
/// sparse VMDK (`demo-xp.vmdk` descriptor + `demo-xp-s001.vmdk`, made by
/// qemu-img) whose disk reproduces `seed`. Returns the VMX path.
pub fn make_demo_vm(dir: &Path, seed: Seed) -> std::io::Result<PathBuf> {
    let disk = match seed {
        Seed::Heads255 => BootDisk::vmware_255_heads(),
        Seed::HiddenSectors => BootDisk::hidden_mismatch(),
    };
    std::fs::create_dir_all(dir)?;
    let raw = dir.join("demo-xp.raw");
    disk.write_raw(&raw)?;
    let vmdk = dir.join("demo-xp.vmdk");
    let st = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "vmdk", "-o"])
        .arg("subformat=twoGbMaxExtentSparse,adapter_type=lsilogic")
        .arg(&raw)
        .arg(&vmdk)
        .status()?;
    if !st.success() {
        return Err(std::io::Error::other("qemu-img convert failed"));
    }
    std::fs::remove_file(&raw)?;
    let vmx = dir.join("demo-xp.vmx");
    std::fs::write(&vmx, DEMO_VMX)?;
    Ok(vmx)
}

/// The demo VM's VMX.
pub const DEMO_VMX: &str = r#".encoding = "UTF-8"
config.version = "8"
virtualHW.version = "11"
displayName = "demo-xp"
guestOS = "winxppro"
memsize = "256"
numvcpus = "1"
uuid.bios = "56 4d 9a 1b 2c 3d 4e 5f-60 71 82 93 a4 b5 c6 d7"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "demo-xp.vmdk"
scsi0:0.deviceType = "scsi-hardDisk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "e1000"
ethernet0.addressType = "static"
ethernet0.address = "00:50:56:3f:12:34"
ethernet0.networkName = "VM Network"
"#;
