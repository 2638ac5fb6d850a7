//! `hyper2kvm inspect DISK... [--json]`: partitions, filesystems, boot
//! sector geometry, MBR CHS fields, container geometry hints, the BIOS
//! geometry each target bus presents, every mismatch with its effect, and
//! the geometry fix that would be chosen; then the inspection of all the
//! disks together as one VM (tables, filesystems, guest installs found).

use anyhow::Context;
use guest::audit::{audit, Audit};
use guest::fixgeo::{self, GeometryPlan};
use guest::geometry::{self, Bus, DeviceGeometry};
use guest::inspect::{inspect_vm, LinuxInstall, VmInspection, WindowsInstall};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Disk images (any supported format).
    #[arg(required = true)]
    disks: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Geo {
    audit: Audit,
    plan: GeometryPlan,
}

#[derive(Serialize)]
struct Report<'a> {
    path: PathBuf,
    format: String,
    /// The geometry audit and plan (absent when the disk's table cannot
    /// be read: then `error` says why).
    #[serde(flatten)]
    geo: Option<Geo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The inspection of all disks given, together (the same in every
    /// element).
    vm: &'a VmInspection,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut disks = vec![];
    for path in &args.disks {
        disks.push(vdisk::open(path).with_context(|| format!("cannot open {}", path.display()))?);
    }
    let refs: Vec<&dyn vdisk::Disk> = disks.iter().map(|d| d.as_ref()).collect();
    let vm = inspect_vm(&refs);
    let mut reports = vec![];
    for (path, disk) in args.disks.iter().zip(&disks) {
        // A disk whose table cannot be read is reported, not fatal: the
        // other disks and the VM-wide inspection still are.
        let geo = audit(&**disk, &DeviceGeometry::default()).and_then(|a| {
            let plan = fixgeo::plan(&**disk, &a, None, &[Bus::Sata, Bus::VirtioBlk])?;
            Ok(Geo { audit: a, plan })
        });
        let (geo, error) = match geo {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(format!("cannot audit the geometry: {e}"))),
        };
        reports.push(Report {
            path: path.clone(),
            format: disk.layer().format,
            geo,
            error,
            vm: &vm,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            print_text(r);
        }
        print_vm(&vm, &args.disks);
    }
    Ok(())
}

/// The VM-wide inspection as text.
fn print_vm(vm: &VmInspection, paths: &[PathBuf]) {
    println!("VM (all {} disk(s) together):", vm.disks.len());
    for (d, p) in vm.disks.iter().zip(paths) {
        println!(
            "  disk {} {}: {} table{}, boot code {}",
            d.index,
            p.display(),
            d.table,
            d.mbr_signature
                .map(|s| format!(", signature {s:#010x}"))
                .unwrap_or_default(),
            if d.boot_code { "present" } else { "absent" }
        );
        for v in &d.volumes {
            println!(
                "    {} {}: {} ({}{})",
                v.volume
                    .partition
                    .map(|n| format!("partition {n}"))
                    .unwrap_or_else(|| "whole disk".into()),
                geometry_size(v.len),
                v.fs,
                v.type_name,
                if v.boot_flag { ", boot" } else { "" }
            );
        }
    }
    if vm.windows.is_empty() && vm.linux.is_empty() {
        println!("  no guest install found");
    }
    for w in &vm.windows {
        print_windows(w);
    }
    for l in &vm.linux {
        for line in linux_lines(l) {
            println!("  {line}");
        }
    }
    for w in &vm.warnings {
        println!("  warning: {w}");
    }
}

fn geometry_size(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    }
}

fn print_windows(w: &WindowsInstall) {
    for l in guest::windows::describe(w) {
        println!("  {l}");
    }
}

fn vol(v: &Option<guest::plan::VolumeRef>, lv: &Option<String>) -> String {
    let place = v
        .as_ref()
        .map(|v| match v.partition {
            Some(p) => format!("disk {} partition {p}", v.disk),
            None => format!("disk {} (whole)", v.disk),
        })
        .unwrap_or_else(|| "?".into());
    match lv {
        Some(lv) => format!("LVM {lv} on {place}"),
        None => place,
    }
}

/// A Linux install as text lines.
fn linux_lines(l: &LinuxInstall) -> Vec<String> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    };
    let mut out = vec![format!(
        "Linux: {} (distro {}, version {}), firmware {}",
        l.pretty_name.clone().unwrap_or_else(|| opt(&l.distro)),
        opt(&l.distro),
        opt(&l.version),
        l.firmware
            .map(|f| format!("{f:?}").to_lowercase())
            .unwrap_or_else(|| "?".into())
    )];
    out.push(format!(
        "  root: {} ({}{}); /boot: {}",
        vol(&l.root, &l.root_lv),
        opt(&l.root_fs),
        l.root_subvol
            .as_ref()
            .map(|s| format!(", subvolume {s}"))
            .unwrap_or_default(),
        if l.boot.is_some() {
            vol(&l.boot, &l.boot_lv)
        } else {
            "on the root".into()
        }
    ));
    out.push(format!(
        "  boot loader: {} ({})",
        opt(&l.boot_loader),
        opt(&l.boot_config)
    ));
    if let Some(b) = &l.default_boot {
        out.push(format!(
            "  default kernel: {} (release {})",
            b.kernel,
            opt(&b.release)
        ));
        out.push(format!("  initrd: {}", list(&b.initrd)));
        out.push(format!("  cmdline: {}", b.cmdline));
    }
    if !l.other_kernels.is_empty() {
        out.push(format!("  other kernels: {}", l.other_kernels.join(", ")));
    }
    out.push(format!("  initramfs tool: {}", opt(&l.initramfs_tool)));
    if let Some(v) = &l.virtio {
        let yn = |b: bool| if b { "yes" } else { "no" };
        out.push(format!(
            "  initrd virtio-blk: {}, virtio-scsi: {}; storage drivers: {}",
            yn(v.blk),
            yn(v.scsi),
            list(&v.storage_drivers)
        ));
    }
    out.extend(linux_findings(l));
    out.push(format!(
        "  migration: {}",
        guest::linux::inspect::migration_summary(l)
    ));
    out
}

/// The bus-specific names, interfaces, tools, SELinux and LVM facts of a
/// Linux install as text lines.
fn linux_findings(l: &LinuxInstall) -> Vec<String> {
    let mut out = vec![];
    for d in &l.device_names {
        out.push(format!(
            "  bus-specific name: {} line {}: {} -> {}",
            d.file,
            d.line,
            d.device,
            d.replacement.as_deref().unwrap_or("unresolved")
        ));
    }
    for i in &l.interfaces {
        out.push(format!(
            "  interface {} ({}, {}){}{}",
            i.name,
            i.kind,
            i.file,
            i.mac
                .as_ref()
                .map(|m| format!(" mac {m}"))
                .unwrap_or_default(),
            if i.addresses.is_empty() {
                String::new()
            } else {
                format!(" addresses {}", i.addresses.join(", "))
            }
        ));
    }
    for t in &l.foreign_tools {
        out.push(format!(
            "  foreign tool: {} {} {} ({})",
            t.vendor, t.kind, t.name, t.location
        ));
    }
    if let Some(s) = &l.selinux {
        out.push(format!("  SELinux: {s}"));
    }
    if l.lvm_devices_file {
        out.push("  LVM devices file: /etc/lvm/devices/system.devices".into());
    }
    out
}

fn print_text(r: &Report<'_>) {
    let Some(g) = &r.geo else {
        println!(
            "{} ({}): {}",
            r.path.display(),
            r.format,
            r.error.as_deref().unwrap_or("no audit")
        );
        return;
    };
    let a = &g.audit;
    println!("{} ({}, {} bytes)", r.path.display(), r.format, a.disk_size);
    print_table(&a.table);
    for v in &a.volumes {
        let fs =
            v.fs.map(|f| format!("{f:?}").to_lowercase())
                .unwrap_or_else(|| "unknown".into());
        let mut line = format!("  volume {}: {fs}", v.partition);
        if let Some(b) = &v.bpb {
            line.push_str(&format!(
                "; BPB {} heads, {} sectors/track, hidden sectors {}, {} sectors",
                b.heads, b.sectors_per_track, b.hidden_sectors, b.total_sectors
            ));
        }
        match v.backup_matches {
            Some(true) => line.push_str("; backup boot sector matches"),
            Some(false) => line.push_str("; backup boot sector DIFFERS"),
            None => {}
        }
        println!("{line}");
    }
    let h = &a.hints;
    if !h.is_empty() {
        println!(
            "  container geometry ({}): physical {}, BIOS {}",
            h.source.as_deref().unwrap_or("?"),
            h.physical.map(geometry::fmt).unwrap_or_else(|| "-".into()),
            h.bios.map(geometry::fmt).unwrap_or_else(|| "-".into())
        );
    }
    if let Some(e) = a.expected {
        println!(
            "  boot code expects {} heads / {} sectors per track",
            e.heads, e.sectors
        );
    }
    println!("  BIOS geometry (QEMU + SeaBIOS, no pin):");
    for g in &a.targets {
        println!(
            "    {:<11} {} ({:?})",
            g.bus.name(),
            geometry::fmt(g.logical),
            g.translation
        );
    }
    if a.findings.is_empty() {
        println!("  findings: none");
    } else {
        println!("  findings:");
        for f in &a.findings {
            println!("    - {}", f.message);
        }
    }
    print_plan(&g.plan, "  ");
}

/// The partition table lines of the audit.
fn print_table(t: &guest::partition::PartitionTable) {
    let scheme = match t.kind {
        guest::partition::TableKind::None => "no partition table".to_string(),
        guest::partition::TableKind::Mbr => "MBR".into(),
        guest::partition::TableKind::Gpt => {
            let g = t.gpt.as_ref();
            format!(
                "GPT ({} header used{})",
                g.map(|g| g.used.as_str()).unwrap_or("?"),
                if g.is_some_and(|g| g.hybrid_mbr) {
                    ", hybrid MBR"
                } else {
                    ""
                }
            )
        }
    };
    match &t.mbr {
        Some(m) => println!(
            "  table: {scheme}; disk signature {:#010x}; boot code {}",
            m.disk_signature,
            if m.boot_code_present {
                "present"
            } else {
                "absent"
            }
        ),
        None => println!("  table: {scheme}"),
    }
    for p in t.partitions() {
        let mut line = format!(
            "  {:>3}  LBA {:>10} +{:<10} {}",
            p.index,
            p.start_lba,
            p.sectors,
            p.type_name()
        );
        if p.bootable {
            line.push_str(" active");
        }
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            line.push_str(&format!(" \"{n}\""));
        }
        if let Some(e) = &p.mbr_entry {
            line.push_str(&format!(" C/H/S {}..{}", e.start_chs, e.end_chs));
        }
        println!("{line}");
    }
}

/// Print a plan as text (shared with fix-geometry).
pub(crate) fn print_plan(p: &GeometryPlan, ind: &str) {
    let mode = match p.mode {
        None => "none".to_string(),
        Some(m) => format!("{m:?}").to_lowercase(),
    };
    let buses: Vec<&str> = p.buses.iter().map(|b| b.name()).collect();
    println!(
        "{ind}geometry plan for {}: {mode}{}",
        buses.join(" then "),
        if p.automatic { " (automatic)" } else { "" }
    );
    if let Some(pin) = &p.pin {
        println!(
            "{ind}  pin: {} (QEMU -device ...,{})",
            geometry::fmt(pin.chs()),
            pin.qemu_props()
        );
    }
    if let Some(g) = p.rewrite_geometry {
        println!(
            "{ind}  rewrite to {} heads / {} sectors per track",
            g.heads, g.sectors
        );
    }
    for l in fixgeo::describe_after(p) {
        println!("{ind}  after: {l}");
    }
    for n in &p.notes {
        println!("{ind}  note: {n}");
    }
}
