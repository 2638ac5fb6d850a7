//! Phony guests read back by implementations nobody here wrote: sfdisk and
//! sgdisk (tables), ntfs-3g (ntfsls/ntfscat) and sleuthkit (fls) for the
//! NTFS volumes, mtools and fsck.fat for the ESP, hivex for the hives,
//! regipy for log replay, `file` for the PE headers, blkid for BitLocker,
//! qemu-img for qcow2 outputs. What they read must be what the builder
//! says it put in ([`phony::Expected`]).

mod common;

use common::*;
use guest::drivers::Arch;
use guest::inspect::Firmware;
use phony::{Hypervisor, ImageFormat, Options, Version};
use std::process::Command;
use testkit::{need, run, tool};

/// The MountedDevices value of an MBR volume: signature + byte offset.
fn mbr_mount(sig: u32, start_sector: u64) -> Vec<u8> {
    let mut v = sig.to_le_bytes().to_vec();
    v.extend_from_slice(&(start_sector * 512).to_le_bytes());
    v
}

fn assert_common_hive_facts(g: &Guest) {
    let soft = g.software_hive();
    let cv = "\\Microsoft\\Windows NT\\CurrentVersion";
    assert_eq!(hivexget(&soft, cv, "ProductName"), g.e.product_name);
    assert_eq!(
        hivexget(&soft, cv, "CurrentBuildNumber"),
        g.e.build.to_string()
    );
    let sys = g.system_hive();
    let cs = &g.e.control_sets.in_use[0];
    assert_eq!(
        hivexget(
            &sys,
            &format!("\\{cs}\\Control\\ComputerName\\ComputerName"),
            "ComputerName"
        ),
        g.e.hostname
    );
    assert_eq!(
        hivexget(
            &sys,
            &format!("\\{cs}\\Services\\Tcpip\\Parameters"),
            "Hostname"
        ),
        g.e.hostname
    );
    for cs in &g.e.control_sets.in_use {
        for d in &g.e.boot_storage {
            let k = format!("\\{cs}\\Services\\{d}");
            assert_eq!(hivexget(&sys, &k, "Start"), "0", "{k} Start");
        }
    }
}

fn assert_pe(g: &Guest, path: &str, want: &[&str]) {
    let t = file_type(g.dir.path(), &g.ntfscat("system", path));
    for w in want {
        assert!(t.contains(w), "{path}: `file` says {t:?}, expected {w:?}");
    }
}

#[test]
fn win7_x86_vmware_keeps_the_hives_single_partition() {
    let mut o = Options::new(Version::Win7);
    o.hypervisor = Hypervisor::Vmware;
    o.size = 256 << 20;
    let g = build(&o);
    assert_eq!(g.e.arch, Arch::X86);
    let (id, parts) = sfdisk_dump(&g.img);
    assert_eq!(id, "0x5cbea03e");
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].0, parts[0].2.as_str(), parts[0].3),
        (2048, "7", true)
    );
    // MountedDevices names exactly the partition sfdisk sees
    let md = hivex_export(&g.system_hive(), "\\MountedDevices");
    assert_eq!(
        export_bytes(&md, "\\\\DosDevices\\\\C:"),
        mbr_mount(0x5cbe_a03e, parts[0].0)
    );
    assert_common_hive_facts(&g);
    let root = g.ntfsls("system", "/");
    for n in ["Windows", "bootmgr", "Boot", "Program Files", "Users"] {
        assert!(root.iter().any(|l| l == n), "{n} missing: {root:?}");
    }
    assert!(!root.iter().any(|l| l == "Program Files (x86)"));
    assert_pe(
        &g,
        "/Windows/System32/ntoskrnl.exe",
        &["PE32 ", "(native)", "Intel 80386"],
    );
    assert_pe(
        &g,
        "/Windows/System32/cmd.exe",
        &["(console)", "Intel 80386"],
    );
    assert_pe(&g, "/Windows/explorer.exe", &["(GUI)", "Intel 80386"]);
    // VMware Tools as the builder reports them
    let sys = g.system_hive();
    let cs = "\\ControlSet001";
    let filt = hivexget(
        &sys,
        &format!("{cs}\\Control\\Class\\{{4D36E96F-E325-11CE-BFC1-08002BE10318}}"),
        "UpperFilters",
    );
    assert!(filt.lines().any(|l| l == "vmmouse"), "{filt}");
    let order = hivexget(
        &sys,
        &format!("{cs}\\Control\\NetworkProvider\\Order"),
        "ProviderOrder",
    );
    assert!(order.starts_with("vmhgfs,"), "{order}");
    assert_eq!(
        hivexget(&sys, &format!("{cs}\\Services\\VMTools"), "Start"),
        "2"
    );
    let names: Vec<&str> = g.e.foreign_tools.iter().map(|t| t.name.as_str()).collect();
    for n in ["VMTools", "vmci", "vmhgfs", "vmmouse", "VMware Tools"] {
        assert!(names.contains(&n), "{n} not reported: {names:?}");
    }
    let uninstall =
        g.e.foreign_tools
            .iter()
            .find(|t| t.kind == "uninstall")
            .unwrap();
    let soft = g.software_hive();
    assert_eq!(
        hivexget(&soft, &format!("\\{}", uninstall.location), "DisplayName"),
        "VMware Tools"
    );
    // both control sets carry the variant
    assert_eq!(g.e.control_sets.in_use, ["ControlSet001", "ControlSet002"]);
    assert_eq!(
        hivexget(&sys, "\\ControlSet002\\Services\\VMTools", "Start"),
        "2"
    );
    // every storage driver reported present has its file on the volume
    let drivers = g.ntfsls("system", "/Windows/System32/drivers");
    assert!(drivers.iter().any(|d| d == "pciidex.sys"), "{drivers:?}");
    for s in &g.e.storage_drivers {
        let f = s
            .image_path
            .as_deref()
            .and_then(|p| p.rsplit('\\').next())
            .unwrap_or(&s.name)
            .to_ascii_lowercase();
        assert!(
            drivers.iter().any(|d| d.to_ascii_lowercase() == f),
            "{f} missing in drivers"
        );
    }
    // sleuthkit walks the same tree
    need("fls");
    let fls = run(tool("fls").args(["-r", "-p", "-o", "2048"]).arg(&g.img));
    assert!(fls.contains("Windows/System32/config/SYSTEM"), "{fls}");
    assert!(fls.contains("Windows/System32/drivers/vmci.sys"), "{fls}");
}

#[test]
fn win10_qcow2_hyperv_static_ip_with_system_reserved() {
    let mut o = Options::new(Version::Win10);
    o.hypervisor = Hypervisor::Hyperv;
    o.static_ip = true;
    o.format = ImageFormat::Qcow2;
    o.size = phony::min_size(&o);
    let g = build(&o);
    let chk = testkit::qemu::qemu_check(&g.img);
    assert_eq!(chk["check-errors"], 0, "{chk}");
    assert!(chk.get("corruptions").is_none(), "{chk}");
    let raw = g.dir.path().join("disk.raw");
    testkit::qemu::qemu_convert(&g.img, "qcow2", "raw", &[], &raw);
    let (id, parts) = sfdisk_dump(&raw);
    assert_eq!(id, "0xdf4546ae");
    assert_eq!(parts.len(), 2);
    assert_eq!(
        (parts[0].0, parts[0].1, parts[0].3),
        (2048, 1_024_000, true)
    );
    assert_eq!((parts[1].0, parts[1].3), (1_026_048, false));
    let g = Guest { img: raw, ..g };
    let sr = g.ntfsls("system-reserved", "/");
    assert!(
        sr.iter().any(|l| l == "bootmgr") && sr.iter().any(|l| l == "Boot"),
        "{sr:?}"
    );
    let bcd = g.ntfscat("system-reserved", "/Boot/BCD");
    let real = testkit::run_bytes(
        Command::new("xz")
            .arg("-dc")
            .arg(testkit::testdata("hives/BCD.xz")),
    );
    // The real store, with the boot manager's device on System Reserved
    // and the default loader's device and osdevice on C: (MBR signature +
    // byte offset); every other line of hivex's export as in the corpus.
    let (bcd_p, real_p) = (g.dir.path().join("BCD"), g.dir.path().join("BCD.real"));
    std::fs::write(&bcd_p, &bcd).unwrap();
    std::fs::write(&real_p, &real).unwrap();
    let bootmgr = "\\Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements";
    let def = testkit::run(
        Command::new("hivexget")
            .arg(&bcd_p)
            .arg(format!("{bootmgr}\\23000003"))
            .arg("Element"),
    );
    let def = format!("\\Objects\\{}\\Elements", def.trim());
    for (key, sector) in [
        (format!("{bootmgr}\\11000001"), 2048u64),
        (format!("{def}\\11000001"), 1_026_048),
        (format!("{def}\\21000001"), 1_026_048),
    ] {
        let el = export_bytes(&hivex_export(&bcd_p, &key), "Element");
        assert_eq!(el[0x10], 6, "{key}: a partition device");
        assert_eq!(&el[0x20..0x28], &(sector * 512).to_le_bytes(), "{key}");
        assert_eq!(&el[0x30..0x34], &1u32.to_le_bytes(), "{key}: MBR");
        assert_eq!(&el[0x38..0x3c], &0xdf45_46aeu32.to_le_bytes(), "{key}");
    }
    let (a, b) = (hivex_export(&bcd_p, "\\"), hivex_export(&real_p, "\\"));
    let changed = a.lines().zip(b.lines()).filter(|(x, y)| x != y).count();
    assert_eq!(a.lines().count(), b.lines().count());
    assert_eq!(changed, 3, "only the three device elements differ");
    let md = hivex_export(&g.system_hive(), "\\MountedDevices");
    assert_eq!(
        export_bytes(&md, "\\\\DosDevices\\\\C:"),
        mbr_mount(0xdf45_46ae, 1_026_048)
    );
    assert_common_hive_facts(&g);
    let soft = g.software_hive();
    let cv = "\\Microsoft\\Windows NT\\CurrentVersion";
    assert_eq!(hivexget(&soft, cv, "CurrentMajorVersionNumber"), "10");
    assert_eq!(hivexget(&soft, cv, "CurrentMinorVersionNumber"), "0");
    assert_eq!(hivexget(&soft, cv, "InstallationType"), "Client");
    assert_pe(
        &g,
        "/Windows/System32/ntoskrnl.exe",
        &["PE32+", "(native)", "x86-64"],
    );
    assert_pe(
        &g,
        "/Windows/SysWOW64/cmd.exe",
        &["PE32 ", "(console)", "Intel 80386"],
    );
    // the static NIC
    let nic = &g.e.nics[0];
    assert!(!nic.dhcp);
    let sys = g.system_hive();
    let ik = format!(
        "\\ControlSet001\\Services\\Tcpip\\Parameters\\Interfaces\\{}",
        nic.guid
    );
    assert_eq!(hivexget(&sys, &ik, "EnableDHCP"), "0");
    assert_eq!(hivexget(&sys, &ik, "IPAddress"), "192.0.2.10");
    assert_eq!(nic.addresses, ["192.0.2.10/255.255.255.0"]);
    assert_eq!(hivexget(&sys, &ik, "NameServer"), nic.dns.join(","));
    let conn = format!(
        "\\ControlSet001\\Control\\Network\\{{4D36E972-E325-11CE-BFC1-08002BE10318}}\\{}\\Connection",
        nic.guid
    );
    assert_eq!(hivexget(&sys, &conn, "Name"), "Ethernet");
    assert_eq!(nic.driver.as_deref(), Some("netvsc"));
    // the real hive's VMware Tools are gone; Hyper-V's are inbox
    assert!(g.e.foreign_tools.is_empty(), "{:?}", g.e.foreign_tools);
    let svcs = hivexsh(&sys, "cd \\ControlSet001\\Services\nls\n");
    for gone in ["VMTools", "vmci", "vmhgfs", "vmmouse"] {
        assert!(
            !svcs.lines().any(|l| l.eq_ignore_ascii_case(gone)),
            "{gone} left"
        );
    }
    assert!(g.e.boot_storage == ["storvsc"]);
    // not hibernated, no Fast Startup
    let power = "\\ControlSet001\\Control\\Session Manager\\Power";
    assert_eq!(hivexget(&sys, power, "HiberbootEnabled"), "0");
    assert_eq!(&g.ntfscat("system", "/hiberfil.sys")[..4], &[0, 0, 0, 0]);
    assert!(g.e.blockers.is_empty());
}

#[test]
fn win11_uefi_gpt_with_esp_and_msr() {
    let mut o = Options::new(Version::Win11);
    o.size = 512 << 20;
    let g = build(&o);
    assert_eq!(g.e.firmware, Firmware::Uefi);
    assert_eq!(g.e.product_name, "Windows 10 Pro");
    assert!(g.e.build >= 22000);
    need("sgdisk");
    let p = run(tool("sgdisk").arg("-p").arg(&g.img));
    let codes: Vec<&str> = p
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    assert_eq!(codes, ["EF00", "0C01", "0700"], "{p}");
    let v = run(tool("sgdisk").arg("-v").arg(&g.img));
    assert!(v.contains("No problems found"), "{v}");
    // C: is mapped by its GPT partition GUID, as sgdisk reads it
    let info = run(tool("sgdisk").arg("-i").arg("3").arg(&g.img));
    let guid = info
        .lines()
        .find_map(|l| l.strip_prefix("Partition unique GUID: "))
        .unwrap()
        .trim()
        .to_string();
    let md = hivex_export(&g.system_hive(), "\\MountedDevices");
    let mut want = b"DMIO:ID:".to_vec();
    want.extend_from_slice(&phony::table::guid_bytes(&guid).unwrap());
    assert_eq!(export_bytes(&md, "\\\\DosDevices\\\\C:"), want);
    // the ESP is a clean FAT32 with the boot files
    let esp = g.extract("esp");
    need("fsck.fat");
    let f = run(tool("fsck.fat").arg("-n").arg(&esp));
    for bad in ["Expected a valid", "Renamed", "Deleting", "share clusters"] {
        assert!(!f.contains(bad), "fsck.fat found problems: {f}");
    }
    need("mdir");
    let ls = run(tool("mdir")
        .arg("-i")
        .arg(&esp)
        .arg("-b")
        .arg("::/EFI/Microsoft/Boot"));
    assert!(ls.contains("BCD") && ls.contains("bootmgfw.efi"), "{ls}");
    let ls = run(tool("mdir")
        .arg("-i")
        .arg(&esp)
        .arg("-b")
        .arg("::/EFI/BOOT"));
    assert!(ls.contains("BOOTX64.EFI"), "{ls}");
    let app = testkit::run_bytes(
        tool("mtype")
            .arg("-i")
            .arg(&esp)
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    let t = file_type(g.dir.path(), &app);
    assert!(t.contains("EFI application") && t.contains("x86-64"), "{t}");
    assert_pe(&g, "/Windows/System32/winload.efi", &["EFI application"]);
    assert_common_hive_facts(&g);
    assert_eq!(g.e.bcd, [(1, "EFI/Microsoft/Boot/BCD".to_string())]);
}

#[test]
fn xp_virtualbox_boot_ini_and_lower_case_hives() {
    let mut o = Options::new(Version::WinXp);
    o.hypervisor = Hypervisor::Virtualbox;
    o.size = 192 << 20;
    let g = build(&o);
    let (_, parts) = sfdisk_dump(&g.img);
    assert_eq!((parts[0].0, parts[0].3), (63, true));
    let root = g.ntfsls("system", "/");
    for n in [
        "WINDOWS",
        "boot.ini",
        "ntldr",
        "NTDETECT.COM",
        "Documents and Settings",
    ] {
        assert!(root.iter().any(|l| l == n), "{n} missing: {root:?}");
    }
    let ini = String::from_utf8(g.ntfscat("system", "/boot.ini")).unwrap();
    assert!(
        ini.contains("partition(1)\\WINDOWS=\"Microsoft Windows XP\""),
        "{ini}"
    );
    let cfg = g.ntfsls("system", "/WINDOWS/system32/config");
    for n in [
        "system",
        "software",
        "sam",
        "security",
        "default",
        "system.LOG",
    ] {
        assert!(cfg.iter().any(|l| l == n), "{n} missing: {cfg:?}");
    }
    assert_eq!(g.e.system_hive, "WINDOWS/system32/config/system");
    assert_common_hive_facts(&g);
    let soft = g.software_hive();
    let cv = "\\Microsoft\\Windows NT\\CurrentVersion";
    assert_eq!(hivexget(&soft, cv, "CurrentVersion"), "5.1");
    assert_eq!(hivexget(&soft, cv, "CSDVersion"), "Service Pack 3");
    // 32-bit: no WOW6432Node
    let top = hivexsh(&soft, "ls\n");
    assert!(!top.to_ascii_lowercase().contains("wow6432node"), "{top}");
    let sys = g.system_hive();
    let filt = hivexget(
        &sys,
        "\\ControlSet001\\Control\\Class\\{4D36E96F-E325-11CE-BFC1-08002BE10318}",
        "UpperFilters",
    );
    assert!(filt.lines().any(|l| l == "VBoxMouse"), "{filt}");
    let order = hivexget(
        &sys,
        "\\ControlSet001\\Control\\NetworkProvider\\Order",
        "ProviderOrder",
    );
    assert!(order.starts_with("VBoxSF,"), "{order}");
    assert!(g.e.foreign_tools.iter().any(
        |t| t.kind == "uninstall" && t.name.starts_with("Oracle VM VirtualBox Guest Additions")
    ));
    assert_pe(
        &g,
        "/WINDOWS/system32/ntoskrnl.exe",
        &["PE32 ", "Intel 80386"],
    );
    assert_eq!(
        g.e.nics[0].connection_name.as_deref(),
        Some("Local Area Connection")
    );
}

#[test]
fn win2008r2_hibernated_bitlocker_dirty_hive() {
    let mut o = Options::new(Version::Win2008R2);
    o.hibernated = true;
    o.bitlocker = true;
    o.dirty_hive = true;
    o.size = 384 << 20;
    let g = build(&o);
    assert_eq!(g.e.blockers, ["hibernated", "bitlocker", "dirty-hive"]);
    let (_, parts) = sfdisk_dump(&g.img);
    assert_eq!(parts.len(), 3);
    // System Reserved 100 MiB, C: after it, D: BitLocker
    assert_eq!((parts[0].0, parts[0].1, parts[0].3), (2048, 204_800, true));
    assert_eq!(parts[1].0, 206_848);
    assert_eq!(&g.ntfscat("system", "/hiberfil.sys")[..4], b"hibr");
    need("blkid");
    let bl = g.extract("bitlocker");
    let t = run(tool("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE"])
        .arg(&bl));
    assert_eq!(t.trim(), "BitLocker");
    // D: mapped to the BitLocker partition
    let sys = g.system_hive();
    let md = hivex_export(&sys, "\\MountedDevices");
    assert_eq!(
        export_bytes(&md, "\\\\DosDevices\\\\D:"),
        mbr_mount(0x5cbe_a03e, parts[2].0)
    );
    assert_eq!(
        g.e.drive_letters,
        [("C:".to_string(), 2), ("D:".to_string(), 3)]
    );
    // the primary alone has the old name; regipy's replay of SYSTEM.LOG1
    // gives the new one
    let ch = g.e.logged_change.clone().unwrap();
    assert_eq!(
        hivexget(&sys, &format!("\\{}", ch.key), &ch.name),
        ch.before
    );
    let log1 = g.save(
        "system",
        "/Windows/System32/config/SYSTEM.LOG1",
        "SYSTEM.LOG1",
    );
    let out = g.dir.path().join("recovered");
    need("python3");
    run(Command::new("python3").arg("-c").arg(
        "import sys\nfrom regipy.recovery import apply_transaction_logs\napply_transaction_logs(sys.argv[1], sys.argv[2], restored_hive_path=sys.argv[3])",
    ).arg(&sys).arg(&log1).arg(&out));
    let mut b = std::fs::read(&out).unwrap();
    let c = regf::checksum(&b);
    b[508..512].copy_from_slice(&c.to_le_bytes());
    std::fs::write(&out, b).unwrap();
    assert_eq!(hivexget(&out, &format!("\\{}", ch.key), &ch.name), ch.after);
    assert_eq!(ch.after, g.e.hostname);
}

#[test]
fn win2019_vmware_fast_startup_boots_from_pvscsi() {
    let mut o = Options::new(Version::Win2019);
    o.hypervisor = Hypervisor::Vmware;
    o.fast_startup = true;
    o.size = phony::min_size(&o);
    let g = build(&o);
    assert_eq!(g.e.boot_storage, ["pvscsi"]);
    assert_eq!(g.e.blockers, ["fast-startup"]);
    let sys = g.system_hive();
    let power = "\\ControlSet001\\Control\\Session Manager\\Power";
    assert_eq!(hivexget(&sys, power, "HiberbootEnabled"), "1");
    assert_eq!(&g.ntfscat("system", "/hiberfil.sys")[..4], b"HIBR");
    assert_common_hive_facts(&g);
    let soft = g.software_hive();
    let cv = "\\Microsoft\\Windows NT\\CurrentVersion";
    assert_eq!(hivexget(&soft, cv, "InstallationType"), "Server");
    assert_eq!(hivexget(&soft, cv, "EditionID"), "ServerDatacenter");
    // 64-bit: uninstall entries also under WOW6432Node
    let wow = "\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\NotepadPlusPlus";
    assert_eq!(
        hivexget(&soft, wow, "DisplayName"),
        "Notepad++ (32-bit x86)"
    );
    assert_eq!(g.e.nics[0].connection_name.as_deref(), Some("Ethernet0"));
}

#[test]
fn every_version_builds_with_its_product_and_arch() {
    for v in Version::ALL {
        let mut o = Options::new(v);
        o.size = phony::min_size(&o);
        let g = build(&o);
        let soft = g.software_hive();
        let cv = "\\Microsoft\\Windows NT\\CurrentVersion";
        assert_eq!(
            hivexget(&soft, cv, "ProductName"),
            g.e.product_name,
            "{v:?}"
        );
        let want = match g.e.arch {
            Arch::X86 => "Intel 80386",
            Arch::Amd64 => "x86-64",
        };
        let kernel = format!(
            "/{}/{}/ntoskrnl.exe",
            g.e.systemroot,
            if g.e.os_id == "winxp" || g.e.os_id == "win2k3" {
                "system32"
            } else {
                "System32"
            }
        );
        assert_pe(&g, &kernel, &[want]);
        // ntfs-3g's checker and the MFT mirror
        need("ntfsfix");
        let sys = g.extract("system");
        let fix = run(tool("ntfsfix").arg("-n").arg(&sys));
        assert!(fix.contains("processed successfully"), "{v:?}: {fix}");
        // the repo's own readers see the same layout and files (what
        // inspection builds on)
        let d = vdisk::open(&g.img).unwrap();
        let t = guest::partition::read_table(&*d).unwrap();
        assert!(t.warnings.is_empty(), "{v:?}: {:?}", t.warnings);
        let got: Vec<(u32, u64, u64)> = t
            .partitions()
            .iter()
            .map(|p| (p.index, p.start_lba, p.sectors))
            .collect();
        let want: Vec<(u32, u64, u64)> =
            g.e.partitions
                .iter()
                .map(|p| (p.number, p.start, p.sectors))
                .collect();
        assert_eq!(got, want, "{v:?}");
        let fs = guest::fs::open_image(&g.img, Some(g.e.system_partition)).unwrap();
        assert_eq!(
            fs.read(&g.e.system_hive).unwrap(),
            std::fs::read(g.system_hive()).unwrap(),
            "{v:?}"
        );
        let c = fs.check().unwrap();
        assert!(c.errors.is_empty(), "{v:?}: {:?}", c.errors);
    }
}
