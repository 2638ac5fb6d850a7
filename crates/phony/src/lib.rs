//! Phony Windows guests: disk images laid out like real Windows installs,
//! made by our own code, for tests and benchmarks of inspection and fixes.
//!
//! [`build`] writes a raw or qcow2 image of any virtual size (sparse: only
//! metadata and small files are real bytes) and returns [`Expected`], the
//! facts it put in, in the types of [`guest::inspect`], so inspection can
//! be compared to it.
//!
//! What a guest holds:
//! - **Layout.** BIOS: an MBR whose disk signature and partition offsets
//!   are the ones the SYSTEM hive's `MountedDevices` names (the real
//!   hives': `0x5cbea03e` for Windows 7-based guests, `0xdf4546ae` for
//!   Windows 10-based ones, C: at sector 1026048 after a 500 MiB System
//!   Reserved), a System Reserved NTFS volume with `bootmgr` and
//!   `Boot/BCD` (Windows 7 x64, 2008 R2, 10 and later; the 32-bit Windows
//!   7 keeps its hive's single partition at sector 2048, NT 5 uses sector
//!   63, `boot.ini`, `ntldr` and `NTDETECT.COM`). UEFI (Windows 11, or
//!   `firmware: Some(Uefi)` for Windows 10-based versions and the x64
//!   Windows 7 and 2008 R2): GPT with an
//!   ESP (FAT32: `EFI/Microsoft/Boot/BCD`, `bootmgfw.efi`,
//!   `EFI/BOOT/BOOTX64.EFI`), an MSR and the NTFS system volume; C: is
//!   mapped as `DMIO:ID:` + the partition GUID. The BCD is the real one
//!   with its boot manager and default loader devices pointed at this
//!   layout's boot and system partitions ([`bcd`]).
//! - **Files.** `Windows/System32/config/{SYSTEM,SOFTWARE,SAM,SECURITY,DEFAULT}`
//!   (lower-case names and `WINDOWS/system32` on NT 5) with `.LOG1/.LOG2`
//!   (`.LOG` on NT 5), `System32/drivers/*.sys` for every boot/system
//!   start driver the hive names, `ntoskrnl.exe`, `hal.dll`, `cmd.exe`,
//!   `explorer.exe`, `regedit.exe` as minimal PEs of the right machine
//!   type and subsystem, `SysWOW64/cmd.exe` and `Program Files (x86)` on
//!   x64.
//! - **Hives.** SYSTEM derived from the real ones in the shared test data
//!   (VMware Tools and adapters scrubbed, then the variant written into
//!   every control set `Select` names); SOFTWARE from generated `.reg`
//!   text over the libguestfs phony base (see [`hives`]).
//! - **Variants** ([`Options`]): the hypervisor's tools ([`Hypervisor`]),
//!   a static-IP NIC, hibernation, Fast Startup, a BitLocker data volume
//!   (D:), a dirty SYSTEM hive whose last change (`ComputerName`) lives
//!   only in `SYSTEM.LOG1`.
//!
//! The `phony-windows` binary builds one from the command line, e.g.
//! `phony-windows --version win10 --variant vmware --size 20G --format qcow2 OUT`.
//!
//! Tests (`tests/`) read the images back with ntfs-3g, sleuthkit, hivex,
//! mtools/fsck.fat, sfdisk/sgdisk and qemu-img. The libguestfs
//! comparison (`tests/virt_inspector.rs`) is opt-in: it runs only when
//! `HYPER2KVM_PEER=1` and needs Debian's `libguestfs-tools` (not installed
//! by `scripts/install-deps.sh`: too heavy for CI) with
//! `LIBGUESTFS_BACKEND=direct`; it sets `LIBGUESTFS_BACKEND_SETTINGS=force_tcg`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bcd;
mod build;
pub mod hivelog;
pub mod hives;
pub mod ntfsfmt;
pub mod pe;
pub mod table;
pub mod versions;

pub use build::{build, min_size};
pub use versions::Version;

use guest::drivers::Arch;
use guest::inspect::{ControlSets, Firmware, ForeignTool, ServiceState, WindowsNic};
use guest::plan::{HiveRef, VolumeRef};
use serde::Serialize;

/// Errors of the builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Block layer.
    #[error(transparent)]
    Disk(#[from] vdisk::Error),
    /// NTFS engine.
    #[error(transparent)]
    Ntfs(#[from] ntfs::Error),
    /// Registry engine.
    #[error(transparent)]
    Regf(#[from] regf::Error),
    /// Host file I/O.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Formatting the ESP.
    #[error("FAT32 ESP: {0}")]
    Fat(std::io::Error),
    /// Writing the ESP's files.
    #[error(transparent)]
    GuestFs(#[from] guest::fs::FsError),
    /// Impossible layout or option.
    #[error("{0}")]
    Layout(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// Whose guest tools are installed (and which storage and NIC the guest
/// was using).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    /// No tools; IDE boot storage (physical or KVM-like).
    #[default]
    None,
    /// VMware Tools (vmci, vmhgfs, vmmouse filter, VMTools service,
    /// uninstall entry); LSI / PVSCSI boot storage; vmxnet3.
    Vmware,
    /// Hyper-V: storvsc boot storage, netvsc; NT 5 guests also get the
    /// integration components (services and uninstall entry).
    Hyperv,
    /// VirtualBox Guest Additions (VBoxGuest, VBoxMouse filter, VBoxSF
    /// network provider, VBoxService, uninstall entry); AHCI boot storage.
    Virtualbox,
}

/// Image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// Sparse raw file.
    #[default]
    Raw,
    /// qcow2 v3 (only written clusters allocated).
    Qcow2,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// Windows version.
    pub version: Version,
    /// Architecture (default: the version's, x86 for XP/2003/7).
    pub arch: Option<Arch>,
    /// Firmware (default: the version's; UEFI for Windows 11).
    pub firmware: Option<Firmware>,
    /// Guest tools installed.
    pub hypervisor: Hypervisor,
    /// The NIC has a static IPv4 setup (and a recorded MAC).
    pub static_ip: bool,
    /// `hiberfil.sys` holds an active hibernation image.
    pub hibernated: bool,
    /// Fast Startup: `HiberbootEnabled=1` and an active `hiberfil.sys`
    /// (Windows 10-based versions).
    pub fast_startup: bool,
    /// A BitLocker-encrypted data volume D:.
    pub bitlocker: bool,
    /// SYSTEM is dirty: its last change is only in `SYSTEM.LOG1`.
    pub dirty_hive: bool,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// Output format.
    pub format: ImageFormat,
    /// Host name (default `PHONY-<OSID>`).
    pub hostname: Option<String>,
}

impl Options {
    /// Defaults for `version`: 1 GiB raw, no tools, DHCP, clean.
    pub fn new(version: Version) -> Options {
        Options {
            version,
            arch: None,
            firmware: None,
            hypervisor: Hypervisor::None,
            static_ip: false,
            hibernated: false,
            fast_startup: false,
            bitlocker: false,
            dirty_hive: false,
            size: 1 << 30,
            format: ImageFormat::Raw,
            hostname: None,
        }
    }
}

/// A partition of the built disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartInfo {
    /// 1-based partition number.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
    /// `system-reserved`, `system`, `esp`, `msr`, `bitlocker`.
    pub role: String,
    /// Filesystem: `ntfs`, `fat`, `bitlocker`, `none`.
    pub fs: String,
    /// GPT unique partition GUID (UEFI layout).
    pub guid: Option<String>,
    /// Drive letter Windows gives it (`C:`), when it has one.
    pub letter: Option<String>,
}

/// A registry change that is only in the transaction log of a dirty hive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedChange {
    /// Key path relative to the hive root.
    pub key: String,
    /// Value name.
    pub name: String,
    /// Data after replay (REG_SZ).
    pub after: String,
    /// Data in the primary file alone.
    pub before: String,
}

/// The facts a phony guest was built with.
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    /// OS id (`winxp`, `win2k3`, `win7`, `win2k8r2`, `win10`, `win2k16`,
    /// `win2k19`, `win2k22`, `win11`).
    pub os_id: String,
    /// `ProductName` (Windows 11 says "Windows 10 Pro", as the real one).
    pub product_name: String,
    /// NT major version.
    pub major: u32,
    /// NT minor version.
    pub minor: u32,
    /// `CurrentBuildNumber`.
    pub build: u32,
    /// `InstallationType`.
    pub installation_type: Option<String>,
    /// `EditionID`.
    pub edition_id: Option<String>,
    /// Machine type of `ntoskrnl.exe`.
    pub arch: Arch,
    /// `ComputerName` and `Tcpip\Parameters\Hostname`.
    pub hostname: String,
    /// Firmware the layout is for.
    pub firmware: Firmware,
    /// System root on the system volume (`Windows`, `WINDOWS`).
    pub systemroot: String,
    /// SYSTEM hive path on the system volume.
    pub system_hive: String,
    /// SOFTWARE hive path on the system volume.
    pub software_hive: String,
    /// BCD stores: (partition number, path).
    pub bcd: Vec<(u32, String)>,
    /// `Select` and the control sets in use (all written alike).
    pub control_sets: ControlSets,
    /// Storage driver services present in the current control set, with
    /// their Start values (see [`hives::STORAGE_SERVICES`]).
    pub storage_drivers: Vec<ServiceState>,
    /// The storage drivers set to boot start for the source hypervisor.
    pub boot_storage: Vec<String>,
    /// Network adapters (one).
    pub nics: Vec<WindowsNic>,
    /// Other hypervisors' components written (services, the mouse class
    /// filter, the network provider, the uninstall entry). Components
    /// Windows ships inbox (Hyper-V's on Windows 7 and later) are not
    /// listed.
    pub foreign_tools: Vec<ForeignTool>,
    /// Blocker ids that inspection should report (`hibernated`,
    /// `fast-startup`, `bitlocker`, `dirty-hive`).
    pub blockers: Vec<String>,
    /// Partition number of the system volume (C:).
    pub system_partition: u32,
    /// Partition number of the boot volume (System Reserved or ESP) when
    /// separate.
    pub boot_partition: Option<u32>,
    /// MBR disk signature (BIOS layout).
    pub disk_signature: Option<u32>,
    /// GPT disk GUID (UEFI layout).
    pub disk_guid: Option<String>,
    /// Every partition.
    pub partitions: Vec<PartInfo>,
    /// Drive letters as `MountedDevices` maps them: (`C:`, partition).
    pub drive_letters: Vec<(String, u32)>,
    /// The dirty hive's logged change.
    pub logged_change: Option<LoggedChange>,
    /// Virtual size.
    pub size: u64,
}

impl Expected {
    /// The system volume (disk 0).
    pub fn system_volume(&self) -> VolumeRef {
        VolumeRef {
            disk: 0,
            partition: Some(self.system_partition),
        }
    }

    /// The boot volume (System Reserved or ESP) when separate.
    pub fn boot_volume(&self) -> Option<VolumeRef> {
        self.boot_partition.map(|p| VolumeRef {
            disk: 0,
            partition: Some(p),
        })
    }

    /// The SYSTEM hive.
    pub fn system_hive_ref(&self) -> HiveRef {
        HiveRef {
            volume: self.system_volume(),
            path: self.system_hive.clone(),
        }
    }

    /// The SOFTWARE hive.
    pub fn software_hive_ref(&self) -> HiveRef {
        HiveRef {
            volume: self.system_volume(),
            path: self.software_hive.clone(),
        }
    }

    /// The BCD stores.
    pub fn bcd_refs(&self) -> Vec<HiveRef> {
        self.bcd
            .iter()
            .map(|(p, path)| HiveRef {
                volume: VolumeRef {
                    disk: 0,
                    partition: Some(*p),
                },
                path: path.clone(),
            })
            .collect()
    }

    /// Foreign tools as (vendor, kind, name), for comparisons that ignore
    /// where exactly inspection found them.
    pub fn tool_names(&self) -> Vec<(String, String, String)> {
        self.foreign_tools
            .iter()
            .map(|t| (t.vendor.clone(), t.kind.clone(), t.name.clone()))
            .collect()
    }
}
