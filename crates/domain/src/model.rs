//! The one VM model every parser produces and every writer consumes.

use crate::guestos::GuestOs;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use uuid::Uuid;

/// Where the metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// VMware `.vmx`.
    Vmx,
    /// DMTF OVF descriptor (plain directory).
    Ovf,
    /// OVF packed in a tar (`.ova`).
    Ova,
    /// VirtualBox `.vbox`.
    Vbox,
    /// libvirt domain XML.
    Libvirt,
    /// Bare disk images with user-given settings.
    Disks,
}

/// Largest guest memory accepted from any source or the command line, in
/// MiB (64 TiB).
pub const MAX_MEMORY_MIB: u64 = 64 << 20;

/// Most vCPUs accepted from any source or the command line (VMware's own
/// limit; the `pc` machine type allows only 255, checked by the writers).
pub const MAX_VCPUS: u32 = 1024;

/// A complete description of the source VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmModel {
    /// Display name as written in the source (may contain any character;
    /// see [`VmModel::safe_name`]).
    pub name: String,
    /// Format of the source metadata.
    pub source: SourceKind,
    /// The SMBIOS system UUID to present to the guest, in the canonical
    /// form QEMU/libvirt take (`-uuid`, `<uuid>`). For VMware sources this
    /// is derived from `uuid.bios` so that the raw SMBIOS bytes stay the
    /// same (see [`crate::vmx::vmware_bios_uuid`]).
    pub uuid: Option<Uuid>,
    /// Other identity of the VM in the source platform (VMware `vc.uuid`,
    /// VirtualBox machine UUID, OVF `VirtualSystemIdentifier` if a UUID).
    pub instance_uuid: Option<Uuid>,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// vCPUs and topology.
    pub cpu: CpuTopology,
    /// Firmware kind and secure boot.
    pub firmware: Firmware,
    /// The source had a virtual TPM (keys sealed in it do not migrate).
    pub vtpm: bool,
    /// Hard disks, in a stable order (bus kind, controller, unit).
    pub disks: Vec<DiskDevice>,
    /// CD/DVD drives.
    pub cdroms: Vec<CdromDevice>,
    /// Network adapters.
    pub nics: Vec<Nic>,
    /// Normalised guest OS.
    pub guest_os: GuestOs,
    /// Things the parser had to guess or could not carry over.
    pub warnings: Vec<String>,
}

/// vCPU count and topology; `sockets * cores * threads == vcpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTopology {
    /// Total vCPUs.
    pub vcpus: u32,
    /// Sockets.
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

impl CpuTopology {
    /// `vcpus` split into sockets of `cores_per_socket` cores (1 thread);
    /// falls back to one core per socket when it does not divide.
    pub fn new(vcpus: u32, cores_per_socket: u32) -> (CpuTopology, Option<String>) {
        let vcpus = vcpus.max(1);
        let cps = cores_per_socket.max(1);
        if vcpus.is_multiple_of(cps) {
            (
                CpuTopology {
                    vcpus,
                    sockets: vcpus / cps,
                    cores: cps,
                    threads: 1,
                },
                None,
            )
        } else {
            (
                CpuTopology {
                    vcpus,
                    sockets: vcpus,
                    cores: 1,
                    threads: 1,
                },
                Some(format!(
                    "{vcpus} vCPUs do not divide into sockets of {cps} cores; using {vcpus} sockets of 1 core"
                )),
            )
        }
    }
}

/// Firmware type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirmwareKind {
    /// Legacy BIOS (SeaBIOS on KVM).
    Bios,
    /// UEFI (OVMF on KVM).
    Uefi,
}

/// Firmware settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    /// BIOS or UEFI.
    pub kind: FirmwareKind,
    /// UEFI secure boot was enabled.
    pub secure_boot: bool,
}

impl Firmware {
    /// Legacy BIOS.
    pub const BIOS: Firmware = Firmware {
        kind: FirmwareKind::Bios,
        secure_boot: false,
    };
    /// UEFI without secure boot.
    pub const UEFI: Firmware = Firmware {
        kind: FirmwareKind::Uefi,
        secure_boot: false,
    };
}

/// Kind of storage bus in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// Parallel ATA.
    Ide,
    /// SATA/AHCI.
    Sata,
    /// SCSI or SAS.
    Scsi,
    /// NVMe.
    Nvme,
    /// virtio-blk.
    Virtio,
    /// USB mass storage.
    Usb,
    /// Floppy.
    Floppy,
    /// Anything else.
    Other,
}

/// The controller a disk or CD-ROM hangs off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controller {
    /// Bus kind.
    pub bus: BusKind,
    /// Index among controllers of that kind (VMware `scsi1` → 1).
    pub index: u32,
    /// Controller model as named by the source, normalised to lowercase
    /// (`lsilogic`, `lsisas1068`, `pvscsi`, `buslogic`, `ahci`, `piix4`,
    /// `virtio-scsi`...), empty when unknown.
    pub model: String,
}

/// Disk persistence mode (VMware `mode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskMode {
    /// Normal, included in snapshots.
    Persistent,
    /// Not included in snapshots, writes kept.
    IndependentPersistent,
    /// Not included in snapshots, writes discarded at power off.
    IndependentNonpersistent,
    /// Legacy nonpersistent.
    Nonpersistent,
    /// Legacy undoable.
    Undoable,
    /// Anything else (raw value).
    Other(String),
}

/// Where a disk's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskSource {
    /// A file on the host, already resolved through the open gate.
    File {
        /// Resolved path.
        path: PathBuf,
    },
    /// An entry inside an OVA (tar) file.
    OvaEntry {
        /// The OVA.
        ova: PathBuf,
        /// Entry name inside the tar.
        entry: String,
        /// Byte offset of the entry's data inside the OVA.
        offset: u64,
        /// Length of the entry's data in bytes.
        length: u64,
        /// The entry is gzip-compressed (`ovf:compression="gzip"`); it
        /// must be extracted with [`crate::ova::Ova::extract_disk`].
        gzip: bool,
    },
}

/// A hard disk of the source VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDevice {
    /// Where the image is.
    pub source: DiskSource,
    /// The file name as written in the metadata.
    pub source_name: String,
    /// Format named by the metadata (`vmdk`, `vdi`, `qcow2`, OVF format
    /// URI...), if any; the block layer probes the real format by content.
    pub format_hint: Option<String>,
    /// The controller.
    pub controller: Controller,
    /// Unit/port on the controller (IDE: `channel * 2 + master/slave`).
    pub unit: u32,
    /// Persistence mode.
    pub mode: DiskMode,
    /// This disk is the one the firmware boots.
    pub boot: bool,
    /// Virtual size in bytes, if the metadata says.
    pub capacity_bytes: Option<u64>,
    /// The file name names a snapshot delta (`-000001.vmdk`, VirtualBox
    /// differencing image): the image chain is followed by the block layer.
    pub snapshot_delta: bool,
}

/// A CD/DVD drive. An image found on this host ([`CdromDevice::path`]) is
/// attached to the bootstrap domain; others are recorded only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdromDevice {
    /// The controller.
    pub controller: Controller,
    /// Unit/port on the controller.
    pub unit: u32,
    /// Image or host device name as written in the source, if any.
    pub image: Option<String>,
    /// The image file on this host, resolved through the open gate, when
    /// it exists and the source connects it at power-on; `None` for host
    /// drives, empty drives and images not found (the parser warns).
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// Network adapter model in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NicModel {
    /// Intel 82545EM/82540EM (e1000).
    E1000,
    /// Intel 82574L (e1000e).
    E1000e,
    /// VMware vmxnet3.
    Vmxnet3,
    /// VMware vmxnet2 / vmxnet.
    Vmxnet,
    /// AMD PCnet (VMware vlance, VirtualBox Am79C97x).
    Pcnet,
    /// Realtek 8139.
    Rtl8139,
    /// virtio-net.
    Virtio,
    /// Anything else (raw value).
    Other(String),
}

/// A network adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Adapter model.
    pub model: NicModel,
    /// MAC address, lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The MAC was generated by us because the source had none.
    pub mac_generated: bool,
    /// Network/port group/bridge the adapter was connected to.
    pub network: Option<String>,
}

impl VmModel {
    /// An empty model with defaults (1 vCPU, 1024 MiB, BIOS).
    pub fn new(name: impl Into<String>, source: SourceKind) -> VmModel {
        VmModel {
            name: name.into(),
            source,
            uuid: None,
            instance_uuid: None,
            memory_mib: 1024,
            cpu: CpuTopology {
                vcpus: 1,
                sockets: 1,
                cores: 1,
                threads: 1,
            },
            firmware: Firmware::BIOS,
            vtpm: false,
            disks: Vec::new(),
            cdroms: Vec::new(),
            nics: Vec::new(),
            guest_os: GuestOs::unknown(),
            warnings: Vec::new(),
        }
    }

    /// The name reduced to `[A-Za-z0-9._-]` (others become `_`), never
    /// empty and at most 64 characters: safe for file names and libvirt.
    pub fn safe_name(&self) -> String {
        let mut s: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        while s.starts_with('.') || s.starts_with('-') {
            s.replace_range(0..1, "_");
        }
        if s.is_empty() {
            s = "vm".into();
        }
        s
    }

    /// Index of the boot disk in [`VmModel::disks`], if any.
    pub fn boot_disk(&self) -> Option<usize> {
        self.disks.iter().position(|d| d.boot)
    }

    /// Make disk `index` the (only) boot disk.
    pub fn set_boot_disk(&mut self, index: usize) {
        for (i, d) in self.disks.iter_mut().enumerate() {
            d.boot = i == index;
        }
    }

    /// Sort disks and CD-ROMs by (bus kind, controller, unit) and, if no
    /// disk is marked as boot disk, mark the first one.
    pub(crate) fn normalise(&mut self) {
        self.disks
            .sort_by_key(|d| (d.controller.bus, d.controller.index, d.unit));
        self.cdroms
            .sort_by_key(|d| (d.controller.bus, d.controller.index, d.unit));
        if self.boot_disk().is_none() && !self.disks.is_empty() {
            self.disks[0].boot = true;
        }
    }

    /// Record a CD/DVD drive whose image is not attached to the domains
    /// (sources other than VMX), with a warning when it had an image.
    pub(crate) fn push_unattached_cdrom(
        &mut self,
        controller: Controller,
        unit: u32,
        image: Option<String>,
    ) {
        if let Some(i) = &image {
            self.warnings.push(format!(
                "source CD-ROM image {i:?} is not carried over (attach it by hand if the guest needs it)"
            ));
        }
        self.cdroms.push(CdromDevice {
            controller,
            unit,
            image,
            path: None,
        });
    }

    /// Build a model from bare disk images (Hyper-V VHD/VHDX, raw...) and
    /// user-given settings. The first disk is the boot disk, on a SATA
    /// controller; `os_hint` is any OS id ([`GuestOs::parse`]).
    pub fn from_disks(
        paths: &[PathBuf],
        memory_mib: u64,
        vcpus: u32,
        firmware: Firmware,
        os_hint: &str,
    ) -> VmModel {
        let name = paths
            .first()
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vm".into());
        let mut m = VmModel::new(name, SourceKind::Disks);
        m.memory_mib = memory_mib.max(1);
        m.cpu = CpuTopology::new(vcpus, vcpus.max(1)).0;
        m.firmware = firmware;
        m.guest_os = GuestOs::parse(os_hint);
        for (i, p) in paths.iter().enumerate() {
            m.disks.push(DiskDevice {
                source: DiskSource::File { path: p.clone() },
                source_name: p.display().to_string(),
                format_hint: None,
                controller: Controller {
                    bus: BusKind::Sata,
                    index: 0,
                    model: "ahci".into(),
                },
                unit: i as u32,
                mode: DiskMode::Persistent,
                boot: i == 0,
                capacity_bytes: None,
                snapshot_delta: false,
            });
        }
        m
    }
}

/// Normalise a MAC written with `:`/`-` separators or none
/// (VirtualBox `080027AABBCC`) to lowercase `08:00:27:aa:bb:cc`.
pub fn normalise_mac(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.' | ' '))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    let parts: Vec<&str> = (0..6).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    Some(parts.join(":"))
}

/// A locally administered MAC in QEMU's `52:54:00` range, derived from
/// `seed` (VM name + adapter index) so reruns give the same address.
pub fn generated_mac(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(seed.as_bytes());
    format!("52:54:00:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
}

/// Parse a memory quantity with a unit as used by OVF `AllocationUnits`
/// (`byte * 2^20`, `MegaBytes`, `KB`...) and libvirt `unit=` (`KiB`, `M`,
/// `GiB`, `b`...). Returns the multiplier in bytes. `decimal` makes `KB`,
/// `MB`, `GB`, `TB` powers of 10 (libvirt); OVF producers mean powers of 2.
pub fn unit_multiplier(unit: &str, decimal: bool) -> Option<u64> {
    let u: String = unit.chars().filter(|c| !c.is_whitespace()).collect();
    let lu = u.to_ascii_lowercase();
    if let Some(rest) = lu.strip_prefix("byte*") {
        // byte * 2^20, byte * 1024, byte*10^3
        if let Some((b, e)) = rest.split_once('^') {
            let b: u64 = b.parse().ok()?;
            let e: u32 = e.parse().ok()?;
            return b.checked_pow(e);
        }
        return rest.parse().ok();
    }
    Some(match lu.as_str() {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "kib" | "kilobytes" | "kilobyte" => 1 << 10,
        "kb" if decimal => 1000,
        "kb" => 1 << 10,
        "m" | "mib" | "megabytes" | "megabyte" => 1 << 20,
        "mb" if decimal => 1_000_000,
        "mb" => 1 << 20,
        "g" | "gib" | "gigabytes" | "gigabyte" => 1 << 30,
        "gb" if decimal => 1_000_000_000,
        "gb" => 1 << 30,
        "t" | "tib" | "terabytes" => 1 << 40,
        "tb" if decimal => 1_000_000_000_000,
        "tb" => 1 << 40,
        _ => return None,
    })
}
