//! VM-wide inspection: what is on all of a VM's disks together, and the
//! guest installs found there. The OS declared by the VM metadata is only a
//! hint: what is on the disks wins.
//!
//! These are the types fixers plan from (`crate::plan`). The Windows facts
//! are filled by `crate::windows` (inspection of the SYSTEM/SOFTWARE hives
//! over the block layer), the Linux facts by `crate::linux`.

use crate::drivers::Arch;
use crate::plan::{HiveRef, VolumeRef};
use serde::Serialize;

/// One filesystem found on a disk.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    /// Where.
    pub volume: VolumeRef,
    /// Byte offset on the disk.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Partition type name (`NTFS/exFAT`, `EFI System`, `Linux`, …).
    pub type_name: String,
    /// Filesystem recognised at its start (`ntfs`, `fat`, `bitlocker`,
    /// `ext`, `xfs`, `btrfs`, `lvm`, `unknown`).
    pub fs: String,
    /// Whether the partition is marked active/bootable (MBR) or is an ESP.
    pub boot_flag: bool,
}

/// One disk of the VM as inspected.
#[derive(Debug, Clone, Serialize)]
pub struct DiskInfo {
    /// Disk index in the VM.
    pub index: usize,
    /// Size in bytes.
    pub size: u64,
    /// `mbr`, `gpt` or `none`.
    pub table: String,
    /// MBR disk signature (NT's `MountedDevices` names volumes by it).
    pub mbr_signature: Option<u32>,
    /// Sector 0 ends in 55 AA and holds boot code.
    pub boot_code: bool,
    /// Filesystems found.
    pub volumes: Vec<VolumeInfo>,
    /// Problems reading the disk (a corrupt table is a warning, not an
    /// error).
    pub warnings: Vec<String>,
}

/// Firmware a guest was installed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Legacy BIOS (MBR boot).
    Bios,
    /// UEFI (GPT + ESP).
    Uefi,
}

/// The `Select` key of a SYSTEM hive: the control sets Windows may boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ControlSets {
    /// `Select\Current`.
    pub current: u32,
    /// `Select\Default`.
    pub default: u32,
    /// `Select\LastKnownGood` (0 when absent).
    pub last_known_good: u32,
    /// Every control set key name referenced by `Select` that exists
    /// (`ControlSet001`, …), without duplicates, current first. Fixes
    /// write every one of these.
    pub in_use: Vec<String>,
}

/// A driver service's state in the current control set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    /// Service key name (`viostor`, `LSI_SAS`, `storahci`, …).
    pub name: String,
    /// `Start` (0 boot, 1 system, 2 auto, 3 demand, 4 disabled).
    pub start: Option<u32>,
    /// `StartOverride` values (name → data), Windows 8+.
    pub start_override: Vec<(String, u32)>,
    /// `Group`.
    pub group: Option<String>,
    /// `ImagePath`.
    pub image_path: Option<String>,
    /// The driver file exists on the system volume.
    pub file_present: bool,
}

/// A network adapter's configuration as Windows recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WindowsNic {
    /// Interface GUID (`{…}`, the `Tcpip\Parameters\Interfaces` key).
    pub guid: String,
    /// Connection name ("Ethernet0", "Local Area Connection").
    pub connection_name: Option<String>,
    /// Driver service (`vmxnet3ndis6`, `e1iexpress`, `netvsc`, …).
    pub driver: Option<String>,
    /// MAC address as `00:50:56:01:02:03` where recorded.
    pub mac: Option<String>,
    /// DHCP enabled.
    pub dhcp: bool,
    /// Static addresses with their masks (`192.0.2.10/255.255.255.0`).
    pub addresses: Vec<String>,
    /// Default gateways.
    pub gateways: Vec<String>,
    /// DNS servers.
    pub dns: Vec<String>,
}

/// Another hypervisor's guest component found installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignTool {
    /// `vmware`, `hyperv`, `virtualbox`, `parallels`, `xen`.
    pub vendor: String,
    /// Kind: `service`, `filter`, `uninstall`, `network-provider`,
    /// `winsock-provider` (a Winsock protocol catalog entry; name: its
    /// protocol name).
    pub kind: String,
    /// Service name, filter name, or uninstall display name.
    pub name: String,
    /// Where it was found (key path, with the list it sits in for filters).
    pub location: String,
    /// For `uninstall`: the `UninstallString` / `QuietUninstallString`;
    /// for a Linux `tarball`: its own uninstaller
    /// (`/usr/bin/vmware-uninstall-tools.pl`,
    /// `/opt/VBoxGuestAdditions-*/uninstall.sh`).
    pub uninstall: Option<String>,
}

/// Something that blocks or endangers an offline fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// Stable id: `hibernated`, `fast-startup`, `bitlocker`, `dirty-hive`,
    /// `pending-rename`, `pending-reboot`, `device-install-policy`,
    /// `san-policy`, `dirty-ntfs`.
    pub id: String,
    /// Whether fixing must be refused (true) or only warned about.
    pub refuse: bool,
    /// One line for the admin: what and what to do on the source VM.
    pub message: String,
}

/// A Windows installation found on the VM's disks.
#[derive(Debug, Clone, Serialize)]
pub struct WindowsInstall {
    /// The system volume (holds `\Windows`).
    pub system: VolumeRef,
    /// System root on that volume, `/`-separated, no leading slash
    /// (`Windows`, `WINNT`).
    pub systemroot: String,
    /// The boot volume (System Reserved, or the ESP), when separate.
    pub boot_volume: Option<VolumeRef>,
    /// BCD stores found (`Boot/BCD` on the boot volume,
    /// `EFI/Microsoft/Boot/BCD` on the ESP).
    pub bcd: Vec<HiveRef>,
    /// Firmware it was installed for.
    pub firmware: Firmware,
    /// The SYSTEM hive.
    pub system_hive: HiveRef,
    /// The SOFTWARE hive.
    pub software_hive: HiveRef,
    /// `ProductName`.
    pub product_name: String,
    /// OS id: `winxp`, `win2k3`, `winvista`, `win7`, `win8`, `win8.1`,
    /// `win10`, `win11`, `win2k8`, `win2k8r2`, `win2k12`, `win2k12r2`,
    /// `win2k16`, `win2k19`, `win2k22`, `win2k25`.
    pub os_id: String,
    /// NT major version.
    pub major: u32,
    /// NT minor version.
    pub minor: u32,
    /// `CurrentBuildNumber`.
    pub build: u32,
    /// `InstallationType` (`Client`, `Server`, `Server Core`); absent
    /// before Vista.
    pub installation_type: Option<String>,
    /// `EditionID`.
    pub edition_id: Option<String>,
    /// From the PE header of `ntoskrnl.exe`.
    pub arch: Arch,
    /// `ComputerName`.
    pub hostname: Option<String>,
    /// Control sets.
    pub control_sets: ControlSets,
    /// Boot storage drivers present (atapi, intelide, pciide, msahci,
    /// storahci, LSI_SAS, LSI_SCSI, LSI_SAS2, LSI_SAS3, pvscsi, vmscsi,
    /// storvsc, stornvme, viostor, vioscsi, …).
    pub storage_drivers: Vec<ServiceState>,
    /// Drivers among those that serve the boot disk on the source.
    pub boot_storage: Vec<String>,
    /// viostor or vioscsi is installed at Start=0 and bound (CDD or
    /// DriverDatabase) already.
    pub virtio_ready: bool,
    /// Network adapters.
    pub nics: Vec<WindowsNic>,
    /// Other hypervisors' components.
    pub foreign_tools: Vec<ForeignTool>,
    /// Blockers and risks.
    pub blockers: Vec<Blocker>,
    /// `Control\Session Manager\Power\HiberbootEnabled` and the like that
    /// the fixers restore later: raw facts (`SanPolicy`,
    /// `RealTimeIsUniversal`, …) by name.
    pub facts: Vec<(String, String)>,
}

/// A Linux installation found on the VM's disks (filled by
/// `crate::linux::inspect` where the filesystems can be read: ext2/3/4,
/// XFS and btrfs, on partitions or LVM2 linear volumes).
///
/// Paths (`kernel`, `initrd`, `path`) are absolute in the guest's root
/// namespace (`/boot/vmlinuz-6.1.0-18-amd64`), whichever volume holds
/// them; [`crate::linux::read_file`] reads them back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinuxInstall {
    /// The root filesystem (for a root on LVM: the physical volume's
    /// partition, and [`LinuxInstall::root_lv`] names the volume).
    pub root: Option<VolumeRef>,
    /// `VG/LV` when the root is an LVM2 logical volume.
    pub root_lv: Option<String>,
    /// The btrfs subvolume holding the root when it is not the default
    /// one (`@`: fstab mounts it with `subvol=@`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_subvol: Option<String>,
    /// Filesystem of the root (`ext4`, `xfs`, `btrfs`).
    pub root_fs: Option<String>,
    /// `/boot`, when separate (for a `/boot` on LVM: the physical
    /// volume's partition, and [`LinuxInstall::boot_lv`] names the volume).
    pub boot: Option<VolumeRef>,
    /// `VG/LV` when a separate `/boot` is an LVM2 logical volume.
    pub boot_lv: Option<String>,
    /// Separate volumes the guest's fstab mounts at or below `/boot`
    /// (`/boot`, `/boot/efi`), shortest path first: what a bootstrap boot
    /// mounts before it touches the kernel, initrd or boot loader config.
    pub boot_mounts: Vec<LinuxMount>,
    /// Firmware the install boots with (an ESP holding its loader: UEFI).
    pub firmware: Option<Firmware>,
    /// `ID` from os-release.
    pub distro: Option<String>,
    /// `VERSION_ID` from os-release.
    pub version: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// `grub2`, `grub2-bls`, `grub-legacy`, `systemd-boot`, or `unknown`.
    pub boot_loader: Option<String>,
    /// Path of the boot loader config read (`/boot/grub/grub.cfg`).
    pub boot_config: Option<String>,
    /// The entry the boot loader starts by default.
    pub default_boot: Option<LinuxBoot>,
    /// Other installed kernels (releases), newest first.
    pub other_kernels: Vec<String>,
    /// The tool that builds its initramfs: `initramfs-tools`, `dracut`,
    /// `mkinitrd` (SUSE ≤ 12 wrapper), or `None` when not found.
    pub initramfs_tool: Option<String>,
    /// What the default initrd (and kernel config) drive.
    pub virtio: Option<LinuxVirtio>,
    /// Bus-specific device names in fstab, crypttab and the boot loader
    /// config (`/dev/sda1`, `/dev/hdb2`, `/dev/disk/by-path/...`).
    pub device_names: Vec<LinuxDeviceName>,
    /// Files to rewrite so they name devices by `UUID=` (fstab, crypttab,
    /// boot loader config), with the contents read at inspection.
    pub edits: Vec<LinuxEdit>,
    /// Network configurations bound to an interface name.
    pub interfaces: Vec<LinuxInterface>,
    /// Other hypervisors' tools installed (`vendor` `vmware`, `hyperv`,
    /// `virtualbox`, `xen`; `kind` `package`, `service`, `tarball`).
    pub foreign_tools: Vec<ForeignTool>,
    /// SELinux mode from `/etc/selinux/config` (`enforcing`, …).
    pub selinux: Option<String>,
    /// `/etc/lvm/devices/system.devices` exists (LVM filters by device
    /// ID: it stops activating when the disks change).
    pub lvm_devices_file: bool,
    /// Other facts as found (name, value), for the report.
    pub facts: Vec<(String, String)>,
}

/// A boot entry of a Linux install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxBoot {
    /// Entry title, when the config has one.
    pub title: Option<String>,
    /// Kernel image path in the guest root (`/boot/vmlinuz-6.1.0-18-amd64`).
    pub kernel: String,
    /// Initrd path(s) in the guest root, in load order (microcode first).
    pub initrd: Vec<String>,
    /// Kernel command line (without `BOOT_IMAGE=` additions of our own).
    pub cmdline: String,
    /// Kernel release (`6.1.0-18-amd64`), from the image header or name.
    pub release: Option<String>,
}

/// Whether the default kernel + initrd can reach a root on VirtIO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxVirtio {
    /// virtio_blk is in the initrd or built into the kernel (with virtio_pci).
    pub blk: bool,
    /// virtio_scsi (+ sd_mod) likewise.
    pub scsi: bool,
    /// Storage drivers the initrd carries (module names: `ahci`,
    /// `ata_piix`, `vmw_pvscsi`, `mptsas`, `nvme`, …), built-ins included.
    pub storage_drivers: Vec<String>,
    /// The kernel config was found (`/boot/config-RELEASE`).
    pub kernel_config: bool,
}

/// A bus-specific device name found in a guest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinuxDeviceName {
    /// File (`/etc/fstab`).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The name (`/dev/sda1`).
    pub device: String,
    /// `UUID=...` it maps to, when resolved.
    pub replacement: Option<String>,
}

/// A volume mounted by the guest's fstab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinuxMount {
    /// Mount point (`/boot`).
    pub path: String,
    /// Filesystem type as `mount -t` takes it (`xfs`, `ext4`, `vfat`).
    pub fs: String,
    /// Its UUID (FAT: `XXXX-XXXX`).
    pub uuid: String,
}

/// A file rewrite planned by inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinuxEdit {
    /// Path in the guest root.
    pub path: String,
    /// Contents read at inspection (the rewrite refuses if they changed).
    pub old: String,
    /// New contents.
    pub new: String,
    /// Why, one line.
    pub reason: String,
}

/// A network configuration bound to an interface name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinuxInterface {
    /// Interface name (`ens192`, `eth0`).
    pub name: String,
    /// Where (`/etc/network/interfaces`, a netplan YAML, an NM keyfile,
    /// an `ifcfg-*`).
    pub file: String,
    /// `ifupdown`, `netplan`, `networkmanager`, `ifcfg`, `systemd-networkd`.
    pub kind: String,
    /// MAC address when the config names one (`HWADDR=`, `match: macaddress`).
    pub mac: Option<String>,
    /// Static addresses configured (`192.0.2.10/24`); empty for DHCP.
    pub addresses: Vec<String>,
}

/// Everything found on a VM's disks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VmInspection {
    /// Per disk.
    pub disks: Vec<DiskInfo>,
    /// Windows installs.
    pub windows: Vec<WindowsInstall>,
    /// Linux installs.
    pub linux: Vec<LinuxInstall>,
    /// Problems found while inspecting (never fatal).
    pub warnings: Vec<String>,
}

/// GPT type of an EFI System Partition.
pub const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

impl VmInspection {
    /// The volume at `v`, if inspected.
    pub fn volume(&self, v: &VolumeRef) -> Option<&VolumeInfo> {
        self.disks
            .get(v.disk)?
            .volumes
            .iter()
            .find(|x| x.volume == *v)
    }
}

/// Inspect all of a VM's disks together (`disks[i]` is disk `i` of the
/// VM): per disk its partition table and the filesystems on it, then the
/// guest installs found across them. Nothing here fails: an unreadable or
/// corrupt table is a warning on its disk.
pub fn inspect_vm(disks: &[&dyn vdisk::Disk]) -> VmInspection {
    let infos: Vec<DiskInfo> = disks
        .iter()
        .enumerate()
        .map(|(i, d)| inspect_disk(i, *d))
        .collect();
    let mut warnings: Vec<String> = infos
        .iter()
        .flat_map(|d| {
            d.warnings
                .iter()
                .map(move |w| format!("disk {}: {w}", d.index))
        })
        .collect();
    let windows = crate::windows::inspect(disks, &infos, &mut warnings);
    let linux = crate::linux::inspect::inspect(disks, &infos, &mut warnings);
    VmInspection {
        disks: infos,
        windows,
        linux,
        warnings,
    }
}

/// Inspect one disk: table, signature, boot code, volumes.
pub fn inspect_disk(index: usize, disk: &dyn vdisk::Disk) -> DiskInfo {
    let mut info = DiskInfo {
        index,
        size: disk.size(),
        table: "none".into(),
        mbr_signature: None,
        boot_code: false,
        volumes: vec![],
        warnings: vec![],
    };
    if disk.size() >= 512 {
        let mut s0 = [0u8; 512];
        match disk.read_at(&mut s0, 0) {
            Ok(()) => {
                info.boot_code =
                    s0[510] == 0x55 && s0[511] == 0xAA && s0[..440].iter().any(|&b| b != 0);
            }
            Err(e) => info.warnings.push(format!("cannot read sector 0: {e}")),
        }
    }
    let table = match crate::partition::read_table(disk) {
        Ok(t) => t,
        Err(e) => {
            info.warnings
                .push(format!("partition table unreadable, treated as none: {e}"));
            return info;
        }
    };
    info.warnings.extend(table.warnings.iter().cloned());
    info.mbr_signature = table.mbr.as_ref().map(|m| m.disk_signature);
    info.table = match table.kind {
        crate::partition::TableKind::None => "none",
        crate::partition::TableKind::Mbr => "mbr",
        crate::partition::TableKind::Gpt => "gpt",
    }
    .into();
    if table.kind == crate::partition::TableKind::None {
        let fs = fs_name(disk);
        if fs != "unknown" {
            info.volumes.push(VolumeInfo {
                volume: VolumeRef {
                    disk: index,
                    partition: None,
                },
                start: 0,
                len: disk.size(),
                type_name: "whole disk".into(),
                fs: fs.into(),
                boot_flag: false,
            });
        }
        return info;
    }
    for p in table.data_partitions() {
        if p.beyond_end {
            info.warnings.push(format!(
                "partition {} extends beyond the end of the disk: not inspected",
                p.index
            ));
            continue;
        }
        let fs = match vdisk::window::Window::new(disk, p.start, p.len) {
            Ok(w) => fs_name(&w),
            Err(e) => {
                info.warnings
                    .push(format!("partition {}: cannot read: {e}", p.index));
                "unknown"
            }
        };
        let esp = p.mbr_type == Some(0xEF)
            || p.type_guid
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(ESP_GUID));
        info.volumes.push(VolumeInfo {
            volume: VolumeRef {
                disk: index,
                partition: Some(p.index),
            },
            start: p.start,
            len: p.len,
            type_name: p.type_name(),
            fs: fs.into(),
            boot_flag: p.bootable || esp,
        });
    }
    info
}

/// The filesystem at the start of `d`, by signature.
fn fs_name(d: &dyn vdisk::Disk) -> &'static str {
    use crate::fs::FsKind;
    match crate::fs::detect(d) {
        Ok(FsKind::Ntfs) => return "ntfs",
        Ok(FsKind::Fat) => return "fat",
        Ok(FsKind::BitLocker) => return "bitlocker",
        Ok(FsKind::Ext) => return "ext",
        _ => {}
    }
    let sig = |off: u64, want: &[u8]| {
        let mut b = vec![0u8; want.len()];
        off + want.len() as u64 <= d.size() && d.read_at(&mut b, off).is_ok() && b == want
    };
    if sig(0, b"XFSB") {
        "xfs"
    } else if sig(0x10040, b"_BHRfS_M") {
        "btrfs"
    } else if sig(512, b"LABELONE") {
        "lvm"
    } else if sig(4086, b"SWAPSPACE2") {
        "swap"
    } else {
        "unknown"
    }
}
