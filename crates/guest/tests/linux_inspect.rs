//! Linux inspection (`guest::inspect::inspect_vm` → `LinuxInstall`,
//! `guest::linux::read_file`) on real guests and generated images:
//!
//! * the cached Debian 12 fixture (`tests/fixtures/linux-guest.sh`, both
//!   initramfs variants): distro, grub2, the default kernel/initrd/cmdline
//!   as `debugfs` reads `grub.cfg`, virtio-blk in the initrd or not, the
//!   kernel read back byte-equal to `debugfs dump`;
//! * `/boot` on XFS (`mkfs.xfs -p`) + root ext4 (`mkfs.ext4 -d`) on an LVM2
//!   LV spanning a PV partition and a whole-disk PV (two VM disks; lvm2
//!   tools on loop devices), with the fixture's real kernel,
//!   initrd and config, an fstab naming `/dev/sda1`, a crypttab naming
//!   `/dev/sdb2`, netplan/ifupdown/NM/ifcfg configs, open-vm-tools in
//!   dpkg's status: UUIDs as `blkid` reports them;
//! * a btrfs root holding `/boot` (`mkfs.btrfs --rootdir`), BLS entries.
//!
//! Needs root (the fixture builder, loop devices).

use guest::inspect::{inspect_vm, Firmware, LinuxInstall, VmInspection};
use guest::plan::VolumeRef;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::lvm::{lvm, write_lv, Loop};
use testkit::{run, run_bytes, tool};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Debian fixture (cached; a sparse copy) at `out`.
fn fixture(out: &Path, host_only: bool) {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("tests/fixtures/linux-guest.sh"))
        .arg(out);
    if host_only {
        c.arg("--host-only-initramfs");
    }
    run(&mut c);
}

/// `debugfs -R CMD IMG?offset=1MiB` (the fixture's ext4 partition).
fn debugfs(img: &Path, cmd: &str) -> Vec<u8> {
    run_bytes(
        tool("debugfs")
            .args(["-R", cmd])
            .arg(format!("{}?offset=1048576", img.display())),
    )
}

fn dump(img: &Path, path: &str, tmp: &Path) -> Vec<u8> {
    let out = tmp.join("dump.bin");
    let _ = std::fs::remove_file(&out);
    debugfs(img, &format!("dump {path} {}", out.display()));
    std::fs::read(&out).unwrap()
}

fn blkid(dev: &Path, tag: &str) -> String {
    run(tool("blkid")
        .args(["-p", "-o", "value", "-s", tag])
        .arg(dev))
    .trim()
    .to_string()
}

fn inspect(paths: &[&Path]) -> (Vec<Box<dyn vdisk::Disk>>, VmInspection) {
    let disks: Vec<Box<dyn vdisk::Disk>> = paths.iter().map(|p| vdisk::open(p).unwrap()).collect();
    let refs: Vec<&dyn vdisk::Disk> = disks.iter().map(|d| &**d).collect();
    let i = inspect_vm(&refs);
    (disks, i)
}

fn read(
    disks: &[Box<dyn vdisk::Disk>],
    i: &VmInspection,
    li: &LinuxInstall,
    path: &str,
) -> Vec<u8> {
    let refs: Vec<&dyn vdisk::Disk> = disks.iter().map(|d| &**d).collect();
    guest::linux::read_file(&refs, i, li, path, 1 << 30)
        .unwrap_or_else(|e| panic!("read_file {path}: {e}"))
}

/// The first menuentry's `linux` and `initrd` lines of a grub.cfg
/// (what grub boots with `set default="0"`).
fn first_entry(cfg: &str) -> (String, String, String) {
    let body = &cfg[cfg.find("menuentry ").unwrap()..];
    let line = |k: &str| {
        body.lines()
            .map(str::trim)
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    let linux = line("linux");
    (
        linux[0].into(),
        linux[1..].join(" "),
        line("initrd")[0].into(),
    )
}

#[test]
fn linux_inspect_debian_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    for host_only in [true, false] {
        let img = tmp.path().join("guest.raw");
        fixture(&img, host_only);
        let (disks, insp) = inspect(&[&img]);
        assert_eq!(insp.linux.len(), 1, "{:?}", insp.warnings);
        let li = &insp.linux[0];
        assert_eq!(li.distro.as_deref(), Some("debian"));
        assert_eq!(li.version.as_deref(), Some("12"));
        assert_eq!(
            li.root,
            Some(VolumeRef {
                disk: 0,
                partition: Some(1)
            })
        );
        assert_eq!((li.root_lv.as_deref(), li.boot.as_ref()), (None, None));
        assert_eq!(li.root_fs.as_deref(), Some("ext4"));
        assert_eq!(li.firmware, Some(Firmware::Bios));
        assert_eq!(li.boot_loader.as_deref(), Some("grub2"));
        assert_eq!(li.boot_config.as_deref(), Some("/boot/grub/grub.cfg"));
        assert_eq!(li.initramfs_tool.as_deref(), Some("initramfs-tools"));
        let cfg = String::from_utf8(dump(&img, "/boot/grub/grub.cfg", tmp.path())).unwrap();
        let (kernel, cmdline, initrd) = first_entry(&cfg);
        let b = li.default_boot.as_ref().unwrap();
        assert_eq!((&b.kernel, &b.cmdline), (&kernel, &cmdline));
        assert_eq!(b.initrd, [initrd]);
        let ls = String::from_utf8_lossy(&debugfs(&img, "ls -p /boot")).into_owned();
        let rel = ls
            .split('/')
            .find_map(|f| f.strip_prefix("vmlinuz-"))
            .unwrap()
            .to_string();
        assert_eq!(b.release.as_deref(), Some(rel.as_str()));
        assert_eq!(kernel, format!("/boot/vmlinuz-{rel}"));
        let v = li.virtio.as_ref().unwrap();
        assert_eq!(v.blk, !host_only, "virtio: {v:?}");
        assert!(v.kernel_config);
        for d in ["ahci", "ata_piix", "sd_mod"] {
            assert!(v.storage_drivers.iter().any(|x| x == d), "{d}: {v:?}");
        }
        assert_eq!(
            v.storage_drivers.iter().any(|x| x == "virtio_blk"),
            !host_only
        );
        assert!(li.device_names.is_empty() && li.edits.is_empty(), "{li:?}");
        assert!(read(&disks, &insp, li, &kernel) == dump(&img, &kernel, tmp.path()));
        assert_eq!(
            read(&disks, &insp, li, "/etc/fstab"),
            dump(&img, "/etc/fstab", tmp.path())
        );
        drop(disks);
        std::fs::remove_file(&img).unwrap();
    }
}

/// Deterministic incompressible bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Real kernel, initrd and config of the fixture (MODULES=most) into
/// `dir`; returns the release.
fn real_boot_files(dir: &Path, tmp: &Path) -> String {
    let img = tmp.join("fixture.raw");
    fixture(&img, false);
    let ls = String::from_utf8_lossy(&debugfs(&img, "ls -p /boot")).into_owned();
    let rel = ls
        .split('/')
        .find_map(|f| f.strip_prefix("vmlinuz-"))
        .unwrap()
        .to_string();
    for f in [
        format!("vmlinuz-{rel}"),
        format!("initrd.img-{rel}"),
        format!("config-{rel}"),
    ] {
        put(dir, &f, &dump(&img, &format!("/boot/{f}"), tmp));
    }
    std::fs::remove_file(&img).unwrap();
    rel
}

/// The protofile lines for the directory `src` (its entries, then `$`).
fn proto_dir(src: &Path, out: &mut String) {
    let mut names: Vec<_> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        let perm = m.mode() & 0o777;
        if m.is_dir() {
            writeln!(out, "{name} d--{perm:o} 0 0").unwrap();
            proto_dir(&p, out);
        } else {
            writeln!(out, "{name} ---{perm:o} 0 0 {}", p.display()).unwrap();
        }
    }
    out.push_str("$\n");
}

const XFS_UUID: &str = "5b1e0a8c-2f7d-4c61-9a3e-0d4f6b7c8e91";
const EXT_UUID: &str = "0c3d9f21-7a44-4b8e-8f10-a1b2c3d4e5f6";

/// Root tree of the XFS-boot/LVM-root guest.
fn lvm_guest_root(root: &Path) {
    put(root, "/etc/os-release", b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n");
    put(root, "/etc/fstab", b"# static file system information\n/dev/mapper/vgh-root /     ext4 errors=remount-ro 0 1\n/dev/sda1            /boot xfs  defaults          0 2\nLABEL=bootfs         /srv  xfs  ro                0 0\n");
    put(root, "/etc/crypttab", b"cryptdata /dev/sdb2 none luks\n");
    put(
        root,
        "/etc/default/grub",
        b"GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"resume=/dev/sda1\"\n",
    );
    put(root, "/usr/sbin/update-initramfs", b"#!/bin/sh\n");
    put(
        root,
        "/etc/initramfs-tools/initramfs.conf",
        b"MODULES=most\n",
    );
    put(root, "/var/lib/dpkg/status", b"Package: bash\nStatus: install ok installed\n\nPackage: open-vm-tools\nStatus: install ok installed\nVersion: 2:12.2.0\n\nPackage: virtualbox-guest-utils\nStatus: deinstall ok config-files\n");
    put(root, "/etc/network/interfaces", b"auto lo\niface lo inet loopback\nallow-hotplug ens192\niface ens192 inet static\n    address 192.0.2.10\n    netmask 255.255.255.0\n");
    put(root, "/etc/netplan/50-cloud-init.yaml", b"network:\n  version: 2\n  ethernets:\n    eth0:\n      match:\n        macaddress: \"00:50:56:AA:BB:01\"\n      addresses:\n        - 198.51.100.7/24\n");
    put(
        root,
        "/etc/NetworkManager/system-connections/Wired.nmconnection",
        b"[connection]\nid=Wired\ntype=ethernet\ninterface-name=ens224\n[ipv4]\nmethod=auto\n",
    );
    put(
        root,
        "/etc/sysconfig/network-scripts/ifcfg-eth1",
        b"DEVICE=eth1\nHWADDR=00:50:56:AA:BB:02\nIPADDR=203.0.113.9\nPREFIX=25\n",
    );
    put(
        root,
        "/etc/selinux/config",
        b"SELINUX=permissive\nSELINUXTYPE=targeted\n",
    );
    put(root, "/etc/lvm/devices/system.devices", b"VERSION=1.1.1\n");
    put(root, "/usr/bin/vmtoolsd", b"\x7fELF");
    put(root, "/var/big", &noise(40 << 20));
}

#[test]
fn linux_inspect_xfs_boot_lvm_root() {
    testkit::need("lvcreate");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // /boot on XFS.
    let boot = t.join("boot");
    let rel = real_boot_files(&boot, t);
    put(&boot, "grub/grub.cfg", format!("set default=\"0\"\nmenuentry 'Debian GNU/Linux' --class debian {{\n\tlinux\t/vmlinuz-{rel} root=/dev/mapper/vgh-root ro quiet resume=/dev/sda1\n\tinitrd\t/initrd.img-{rel}\n}}\n").as_bytes());
    let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
    proto_dir(&boot, &mut proto);
    std::fs::write(t.join("proto"), proto).unwrap();
    let xfs = t.join("xfs.img");
    let spec = format!("file,name={},size=300m", xfs.display());
    run(tool("mkfs.xfs")
        .args([
            "-q",
            "-f",
            "-m",
            &format!("uuid={XFS_UUID}"),
            "-L",
            "bootfs",
            "-p",
        ])
        .arg(t.join("proto"))
        .args(["-d", &spec]));
    // Root ext4 in an LV of a PV.
    let root = t.join("root");
    lvm_guest_root(&root);
    let ext = t.join("ext.img");
    testkit::sparse_file(&ext, 64 << 20);
    run(tool("mkfs.ext4")
        .args(["-q", "-F", "-U", EXT_UUID, "-d"])
        .arg(&root)
        .arg(&ext));
    // Root LV: 32 MiB on the PV partition of disk 0, then 32 MiB on a
    // whole-disk PV (disk 1).
    let (pv, pv2) = (t.join("pv.img"), t.join("pv2.raw"));
    testkit::sparse_file(&pv, 100 << 20);
    testkit::sparse_file(&pv2, 48 << 20);
    {
        let (la, lb) = (Loop::attach(&pv), Loop::attach(&pv2));
        let l = [&la, &lb];
        lvm(&l, "pvcreate", &["-ff", "-y", &la.dev, &lb.dev]);
        let vg = "vgh";
        lvm(&l, "vgcreate", &[vg, &la.dev, &lb.dev]);
        let lv = |args: &[&str]| {
            let mut a = vec!["-an", "--zero", "n", "-y"];
            a.extend_from_slice(args);
            lvm(&l, "lvcreate", &a);
        };
        lv(&["-L", "8m", "-n", "swap", vg, &la.dev]);
        lv(&["-L", "32m", "-n", "root", vg, &la.dev]);
        lvm(&l, "lvextend", &["-L", "+32m", "vgh/root", &lb.dev]);
        write_lv(&l, vg, "root", &std::fs::read(&ext).unwrap());
    }
    let disk = t.join("disk.raw");
    testkit::winimg::assemble_raw(
        &disk,
        420,
        "label: dos\nstart=2048, size=614400, type=83\nstart=616448, size=204800, type=8e\n",
        &[(2048, &xfs), (616448, &pv)],
    );
    let (disks, insp) = inspect(&[&disk, &pv2]);
    assert_eq!(insp.linux.len(), 1, "{:?}", insp.warnings);
    let li = &insp.linux[0];
    assert_eq!(
        li.root,
        Some(VolumeRef {
            disk: 0,
            partition: Some(2)
        })
    );
    assert_eq!(li.root_lv.as_deref(), Some("vgh/root"));
    assert_eq!(li.root_fs.as_deref(), Some("ext4"));
    assert_eq!(
        li.boot,
        Some(VolumeRef {
            disk: 0,
            partition: Some(1)
        })
    );
    assert_eq!(li.boot_lv, None);
    assert_eq!(
        li.pretty_name.as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!(li.boot_loader.as_deref(), Some("grub2"));
    assert_eq!(li.boot_config.as_deref(), Some("/boot/grub/grub.cfg"));
    let b = li.default_boot.as_ref().unwrap();
    assert_eq!(b.kernel, format!("/boot/vmlinuz-{rel}"));
    assert_eq!(b.initrd, [format!("/boot/initrd.img-{rel}")]);
    assert_eq!(
        b.cmdline,
        "root=/dev/mapper/vgh-root ro quiet resume=/dev/sda1"
    );
    assert_eq!(b.release.as_deref(), Some(rel.as_str()));
    let v = li.virtio.as_ref().unwrap();
    assert!(v.blk && v.scsi && v.kernel_config, "{v:?}");
    // blkid is the oracle of the UUIDs the rewrites use.
    assert_eq!(blkid(&xfs, "UUID"), XFS_UUID);
    let uuid = format!("UUID={XFS_UUID}");
    let names: Vec<(&str, usize, &str, Option<&str>)> = li
        .device_names
        .iter()
        .map(|d| {
            (
                d.file.as_str(),
                d.line,
                d.device.as_str(),
                d.replacement.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("/etc/fstab", 3, "/dev/sda1", Some(uuid.as_str())),
            ("/etc/crypttab", 1, "/dev/sdb2", None),
            ("/boot/grub/grub.cfg", 3, "/dev/sda1", Some(uuid.as_str())),
            ("/etc/default/grub", 2, "/dev/sda1", Some(uuid.as_str())),
        ]
    );
    let edits: Vec<&str> = li.edits.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        edits,
        ["/etc/fstab", "/boot/grub/grub.cfg", "/etc/default/grub"]
    );
    assert_eq!(
        li.edits[0].new,
        format!("# static file system information\n/dev/mapper/vgh-root /     ext4 errors=remount-ro 0 1\n{uuid}            /boot xfs  defaults          0 2\nLABEL=bootfs         /srv  xfs  ro                0 0\n")
    );
    assert_eq!(
        li.edits[2].new,
        format!("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"resume={uuid}\"\n")
    );
    let ifs: Vec<(&str, &str, Option<&str>, Vec<&str>)> = li
        .interfaces
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.kind.as_str(),
                i.mac.as_deref(),
                i.addresses.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        ifs,
        [
            ("ens192", "ifupdown", None, vec!["192.0.2.10/24"]),
            (
                "eth0",
                "netplan",
                Some("00:50:56:aa:bb:01"),
                vec!["198.51.100.7/24"]
            ),
            ("ens224", "networkmanager", None, vec![]),
            (
                "eth1",
                "ifcfg",
                Some("00:50:56:aa:bb:02"),
                vec!["203.0.113.9/25"]
            ),
        ]
    );
    let tools: Vec<(&str, &str, &str)> = li
        .foreign_tools
        .iter()
        .map(|t| (t.vendor.as_str(), t.kind.as_str(), t.name.as_str()))
        .collect();
    assert_eq!(
        tools,
        [
            ("vmware", "package", "open-vm-tools"),
            ("vmware", "service", "vmtoolsd")
        ]
    );
    assert_eq!(li.selinux.as_deref(), Some("permissive"));
    assert!(li.lvm_devices_file);
    let mounts: Vec<(&str, &str)> = li
        .facts
        .iter()
        .filter(|f| f.0.starts_with("mount "))
        .map(|f| (f.0.as_str(), f.1.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("mount /boot", "disk 0 partition 1"),
            ("mount /srv", "disk 0 partition 1"),
            ("mount /", "vgh/root"),
        ]
    );
    assert_eq!(blkid(&xfs, "LABEL"), "bootfs");
    assert_eq!(li.initramfs_tool.as_deref(), Some("initramfs-tools"));
    // Reads follow the layout: /boot from XFS, the rest from the LV.
    let k = format!("vmlinuz-{rel}");
    assert!(
        read(&disks, &insp, li, &format!("/boot/{k}")) == std::fs::read(boot.join(&k)).unwrap()
    );
    // 40 MiB of data: past the first PV's 32 MiB into the second disk.
    assert!(read(&disks, &insp, li, "/var/big") == noise(40 << 20));
    assert_eq!(
        read(&disks, &insp, li, "/etc/crypttab"),
        b"cryptdata /dev/sdb2 none luks\n"
    );
}

#[test]
fn linux_inspect_btrfs_root_with_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = t.join("root");
    let rel = real_boot_files(&root.join("boot"), t);
    let uuid = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
    put(
        &root,
        "/etc/os-release",
        b"NAME=\"openSUSE Leap\"\nVERSION_ID=\"15.5\"\nID=\"opensuse-leap\"\n",
    );
    put(
        &root,
        "/etc/fstab",
        format!("UUID={uuid} / btrfs defaults 0 0\n/dev/sda2 swap swap defaults 0 0\n").as_bytes(),
    );
    put(
        &root,
        "/boot/grub2/grubenv",
        b"# GRUB Environment Block\nsaved_entry=b-6\nkernelopts=root=UUID=x ro quiet\n",
    );
    put(
        &root,
        "/boot/grub2/grub.cfg",
        b"set default=\"${saved_entry}\"\nblscfg\n",
    );
    put(&root, &format!("/boot/loader/entries/a-{rel}.conf"), format!("title Older\nversion {rel}\nlinux /boot/vmlinuz-{rel}\ninitrd /boot/initrd.img-{rel}\noptions $kernelopts\n").as_bytes());
    put(&root, "/boot/loader/entries/b-6.conf", format!("title Default\nversion 6\nlinux /boot/vmlinuz-{rel}\ninitrd /boot/initrd.img-{rel}\noptions root=/dev/sda1 console=ttyS0\n").as_bytes());
    put(&root, "/usr/bin/dracut", b"#!/bin/sh\n");
    let img = t.join("btrfs.img");
    testkit::sparse_file(&img, 300 << 20);
    run(tool("mkfs.btrfs")
        .args(["-q", "-f", "-U", uuid, "--rootdir"])
        .arg(&root)
        .arg(&img));
    assert_eq!(blkid(&img, "UUID"), uuid);
    let (disks, insp) = inspect(&[&img]);
    assert_eq!(insp.linux.len(), 1, "{:?}", insp.warnings);
    let li = &insp.linux[0];
    assert_eq!(
        li.root,
        Some(VolumeRef {
            disk: 0,
            partition: None
        })
    );
    assert_eq!(li.root_fs.as_deref(), Some("btrfs"));
    assert_eq!(
        (li.distro.as_deref(), li.version.as_deref()),
        (Some("opensuse-leap"), Some("15.5"))
    );
    assert_eq!(li.boot, None);
    assert_eq!(li.boot_loader.as_deref(), Some("grub2-bls"));
    let b = li.default_boot.as_ref().unwrap();
    assert_eq!(b.title.as_deref(), Some("Default"));
    assert_eq!(b.kernel, format!("/boot/vmlinuz-{rel}"));
    assert_eq!(b.cmdline, "root=/dev/sda1 console=ttyS0");
    assert_eq!(b.release.as_deref(), Some(rel.as_str()));
    assert_eq!(li.initramfs_tool.as_deref(), Some("dracut"));
    assert!(li.virtio.as_ref().unwrap().blk);
    // /dev/sda1 names no volume of this VM (whole-disk btrfs): found, not
    // resolved; no edit of that BLS entry.
    let names: Vec<(&str, &str, Option<&str>)> = li
        .device_names
        .iter()
        .map(|d| (d.file.as_str(), d.device.as_str(), d.replacement.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("/etc/fstab", "/dev/sda2", None),
            ("/boot/loader/entries/b-6.conf", "/dev/sda1", None),
        ]
    );
    assert!(li.edits.is_empty());
    let k = format!("/boot/vmlinuz-{rel}");
    assert!(read(&disks, &insp, li, &k) == std::fs::read(root.join(&k[1..])).unwrap());
}

#[test]
fn linux_inspect_uefi_esp_grub_cfg() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rel = "5.14.0-362.8.1.el9_3.x86_64";
    let cfg = format!("set default=\"0\"\nmenuentry 'Rocky Linux ({rel}) 9.3' {{\n\tlinuxefi /boot/vmlinuz-{rel} root=/dev/sda2 ro crashkernel=auto\n\tinitrdefi /boot/initramfs-{rel}.img\n}}\n");
    put(t, "grub.cfg", cfg.as_bytes());
    let esp = testkit::winimg::esp_part(t, 40, &[]);
    let e = testkit::s(&esp);
    run(tool("mmd").args(["-i", e, "::EFI/rocky"]));
    run(tool("mcopy")
        .args(["-i", e])
        .arg(t.join("grub.cfg"))
        .arg("::EFI/rocky/grub.cfg"));
    let esp_uuid = blkid(&esp, "UUID");
    let root = t.join("root");
    let part_uuid = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let esp_part_uuid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e";
    put(
        &root,
        "/etc/os-release",
        b"NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=\"rocky\"\n",
    );
    put(&root, "/etc/fstab", format!("PARTUUID={part_uuid} / ext4 defaults 0 1\nPARTUUID={esp_part_uuid} /boot/efi vfat umask=0077 0 2\n/dev/sda1 /efi vfat noauto 0 0\n").as_bytes());
    put(&root, &format!("/boot/vmlinuz-{rel}"), b"not a bzImage");
    put(
        &root,
        &format!("/boot/initramfs-{rel}.img"),
        b"not an initrd either",
    );
    put(&root, "/boot/vmlinuz-5.14.0-284.el9.x86_64", b"older");
    put(&root, "/usr/sbin/dracut", b"#!/bin/sh\n");
    put(&root, "/etc/selinux/config", b"SELINUX=enforcing\n");
    let ext = t.join("ext.img");
    testkit::sparse_file(&ext, 64 << 20);
    run(tool("mkfs.ext4")
        .args(["-q", "-F", "-U", EXT_UUID, "-d"])
        .arg(&root)
        .arg(&ext));
    let disk = t.join("disk.raw");
    testkit::winimg::assemble_raw(
        &disk,
        110,
        &format!("label: gpt\nstart=2048, size=81920, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid={esp_part_uuid}\nstart=83968, size=131072, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid={part_uuid}\n"),
        &[(2048, &esp), (83968, &ext)],
    );
    assert_eq!(
        run(tool("sfdisk").arg("--part-uuid").arg(&disk).arg("2")).trim(),
        part_uuid.to_uppercase()
    );
    let (disks, insp) = inspect(&[&disk]);
    assert_eq!(insp.linux.len(), 1, "{:?}", insp.warnings);
    let li = &insp.linux[0];
    assert_eq!(
        li.root,
        Some(VolumeRef {
            disk: 0,
            partition: Some(2)
        })
    );
    assert_eq!(li.firmware, Some(Firmware::Uefi));
    assert_eq!(li.boot_loader.as_deref(), Some("grub2"));
    assert_eq!(
        li.boot_config.as_deref(),
        Some("/boot/efi/EFI/rocky/grub.cfg")
    );
    let b = li.default_boot.as_ref().unwrap();
    assert_eq!(b.kernel, format!("/boot/vmlinuz-{rel}"));
    assert_eq!(b.initrd, [format!("/boot/initramfs-{rel}.img")]);
    assert_eq!(b.release.as_deref(), Some(rel), "from the file name");
    assert_eq!(li.other_kernels, ["5.14.0-284.el9.x86_64"]);
    assert_eq!(li.initramfs_tool.as_deref(), Some("dracut"));
    assert_eq!(li.selinux.as_deref(), Some("enforcing"));
    // The initrd does not parse: a warning, no virtio verdict.
    assert!(li.virtio.is_none());
    assert!(
        insp.warnings
            .iter()
            .any(|w| w.contains("initrd /boot/initramfs-")),
        "{:?}",
        insp.warnings
    );
    // root=/dev/sda2 in the ESP's grub.cfg → the ext4 UUID (blkid).
    assert_eq!(blkid(&ext, "UUID"), EXT_UUID);
    let names: Vec<(&str, usize, &str, Option<String>)> = li
        .device_names
        .iter()
        .map(|d| {
            (
                d.file.as_str(),
                d.line,
                d.device.as_str(),
                d.replacement.clone(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "/etc/fstab",
                3,
                "/dev/sda1",
                Some(format!("UUID={esp_uuid}"))
            ),
            (
                "/boot/efi/EFI/rocky/grub.cfg",
                3,
                "/dev/sda2",
                Some(format!("UUID={EXT_UUID}"))
            ),
        ]
    );
    let mounts: Vec<&(String, String)> = li
        .facts
        .iter()
        .filter(|f| f.0.starts_with("mount "))
        .collect();
    assert_eq!(
        mounts,
        [
            &(
                "mount /boot/efi".to_string(),
                "disk 0 partition 1".to_string()
            ),
            &("mount /efi".to_string(), "disk 0 partition 1".to_string()),
            &("mount /".to_string(), "disk 0 partition 2".to_string()),
        ]
    );
    assert_eq!(li.edits.len(), 2);
    assert_eq!(li.edits[1].path, "/boot/efi/EFI/rocky/grub.cfg");
    assert_eq!(
        li.edits[1].new,
        cfg.replace("root=/dev/sda2", &format!("root=UUID={EXT_UUID}"))
    );
    assert_eq!(
        read(&disks, &insp, li, "/boot/efi/EFI/rocky/grub.cfg"),
        cfg.as_bytes()
    );
    let refs: Vec<&dyn vdisk::Disk> = disks.iter().map(|d| &**d).collect();
    let err = guest::linux::read_file(&refs, &insp, li, "/boot/vmlinuz-5.14.0-284.el9.x86_64", 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/boot/vmlinuz-5.14.0-284.el9.x86_64"), "{err}");
}

/// fstab naming the root by `/dev/disk/by-id/scsi-…-part1` and another
/// mount by `/dev/disk/by-path/…-part1` (links that vanish on virtio):
/// on a one-disk VM both resolve to partition 1's UUID (blkid's), and
/// the `dm-name-` link (it follows the volume) is left alone; with a
/// second disk the slot is ambiguous and they stay unresolved.
#[test]
fn linux_inspect_by_id_and_by_path_names() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("guest.raw");
    fixture(&img, false);
    let fstab = "/dev/disk/by-id/scsi-36000c29f1d2c3b4a5968778899aabbcc-part1 / ext4 errors=remount-ro 0 1\n/dev/disk/by-path/pci-0000:03:00.0-scsi-0:0:0:0-part1 /mnt ext4 noauto 0 0\n/dev/disk/by-id/dm-name-vg-data /data ext4 nofail 0 0\n";
    let local = tmp.path().join("fstab");
    std::fs::write(&local, fstab).unwrap();
    for c in [
        "rm /etc/fstab".to_string(),
        format!("write {} /etc/fstab", local.display()),
    ] {
        run(tool("debugfs")
            .args(["-w", "-R", &c])
            .arg(format!("{}?offset=1048576", img.display())));
    }
    let part = tmp.path().join("p1.img");
    run(tool("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", part.display()))
        .args(["bs=1M", "skip=1", "count=4", "status=none"]));
    let uuid = blkid(&part, "UUID");

    let (_disks, insp) = inspect(&[&img]);
    let li = &insp.linux[0];
    let got: Vec<(usize, &str, Option<&str>)> = li
        .device_names
        .iter()
        .filter(|d| d.file == "/etc/fstab")
        .map(|d| (d.line, d.device.as_str(), d.replacement.as_deref()))
        .collect();
    let want = format!("UUID={uuid}");
    assert_eq!(
        got,
        [
            (
                1,
                "/dev/disk/by-id/scsi-36000c29f1d2c3b4a5968778899aabbcc-part1",
                Some(want.as_str())
            ),
            (
                2,
                "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:0:0:0-part1",
                Some(want.as_str())
            ),
        ]
    );
    let edit = li.edits.iter().find(|e| e.path == "/etc/fstab").unwrap();
    assert_eq!(
        edit.new,
        format!("{want} / ext4 errors=remount-ro 0 1\n{want} /mnt ext4 noauto 0 0\n/dev/disk/by-id/dm-name-vg-data /data ext4 nofail 0 0\n")
    );

    let second = tmp.path().join("second.raw");
    std::fs::File::create(&second)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let (_disks, insp) = inspect(&[&img, &second]);
    let li = &insp.linux[0];
    assert_eq!(li.device_names.len(), 2, "{:?}", li.device_names);
    assert!(li.device_names.iter().all(|d| d.replacement.is_none()));
    assert!(li.edits.iter().all(|e| e.path != "/etc/fstab"));
}
