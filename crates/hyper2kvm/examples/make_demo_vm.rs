//! Generates the synthetic VMware VM used by `scripts/demo.sh` and the
//! end-to-end tests: a VMX (LSI Logic SCSI disk, an e1000 NIC with a static
//! MAC, Windows XP guest type) and a split sparse VMDK (descriptor +
//! `-s001.vmdk` extent, made by qemu-img) whose disk reproduces Launchpad
//! bug 586175: the boot sector's BPB says 255 heads while SeaBIOS presents
//! 16, so its CHS read fails unless the geometry is fixed. The "guest" is a
//! real MBR boot program (syslinux) plus a small probe boot sector that
//! prints `BOOT OK` or `A disk read error occurred`; there is no Windows on
//! it.
//!
//! Usage: `cargo run --example make_demo_vm -- DIR [seed]`, seed one of
//! `255-heads` (default), `hidden-sectors`.

use guest::testdisk::BootDisk;
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: make_demo_vm DIR [seed]")?);
    let seed = args.next().unwrap_or_else(|| "255-heads".into());
    let disk = match seed.as_str() {
        "255-heads" => BootDisk::vmware_255_heads(),
        "hidden-sectors" => BootDisk::hidden_mismatch(),
        other => return Err(format!("unknown seed {other}").into()),
    };
    std::fs::create_dir_all(&dir)?;
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
        return Err("qemu-img convert failed".into());
    }
    std::fs::remove_file(&raw)?;
    std::fs::write(
        dir.join("demo-xp.vmx"),
        r#".encoding = "UTF-8"
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
"#,
    )?;
    println!("{}", dir.join("demo-xp.vmx").display());
    Ok(())
}
