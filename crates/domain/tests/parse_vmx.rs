//! VMX parsing on realistic files, hostile names and garbage.

use domain::*;
use std::path::{Path, PathBuf};

const WIN10_VMX: &str = r#".encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
# a comment line
displayName = "Finance |22Prod|22 DC01"
guestOS = "windows9-64"
memsize = "8192"
numvcpus = "4"
cpuid.coresPerSocket = "2"
firmware = "efi"
uefi.secureBoot.enabled = "TRUE"
vtpm.present = "TRUE"
uuid.bios = "56 4d 9c 3e 2f 11 7a 5b-2d 55 63 36 7f 2a 4e 8c"
vc.uuid = "52 1a 2b 3c 4d 5e 6f 70-81 92 a3 b4 c5 d6 e7 f8"
SCSI0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "dc01-000002.vmdk"
scsi0:0.deviceType = "scsi-hardDisk"
scsi0:1.present = "TRUE"
scsi0:1.fileName = "dc01_1.vmdk"
scsi0:1.mode = "independent-persistent"
sata0.present = "TRUE"
sata0:1.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "/vmfs/volumes/iso/en_windows_10.iso"
sata0:2.present = "FALSE"
sata0:2.fileName = "ghost.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.networkName = "VM Network"
ethernet0.addressType = "generated"
ethernet0.generatedAddress = "00:0C:29:AB:CD:EF"
ethernet1.present = "TRUE"
ethernet1.virtualDev = "e1000e"
ethernet1.addressType = "static"
ethernet1.address = "00:50:56:01:02:03"
ethernet2.present = "TRUE"
bios.hddOrder = "scsi0:0"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn windows10_efi_vmx_every_field() {
    let t = tempfile::tempdir().unwrap();
    let p = write(t.path(), "dc01.vmx", WIN10_VMX);
    let m = vmx::parse_file(&p, &ParseOptions::default()).unwrap();
    assert_eq!(m.name, "Finance \"Prod\" DC01");
    assert_eq!(m.source, SourceKind::Vmx);
    assert_eq!(m.memory_mib, 8192);
    assert_eq!(
        m.cpu,
        CpuTopology {
            vcpus: 4,
            sockets: 2,
            cores: 2,
            threads: 1
        }
    );
    assert_eq!(
        m.firmware,
        Firmware {
            kind: FirmwareKind::Uefi,
            secure_boot: true
        }
    );
    assert!(m.vtpm);
    // SMBIOS bytes 56 4d 9c 3e ... read as a little-endian GUID.
    assert_eq!(
        m.uuid.unwrap().to_string(),
        "3e9c4d56-112f-5b7a-2d55-63367f2a4e8c"
    );
    assert_eq!(m.uuid.unwrap().to_bytes_le()[..4], [0x56, 0x4d, 0x9c, 0x3e]);
    assert_eq!(
        m.instance_uuid.unwrap().to_string(),
        "521a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8"
    );
    assert_eq!(m.guest_os.family, OsFamily::Windows);
    assert_eq!(m.guest_os.windows, Some(WinVersion::Win10));
    assert_eq!(m.guest_os.arch, Arch::X86_64);
    assert_eq!(m.guest_os.raw, "windows9-64");
    assert_eq!(m.disks.len(), 2);
    let d0 = &m.disks[0];
    assert_eq!(
        d0.source,
        DiskSource::File {
            path: t.path().join("dc01-000002.vmdk")
        }
    );
    assert!(d0.snapshot_delta);
    assert!(d0.boot);
    assert_eq!(
        d0.controller,
        Controller {
            bus: BusKind::Scsi,
            index: 0,
            model: "pvscsi".into()
        }
    );
    assert_eq!(d0.unit, 0);
    assert_eq!(d0.mode, DiskMode::Persistent);
    let d1 = &m.disks[1];
    assert_eq!(d1.unit, 1);
    assert!(!d1.boot && !d1.snapshot_delta);
    assert_eq!(d1.mode, DiskMode::IndependentPersistent);
    assert_eq!(m.cdroms.len(), 1);
    assert_eq!(m.cdroms[0].controller.bus, BusKind::Sata);
    assert_eq!(m.cdroms[0].unit, 1);
    assert_eq!(
        m.cdroms[0].image.as_deref(),
        Some("/vmfs/volumes/iso/en_windows_10.iso")
    );
    assert_eq!(m.nics.len(), 3);
    assert_eq!(m.nics[0].model, NicModel::Vmxnet3);
    assert_eq!(m.nics[0].mac, "00:0c:29:ab:cd:ef");
    assert_eq!(m.nics[0].network.as_deref(), Some("VM Network"));
    assert_eq!(m.nics[1].model, NicModel::E1000e);
    assert_eq!(m.nics[1].mac, "00:50:56:01:02:03");
    assert!(!m.nics[1].mac_generated);
    assert!(m.nics[2].mac_generated && m.nics[2].mac.starts_with("52:54:00:"));
    assert_eq!(m.nics[2].model, NicModel::Pcnet);
    assert!(m
        .warnings
        .iter()
        .any(|w| w.contains("ethernet2") && w.contains("generated")));
    // The model round-trips through serde.
    let j = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<VmModel>(&j).unwrap(), m);
}

#[test]
fn xp_ide_vmx() {
    let t = tempfile::tempdir().unwrap();
    let p = write(
        t.path(),
        "xp.vmx",
        "config.version = \"8\"\nvirtualHW.version = \"4\"\nguestOS = \"winxppro\"\nmemsize = \"512\"\n\
         ide0:0.present = \"TRUE\"\nide0:0.fileName = \"Windows XP Professional.vmdk\"\n\
         ide1:0.present = \"TRUE\"\nide1:0.deviceType = \"atapi-cdrom\"\nide1:0.fileName = \"auto detect\"\n\
         ethernet0.present = \"TRUE\"\nethernet0.addressType = \"generated\"\nethernet0.generatedAddress = \"00:0c:29:11:22:33\"\n\
         checkpoint.vmState = \"xp.vmss\"\n",
    );
    let m = vmx::parse_file(&p, &ParseOptions::default()).unwrap();
    assert_eq!(m.name, "xp");
    assert_eq!(m.guest_os.windows, Some(WinVersion::WinXp));
    assert_eq!(m.guest_os.arch, Arch::X86);
    assert!(m.guest_os.is_legacy_windows());
    assert_eq!(m.firmware, Firmware::BIOS);
    assert_eq!(m.cpu.vcpus, 1);
    assert_eq!(m.disks[0].controller.bus, BusKind::Ide);
    assert_eq!(m.disks[0].unit, 0);
    assert!(m.disks[0].boot);
    assert_eq!(m.cdroms[0].unit, 2, "ide1:0 is channel 1 master");
    assert!(m.warnings.iter().any(|w| w.contains("suspended")));
}

#[test]
fn vmx_disk_outside_its_directory_is_refused_unless_allowed() {
    let t = tempfile::tempdir().unwrap();
    // Absolute names that do not exist here (ESXi datastore paths) fall
    // back to the VM's folder instead: see tests/vmx_paths.rs.
    {
        let name = "../other/disk.vmdk";
        let text = format!("config.version = \"8\"\nscsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"{name}\"\n");
        let p = write(t.path(), "x.vmx", &text);
        let e = vmx::parse_file(&p, &ParseOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused") && e.contains("allow-outside"), "{e}");
        let m = vmx::parse_file(
            &p,
            &ParseOptions {
                allow_outside: true,
            },
        )
        .unwrap();
        assert_eq!(m.disks.len(), 1);
    }
}

#[test]
fn garbage_and_huge_vmx_give_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("g.vmx");
    std::fs::write(&p, [0u8, 159, 146, 150, 10, 1, 2, 3]).unwrap();
    let e = vmx::parse_file(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("key"), "{e}");
    std::fs::write(&p, "memsize = \"lots\"\nconfig.version = \"8\"\n").unwrap();
    let e = vmx::parse_file(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("memsize"), "{e}");
    std::fs::write(&p, "displayName = \"unterminated\n").unwrap();
    assert!(vmx::parse_file(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string()
        .contains("unterminated"));
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(64 << 20).unwrap();
    let e = vmx::parse_file(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn guest_os_ids_from_every_source() {
    let cases: &[(&str, OsFamily, Option<WinVersion>, Option<&str>)] = &[
        ("winxppro", OsFamily::Windows, Some(WinVersion::WinXp), None),
        (
            "winNetStandard",
            OsFamily::Windows,
            Some(WinVersion::Win2003),
            None,
        ),
        (
            "winnetenterprise-64",
            OsFamily::Windows,
            Some(WinVersion::Win2003),
            None,
        ),
        ("winvista", OsFamily::Windows, Some(WinVersion::Vista), None),
        ("windows7", OsFamily::Windows, Some(WinVersion::Win7), None),
        (
            "windows7-64",
            OsFamily::Windows,
            Some(WinVersion::Win7),
            None,
        ),
        (
            "windows7srv-64",
            OsFamily::Windows,
            Some(WinVersion::Win2008R2),
            None,
        ),
        (
            "windows8-64",
            OsFamily::Windows,
            Some(WinVersion::Win8),
            None,
        ),
        (
            "windows9-64",
            OsFamily::Windows,
            Some(WinVersion::Win10),
            None,
        ),
        (
            "windows9srv-64",
            OsFamily::Windows,
            Some(WinVersion::Win2016),
            None,
        ),
        (
            "windows2019srv-64",
            OsFamily::Windows,
            Some(WinVersion::Win2019),
            None,
        ),
        (
            "windows2019srvNext-64",
            OsFamily::Windows,
            Some(WinVersion::Win2022),
            None,
        ),
        (
            "windows11-64",
            OsFamily::Windows,
            Some(WinVersion::Win11),
            None,
        ),
        (
            "windows9_64Guest",
            OsFamily::Windows,
            Some(WinVersion::Win10),
            None,
        ),
        (
            "windows7Server64Guest",
            OsFamily::Windows,
            Some(WinVersion::Win2008R2),
            None,
        ),
        (
            "winXPProGuest",
            OsFamily::Windows,
            Some(WinVersion::WinXp),
            None,
        ),
        (
            "WindowsXP",
            OsFamily::Windows,
            Some(WinVersion::WinXp),
            None,
        ),
        (
            "Windows2003_64",
            OsFamily::Windows,
            Some(WinVersion::Win2003),
            None,
        ),
        (
            "Windows81_64",
            OsFamily::Windows,
            Some(WinVersion::Win81),
            None,
        ),
        (
            "Windows10_64",
            OsFamily::Windows,
            Some(WinVersion::Win10),
            None,
        ),
        (
            "Windows2019_64",
            OsFamily::Windows,
            Some(WinVersion::Win2019),
            None,
        ),
        (
            "http://microsoft.com/win/2k3r2",
            OsFamily::Windows,
            Some(WinVersion::Win2003),
            None,
        ),
        (
            "http://microsoft.com/win/2k8r2",
            OsFamily::Windows,
            Some(WinVersion::Win2008R2),
            None,
        ),
        (
            "http://microsoft.com/win/10",
            OsFamily::Windows,
            Some(WinVersion::Win10),
            None,
        ),
        (
            "win2012r2",
            OsFamily::Windows,
            Some(WinVersion::Win2012R2),
            None,
        ),
        ("67", OsFamily::Windows, Some(WinVersion::WinXp), None),
        ("other3xlinux-64", OsFamily::Linux, None, Some("linux")),
        ("debian10-64", OsFamily::Linux, None, Some("debian10")),
        ("ubuntu-64", OsFamily::Linux, None, Some("ubuntu")),
        ("rhel8-64", OsFamily::Linux, None, Some("rhel8")),
        ("RedHat_64", OsFamily::Linux, None, Some("rhel")),
        (
            "http://debian.org/debian/12",
            OsFamily::Linux,
            None,
            Some("debian12"),
        ),
        ("freebsd-64", OsFamily::Other, None, None),
        ("", OsFamily::Other, None, None),
    ];
    for (raw, fam, win, distro) in cases {
        let g = GuestOs::parse(raw);
        assert_eq!(
            (g.family, g.windows, g.distro.as_deref()),
            (*fam, *win, *distro),
            "{raw}"
        );
        assert_eq!(g.raw, *raw);
    }
    assert!(GuestOs::parse("winnetstandard").is_legacy_windows());
    assert!(!GuestOs::parse("winvista").is_legacy_windows());
}
