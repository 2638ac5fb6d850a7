//! Building a phony guest: layout, tables, volumes, files, hives.

use crate::hives::{self, NicSpec, StaticIp, SystemSpec, Uninstall};
use crate::pe::{self, Subsystem};
use crate::table::{self, Part};
use crate::versions::{BaseHive, VersionInfo};
use crate::{Error, Expected, Hypervisor, ImageFormat, LoggedChange, Options, PartInfo, Result};
use guest::drivers::Arch;
use guest::inspect::Firmware;
use std::io::Read;
use std::path::{Path, PathBuf};
use vdisk::window::Window;
use vdisk::DiskWrite;

const MIB: u64 = 1 << 20;
/// Smallest system volume (the Windows 10 SYSTEM hive alone is 15 MiB).
const MIN_SYSTEM: u64 = 96 * MIB;
const BITLOCKER_SECTORS: u64 = 32 * MIB / 512;

/// Role of a planned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    SystemReserved,
    System,
    Esp,
    Msr,
    Bitlocker,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::SystemReserved => "system-reserved",
            Role::System => "system",
            Role::Esp => "esp",
            Role::Msr => "msr",
            Role::Bitlocker => "bitlocker",
        }
    }
    fn fs(self) -> &'static str {
        match self {
            Role::SystemReserved | Role::System => "ntfs",
            Role::Esp => "fat",
            Role::Msr => "none",
            Role::Bitlocker => "bitlocker",
        }
    }
}

/// Everything decided before a byte is written.
struct Plan {
    v: VersionInfo,
    arch: Arch,
    firmware: Firmware,
    hostname: String,
    systemroot: &'static str,
    sys32: &'static str,
    signature: u32,
    disk_guid: String,
    parts: Vec<(Role, Part)>,
}

impl Plan {
    fn part(&self, role: Role) -> Option<(u32, &Part)> {
        self.parts
            .iter()
            .enumerate()
            .find(|(_, (r, _))| *r == role)
            .map(|(i, (_, p))| (i as u32 + 1, p))
    }
    fn boot_role(&self) -> Option<Role> {
        if self.firmware == Firmware::Uefi {
            Some(Role::Esp)
        } else if self.part(Role::SystemReserved).is_some() {
            Some(Role::SystemReserved)
        } else {
            None
        }
    }
}

fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// The System Reserved size and C: offset the version's layout uses
/// (sectors), for BIOS.
fn bios_layout(o: &Options, v: &VersionInfo, arch: Arch) -> (Option<u64>, u64) {
    if v.nt5 {
        (None, 63)
    } else if v.base == BaseHive::Win7 && arch == Arch::X86 {
        // the real 32-bit Windows 7 hive maps C: at sector 2048
        (None, 2048)
    } else if v.base == BaseHive::Win7 {
        (Some(100 * MIB / 512), 2048 + 100 * MIB / 512)
    } else {
        let _ = o;
        (Some(500 * MIB / 512), 2048 + 500 * MIB / 512)
    }
}

fn part(
    start: u64,
    sectors: u64,
    mbr_type: u8,
    active: bool,
    gpt: &'static str,
    guid: String,
    name: &'static str,
) -> Part {
    Part {
        start,
        sectors,
        mbr_type,
        active,
        gpt_type: gpt,
        guid,
        name,
    }
}

/// The architecture and firmware to build, or why the options are
/// impossible.
fn check(o: &Options, v: &VersionInfo) -> Result<(Arch, Firmware)> {
    let arch = o.arch.unwrap_or(v.default_arch);
    if (arch == Arch::X86 && !v.x86) || (arch == Arch::Amd64 && !v.x64) {
        return Err(Error::Layout(format!(
            "{} is not built for {arch:?}",
            v.os_id
        )));
    }
    let firmware = o.firmware.unwrap_or(v.default_firmware);
    let uefi_ok = v.uefi || (v.uefi_x64 && arch == Arch::Amd64);
    if (firmware == Firmware::Uefi && !uefi_ok) || (firmware == Firmware::Bios && !v.bios) {
        return Err(Error::Layout(format!(
            "{} is not built for {firmware:?} firmware",
            v.os_id
        )));
    }
    if o.fast_startup && v.base != BaseHive::Win10 {
        return Err(Error::Layout(format!(
            "Fast Startup does not exist on {}",
            v.os_id
        )));
    }
    if !o.size.is_multiple_of(512) || o.size < min_size(o) {
        return Err(Error::Layout(format!(
            "size {} must be a multiple of 512 and at least {} for {}",
            o.size,
            min_size(o),
            v.os_id
        )));
    }
    Ok((arch, firmware))
}

/// The partitions, in table order; `g` makes a GUID per purpose.
fn partitions(
    o: &Options,
    v: &VersionInfo,
    arch: Arch,
    firmware: Firmware,
    g: &dyn Fn(&str) -> String,
) -> Vec<(Role, Part)> {
    let sectors = o.size / 512;
    let mut parts = vec![];
    let end = if firmware == Firmware::Uefi {
        sectors - 34
    } else {
        sectors
    };
    let data_end = if o.bitlocker {
        align_down(end - BITLOCKER_SECTORS, 2048)
    } else {
        end
    };
    let basic = table::GPT_BASIC_DATA;
    let c_start = if firmware == Firmware::Uefi {
        let esp = 100 * MIB / 512;
        let msr = 16 * MIB / 512;
        let esp_part = part(
            2048,
            esp,
            0xef,
            false,
            table::GPT_ESP,
            g("esp"),
            "EFI system partition",
        );
        let msr_part = part(
            2048 + esp,
            msr,
            0,
            false,
            table::GPT_MSR,
            g("msr"),
            "Microsoft reserved partition",
        );
        parts.push((Role::Esp, esp_part));
        parts.push((Role::Msr, msr_part));
        2048 + esp + msr
    } else {
        let (sr, c) = bios_layout(o, v, arch);
        if let Some(sr) = sr {
            let sr_part = part(2048, sr, 0x07, true, basic, g("sr"), "Basic data partition");
            parts.push((Role::SystemReserved, sr_part));
        }
        c
    };
    let c_active = firmware == Firmware::Bios && parts.is_empty();
    let c = part(
        c_start,
        data_end - c_start,
        0x07,
        c_active,
        basic,
        g("system"),
        "Basic data partition",
    );
    parts.push((Role::System, c));
    if o.bitlocker {
        let d = part(
            data_end,
            end - data_end,
            0x07,
            false,
            basic,
            g("bitlocker"),
            "Basic data partition",
        );
        parts.push((Role::Bitlocker, d));
    }
    parts
}

fn plan(o: &Options) -> Result<Plan> {
    let v = o.version.info();
    let (arch, firmware) = check(o, &v)?;
    let hostname = o
        .hostname
        .clone()
        .unwrap_or_else(|| format!("PHONY-{}", v.os_id.to_ascii_uppercase().replace('.', "")));
    let seed = format!("{}-{hostname}", v.os_id);
    let g = |w: &str| table::make_guid(&seed, w);
    let parts = partitions(o, &v, arch, firmware, &g);
    let signature = match v.base {
        BaseHive::Win7 => 0x5cbe_a03e,
        BaseHive::Win10 => 0xdf45_46ae,
    };
    Ok(Plan {
        systemroot: if v.nt5 { "WINDOWS" } else { "Windows" },
        sys32: if v.nt5 { "system32" } else { "System32" },
        v,
        arch,
        firmware,
        hostname,
        signature,
        disk_guid: g("disk"),
        parts,
    })
}

/// The smallest virtual size [`build`] accepts for these options.
pub fn min_size(o: &Options) -> u64 {
    let v = o.version.info();
    let arch = o.arch.unwrap_or(v.default_arch);
    let uefi = o.firmware.unwrap_or(v.default_firmware) == Firmware::Uefi;
    let before = if uefi {
        2048 * 512 + 116 * MIB
    } else {
        let (_, c) = bios_layout(o, &v, arch);
        c * 512
    };
    let bl = if o.bitlocker {
        BITLOCKER_SECTORS * 512 + MIB
    } else {
        0
    };
    (before + MIN_SYSTEM + bl + MIB).div_ceil(MIB) * MIB
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Decompress `name` (xz) from the test data directory.
fn testdata_xz(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    let f = std::fs::File::open(&p).map_err(io_err(&p))?;
    let mut r = std::io::BufReader::new(f);
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut r, &mut out).map_err(|e| Error::Io {
        path: p.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    Ok(out)
}

fn nic_spec(o: &Options, p: &Plan) -> NicSpec {
    let v = &p.v;
    let (driver, desc, hwid) = match (o.hypervisor, v.nt5, v.base) {
        (Hypervisor::Vmware, true, _) => (
            "vmxnet",
            "VMware Accelerated AMD PCNet Adapter",
            "pci\\ven_1022&dev_2000",
        ),
        (Hypervisor::Vmware, false, _) => (
            "vmxnet3ndis6",
            "vmxnet3 Ethernet Adapter",
            "pci\\ven_15ad&dev_07b0",
        ),
        (Hypervisor::Hyperv, _, _) => (
            "netvsc",
            "Microsoft Hyper-V Network Adapter",
            "vmbus\\{f8615163-df3e-46c5-913f-f2d2f965ed0e}",
        ),
        (_, true, _) => (
            "E100B",
            "Intel(R) PRO/100 VE Network Connection",
            "pci\\ven_8086&dev_1050",
        ),
        (_, false, BaseHive::Win7) => (
            "E1G60",
            "Intel(R) PRO/1000 MT Network Connection",
            "pci\\ven_8086&dev_100e",
        ),
        (_, false, BaseHive::Win10) => (
            "e1iexpress",
            "Intel(R) 82574L Gigabit Network Connection",
            "pci\\ven_8086&dev_10d3",
        ),
    };
    let name = if v.base == BaseHive::Win10 {
        if o.hypervisor == Hypervisor::Vmware {
            "Ethernet0"
        } else {
            "Ethernet"
        }
    } else {
        "Local Area Connection"
    };
    NicSpec {
        guid: format!("{{{}}}", table::make_guid(&p.hostname, "nic0")),
        name: name.into(),
        driver,
        desc,
        hwid,
        static_ip: o.static_ip.then(|| StaticIp {
            address: "192.0.2.10".into(),
            mask: "255.255.255.0".into(),
            gateway: "192.0.2.1".into(),
            dns: vec!["192.0.2.53".into(), "198.51.100.53".into()],
            mac: "005056010203".into(),
        }),
    }
}

fn boot_storage(hv: Hypervisor, p: &Plan) -> Vec<&'static str> {
    let v = &p.v;
    match hv {
        Hypervisor::None => vec!["atapi", "intelide"],
        Hypervisor::Vmware if v.nt5 => vec!["symmpi"],
        Hypervisor::Vmware if p.arch == Arch::X86 => vec!["LSI_SCSI"],
        Hypervisor::Vmware if v.server && v.base == BaseHive::Win10 => vec!["pvscsi"],
        Hypervisor::Vmware => vec!["LSI_SAS"],
        Hypervisor::Hyperv => vec!["storvsc"],
        Hypervisor::Virtualbox if v.nt5 => vec!["atapi", "intelide"],
        Hypervisor::Virtualbox if v.base == BaseHive::Win7 => vec!["msahci"],
        Hypervisor::Virtualbox => vec!["storahci"],
    }
}

/// `MountedDevices` values for the plan: drive letters and volume GUIDs.
/// Registry values (name, data) and drive letters (letter, partition).
type Mounted = (Vec<(String, Vec<u8>)>, Vec<(String, u32)>);

fn mounted_devices(p: &Plan) -> Result<Mounted> {
    let mut vals = vec![];
    let mut letters = vec![];
    for (i, (role, pt)) in p.parts.iter().enumerate() {
        let data = if p.firmware == Firmware::Uefi {
            let mut d = b"DMIO:ID:".to_vec();
            d.extend_from_slice(&table::guid_bytes(&pt.guid)?);
            d
        } else {
            let mut d = p.signature.to_le_bytes().to_vec();
            d.extend_from_slice(&(pt.start * 512).to_le_bytes());
            d
        };
        let letter = match role {
            Role::System => Some("C:"),
            Role::Bitlocker => Some("D:"),
            _ => None,
        };
        if matches!(role, Role::Esp | Role::Msr) {
            continue;
        }
        if let Some(l) = letter {
            vals.push((format!("\\DosDevices\\{l}"), data.clone()));
            letters.push((l.to_string(), i as u32 + 1));
        }
        let vg = table::make_guid(&p.hostname, &format!("volume{i}")).to_ascii_lowercase();
        vals.push((format!("\\??\\Volume{{{vg}}}"), data));
    }
    Ok((vals, letters))
}

/// The system volume's files, in creation order: (path, bytes).
fn system_files(p: &Plan, driver_files: &[String]) -> Vec<(String, Vec<u8>)> {
    let (sr, s32) = (p.systemroot, p.sys32);
    let os = (p.v.major as u16, p.v.minor as u16);
    let img =
        |a: Arch, s: Subsystem, n: &str| pe::image(a, s, os, &format!("phony {n} {}", p.v.build));
    let mut f: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{sr}/{s32}/ntoskrnl.exe"),
            img(p.arch, Subsystem::Native, "ntoskrnl.exe"),
        ),
        (
            format!("{sr}/{s32}/hal.dll"),
            img(p.arch, Subsystem::Native, "hal.dll"),
        ),
        (
            format!("{sr}/{s32}/cmd.exe"),
            img(p.arch, Subsystem::Console, "cmd.exe"),
        ),
        (
            format!("{sr}/explorer.exe"),
            img(p.arch, Subsystem::Gui, "explorer.exe"),
        ),
        (
            format!("{sr}/regedit.exe"),
            img(p.arch, Subsystem::Gui, "regedit.exe"),
        ),
    ];
    if !p.v.nt5 {
        let wl = if p.firmware == Firmware::Uefi {
            "winload.efi"
        } else {
            "winload.exe"
        };
        let sub = if p.firmware == Firmware::Uefi {
            Subsystem::EfiApplication
        } else {
            Subsystem::Native
        };
        f.push((format!("{sr}/{s32}/{wl}"), img(p.arch, sub, wl)));
    }
    if p.arch == Arch::Amd64 {
        f.push((
            format!("{sr}/SysWOW64/cmd.exe"),
            img(Arch::X86, Subsystem::Console, "cmd.exe"),
        ));
    }
    // port/class libraries the boot drivers link against (no service key)
    let mut libs = vec!["pciidex.sys", "scsiport.sys", "classpnp.sys"];
    if !p.v.nt5 {
        libs.extend(["ataport.sys", "storport.sys"]);
    }
    for l in libs {
        if !driver_files
            .iter()
            .any(|d| d.to_ascii_lowercase().ends_with(l))
        {
            f.push((
                format!("{sr}/{s32}/drivers/{l}"),
                img(p.arch, Subsystem::Native, l),
            ));
        }
    }
    for d in driver_files {
        let name = d.rsplit('\\').next().unwrap_or(d);
        f.push((
            format!("{sr}/{}", d.replace('\\', "/")),
            img(p.arch, Subsystem::Native, name),
        ));
    }
    if p.v.nt5 {
        let boot_ini = format!(
            "[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS\r\n[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS=\"{}\" /noexecute=optin /fastdetect\r\n",
            p.v.product_name
        );
        f.push(("boot.ini".into(), boot_ini.into_bytes()));
        f.push(("ntldr".into(), b"phony ntldr\0".repeat(64)));
        f.push(("NTDETECT.COM".into(), b"phony NTDETECT\0".repeat(32)));
    }
    f
}

fn system_dirs(p: &Plan) -> Vec<String> {
    let (sr, s32) = (p.systemroot, p.sys32);
    let mut d = vec![
        format!("{sr}/{s32}/config"),
        format!("{sr}/{s32}/drivers/etc"),
        format!("{sr}/Temp"),
        "Program Files/Common Files".to_string(),
    ];
    if p.arch == Arch::Amd64 {
        d.push(format!("{sr}/SysWOW64"));
        d.push("Program Files (x86)/Common Files".into());
    }
    if p.v.nt5 {
        d.push("Documents and Settings/All Users".into());
        d.push("Documents and Settings/Administrator".into());
    } else {
        d.push("Users/Public".into());
        d.push("Users/Default".into());
        d.push("ProgramData".into());
    }
    d
}

fn mkdir_p<D: DiskWrite>(v: &mut ntfs::Volume<D>, path: &str) -> Result<()> {
    let mut cur = String::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        cur.push('/');
        cur.push_str(c);
        match v.lookup(&cur) {
            Ok(_) => {}
            Err(ntfs::Error::NotFound(_)) => {
                v.mkdir(&cur)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn put<D: DiskWrite>(v: &mut ntfs::Volume<D>, path: &str, data: &[u8]) -> Result<()> {
    if let Some((dir, _)) = path.rsplit_once('/') {
        mkdir_p(v, dir)?;
    }
    v.write_file(&format!("/{path}"), data)?;
    Ok(())
}

/// The hives to write: (file name, bytes).
struct HiveSet {
    files: Vec<(String, Vec<u8>)>,
    facts: hives::SystemFacts,
    logged: Option<LoggedChange>,
}

fn empty_hive(root: &str, keys: &[&str]) -> Result<Vec<u8>> {
    let mut h = regf::Hive::new_empty(root)?;
    for k in keys {
        h.create_key(k)?;
    }
    Ok(h.commit())
}

/// The dirty variant of a committed SYSTEM hive: the primary holds an
/// older `ComputerName`, `SYSTEM.LOG1` the change to the real one.
fn dirty_system(
    sys_bytes: &[u8],
    facts: &hives::SystemFacts,
    hostname: &str,
) -> Result<(Vec<u8>, Vec<u8>, LoggedChange)> {
    let key = format!(
        "{}\\Control\\ComputerName\\ComputerName",
        facts.control_sets.in_use[0]
    );
    let before = "PHONY-OLDNAME".to_string();
    let mut old = regf::Hive::open(sys_bytes.to_vec())?;
    for cs in &facts.control_sets.in_use {
        old.set_value(
            &format!("{cs}\\Control\\ComputerName\\ComputerName"),
            "ComputerName",
            &regf::Value::String(before.clone()),
        )?;
    }
    let old_bytes = old.commit();
    let (primary, log1) = crate::hivelog::make_dirty(&old_bytes, sys_bytes)?;
    let change = LoggedChange {
        key,
        name: "ComputerName".into(),
        after: hostname.to_string(),
        before,
    };
    Ok((primary, log1, change))
}

fn make_hives(o: &Options, p: &Plan, testdata: &Path) -> Result<HiveSet> {
    let base_name = match p.v.base {
        BaseHive::Win7 => "hives/SYSTEM-win7.xz",
        BaseHive::Win10 => "hives/SYSTEM-win10-1709.xz",
    };
    let base = testdata_xz(testdata, base_name)?;
    let (mounted, _) = mounted_devices(p)?;
    let uninstall: Vec<Uninstall> = hives::uninstall_entries(o.hypervisor, &p.v, p.arch);
    let spec = SystemSpec {
        version: &p.v,
        arch: p.arch,
        hostname: &p.hostname,
        hypervisor: o.hypervisor,
        boot_storage: boot_storage(o.hypervisor, p),
        nic: nic_spec(o, p),
        fast_startup: o.fast_startup,
        mounted,
    };
    let (mut sys, facts) = hives::derive_system(base, &spec, &uninstall)?;
    let sys_bytes = sys.commit();
    let nt5 = p.v.nt5;
    let n = |s: &str| {
        if nt5 {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let mut files = vec![];
    let mut logged = None;
    if o.dirty_hive {
        let (primary, log1, change) = dirty_system(&sys_bytes, &facts, &p.hostname)?;
        files.push((n("SYSTEM"), primary));
        files.push((n("SYSTEM") + ".LOG1", log1));
        files.push((n("SYSTEM") + ".LOG2", vec![]));
        logged = Some(change);
    } else {
        files.push((n("SYSTEM"), sys_bytes));
    }
    let base_reg_path = testdata.join("phony-windows/windows-software.reg");
    let base_reg = std::fs::read_to_string(&base_reg_path).map_err(io_err(&base_reg_path))?;
    let text = hives::software_reg(&base_reg, &p.v, p.arch, p.systemroot, &uninstall);
    let mut soft = regf::Hive::new_empty("CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}")?;
    soft.import_reg(&text, Some("HKEY_LOCAL_MACHINE\\SOFTWARE"))?;
    files.push((n("SOFTWARE"), soft.commit()));
    files.push((
        n("SAM"),
        empty_hive("SAM", &["SAM\\Domains\\Account\\Users"])?,
    ));
    files.push((
        n("SECURITY"),
        empty_hive("SECURITY", &["Policy\\Accounts"])?,
    ));
    files.push((
        n("DEFAULT"),
        empty_hive(".DEFAULT", &["Control Panel\\Desktop"])?,
    ));
    let logs: Vec<String> = files
        .iter()
        .filter(|(f, _)| !f.contains(".LOG"))
        .map(|(f, _)| f.clone())
        .collect();
    for f in logs {
        let ext: &[&str] = if nt5 { &[".LOG"] } else { &[".LOG1", ".LOG2"] };
        for e in ext {
            let name = format!("{f}{e}");
            if !files.iter().any(|(x, _)| *x == name) {
                files.push((name, vec![]));
            }
        }
    }
    Ok(HiveSet {
        files,
        facts,
        logged,
    })
}

/// Format the ESP as FAT32 and fill it. The files are written through
/// `guest::fs` (which repairs fatfs' directory entries for fsck.fat and
/// chkdsk) on a sparse scratch file `scratch`, whose data is then copied
/// into the partition.
fn write_esp<D: DiskWrite>(
    disk: &D,
    pt: &Part,
    bcd: &[u8],
    arch: Arch,
    scratch: &Path,
) -> Result<()> {
    let len = pt.sectors * 512;
    let fe = Error::Fat;
    {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(scratch)
            .map_err(io_err(scratch))?;
        f.set_len(len).map_err(io_err(scratch))?;
        let opts = fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(512)
            .volume_label(*b"SYSTEM     ");
        fatfs::format_volume(&f, opts).map_err(fe)?;
    }
    let r = (|| -> Result<()> {
        {
            let d = vdisk::raw::RawDiskMut::open(scratch)?;
            let mut fs = guest::fs::GuestFs::open_rw(d, false)?;
            let app = pe::image(
                arch,
                Subsystem::EfiApplication,
                (10, 0),
                "phony bootmgfw.efi",
            );
            fs.mkdir_p("EFI/Microsoft/Boot")?;
            fs.mkdir_p("EFI/BOOT")?;
            fs.write("EFI/Microsoft/Boot/BCD", bcd)?;
            fs.write("EFI/Microsoft/Boot/bootmgfw.efi", &app)?;
            fs.write("EFI/BOOT/BOOTX64.EFI", &app)?;
            fs.flush()?;
        }
        let mut f = std::fs::File::open(scratch).map_err(io_err(scratch))?;
        let mut buf = vec![0u8; MIB as usize];
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(MIB) as usize;
            f.read_exact(&mut buf[..n]).map_err(io_err(scratch))?;
            for (k, c) in buf[..n].chunks(4096).enumerate() {
                if c.iter().any(|b| *b != 0) {
                    disk.write_at(c, pt.start * 512 + off + (k * 4096) as u64)?;
                }
            }
            off += n as u64;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(scratch);
    r
}

/// A BitLocker volume's first sector and first FVE metadata block.
fn write_bitlocker<D: DiskWrite>(disk: &D, pt: &Part) -> Result<()> {
    let mut s = vec![0u8; 512];
    s[0..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
    s[3..11].copy_from_slice(ntfs::boot::BITLOCKER_SIG);
    s[0x0b..0x0d].copy_from_slice(&512u16.to_le_bytes());
    s[0x0d] = 8;
    s[0x15] = 0xf8;
    let meta = [MIB, 2 * MIB, 3 * MIB];
    for (i, m) in meta.iter().enumerate() {
        s[0xa0 + 8 * i..0xa8 + 8 * i].copy_from_slice(&m.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    let base = pt.start * 512;
    disk.write_at(&s, base)?;
    let mut block = vec![0u8; 512];
    block[0..8].copy_from_slice(ntfs::boot::BITLOCKER_SIG);
    block[8..10].copy_from_slice(&2u16.to_le_bytes());
    for m in meta {
        disk.write_at(&block, base + m)?;
    }
    Ok(())
}

fn write_boot_volume<D: DiskWrite>(disk: &D, p: &Plan, bcd: &[u8], scratch: &Path) -> Result<()> {
    match p.boot_role() {
        Some(Role::Esp) => {
            let (_, pt) = p.part(Role::Esp).expect("planned");
            write_esp(disk, pt, bcd, p.arch, scratch)
        }
        Some(_) => {
            let (_, pt) = p.part(Role::SystemReserved).expect("planned");
            let w = Window::new(disk, pt.start * 512, pt.sectors * 512)?;
            crate::ntfsfmt::format(
                &w,
                "System Reserved",
                pt.start,
                (0x53 << 32) | u64::from(p.signature),
            )?;
            let mut v = ntfs::Volume::open_rw(w, ntfs::WriteOptions::default())?;
            put(&mut v, "bootmgr", &b"phony bootmgr\0".repeat(128))?;
            put(&mut v, "Boot/BCD", bcd)?;
            put(&mut v, "Boot/BCD.LOG", &[])?;
            Ok(())
        }
        None => Ok(()),
    }
}

fn write_system_volume<D: DiskWrite>(
    disk: &D,
    o: &Options,
    p: &Plan,
    hs: &HiveSet,
    bcd: &[u8],
) -> Result<()> {
    let (_, pt) = p.part(Role::System).expect("planned");
    let w = Window::new(disk, pt.start * 512, pt.sectors * 512)?;
    crate::ntfsfmt::format(&w, "", pt.start, (0x43 << 32) | u64::from(p.signature))?;
    let mut v = ntfs::Volume::open_rw(w, ntfs::WriteOptions::default())?;
    for d in system_dirs(p) {
        mkdir_p(&mut v, &d)?;
    }
    let config = format!("{}/{}/config", p.systemroot, p.sys32);
    for (name, data) in &hs.files {
        put(&mut v, &format!("{config}/{name}"), data)?;
    }
    for (path, data) in system_files(p, &hs.facts.driver_files) {
        put(&mut v, &path, &data)?;
    }
    if p.boot_role().is_none() && !p.v.nt5 {
        put(&mut v, "bootmgr", &b"phony bootmgr\0".repeat(128))?;
        put(&mut v, "Boot/BCD", bcd)?;
    }
    // last: once hiberfil.sys is active, the volume refuses writes
    let hib = if o.hibernated || o.fast_startup {
        Some(if p.v.base == BaseHive::Win10 {
            b"HIBR"
        } else {
            b"hibr"
        })
    } else if p.v.base == BaseHive::Win10 {
        Some(b"\0\0\0\0")
    } else {
        None
    };
    if let Some(magic) = hib {
        let mut h = vec![0u8; 64 * 1024];
        h[..4].copy_from_slice(magic);
        put(&mut v, "hiberfil.sys", &h)?;
    }
    Ok(())
}

fn expected(o: &Options, p: &Plan, hs: HiveSet) -> Result<Expected> {
    let (_, letters) = mounted_devices(p)?;
    let system_partition = p.part(Role::System).expect("planned").0;
    let boot_partition = p.boot_role().and_then(|r| p.part(r)).map(|(n, _)| n);
    let cfg = format!("{}/{}/config", p.systemroot, p.sys32);
    let n = |s: &str| {
        if p.v.nt5 {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let bcd = match p.boot_role() {
        Some(Role::Esp) => vec![(
            boot_partition.unwrap_or(0),
            "EFI/Microsoft/Boot/BCD".to_string(),
        )],
        Some(_) => vec![(boot_partition.unwrap_or(0), "Boot/BCD".to_string())],
        None if !p.v.nt5 => vec![(system_partition, "Boot/BCD".to_string())],
        None => vec![],
    };
    let mut blockers = vec![];
    if o.hibernated {
        blockers.push("hibernated".to_string());
    }
    if o.fast_startup {
        blockers.push("fast-startup".to_string());
    }
    if o.bitlocker {
        blockers.push("bitlocker".to_string());
    }
    if o.dirty_hive {
        blockers.push("dirty-hive".to_string());
    }
    let partitions = p
        .parts
        .iter()
        .enumerate()
        .map(|(i, (r, pt))| PartInfo {
            number: i as u32 + 1,
            start: pt.start,
            sectors: pt.sectors,
            role: r.name().into(),
            fs: r.fs().into(),
            guid: (p.firmware == Firmware::Uefi).then(|| pt.guid.clone()),
            letter: letters
                .iter()
                .find(|(_, n)| *n == i as u32 + 1)
                .map(|(l, _)| l.clone()),
        })
        .collect();
    Ok(Expected {
        os_id: p.v.os_id.into(),
        product_name: p.v.product_name.into(),
        major: p.v.major,
        minor: p.v.minor,
        build: p.v.build,
        installation_type: p.v.installation_type.map(String::from),
        edition_id: p.v.edition_id.map(String::from),
        arch: p.arch,
        hostname: p.hostname.clone(),
        firmware: p.firmware,
        systemroot: p.systemroot.into(),
        system_hive: format!("{cfg}/{}", n("SYSTEM")),
        software_hive: format!("{cfg}/{}", n("SOFTWARE")),
        bcd,
        control_sets: hs.facts.control_sets,
        storage_drivers: hs.facts.storage,
        boot_storage: boot_storage(o.hypervisor, p)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        nics: vec![hs.facts.nic],
        foreign_tools: hs.facts.tools,
        blockers,
        system_partition,
        boot_partition,
        disk_signature: (p.firmware == Firmware::Bios).then_some(p.signature),
        disk_guid: (p.firmware == Firmware::Uefi).then(|| p.disk_guid.clone()),
        partitions,
        drive_letters: letters,
        logged_change: hs.logged,
        size: o.size,
    })
}

/// The corpus BCD with its boot manager pointed at the boot volume and its
/// default loader at the system volume of this layout.
fn bcd_for(p: &Plan, bcd: &[u8]) -> Result<Vec<u8>> {
    let (_, sys) = p.part(Role::System).expect("planned");
    let boot = p
        .boot_role()
        .and_then(|r| p.part(r))
        .map(|(_, b)| b)
        .unwrap_or(sys);
    let target = |pt: &Part| -> Result<crate::bcd::Target> {
        Ok(match p.firmware {
            Firmware::Bios => crate::bcd::Target::Mbr {
                signature: p.signature,
                offset: pt.start * 512,
            },
            Firmware::Uefi => crate::bcd::Target::Gpt {
                disk: table::guid_bytes(&p.disk_guid)?,
                partition: table::guid_bytes(&pt.guid)?,
            },
        })
    };
    crate::bcd::relocate(bcd, target(boot)?, target(sys)?)
}

fn populate<D: DiskWrite>(
    disk: &D,
    o: &Options,
    p: &Plan,
    testdata: &Path,
    scratch: &Path,
) -> Result<Expected> {
    let parts: Vec<Part> = p.parts.iter().map(|(_, pt)| pt.clone()).collect();
    match p.firmware {
        Firmware::Bios => table::write_mbr(disk, p.signature, &parts)?,
        Firmware::Uefi => table::write_gpt(disk, &p.disk_guid, &parts)?,
    }
    let bcd = bcd_for(p, &testdata_xz(testdata, "hives/BCD.xz")?)?;
    let hs = make_hives(o, p, testdata)?;
    write_boot_volume(disk, p, &bcd, scratch)?;
    write_system_volume(disk, o, p, &hs, &bcd)?;
    if let Some((_, pt)) = p.part(Role::Bitlocker) {
        write_bitlocker(disk, pt)?;
    }
    disk.flush()?;
    expected(o, p, hs)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Build the guest described by `o` at `out` (written under a temporary
/// name and renamed when complete). `testdata` is the shared test data
/// directory (holding `hives/` and `phony-windows/`).
pub fn build(o: &Options, testdata: &Path, out: &Path) -> Result<Expected> {
    let p = plan(o)?;
    let tmp = partial_path(out);
    let mut scratch = tmp.clone().into_os_string();
    scratch.push(".esp");
    let scratch = PathBuf::from(scratch);
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> Result<Expected> {
        match o.format {
            ImageFormat::Raw => {
                let f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
                f.set_len(o.size).map_err(io_err(&tmp))?;
                drop(f);
                let d = vdisk::raw::RawDiskMut::open(&tmp)?;
                populate(&d, o, &p, testdata, &scratch)
            }
            ImageFormat::Qcow2 => {
                let w = vdisk::writer::Qcow2Writer::create(
                    &tmp,
                    o.size,
                    vdisk::writer::Qcow2Options::default(),
                    true,
                )?;
                vdisk::writer::SeqWriter::finish(Box::new(w))?;
                let d = vdisk::qcow2::open_rw(&tmp)?;
                populate(&d, o, &p, testdata, &scratch)
            }
        }
    })();
    match r {
        Ok(e) => {
            std::fs::rename(&tmp, out).map_err(io_err(out))?;
            Ok(e)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;

    #[test]
    fn every_version_plans_at_its_minimum_size() {
        for v in Version::ALL {
            let mut o = Options::new(v);
            o.size = min_size(&o);
            let p = plan(&o).unwrap();
            let (_, c) = p.part(Role::System).unwrap();
            assert!(c.sectors * 512 >= MIN_SYSTEM, "{v:?}");
            o.size -= MIB;
            assert!(plan(&o).is_err(), "{v:?} accepted below its minimum");
        }
    }

    #[test]
    fn real_hive_offsets_are_kept() {
        let p = plan(&Options::new(Version::Win10)).unwrap();
        assert_eq!(p.part(Role::System).unwrap().1.start, 1_026_048);
        assert_eq!(p.signature, 0xdf45_46ae);
        let p = plan(&Options::new(Version::Win7)).unwrap();
        assert_eq!(p.part(Role::System).unwrap().1.start, 2048);
        assert_eq!(p.signature, 0x5cbe_a03e);
    }
}
