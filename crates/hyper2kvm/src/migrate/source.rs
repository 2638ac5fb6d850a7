//! Loading a source VM: metadata of any supported kind into one
//! [`domain::VmModel`], and opening its disks through the block layer.

use anyhow::{bail, Context, Result};
use domain::writer::{BlockBus, DomainOptions, OutputDisk, Phase};
use domain::{
    DiskDevice, DiskSource, Firmware, ParseOptions, SourceKind, VmModel, MAX_MEMORY_MIB, MAX_VCPUS,
};
use std::path::{Path, PathBuf};
use vdisk::{Disk, OpenOptions};

/// What the user overrides or supplies for sources without metadata.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Memory in MiB.
    pub memory_mib: Option<u64>,
    /// vCPUs.
    pub vcpus: Option<u32>,
    /// `bios` or `uefi`.
    pub firmware: Option<String>,
    /// Guest OS id (e.g. `win10`, `winxp`, `linux`).
    pub os: Option<String>,
    /// VM name.
    pub name: Option<String>,
}

/// A parsed source.
pub struct Source {
    /// The VM model.
    pub model: VmModel,
    /// The OVA handle when the source is an OVA (for compressed disks).
    pub ova: Option<domain::ova::Ova>,
}

fn kind_of(path: &Path) -> Result<SourceKind> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "vmx" => SourceKind::Vmx,
        "ovf" => SourceKind::Ovf,
        "ova" => SourceKind::Ova,
        "vbox" => SourceKind::Vbox,
        "xml" => SourceKind::Libvirt,
        _ => {
            // Content sniffing for metadata without a telling extension.
            let mut head = vec![0u8; 4096];
            let n = {
                use std::io::Read;
                let mut f = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                f.read(&mut head)?
            };
            let head = &head[..n];
            let text = String::from_utf8_lossy(head);
            if n > 262 && &head[257..262] == b"ustar" {
                SourceKind::Ova
            } else if text.contains("<domain") {
                SourceKind::Libvirt
            } else if text.contains("<Envelope") || text.contains(":Envelope") {
                SourceKind::Ovf
            } else if text.contains("<VirtualBox") {
                SourceKind::Vbox
            } else if text.contains("config.version") || text.contains("virtualHW.version") {
                SourceKind::Vmx
            } else {
                SourceKind::Disks
            }
        }
    })
}

/// The same ranges as for values read from a VMX: memory 1 MiB to 64 TiB,
/// 1 to 1024 vCPUs.
pub fn check_overrides(ov: &Overrides) -> Result<()> {
    if let Some(m) = ov.memory_mib.filter(|m| *m == 0 || *m > MAX_MEMORY_MIB) {
        bail!("memory {m} MiB is out of range: expected 1 to {MAX_MEMORY_MIB} MiB (64 TiB)");
    }
    if let Some(v) = ov.vcpus.filter(|v| *v == 0 || *v > MAX_VCPUS) {
        bail!("{v} vCPUs is out of range: expected 1 to {MAX_VCPUS}");
    }
    Ok(())
}

/// Run every refusal the domain writers can make, for both domains, while
/// planning (before any disk is converted), and return the warnings they
/// would give (deduplicated): what [`domain::writer::check`] says for the
/// bootstrap domain (with `virtio_win_iso`) and the final one. `disks`
/// are the planned outputs (they need not exist yet); `nvram` is the
/// planned per-VM variable store of a UEFI guest.
pub fn check_domains(
    model: &VmModel,
    disks: &[OutputDisk],
    block: BlockBus,
    virtio_win_iso: Option<&Path>,
    nvram: Option<&Path>,
) -> Result<Vec<String>> {
    let mut warnings: Vec<String> = Vec::new();
    for phase in [Phase::Bootstrap, Phase::Final] {
        let mut o = DomainOptions::new(phase, disks.to_vec());
        o.block_bus = block;
        o.nvram = nvram.map(Path::to_path_buf);
        if phase == Phase::Bootstrap {
            o.virtio_win_iso = virtio_win_iso.map(Path::to_path_buf);
        }
        for w in domain::writer::check(model, &o)? {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    Ok(warnings)
}

/// Parse the source named by `paths` (one metadata file, or disk images).
pub fn load(paths: &[PathBuf], ov: &Overrides, allow_outside: bool) -> Result<Source> {
    if paths.is_empty() {
        bail!("no source given");
    }
    check_overrides(ov)?;
    let opts = ParseOptions { allow_outside };
    let kind = kind_of(&paths[0])?;
    if kind != SourceKind::Disks && paths.len() > 1 {
        bail!("give either one VM description (vmx, ovf, ova, vbox, libvirt xml) or disk images");
    }
    let p = &paths[0];
    let mut ova = None;
    let mut model = match kind {
        SourceKind::Vmx => domain::vmx::parse_file(p, &opts)?,
        SourceKind::Ovf => domain::ovf::parse_file(p, &opts)?,
        SourceKind::Ova => {
            let o = domain::ova::Ova::open(p, &opts)?;
            let m = o.model.clone();
            ova = Some(o);
            m
        }
        SourceKind::Vbox => domain::vbox::parse_file(p, &opts)?,
        SourceKind::Libvirt => domain::libvirt::parse_file(p, &opts)?,
        SourceKind::Disks => {
            let fw = match ov.firmware.as_deref() {
                Some("uefi") | Some("efi") => Firmware::UEFI,
                _ => Firmware::BIOS,
            };
            VmModel::from_disks(
                paths,
                ov.memory_mib.unwrap_or(2048),
                ov.vcpus.unwrap_or(2),
                fw,
                ov.os.as_deref().unwrap_or("unknown"),
            )
        }
    };
    if let Some(m) = ov.memory_mib {
        model.memory_mib = m;
    }
    if let Some(v) = ov.vcpus {
        model.cpu = domain::CpuTopology::new(v, v).0;
    }
    if let Some(f) = &ov.firmware {
        model.firmware = match f.as_str() {
            "uefi" | "efi" => Firmware::UEFI,
            "bios" => Firmware::BIOS,
            other => bail!("unknown firmware {other:?} (bios or uefi)"),
        };
    }
    if let Some(os) = &ov.os {
        model.guest_os = domain::GuestOs::parse(os);
    }
    if let Some(n) = &ov.name {
        model.name = n.clone();
    }
    if model.disks.is_empty() {
        bail!("{}: the VM has no hard disk", p.display());
    }
    Ok(Source { model, ova })
}

/// Open one disk of the model read-only. Uncompressed OVA entries are read
/// in place; gzip-compressed ones are extracted into `scratch` first.
pub fn open_disk(
    src: &Source,
    disk: &DiskDevice,
    scratch: &Path,
    allow_outside: bool,
) -> Result<Box<dyn Disk>> {
    let opts = OpenOptions {
        allow_outside,
        ..Default::default()
    };
    match &disk.source {
        DiskSource::File { path } => vdisk::open_opts(path, opts)
            .with_context(|| format!("cannot open disk {}", path.display())),
        DiskSource::OvaEntry {
            ova,
            entry,
            offset,
            length,
            gzip,
        } => {
            if *gzip {
                let o = src.ova.as_ref().context("OVA handle missing")?;
                std::fs::create_dir_all(scratch)?;
                let p = o.extract_disk(disk, scratch)?;
                return vdisk::open_opts(&p, opts)
                    .with_context(|| format!("cannot open extracted disk {}", p.display()));
            }
            if let Some(o) = &src.ova {
                o.verify_entry(entry)?;
            }
            let label = ova.join(entry);
            let f = vdisk::file::ImageFile::open_slice(ova, *offset, *length, &label)?;
            vdisk::probe::open_file(f, opts)
                .with_context(|| format!("cannot open {}", label.display()))
        }
    }
}
