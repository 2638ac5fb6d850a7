//! Windows guests: inspection of an install found on the VM's disks, and
//! the offline fixes planned from it.
//!
//! Inspection reads only what it needs: the root directories of the
//! volumes, the boot stores, the SYSTEM and SOFTWARE hives (logs replayed
//! in memory), the first page of `ntoskrnl.exe` and `hiberfil.sys`, and
//! the existence of driver files. Nothing is written.

pub mod blockers;
pub mod boot;
pub mod bootdrivers;
pub mod controlset;
mod describe;
pub mod firstboot;
pub mod hives;
pub mod letters;
pub mod nics;
pub mod pe;
pub mod reg;
pub mod storage;
pub mod tools;
pub mod version;
pub mod volume;
pub mod winsock;

pub use describe::describe;

use crate::drivers::Arch;
use crate::inspect::{Blocker, ControlSets, DiskInfo, Firmware, VolumeInfo, WindowsInstall};
use crate::plan::{HiveRef, VolumeRef};
use regf::Hive;
use vdisk::Disk;
use volume::Vol;

/// An opened volume with where it is.
struct OpenVol<'a> {
    info: &'a VolumeInfo,
    table: &'a str,
    vol: Vol<'a>,
}

/// Boot files found on a volume.
#[derive(Default)]
struct BootStore {
    /// `Boot/BCD` and `EFI/Microsoft/Boot/BCD` paths present.
    bcd: Vec<String>,
    /// An `EFI/Microsoft/Boot/BCD` is among them.
    efi: bool,
    /// `boot.ini` or `bootmgr`/`ntldr` present (BIOS boot files).
    bios_files: bool,
    /// System roots the stores name.
    roots: Vec<String>,
}

/// Find and inspect every Windows install on the VM's disks (`disks[i]`
/// is described by `infos[i]`). Problems that do not stop inspection go
/// to `warnings`.
pub fn inspect(
    disks: &[&dyn Disk],
    infos: &[DiskInfo],
    warnings: &mut Vec<String>,
) -> Vec<WindowsInstall> {
    let vols = open_volumes(disks, infos, warnings);
    let layouts = letters::layouts(disks, infos);
    let stores: Vec<BootStore> = vols.iter().map(|v| boot_store(v, warnings)).collect();
    let mut candidates: Vec<String> = stores.iter().flat_map(|s| s.roots.clone()).collect();
    candidates.extend(["Windows".to_string(), "WINNT".to_string()]);
    let mut out = Vec::new();
    for (i, v) in vols.iter().enumerate() {
        if !matches!(v.vol, Vol::Ntfs(_)) {
            continue;
        }
        for root in system_roots(&v.vol, &candidates) {
            if let Some(w) = inspect_install(&vols, &stores, i, &root, infos, &layouts, warnings) {
                out.push(w);
            }
        }
    }
    if out.is_empty() {
        for d in infos {
            for v in d.volumes.iter().filter(|v| v.fs == "bitlocker") {
                warnings.push(format!(
                    "{} is BitLocker-encrypted: a Windows install on it cannot be inspected or fixed offline; decrypt it on the source VM (manage-bde -off C:, wait for 100%) and migrate again",
                    vol_name(&v.volume)
                ));
            }
        }
    }
    out
}

/// `disk0 partition 2` / `disk1` (whole disk).
pub fn vol_name(v: &VolumeRef) -> String {
    match v.partition {
        Some(p) => format!("disk{} partition {p}", v.disk),
        None => format!("disk{}", v.disk),
    }
}

fn open_volumes<'a>(
    disks: &[&'a dyn Disk],
    infos: &'a [DiskInfo],
    warnings: &mut Vec<String>,
) -> Vec<OpenVol<'a>> {
    if disks.len() != infos.len() {
        warnings.push(format!(
            "windows inspection: {} disks but {} disk descriptions; extra ones ignored",
            disks.len(),
            infos.len()
        ));
    }
    let mut out = Vec::new();
    for (disk, d) in disks.iter().zip(infos) {
        for info in &d.volumes {
            match Vol::open(*disk, info.start, info.len, &info.fs) {
                Ok(Some(vol)) => out.push(OpenVol {
                    info,
                    table: &d.table,
                    vol,
                }),
                Ok(None) => {}
                Err(e) => warnings.push(format!(
                    "{}: cannot open the {} filesystem: {e}",
                    vol_name(&info.volume),
                    info.fs
                )),
            }
        }
    }
    out
}

fn boot_store(v: &OpenVol<'_>, warnings: &mut Vec<String>) -> BootStore {
    let mut s = BootStore::default();
    for (path, efi) in [("Boot/BCD", false), ("EFI/Microsoft/Boot/BCD", true)] {
        if v.vol.file_size(path).is_none() {
            continue;
        }
        s.bcd.push(path.to_string());
        s.efi |= efi;
        match v.vol.read(path).map(|b| hives::open_bytes(b, &[], path)) {
            Ok(Ok(h)) => s.roots.extend(boot::bcd_roots(&h.hive)),
            Ok(Err(e)) => warnings.push(format!("{}: {e}", vol_name(&v.info.volume))),
            Err(e) => warnings.push(format!("{}: {path}: {e}", vol_name(&v.info.volume))),
        }
    }
    if v.vol.file_size("boot.ini").is_some() {
        s.bios_files = true;
        if let Ok(b) = v.vol.read_head("boot.ini", boot::MAX_BOOT_INI) {
            s.roots.extend(boot::boot_ini_roots(&b));
        }
    }
    s.bios_files |= v.vol.file_size("bootmgr").is_some() || v.vol.file_size("ntldr").is_some();
    s
}

/// System roots on `vol` among `candidates`: directories holding
/// `System32/config/SYSTEM`, with their real spelling.
fn system_roots(vol: &Vol<'_>, candidates: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in candidates {
        if out.iter().any(|o| o.eq_ignore_ascii_case(c)) {
            continue;
        }
        if vol
            .file_size(&format!("{c}/System32/config/SYSTEM"))
            .is_some()
        {
            let real = match c.split_once('/') {
                None => vol.real_name("", c).unwrap_or_else(|| c.clone()),
                Some(_) => c.clone(),
            };
            out.push(real);
        }
    }
    out
}

/// The volume Windows boots from for the system volume `sys`: the system
/// volume itself when it holds the boot files, else another volume with a
/// BCD (same disk first), else one with NT 5 boot files (`boot.ini`,
/// `ntldr`).
fn boot_volume(vols: &[OpenVol<'_>], stores: &[BootStore], sys: usize) -> Option<usize> {
    let own = &stores[sys];
    if !own.bcd.is_empty() || own.bios_files {
        return None;
    }
    let disk = vols[sys].info.volume.disk;
    let find = |same: bool, has: &dyn Fn(&BootStore) -> bool| {
        (0..vols.len())
            .find(|&i| i != sys && has(&stores[i]) && (vols[i].info.volume.disk == disk) == same)
    };
    let bcd = |s: &BootStore| !s.bcd.is_empty();
    let nt5 = |s: &BootStore| s.bios_files;
    find(true, &bcd)
        .or_else(|| find(false, &bcd))
        .or_else(|| find(true, &nt5))
        .or_else(|| find(false, &nt5))
}

/// The hives and what opening them found.
struct Hives {
    system: Hive,
    software: Option<Hive>,
    system_ref: HiveRef,
    software_ref: HiveRef,
    blockers: Vec<Blocker>,
}

fn open_hives(v: &OpenVol<'_>, root: &str, warnings: &mut Vec<String>) -> Option<Hives> {
    // the real spelling of every component (NT 5 writes `system32`): the
    // hive paths name the files as they are on the volume
    let real = |dir: &str, n: &str| v.vol.real_name(dir, n).unwrap_or(n.into());
    let s32 = format!("{root}/{}", real(root, "System32"));
    let cfg = format!("{s32}/{}", real(&s32, "config"));
    let path = |n: &str| format!("{cfg}/{}", real(&cfg, n));
    let (sys_path, sw_path) = (path("SYSTEM"), path("SOFTWARE"));
    let here = vol_name(&v.info.volume);
    let mut blockers = Vec::new();
    let system = match hives::open(&v.vol, &sys_path) {
        Ok(o) => {
            blockers.extend(o.blocker);
            o.hive
        }
        Err(e) => {
            warnings.push(format!("{here}: Windows install skipped: {e}"));
            return None;
        }
    };
    let software = match hives::open(&v.vol, &sw_path) {
        Ok(o) => {
            blockers.extend(o.blocker);
            Some(o.hive)
        }
        Err(e) => {
            warnings.push(format!(
                "{here}: {e}; version and uninstall entries unknown"
            ));
            None
        }
    };
    let href = |path: String| HiveRef {
        volume: v.info.volume.clone(),
        path,
    };
    Some(Hives {
        system,
        software,
        system_ref: href(sys_path),
        software_ref: href(sw_path),
        blockers,
    })
}

fn control_sets(system: &Hive, here: &str, warnings: &mut Vec<String>) -> ControlSets {
    controlset::read(system).unwrap_or_else(|| {
        warnings.push(format!(
            "{here}: SYSTEM hive has no usable Select key; assuming ControlSet001"
        ));
        ControlSets {
            current: 1,
            default: 1,
            last_known_good: 0,
            in_use: vec!["ControlSet001".into()],
        }
    })
}

fn arch(
    vol: &Vol<'_>,
    root: &str,
    system: &Hive,
    ccs: &str,
    here: &str,
    warnings: &mut Vec<String>,
) -> Arch {
    let path = format!("{root}/System32/ntoskrnl.exe");
    let from_pe = match vol.read_head(&path, pe::HEAD) {
        Ok(head) => pe::machine(&head).map_err(|e| format!("{path}: {e}")),
        Err(e) => Err(format!("{path}: {e}")),
    };
    let why = match from_pe {
        Ok(pe::PeMachine::Known(a)) => return a,
        Ok(pe::PeMachine::Other(m)) => {
            format!("{path}: machine type {m:#x} is neither x86 nor x86-64")
        }
        Err(e) => e,
    };
    let fallback = controlset::env_arch(system, ccs);
    warnings.push(format!(
        "{here}: {why}; architecture taken from {}",
        if fallback.is_some() {
            "PROCESSOR_ARCHITECTURE in the SYSTEM hive"
        } else {
            "nothing (assumed x86-64)"
        }
    ));
    fallback.unwrap_or(Arch::Amd64)
}

fn firmware(
    vols: &[OpenVol<'_>],
    stores: &[BootStore],
    sys: usize,
    boot: Option<usize>,
) -> Firmware {
    let b = boot.unwrap_or(sys);
    if stores[b].efi || vols[sys].table == "gpt" || vols[b].table == "gpt" {
        Firmware::Uefi
    } else {
        Firmware::Bios
    }
}

fn hiberfil(vol: &Vol<'_>) -> Option<blockers::HiberState> {
    vol.file_size("hiberfil.sys")?;
    vol.read_head("hiberfil.sys", 4096)
        .ok()
        .map(|h| blockers::hiber_state(&h))
}

fn inspect_install(
    vols: &[OpenVol<'_>],
    stores: &[BootStore],
    sys: usize,
    root: &str,
    infos: &[DiskInfo],
    layouts: &[letters::Layout],
    warnings: &mut Vec<String>,
) -> Option<WindowsInstall> {
    let v = &vols[sys];
    let here = format!("{} \\{root}", vol_name(&v.info.volume));
    let h = open_hives(v, root, warnings)?;
    let cs = control_sets(&h.system, &here, warnings);
    let ccs = cs.in_use[0].clone();
    let ver = h
        .software
        .as_ref()
        .and_then(version::read)
        .unwrap_or_else(|| {
            warnings.push(format!("{here}: no Windows version in the SOFTWARE hive"));
            version::Version::default()
        });
    let os_id = ver.os_id().unwrap_or_else(|| {
        warnings.push(format!(
            "{here}: unknown Windows version {}.{} build {} ({:?})",
            ver.major, ver.minor, ver.build, ver.product_name
        ));
        "unknown"
    });
    let boot = boot_volume(vols, stores, sys);
    let bstore = boot.unwrap_or(sys);
    let exists = |p: &str| v.vol.file_size(p).is_some();
    let storage_drivers: Vec<_> = bootdrivers::STORAGE_DRIVERS
        .iter()
        .filter_map(|n| bootdrivers::service_state(&h.system, &ccs, n, root, &exists))
        .collect();
    let instances = bootdrivers::enum_instances(&h.system, &ccs);
    let bound = bootdrivers::bound_services(&instances);
    let blockers = collect_blockers(v, &h, &ccs, infos);
    let mut facts = blockers::facts(&h.system, &ccs);
    for (letter, vol) in letters::drive_letters(&h.system, layouts) {
        facts.push((format!("drive {letter}"), vol_name(&vol)));
    }
    Some(WindowsInstall {
        system: v.info.volume.clone(),
        systemroot: root.to_string(),
        boot_volume: boot.map(|b| vols[b].info.volume.clone()),
        bcd: stores[bstore]
            .bcd
            .iter()
            .map(|p| HiveRef {
                volume: vols[bstore].info.volume.clone(),
                path: p.clone(),
            })
            .collect(),
        firmware: firmware(vols, stores, sys, boot),
        product_name: ver.product_name.clone(),
        os_id: os_id.to_string(),
        major: ver.major,
        minor: ver.minor,
        build: ver.build,
        installation_type: ver.installation_type.clone(),
        edition_id: ver.edition_id.clone(),
        arch: arch(&v.vol, root, &h.system, &ccs, &here, warnings),
        hostname: controlset::hostname(&h.system, &ccs),
        boot_storage: bootdrivers::boot_storage(&storage_drivers, &bound),
        virtio_ready: bootdrivers::virtio_ready(&h.system, &ccs, &storage_drivers, &bound),
        storage_drivers,
        nics: nics::read(&h.system, &ccs),
        foreign_tools: tools::read_with(&h.system, h.software.as_ref(), &ccs, &instances, &bound),
        blockers,
        facts,
        control_sets: cs,
        system_hive: h.system_ref,
        software_hive: h.software_ref,
    })
}

fn collect_blockers(v: &OpenVol<'_>, h: &Hives, ccs: &str, infos: &[DiskInfo]) -> Vec<Blocker> {
    let mut out = Vec::new();
    out.extend(blockers::hibernation(
        hiberfil(&v.vol),
        blockers::hiberboot(&h.system, ccs),
    ));
    if let Some(why) = v.vol.unclean() {
        out.push(Blocker {
            id: "dirty-ntfs".into(),
            refuse: true,
            message: format!(
                "{} was not cleanly unmounted: {why}. Boot the source VM and shut it down fully (shutdown /s /t 0), or run chkdsk /f, before migrating",
                vol_name(&v.info.volume)
            ),
        });
    }
    for d in infos {
        for vi in d.volumes.iter().filter(|x| x.fs == "bitlocker") {
            out.push(Blocker {
                id: "bitlocker".into(),
                refuse: false,
                message: format!(
                    "{} is BitLocker-encrypted: it cannot be inspected or fixed, and its key protector (TPM) does not move to the new VM; decrypt it on the source (manage-bde -off) or have the recovery key ready",
                    vol_name(&vi.volume)
                ),
            });
        }
    }
    out.extend(h.blockers.iter().cloned());
    out.extend(blockers::from_hives(&h.system, h.software.as_ref(), ccs));
    out
}
