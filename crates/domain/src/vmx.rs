//! VMware `.vmx` parser.
//!
//! A VMX is `key = "value"` lines; keys are case-insensitive, `#` starts a
//! comment, and special characters in values are written `|XX` (hex byte,
//! e.g. `|22` for `"`). Disk file names are resolved relative to the
//! VMX's directory through the block layer's open gate.

use crate::error::{read_metadata, Error, Result};
use crate::guestos::GuestOs;
use crate::model::*;
use crate::ParseOptions;
use std::collections::BTreeMap;
use std::path::Path;
use uuid::Uuid;

/// The raw key/value pairs of a VMX: keys lowercased, values unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmxFile {
    /// Lowercased key → decoded value (the last occurrence wins).
    pub entries: BTreeMap<String, String>,
}

fn decode_value(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'|' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(x) = h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl VmxFile {
    /// Parse VMX text. `path` is used in error messages.
    pub fn parse(path: &Path, data: &[u8]) -> Result<VmxFile> {
        let text = String::from_utf8_lossy(data);
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("line {}", n + 1),
                    "expected `key = \"value\"` (not a VMX file?)",
                )
            })?;
            let k = k.trim();
            if k.is_empty()
                || !k.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-' | '[' | ']')
                })
            {
                return Err(Error::invalid(
                    path,
                    format!("line {}", n + 1),
                    format!(
                        "bad key {:?}: expected letters, digits, `.`, `:`, `_`",
                        truncate(k)
                    ),
                ));
            }
            let v = v.trim();
            let v = if let Some(rest) = v.strip_prefix('"') {
                match rest.find('"') {
                    Some(end) => &rest[..end],
                    None => {
                        return Err(Error::invalid(
                            path,
                            format!("line {}", n + 1),
                            "unterminated quoted value",
                        ))
                    }
                }
            } else {
                v.split('#').next().unwrap_or("").trim()
            };
            entries.insert(k.to_ascii_lowercase(), decode_value(v));
        }
        Ok(VmxFile { entries })
    }

    /// Value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .get(&key.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    /// Boolean value (`TRUE`, `true`, `1`, `yes`); `None` if absent.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on"
            )
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Convert VMware's `uuid.bios` text (`56 4d 12 ... 9a-bc ...`, 16 hex
/// bytes in the order VMware stores them in the SMBIOS table) to the UUID
/// to give QEMU/libvirt so that the guest reads the *same SMBIOS bytes*.
/// QEMU writes the first three fields little-endian (SMBIOS 2.6+ wire
/// format), so the canonical string is the VMware bytes read as a
/// little-endian GUID: `56 4d 12 34 ...` becomes `34124d56-...`. Windows
/// formats the same bytes the same way, so activation sees no change.
pub fn vmware_bios_uuid(text: &str) -> Option<Uuid> {
    vmware_uuid_bytes(text).map(Uuid::from_bytes_le)
}

/// The 16 bytes of a VMware UUID text, in the order written.
pub fn vmware_uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(b)
}

/// Highest controller index and unit read from device ids; devices beyond
/// them are dropped with a warning.
const MAX_CONTROLLER: u32 = 64;
const MAX_UNIT: u32 = 255;
/// Network adapters `ethernet0` to `ethernet99` are read; any above are
/// dropped with a warning (VMware itself allows 10).
const MAX_NIC_INDEX: u32 = 100;

/// Parse `ide0:1`-style device ids into (bus, controller, unit), within
/// [`MAX_CONTROLLER`] and [`MAX_UNIT`].
fn device_id(prefix: &str) -> Option<(BusKind, u32, u32)> {
    device_id_any(prefix).filter(|(_, c, u)| *c <= MAX_CONTROLLER && *u <= MAX_UNIT)
}

/// Parse `ide0:1`-style device ids, whatever the numbers.
fn device_id_any(prefix: &str) -> Option<(BusKind, u32, u32)> {
    let (bus, rest) = [
        ("scsi", BusKind::Scsi),
        ("sata", BusKind::Sata),
        ("ide", BusKind::Ide),
        ("nvme", BusKind::Nvme),
    ]
    .iter()
    .find_map(|(p, b)| prefix.strip_prefix(p).map(|r| (*b, r)))?;
    let (c, u) = rest.split_once(':')?;
    let c: u32 = c.parse().ok()?;
    let u: u32 = u.parse().ok()?;
    Some((bus, c, u))
}

fn is_delta_name(name: &str) -> bool {
    let stem = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = stem.strip_suffix(".vmdk").unwrap_or(stem);
    match stem.rsplit_once('-') {
        Some((_, n)) => n.len() == 6 && n.chars().all(|c| c.is_ascii_digit()),
        None => false,
    }
}

/// Parse the VMX file at `path` into a [`VmModel`].
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<VmModel> {
    let data = read_metadata(path)?;
    parse(path, &data, opts)
}

/// Parse VMX bytes read from `path` (disk names are resolved relative to
/// `path`'s directory).
pub fn parse(path: &Path, data: &[u8], opts: &ParseOptions) -> Result<VmModel> {
    let vmx = VmxFile::parse(path, data)?;
    model_from(path, &vmx, opts)
}

fn model_from(path: &Path, vmx: &VmxFile, opts: &ParseOptions) -> Result<VmModel> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vm".into());
    let name = vmx
        .get("displayName")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(&stem);
    let mut m = VmModel::new(name, SourceKind::Vmx);
    if vmx.get("config.version").is_none()
        && vmx.get("virtualHW.version").is_none()
        && vmx.get("displayName").is_none()
    {
        return Err(Error::invalid(
            path,
            "line 1",
            "no config.version, virtualHW.version or displayName: not a VMX file",
        ));
    }
    match vmx.get("memsize").map(|v| v.trim().parse::<u64>()) {
        Some(Ok(v)) if v > 0 && v <= MAX_MEMORY_MIB => m.memory_mib = v,
        Some(_) => {
            return Err(Error::invalid(
                path,
                "memsize",
                format!(
                    "memsize {:?} is not a size in MiB between 1 and 64 TiB",
                    vmx.get("memsize").unwrap_or("")
                ),
            ))
        }
        None => m.warnings.push("VMX has no memsize; using 1024 MiB".into()),
    }
    let num = |k: &str, d: u32, max: u32| -> Result<u32> {
        match vmx.get(k) {
            None => Ok(d),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 && n <= max => Ok(n),
                _ => Err(Error::invalid(
                    path,
                    k,
                    format!("{v:?} is not a number between 1 and {max}"),
                )),
            },
        }
    };
    let vcpus = num("numvcpus", 1, MAX_VCPUS)?;
    let cps = num("cpuid.coresPerSocket", 1, MAX_VCPUS)?;
    let (topo, w) = CpuTopology::new(vcpus, cps);
    m.cpu = topo;
    m.warnings.extend(w);
    if vmx
        .get("firmware")
        .is_some_and(|f| f.eq_ignore_ascii_case("efi"))
    {
        m.firmware = Firmware {
            kind: FirmwareKind::Uefi,
            secure_boot: vmx.get_bool("uefi.secureBoot.enabled").unwrap_or(false),
        };
    }
    m.vtpm = vmx.get_bool("vtpm.present").unwrap_or(false);
    if let Some(u) = vmx.get("uuid.bios") {
        match vmware_bios_uuid(u) {
            Some(u) => m.uuid = Some(u),
            None => m.warnings.push(format!(
                "uuid.bios {u:?} is not 16 hex bytes; SMBIOS UUID not kept"
            )),
        }
    }
    m.instance_uuid = vmx
        .get("vc.uuid")
        .and_then(vmware_uuid_bytes)
        .map(Uuid::from_bytes);
    m.guest_os = GuestOs::parse(vmx.get("guestOS").unwrap_or(""));
    if let Some(s) = vmx.get("checkpoint.vmState").filter(|s| !s.is_empty()) {
        m.warnings.push(format!(
            "the VM was suspended (checkpoint.vmState = {s:?}); its memory state is not migrated and the guest boots cold, as after a power cut"
        ));
    }
    let ctx = vdisk::OpenCtx::new(vdisk::OpenOptions {
        allow_outside: opts.allow_outside,
        ..Default::default()
    });
    read_devices(path, vmx, &ctx, &mut m)?;
    // Boot disk: bios.hddOrder names it ("scsi0:0,ide0:0").
    if let Some(order) = vmx.get("bios.hddOrder") {
        if let Some(first) = order
            .split(',')
            .next()
            .map(|s| s.trim().to_ascii_lowercase())
        {
            if let Some((b, c, u)) = device_id(&first) {
                let unit = if b == BusKind::Ide { c * 2 + u } else { u };
                let idx = if b == BusKind::Ide { 0 } else { c };
                if let Some(d) = m
                    .disks
                    .iter_mut()
                    .find(|d| d.controller.bus == b && d.controller.index == idx && d.unit == unit)
                {
                    d.boot = true;
                }
            }
        }
    }
    read_nics(vmx, &mut m);
    m.normalise();
    Ok(m)
}

/// A name written like a path of another host: a Windows drive or UNC
/// path (`C:\\VMs\\x.vmdk`, `\\\\server\\share`) or a vSphere datastore
/// path (`[datastore1] vm/x.vmdk`).
fn is_foreign_path(name: &str) -> bool {
    let b = name.as_bytes();
    (b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/'))
        || name.starts_with("\\\\")
        || (name.starts_with('[') && name.contains("] "))
}

/// The last component of a path written with `/` or `\\` separators.
fn file_name_of(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name).trim()
}

/// `abs` as a name relative to `dir` when it lies inside it, lexically or
/// once symlinks are resolved.
fn inside_dir(dir: &Path, abs: &Path) -> Option<String> {
    let rel_of = |d: &Path, p: &Path| -> Option<String> {
        let r = p.strip_prefix(d).ok()?;
        let r = r.to_str()?;
        (!r.is_empty()).then(|| r.to_string())
    };
    let lexical = std::path::absolute(dir).ok()?;
    if let Some(r) = rel_of(&lexical, abs) {
        return Some(r);
    }
    let (d, p) = (dir.canonicalize().ok()?, abs.canonicalize().ok()?);
    rel_of(&d, &p)
}

/// Find the file a VMX `key` (`scsi0:0.fileName`) names, the way VMware
/// does after a VM folder was copied: a relative name is taken in the
/// VMX's folder; an absolute name inside that folder is accepted as such;
/// an absolute name that exists elsewhere needs `--allow-outside-paths`
/// (the open gate decides); an absolute name that does not exist here
/// (an ESXi `/vmfs/volumes/<ds>/<vm>/x.vmdk`, a Windows or datastore path)
/// falls back to its file name in the VMX's folder, with a note. Every
/// name goes through the open gate. Returns the path and the note.
fn locate(
    ctx: &vdisk::OpenCtx,
    vmx: &Path,
    key: &str,
    name: &str,
) -> Result<(std::path::PathBuf, Option<String>)> {
    let dir = match vmx.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let p = Path::new(name);
    if p.is_absolute() {
        if let Some(rel) = inside_dir(dir, p) {
            return Ok((ctx.resolve(vmx, &rel)?, None));
        }
        if p.exists() {
            return Ok((ctx.resolve(vmx, name)?, None));
        }
    } else if !is_foreign_path(name) {
        return Ok((ctx.resolve(vmx, name)?, None));
    }
    let base = file_name_of(name);
    if base.is_empty() || base == "." || base == ".." {
        return Err(Error::invalid(
            vmx,
            key,
            format!("{name:?} does not exist on this host and names no file"),
        ));
    }
    let candidate = dir.join(base);
    if !candidate.is_file() {
        return Err(Error::invalid(
            vmx,
            key,
            format!(
                "{name:?} does not exist on this host, and the VM's folder has no {base:?} either (looked for {})",
                candidate.display()
            ),
        ));
    }
    let resolved = ctx.resolve(vmx, base)?;
    let note = format!(
        "{key}: {name:?} does not exist on this host; using {base:?} from the VM's folder ({}), as VMware does after a VM is copied",
        resolved.display()
    );
    Ok((resolved, Some(note)))
}

/// The device ids (`scsi0:1`) with a `.present` key, in key order; ids
/// with numbers beyond [`MAX_CONTROLLER`]/[`MAX_UNIT`] are reported in
/// `m.warnings` and left out.
fn device_ids(vmx: &VmxFile, m: &mut VmModel) -> Vec<(BusKind, u32, u32, String)> {
    let mut ids = Vec::new();
    let mut dropped = Vec::new();
    for k in vmx.entries.keys() {
        let Some(p) = k.strip_suffix(".present") else {
            continue;
        };
        match (device_id(p), device_id_any(p)) {
            (Some((b, c, u)), _) => ids.push((b, c, u, p.to_string())),
            (None, Some(_)) if vmx.get_bool(k) == Some(true) => dropped.push(p.to_string()),
            _ => {}
        }
    }
    if !dropped.is_empty() {
        m.warnings.push(format!(
            "{} device(s) with a controller number above {MAX_CONTROLLER} or a unit above {MAX_UNIT} were dropped: {}{}",
            dropped.len(),
            dropped.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if dropped.len() > 5 { ", ..." } else { "" }
        ));
    }
    ids
}

/// Read the disks and CD-ROMs into `m`.
fn read_devices(path: &Path, vmx: &VmxFile, ctx: &vdisk::OpenCtx, m: &mut VmModel) -> Result<()> {
    for (bus, c, u, p) in device_ids(vmx, m) {
        if vmx.get_bool(&format!("{p}.present")) != Some(true) {
            continue;
        }
        let ctrl = format!("{}{}", &p[..p.find(char::is_numeric).unwrap_or(0)], c);
        if bus != BusKind::Ide && vmx.get_bool(&format!("{ctrl}.present")) == Some(false) {
            m.warnings.push(format!(
                "{p} is present but its controller {ctrl} is not; skipped"
            ));
            continue;
        }
        let model = match bus {
            BusKind::Scsi => vmx
                .get(&format!("{ctrl}.virtualDev"))
                .unwrap_or("lsilogic")
                .to_ascii_lowercase(),
            BusKind::Sata => "ahci".into(),
            BusKind::Nvme => "nvme".into(),
            _ => "piix4".into(),
        };
        let controller = Controller {
            bus,
            index: if bus == BusKind::Ide { 0 } else { c },
            model,
        };
        let unit = if bus == BusKind::Ide { c * 2 + u } else { u };
        let file = vmx.get(&format!("{p}.fileName")).unwrap_or("").to_string();
        let dtype = vmx
            .get(&format!("{p}.deviceType"))
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_cd = dtype.contains("cdrom")
            || (dtype.is_empty() && file.to_ascii_lowercase().ends_with(".iso"));
        if is_cd {
            let cd = read_cdrom(path, vmx, ctx, &p, &dtype, &file, m);
            m.cdroms.push(CdromDevice {
                controller,
                unit,
                image: Some(file).filter(|f| !f.is_empty()),
                path: cd,
            });
            continue;
        }
        if dtype.contains("passthru") {
            m.warnings.push(format!(
                "{p} is a passthrough device ({dtype}); not migrated"
            ));
            continue;
        }
        if file.is_empty() {
            m.warnings
                .push(format!("{p} is a disk without fileName; skipped"));
            continue;
        }
        let (resolved, note) = locate(ctx, path, &format!("{p}.fileName"), &file)?;
        m.warnings.extend(note);
        let mode = match vmx
            .get(&format!("{p}.mode"))
            .map(|s| s.to_ascii_lowercase())
        {
            None => DiskMode::Persistent,
            Some(s) => match s.as_str() {
                "persistent" | "" => DiskMode::Persistent,
                "independent-persistent" => DiskMode::IndependentPersistent,
                "independent-nonpersistent" => DiskMode::IndependentNonpersistent,
                "nonpersistent" => DiskMode::Nonpersistent,
                "undoable" => DiskMode::Undoable,
                _ => DiskMode::Other(s),
            },
        };
        if dtype.contains("raw") {
            m.warnings.push(format!("{p} is a raw device mapping ({file}); its descriptor is followed by the block layer"));
        }
        m.disks.push(DiskDevice {
            source: DiskSource::File { path: resolved },
            snapshot_delta: is_delta_name(&file),
            source_name: file,
            format_hint: Some("vmdk".into()),
            controller,
            unit,
            mode,
            boot: false,
            capacity_bytes: None,
        });
    }
    Ok(())
}

/// The image file of CD-ROM `p` on this host, if it is an image the
/// source connects at power-on and it is found (through [`locate`]);
/// otherwise `None` and a warning saying why it is not attached.
fn read_cdrom(
    path: &Path,
    vmx: &VmxFile,
    ctx: &vdisk::OpenCtx,
    p: &str,
    dtype: &str,
    file: &str,
    m: &mut VmModel,
) -> Option<std::path::PathBuf> {
    if file.is_empty() {
        return None;
    }
    let is_image =
        dtype == "cdrom-image" || (dtype.is_empty() && file.to_ascii_lowercase().ends_with(".iso"));
    if !is_image {
        m.warnings.push(format!(
            "{p} is the host's CD/DVD drive ({file:?}); not carried over"
        ));
        return None;
    }
    if vmx.get_bool(&format!("{p}.startConnected")) == Some(false) {
        m.warnings.push(format!(
            "{p}: CD-ROM image {file:?} is not connected at power-on in the source; not attached"
        ));
        return None;
    }
    match locate(ctx, path, &format!("{p}.fileName"), file) {
        Ok((iso, _)) if !iso.is_file() => {
            m.warnings.push(format!(
                "{p}: CD-ROM image {file:?} not found (looked for {}); not attached",
                iso.display()
            ));
            None
        }
        Ok((iso, note)) => {
            m.warnings.extend(note);
            Some(iso)
        }
        Err(e) => {
            m.warnings
                .push(format!("{p}: CD-ROM image {file:?} not attached: {e}"));
            None
        }
    }
}

/// Read the network adapters into `m`; adapters numbered
/// [`MAX_NIC_INDEX`] or above are dropped with a warning.
fn read_nics(vmx: &VmxFile, m: &mut VmModel) {
    let mut nic_ids: Vec<u32> = Vec::new();
    let mut dropped = 0usize;
    for k in vmx.entries.keys() {
        let Some(n) = k
            .strip_prefix("ethernet")
            .and_then(|r| r.strip_suffix(".present"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if n < MAX_NIC_INDEX {
            nic_ids.push(n);
        } else if vmx.get_bool(k) == Some(true) {
            dropped += 1;
        }
    }
    if dropped > 0 {
        m.warnings.push(format!(
            "{dropped} network adapter(s) numbered ethernet{MAX_NIC_INDEX} or above were dropped (only ethernet0 to ethernet{} are read)",
            MAX_NIC_INDEX - 1
        ));
    }
    nic_ids.sort_unstable();
    for n in nic_ids {
        let p = format!("ethernet{n}");
        if vmx.get_bool(&format!("{p}.present")) != Some(true) {
            continue;
        }
        let dev = vmx
            .get(&format!("{p}.virtualDev"))
            .unwrap_or("vlance")
            .to_ascii_lowercase();
        let model = match dev.as_str() {
            "e1000" => NicModel::E1000,
            "e1000e" => NicModel::E1000e,
            "vmxnet3" => NicModel::Vmxnet3,
            "vmxnet" | "vmxnet2" => NicModel::Vmxnet,
            "vlance" | "pcnet32" => NicModel::Pcnet,
            other => NicModel::Other(other.into()),
        };
        let atype = vmx
            .get(&format!("{p}.addressType"))
            .unwrap_or("")
            .to_ascii_lowercase();
        let keys = if atype == "static" {
            ["address", "generatedAddress"]
        } else {
            ["generatedAddress", "address"]
        };
        let mac = keys
            .iter()
            .find_map(|k| vmx.get(&format!("{p}.{k}")).and_then(normalise_mac));
        let (mac, mac_generated) = match mac {
            Some(mac) => (mac, false),
            None => {
                let g = generated_mac(&format!("{}/{p}", m.name));
                m.warnings
                    .push(format!("{p} has no MAC address; generated {g}"));
                (g, true)
            }
        };
        let network = vmx
            .get(&format!("{p}.networkName"))
            .or_else(|| vmx.get(&format!("{p}.vnet")))
            .or_else(|| vmx.get(&format!("{p}.connectionType")))
            .filter(|s| !s.is_empty())
            .map(String::from);
        m.nics.push(Nic {
            model,
            mac,
            mac_generated,
            network,
        });
    }
}
