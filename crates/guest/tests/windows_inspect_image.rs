//! Whole-image Windows inspection on small disks built with the oracle
//! tools: tables by `sfdisk`, NTFS by `mkntfs` and populated through an
//! `ntfs-3g` mount, the ESP by `mkfs.fat` + mtools, SOFTWARE hives by
//! `hivexregedit --merge` on the minimal hive, SYSTEM hives and the BCD
//! from the real corpus. The disk is a VMDK descriptor whose FLAT extents
//! are the partition images (nothing is copied), read through `vdisk`.

use guest::drivers::Arch;
use guest::inspect::{Blocker, DiskInfo, Firmware, WindowsInstall};
use guest::plan::{HiveRef, VolumeRef};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use testkit::winimg::*;

/// Counts the bytes inspection reads.
#[derive(Debug)]
struct Counting<D> {
    inner: D,
    bytes: AtomicU64,
}

impl<D: vdisk::Disk> vdisk::Disk for Counting<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> vdisk::Result<()> {
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_at(buf, offset)
    }
    fn layer(&self) -> vdisk::LayerInfo {
        self.inner.layer()
    }
}

/// The disk description the pipeline hands over (`inspect_disk`).
fn disk_info(index: usize, disk: &dyn vdisk::Disk) -> DiskInfo {
    guest::inspect::inspect_disk(index, disk)
}

fn inspect(desc: &Path) -> (Vec<WindowsInstall>, Vec<String>) {
    inspect_all(&[desc])
}

/// Inspect a VM made of the disks `descs` (in order).
fn inspect_all(descs: &[&Path]) -> (Vec<WindowsInstall>, Vec<String>) {
    let disks: Vec<Counting<Box<dyn vdisk::Disk>>> = descs
        .iter()
        .map(|d| Counting {
            inner: vdisk::probe::open(d).unwrap(),
            bytes: AtomicU64::new(0),
        })
        .collect();
    let infos: Vec<DiskInfo> = disks
        .iter()
        .enumerate()
        .map(|(i, d)| disk_info(i, d))
        .collect();
    for d in &disks {
        d.bytes.store(0, Ordering::Relaxed);
    }
    let refs: Vec<&dyn vdisk::Disk> = disks.iter().map(|d| d as &dyn vdisk::Disk).collect();
    let t = std::time::Instant::now();
    let mut warnings = Vec::new();
    let found = guest::windows::inspect(&refs, &infos, &mut warnings);
    eprintln!(
        "inspect: {:?}, {} KiB read",
        t.elapsed(),
        disks
            .iter()
            .map(|d| d.bytes.load(Ordering::Relaxed))
            .sum::<u64>()
            >> 10
    );
    (found, warnings)
}

fn vol(p: u32) -> VolumeRef {
    VolumeRef {
        disk: 0,
        partition: Some(p),
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn tools(w: &WindowsInstall) -> Vec<String> {
    let mut v: Vec<String> = w
        .foreign_tools
        .iter()
        .map(|t| format!("{} {} {}", t.vendor, t.kind, t.name))
        .collect();
    v.sort();
    v
}

fn ids(b: &[Blocker]) -> Vec<(String, bool)> {
    b.iter().map(|b| (b.id.clone(), b.refuse)).collect()
}

#[test]
fn bios_win7_x86_vmware_guest_hibernated_with_a_bitlocker_volume() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let system = unxz(dir, "SYSTEM-win7");
    let bcd = unxz(dir, "BCD");
    let software = software_hive(
        dir,
        &[
            (
                "Microsoft\\Windows NT\\CurrentVersion",
                &[
                    "\"ProductName\"=\"Windows 7 Professional\"",
                    "\"CurrentVersion\"=\"6.1\"",
                    "\"CurrentBuildNumber\"=\"7601\"",
                    "\"InstallationType\"=\"Client\"",
                    "\"EditionID\"=\"Professional\"",
                ],
            ),
            (
                "Microsoft\\Windows\\CurrentVersion\\Uninstall\\{FE2F6A2C-196E-4210-9C04-2B1BC21F07EF}",
                &[
                    "\"DisplayName\"=\"VMware Tools\"",
                    "\"UninstallString\"=\"MsiExec.exe /X{FE2F6A2C-196E-4210-9C04-2B1BC21F07EF}\"",
                ],
            ),
            (
                "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending",
                &[],
            ),
        ],
    );
    let p1 = ntfs_part(dir, "p1.img", 8, 2048, |m| {
        put(m, "Boot/BCD", &std::fs::read(&bcd).unwrap());
        put(m, "bootmgr", &pe(0x14c));
    });
    // a 20 GiB system volume (sparse): inspection reads only what it needs
    let p2 = ntfs_part(dir, "p2.img", 20 << 10, 18432, |m| {
        put(
            m,
            "Windows/System32/config/SYSTEM",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "Windows/System32/config/SOFTWARE",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "Windows/System32/ntoskrnl.exe", &pe(0x14c));
        for f in ["atapi.sys", "intelide.sys", "lsi_sas.sys"] {
            put(m, &format!("Windows/System32/drivers/{f}"), &pe(0x14c));
        }
        let mut hiber = b"hibr".to_vec();
        hiber.resize(8192, 0);
        put(m, "hiberfil.sys", &hiber);
    });
    let p3 = dir.join("p3.img");
    testkit::sparse_file(&p3, 8 << 20);
    testkit::patch(&p3, 0, b"\xeb\x58\x90-FVE-FS-");
    testkit::patch(&p3, 510, &[0x55, 0xaa]);
    let desc = assemble_vmdk(
        dir,
        (20 << 10) + 32,
        "label: dos\nlabel-id: 0x0badcafe\nstart=2048, size=16384, type=7, bootable\nstart=18432, size=41943040, type=7\nstart=41961472, size=16384, type=7\n",
        &[(2048, &p1), (18432, &p2), (41961472, &p3)],
    );
    let (found, warnings) = inspect(&desc);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(found.len(), 1);
    let w = &found[0];
    assert_eq!(w.system, vol(2));
    assert_eq!(w.systemroot, "Windows");
    assert_eq!(w.boot_volume, Some(vol(1)));
    assert_eq!(
        w.bcd,
        vec![HiveRef {
            volume: vol(1),
            path: "Boot/BCD".into()
        }]
    );
    assert_eq!(w.firmware, Firmware::Bios);
    assert_eq!(w.system_hive.path, "Windows/System32/config/SYSTEM");
    assert_eq!(w.software_hive.path, "Windows/System32/config/SOFTWARE");
    assert_eq!(w.product_name, "Windows 7 Professional");
    assert_eq!(w.os_id, "win7");
    assert_eq!((w.major, w.minor, w.build), (6, 1, 7601));
    assert_eq!(w.installation_type.as_deref(), Some("Client"));
    assert_eq!(w.edition_id.as_deref(), Some("Professional"));
    assert_eq!(w.arch, Arch::X86);
    assert_eq!(w.hostname.as_deref(), Some("WKS-WIN732BITA"));
    assert_eq!(w.control_sets.last_known_good, 2);
    assert_eq!(
        w.control_sets.in_use,
        strs(&["ControlSet001", "ControlSet002"])
    );
    let present: Vec<&str> = w
        .storage_drivers
        .iter()
        .filter(|d| d.file_present)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(present, ["atapi", "intelide", "LSI_SAS"]);
    assert_eq!(w.storage_drivers.len(), 16);
    assert_eq!(w.boot_storage, strs(&["atapi", "intelide", "LSI_SAS"]));
    assert!(!w.virtio_ready);
    let nics: Vec<(&str, Vec<String>)> = w
        .nics
        .iter()
        .map(|n| (n.connection_name.as_deref().unwrap(), n.addresses.clone()))
        .collect();
    assert_eq!(
        nics,
        [
            (
                "Local Area Connection",
                strs(&["192.168.1.123/255.255.255.0"])
            ),
            (
                "Local Area Connection 2",
                strs(&["10.3.58.5/255.255.255.0"])
            ),
        ]
    );
    assert_eq!(
        tools(w),
        strs(&[
            "vmware filter VMMouse",
            "vmware service VMMEMCTL",
            "vmware service VMTools",
            "vmware service VMUpgradeHelper",
            "vmware service vm3dmp",
            "vmware service vmci",
            "vmware service vmmouse",
            "vmware service vmrawdsk",
            "vmware uninstall VMware Tools",
            "vmware winsock-provider VMCI sockets DGRAM",
            "vmware winsock-provider VMCI sockets STREAM",
        ])
    );
    let u = w
        .foreign_tools
        .iter()
        .find(|t| t.kind == "uninstall")
        .unwrap();
    assert_eq!(
        u.uninstall.as_deref(),
        Some("MsiExec.exe /X{FE2F6A2C-196E-4210-9C04-2B1BC21F07EF}")
    );
    assert_eq!(
        u.location,
        "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{FE2F6A2C-196E-4210-9C04-2B1BC21F07EF}"
    );
    assert_eq!(
        ids(&w.blockers),
        [
            ("hibernated".to_string(), true),
            ("bitlocker".into(), false),
            ("pending-reboot".into(), false),
        ]
    );
    assert!(w.blockers[1]
        .message
        .starts_with("disk0 partition 3 is BitLocker"));
    // MountedDevices names C: by signature 0x5cbea03e, not this disk's
    assert!(!w.facts.iter().any(|(k, _)| k.starts_with("drive ")));
    let text = guest::windows::describe(w);
    assert!(
        text.contains(
            &"  storage driver LSI_SCSI: start 0, group SCSI Miniport, image system32\\drivers\\lsi_scsi.sys, file missing".to_string()
        ),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|l| l.starts_with("  other storage drivers: pciide (start 3), msahci (start 3),")),
        "{text:#?}"
    );
    assert_eq!(
        text[0],
        "Windows: Windows 7 Professional (win7, NT 6.1 build 7601, x86, edition Professional, Client)"
    );
    assert!(
        text.iter().any(|l| l.starts_with("  BLOCKER hibernated: ")),
        "{text:#?}"
    );
    assert!(
        text.contains(
            &"  boot volume: disk0 partition 1; firmware: BIOS; BCD: Boot/BCD".to_string()
        ),
        "{text:#?}"
    );
}

#[test]
fn uefi_win11_x64_dirty_system_hive_and_device_install_policy() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let system = unxz(dir, "SYSTEM-win10-1709");
    let bcd = unxz(dir, "BCD");
    let software = software_hive(
        dir,
        &[
            (
                "Microsoft\\Windows NT\\CurrentVersion",
                &[
                    "\"ProductName\"=\"Windows 10 Pro\"",
                    "\"CurrentVersion\"=\"6.3\"",
                    "\"CurrentMajorVersionNumber\"=dword:0000000a",
                    "\"CurrentMinorVersionNumber\"=dword:00000000",
                    "\"CurrentBuildNumber\"=\"22631\"",
                    "\"InstallationType\"=\"Client\"",
                    "\"EditionID\"=\"Professional\"",
                ],
            ),
            (
                "WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{VMW}",
                &[
                    "\"DisplayName\"=\"VMware Tools\"",
                    "\"UninstallString\"=\"MsiExec.exe /I{VMW}\"",
                    "\"QuietUninstallString\"=\"MsiExec.exe /X{VMW} /qn\"",
                ],
            ),
            (
                "Microsoft\\Windows\\CurrentVersion\\Uninstall\\Notepad++",
                &["\"DisplayName\"=\"Notepad++\""],
            ),
            (
                "Policies\\Microsoft\\Windows\\DeviceInstall\\Restrictions",
                &[
                    "\"DenyUnspecified\"=dword:00000001",
                    "\"DenyRemovableDevices\"=dword:00000000",
                ],
            ),
        ],
    );
    let esp = esp_part(dir, 16, &[("EFI/Microsoft/Boot/BCD", &bcd)]);
    let p2 = ntfs_part(dir, "p2.img", 64, 34816, |m| {
        put(
            m,
            "Windows/System32/config/SYSTEM",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "Windows/System32/config/SOFTWARE",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "Windows/System32/ntoskrnl.exe", &pe(0x8664));
        for f in ["storahci.sys", "stornvme.sys"] {
            put(m, &format!("Windows/System32/drivers/{f}"), &pe(0x8664));
        }
        put(m, "hiberfil.sys", &[0u8; 8192]);
    });
    let desc = assemble_vmdk(
        dir,
        96,
        "label: gpt\nstart=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=34816, size=131072, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n",
        &[(2048, &esp), (34816, &p2)],
    );
    let (found, warnings) = inspect(&desc);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(found.len(), 1);
    let w = &found[0];
    assert_eq!(w.system, vol(2));
    assert_eq!(w.boot_volume, Some(vol(1)));
    assert_eq!(
        w.bcd,
        vec![HiveRef {
            volume: vol(1),
            path: "EFI/Microsoft/Boot/BCD".into()
        }]
    );
    assert_eq!(w.firmware, Firmware::Uefi);
    assert_eq!(
        w.os_id, "win11",
        "build 22631 with a 'Windows 10' ProductName"
    );
    assert_eq!((w.major, w.minor, w.build), (10, 0, 22631));
    assert_eq!(w.arch, Arch::Amd64);
    assert_eq!(w.hostname.as_deref(), Some("DESKTOP-2KGM189"));
    assert_eq!(w.control_sets.in_use, strs(&["ControlSet001"]));
    let present: Vec<&str> = w
        .storage_drivers
        .iter()
        .filter(|d| d.file_present)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(present, ["storahci", "stornvme"]);
    let nvme = w
        .storage_drivers
        .iter()
        .find(|d| d.name == "stornvme")
        .unwrap();
    assert_eq!(nvme.start_override, vec![("0".to_string(), 3)]);
    assert_eq!(
        w.boot_storage,
        strs(&["atapi", "intelide", "storahci", "LSI_SAS"])
    );
    assert_eq!(w.nics.len(), 1);
    assert_eq!(w.nics[0].connection_name.as_deref(), Some("Ethernet0"));
    assert!(w.nics[0].dhcp);
    let t = tools(w);
    assert_eq!(t.len(), 27, "{t:?}");
    assert!(t.contains(&"vmware uninstall VMware Tools".to_string()));
    // vsock's providers in both protocol catalogs
    assert_eq!(
        t.iter()
            .filter(|x| x.starts_with("vmware winsock-provider vSockets "))
            .count(),
        4,
        "{t:?}"
    );
    let u = w
        .foreign_tools
        .iter()
        .find(|t| t.kind == "uninstall")
        .unwrap();
    assert_eq!(u.uninstall.as_deref(), Some("MsiExec.exe /X{VMW} /qn"));
    assert_eq!(
        u.location,
        "SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{VMW}"
    );
    // HiberbootEnabled=1 but hiberfil.sys is zeroed: no Fast Startup image
    assert_eq!(
        ids(&w.blockers),
        [
            ("dirty-hive".to_string(), true),
            ("pending-rename".into(), false),
            ("device-install-policy".into(), false),
        ]
    );
    assert!(w.blockers[0]
        .message
        .starts_with("Windows/System32/config/SYSTEM is dirty"));
    assert!(w.blockers[2].message.contains("(DenyUnspecified)"));
    assert!(w.facts.contains(&("HiberbootEnabled".into(), "1".into())));
}

/// Merge .reg text (keys under SYSTEM) into a copy of a real SYSTEM hive.
fn edited_system(dir: &Path, base: &Path, reg: &str) -> PathBuf {
    let hive = dir.join("SYSTEM-edited");
    std::fs::copy(base, &hive).unwrap();
    let r = dir.join("system.reg");
    std::fs::write(&r, format!("Windows Registry Editor Version 5.00\n\n{reg}")).unwrap();
    run_tool(
        "hivexregedit",
        &[
            "--merge",
            "--prefix",
            "HKEY_LOCAL_MACHINE\\SYSTEM",
            hive.to_str().unwrap(),
            r.to_str().unwrap(),
        ],
    );
    hive
}

#[test]
fn bios_2003_custom_systemroot_from_boot_ini_virtio_ready_fast_startup() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cs = "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001";
    let net = "{4D36E972-E325-11CE-BFC1-08002BE10318}";
    let system = edited_system(
        dir,
        &unxz(dir, "SYSTEM-win7"),
        &format!(
            "[{cs}\\Services\\viostor]\n\"Start\"=dword:00000000\n\"Group\"=\"SCSI miniport\"\n\"ImagePath\"=\"system32\\\\drivers\\\\viostor.sys\"\n\n\
             [{cs}\\Control\\CriticalDeviceDatabase\\pci#ven_1af4&dev_1001&subsys_00021af4&rev_00]\n\"Service\"=\"viostor\"\n\"ClassGUID\"=\"{{4D36E97B-E325-11CE-BFC1-08002BE10318}}\"\n\n\
             [{cs}\\Services\\partmgr\\Parameters]\n\"SanPolicy\"=dword:00000002\n\n\
             [{cs}\\Control\\TimeZoneInformation]\n\"RealTimeIsUniversal\"=dword:00000001\n\n\
             [{cs}\\Control\\Session Manager\\Power]\n\"HiberbootEnabled\"=dword:00000001\n\n\
             [{cs}\\Control\\Class\\{net}\\0007]\n\"NetworkAddress\"=\"00-50-56-0A-0B-0C\"\n\n"
        ),
    );
    let software = software_hive(
        dir,
        &[(
            "Microsoft\\Windows NT\\CurrentVersion",
            &[
                "\"ProductName\"=\"Microsoft Windows Server 2003\"",
                "\"CurrentVersion\"=\"5.2\"",
                "\"CurrentBuildNumber\"=\"3790\"",
            ],
        )],
    );
    let p1 = ntfs_part(dir, "p1.img", 96, 2048, |m| {
        put(
            m,
            "boot.ini",
            b"[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WIN2K3\r\n[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WIN2K3=\"Windows Server 2003\" /fastdetect\r\n",
        );
        put(m, "ntldr", b"ntldr");
        put(
            m,
            "WIN2K3/system32/config/system",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "WIN2K3/system32/config/software",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "WIN2K3/system32/ntoskrnl.exe", &pe(0x14c));
        put(m, "WIN2K3/system32/drivers/viostor.sys", &pe(0x14c));
        let mut hiber = b"HIBR".to_vec();
        hiber.resize(4096, 0);
        put(m, "hiberfil.sys", &hiber);
    });
    // ntfsfix marks the volume dirty (chkdsk at the next Windows boot)
    // before it refuses to remount the hibernated volume (exit status 1)
    testkit::need("ntfsfix");
    let o = testkit::output_of(Command::new("ntfsfix").arg(&p1));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("Setting required flags on partition... OK"),
        "{said}"
    );
    let desc = assemble_vmdk(
        dir,
        100,
        "label: dos\nlabel-id: 0x5cbea03e\nstart=2048, size=196608, type=7, bootable\n",
        &[(2048, &p1)],
    );
    let (found, warnings) = inspect(&desc);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(found.len(), 1);
    let w = &found[0];
    assert_eq!(w.system, vol(1));
    assert_eq!(w.systemroot, "WIN2K3", "found through boot.ini");
    assert_eq!(w.boot_volume, None, "boot files on the system volume");
    assert!(w.bcd.is_empty());
    assert_eq!(w.firmware, Firmware::Bios);
    assert_eq!(w.system_hive.path, "WIN2K3/system32/config/system"); // the spelling on the volume
    assert_eq!(w.os_id, "win2k3");
    assert_eq!((w.major, w.minor, w.build), (5, 2, 3790));
    assert_eq!(w.installation_type, None);
    assert_eq!(w.arch, Arch::X86);
    let viostor = w
        .storage_drivers
        .iter()
        .find(|d| d.name == "viostor")
        .unwrap();
    assert_eq!(viostor.start, Some(0));
    assert!(viostor.file_present);
    assert!(
        w.virtio_ready,
        "Start=0, file present, CDD entry for 1AF4:1001"
    );
    // viostor is bound to no device yet: today's boot storage is unchanged
    assert_eq!(w.boot_storage, strs(&["atapi", "intelide", "LSI_SAS"]));
    assert_eq!(w.nics[0].mac.as_deref(), Some("00:50:56:0a:0b:0c"));
    assert_eq!(w.nics[1].mac, None);
    assert_eq!(
        ids(&w.blockers),
        [
            ("fast-startup".to_string(), true),
            ("dirty-ntfs".into(), true),
            ("san-policy".into(), false),
        ]
    );
    assert_eq!(
        w.blockers[1].message,
        "disk0 partition 1 was not cleanly unmounted: the volume's dirty flag is set. Boot the source VM and shut it down fully (shutdown /s /t 0), or run chkdsk /f, before migrating"
    );
    assert!(w.blockers[2]
        .message
        .starts_with("SanPolicy is 2 (OfflineShared)"));
    assert!(w
        .facts
        .contains(&("RealTimeIsUniversal".into(), "1".into())));
    assert!(w.facts.contains(&("SanPolicy".into(), "2".into())));
    // MountedDevices: C: = signature 0x5cbea03e, offset 1 MiB
    assert!(w
        .facts
        .contains(&("drive C:".into(), "disk0 partition 1".into())));
}

#[test]
fn uefi_esp_on_the_first_disk_system_on_the_second() {
    let d = tempfile::tempdir().unwrap();
    let (d0, d1) = (d.path().join("d0"), d.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    let bcd = unxz(d.path(), "BCD");
    // C: by GPT partition GUID (DMIO:ID: + the GUID's bytes)
    let system = edited_system(
        d.path(),
        &unxz(d.path(), "SYSTEM-win10-1709"),
        "[HKEY_LOCAL_MACHINE\\SYSTEM\\MountedDevices]\n\"\\\\DosDevices\\\\C:\"=hex(3):44,4d,49,4f,3a,49,44,3a,2a,3f,0f,6e,2c,1b,5e,4d,8f,90,a1,b2,c3,d4,e5,f6\n\n",
    );
    let software = software_hive(
        d.path(),
        &[(
            "Microsoft\\Windows NT\\CurrentVersion",
            &[
                "\"ProductName\"=\"Windows Server 2019 Datacenter\"",
                "\"CurrentMajorVersionNumber\"=dword:0000000a",
                "\"CurrentMinorVersionNumber\"=dword:00000000",
                "\"CurrentBuildNumber\"=\"17763\"",
                "\"InstallationType\"=\"Server Core\"",
                "\"EditionID\"=\"ServerDatacenter\"",
            ],
        )],
    );
    let esp = esp_part(&d0, 16, &[("EFI/Microsoft/Boot/BCD", &bcd)]);
    let disk0 = assemble_vmdk(
        &d0,
        20,
        "label: gpt\nstart=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n",
        &[(2048, &esp)],
    );
    let sys = ntfs_part(&d1, "sys.img", 48, 2048, |m| {
        put(
            m,
            "Windows/System32/config/SYSTEM",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "Windows/System32/config/SOFTWARE",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "Windows/System32/ntoskrnl.exe", &pe(0x8664));
    });
    let disk1 = assemble_vmdk(
        &d1,
        52,
        "label: gpt\nstart=2048, size=98304, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=6E0F3F2A-1B2C-4D5E-8F90-A1B2C3D4E5F6\n",
        &[(2048, &sys)],
    );
    let (found, warnings) = inspect_all(&[&disk0, &disk1]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(found.len(), 1);
    let w = &found[0];
    let (sysvol, espvol) = (
        VolumeRef {
            disk: 1,
            partition: Some(1),
        },
        VolumeRef {
            disk: 0,
            partition: Some(1),
        },
    );
    assert_eq!(w.system, sysvol);
    assert_eq!(w.boot_volume, Some(espvol.clone()));
    assert_eq!(
        w.bcd,
        vec![HiveRef {
            volume: espvol,
            path: "EFI/Microsoft/Boot/BCD".into()
        }]
    );
    assert_eq!(w.system_hive.volume, sysvol);
    assert_eq!(w.firmware, Firmware::Uefi);
    assert_eq!(w.os_id, "win2k19");
    assert_eq!(w.installation_type.as_deref(), Some("Server Core"));
    assert!(
        w.facts
            .contains(&("drive C:".into(), "disk1 partition 1".into())),
        "{:?}",
        w.facts
    );
    assert_eq!(w.edition_id.as_deref(), Some("ServerDatacenter"));
    assert_eq!(w.arch, Arch::Amd64);
    let text = guest::windows::describe(w);
    assert!(
        text.contains(
            &"  boot volume: disk0 partition 1; firmware: UEFI; BCD: EFI/Microsoft/Boot/BCD"
                .to_string()
        ),
        "{text:#?}"
    );
    assert!(
        text.contains(&"  system volume: disk1 partition 1, systemroot \\Windows".to_string()),
        "{text:#?}"
    );
}

#[test]
fn bios_xp_boot_ini_on_a_fat_first_partition_windows_on_the_second() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let system = unxz(dir, "SYSTEM-win7");
    let software = software_hive(
        dir,
        &[(
            "Microsoft\\Windows NT\\CurrentVersion",
            &[
                "\"ProductName\"=\"Microsoft Windows XP\"",
                "\"CurrentVersion\"=\"5.1\"",
                "\"CurrentBuildNumber\"=\"2600\"",
            ],
        )],
    );
    testkit::need("mkfs.fat");
    let boot = dir.join("boot.img");
    testkit::sparse_file(&boot, 16 << 20);
    run_tool("mkfs.fat", &["-F", "16", boot.to_str().unwrap()]);
    let ini = dir.join("boot.ini");
    std::fs::write(
        &ini,
        "[boot loader]\r\ndefault=multi(0)disk(0)rdisk(0)partition(2)\\WINDOWS\r\n[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(2)\\WINDOWS=\"Microsoft Windows XP Professional\" /fastdetect\r\n",
    )
    .unwrap();
    let ntldr = dir.join("ntldr");
    std::fs::write(&ntldr, b"ntldr").unwrap();
    for (f, name) in [(&ini, "::boot.ini"), (&ntldr, "::ntldr")] {
        run_tool(
            "mcopy",
            &["-i", boot.to_str().unwrap(), f.to_str().unwrap(), name],
        );
    }
    let p2 = ntfs_part(dir, "p2.img", 48, 34816, |m| {
        put(
            m,
            "WINDOWS/system32/config/system",
            &std::fs::read(&system).unwrap(),
        );
        put(
            m,
            "WINDOWS/system32/config/software",
            &std::fs::read(&software).unwrap(),
        );
        put(m, "WINDOWS/system32/ntoskrnl.exe", &pe(0x14c));
    });
    let desc = assemble_vmdk(
        dir,
        70,
        "label: dos\nstart=2048, size=32768, type=6, bootable\nstart=34816, size=98304, type=7\n",
        &[(2048, &boot), (34816, &p2)],
    );
    let (found, warnings) = inspect(&desc);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(found.len(), 1);
    let w = &found[0];
    assert_eq!(w.system, vol(2));
    assert_eq!(w.systemroot, "WINDOWS");
    assert_eq!(
        w.boot_volume,
        Some(vol(1)),
        "boot.ini and ntldr on the FAT partition"
    );
    assert!(w.bcd.is_empty());
    assert_eq!(w.firmware, Firmware::Bios);
    assert_eq!(w.os_id, "winxp");
    assert_eq!(w.product_name, "Microsoft Windows XP");
    assert_eq!(w.software_hive.path, "WINDOWS/system32/config/software"); // the spelling on the volume
    assert_eq!(w.arch, Arch::X86);
}
