//! Kernel configuration (`/boot/config-<version>`) and the version string of
//! a bzImage kernel.

use std::collections::BTreeMap;

/// How a driver is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// `=y`.
    BuiltIn,
    /// `=m`.
    Module,
    /// `is not set`, absent, or a symbol we do not know.
    Absent,
}

/// The parsed `CONFIG_*` lines (values kept as written, quotes included).
#[derive(Clone, Debug, Default)]
pub struct KernelConfig {
    /// Symbol (without `CONFIG_`) → value.
    pub values: BTreeMap<String, String>,
}

/// Module name → Kconfig symbol, for the drivers inspection asks about.
pub const MODULE_SYMBOLS: &[(&str, &str)] = &[
    ("virtio_blk", "VIRTIO_BLK"),
    ("virtio_scsi", "SCSI_VIRTIO"),
    ("virtio_pci", "VIRTIO_PCI"),
    ("virtio_net", "VIRTIO_NET"),
    ("virtio", "VIRTIO"),
    ("virtio_ring", "VIRTIO"),
    ("ata_piix", "ATA_PIIX"),
    ("ahci", "SATA_AHCI"),
    ("nvme", "BLK_DEV_NVME"),
    ("sd_mod", "BLK_DEV_SD"),
    ("vmw_pvscsi", "VMWARE_PVSCSI"),
    ("mptspi", "FUSION_SPI"),
    ("mptsas", "FUSION_SAS"),
    ("hv_storvsc", "HYPERV_STORAGE"),
    ("ext4", "EXT4_FS"),
    ("xfs", "XFS_FS"),
    ("btrfs", "BTRFS_FS"),
];

impl KernelConfig {
    /// Parse config text; lines that are not `CONFIG_X=v` are ignored
    /// (bounded: at most 100 000 symbols).
    pub fn parse(text: &str) -> KernelConfig {
        let mut values = BTreeMap::new();
        for line in text.lines().take(1_000_000) {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("CONFIG_") {
                if let Some((k, v)) = rest.split_once('=') {
                    if values.len() < 100_000 {
                        values.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        KernelConfig { values }
    }

    /// State of a Kconfig symbol (without `CONFIG_`).
    pub fn state(&self, symbol: &str) -> State {
        match self.values.get(symbol).map(String::as_str) {
            Some("y") => State::BuiltIn,
            Some("m") => State::Module,
            _ => State::Absent,
        }
    }

    /// State of a module by its module name (`virtio_blk`), through
    /// [`MODULE_SYMBOLS`]; unknown names are [`State::Absent`].
    pub fn module_state(&self, module: &str) -> State {
        MODULE_SYMBOLS
            .iter()
            .find(|(m, _)| *m == module)
            .map_or(State::Absent, |(_, s)| self.state(s))
    }
}

/// The version string of an x86 bzImage (`6.1.0-18-amd64 (debian-kernel@...)
/// #1 SMP ...`): the setup header's `kernel_version` pointer (offset 0x20E,
/// plus 0x200) points at a NUL-terminated string. None when the bytes are
/// not a bzImage with that field.
pub fn bzimage_version(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*kernel.get(0x20E)?, *kernel.get(0x20F)?]) as usize;
    if ptr == 0 {
        return None;
    }
    let start = ptr + 0x200;
    let tail = kernel.get(start..kernel.len().min(start + 512))?;
    let end = tail.iter().position(|b| *b == 0)?;
    let s = std::str::from_utf8(&tail[..end]).ok()?;
    Some(s.to_string())
}

/// The release (first word) of [`bzimage_version`]: `6.1.0-18-amd64`.
pub fn bzimage_release(kernel: &[u8]) -> Option<String> {
    bzimage_version(kernel)?
        .split_whitespace()
        .next()
        .map(str::to_string)
}
