//! Boot loader configs as grub-mkconfig (Debian, with its "Advanced
//! options" submenu) and RHEL 8/9 (BLS + grubenv `kernelopts`) write them,
//! fstab/crypttab rewrites and kernel config lookups.

use guest::linux::bootcfg::{default_boot, parse_grubenv, vercmp};
use guest::linux::fstab::{cmdline_bus_specific, is_bus_specific, rewrite, TabKind};
use guest::linux::kconfig::{bzimage_release, KernelConfig, State};
use std::collections::BTreeMap;

const DEBIAN: &str = r#"
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="DEFAULT"
fi
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  fi
}
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-ab62' {
	load_video
	insmod ext2
	echo	'Loading Linux 6.1.0-50-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-50-amd64 root=UUID=ab62 ro  console=ttyS0,115200n8 no_timer_check
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-50-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-ab62' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-50-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-50-amd64-advanced-ab62' {
		linux	/boot/vmlinuz-6.1.0-50-amd64 root=UUID=ab62 ro single
		initrd	/boot/initrd.img-6.1.0-50-amd64
	}
	menuentry 'Debian GNU/Linux, with Linux 5.10.0-9-amd64' --class debian $menuentry_id_option 'gnulinux-5.10.0-9-amd64-advanced-ab62' {
		linux	/vmlinuz-5.10.0-9-amd64 root=/dev/sda1 ro "quoted arg" $vt_handoff
		initrd	/intel-ucode.img /initrd.img-5.10.0-9-amd64
	}
}
menuentry 'Memory test' {
	linux16	/boot/memtest86+.bin
}
"#;

fn debian(default: &str) -> String {
    DEBIAN.replace("DEFAULT", default)
}

#[test]
fn grub_cfg_default_by_index_path_id_title_and_next_entry() {
    let e = default_boot(Some(&debian("0")), None, &[]).unwrap();
    assert_eq!(e.kernel, "/boot/vmlinuz-6.1.0-50-amd64");
    assert_eq!(e.initrd, vec!["/boot/initrd.img-6.1.0-50-amd64"]);
    assert_eq!(
        e.cmdline,
        "root=UUID=ab62 ro console=ttyS0,115200n8 no_timer_check"
    );
    assert_eq!(e.id.as_deref(), Some("gnulinux-simple-ab62"));

    let e = default_boot(Some(&debian("1>1")), None, &[]).unwrap();
    assert_eq!(e.kernel, "/vmlinuz-5.10.0-9-amd64");
    assert_eq!(
        e.initrd,
        vec!["/intel-ucode.img", "/initrd.img-5.10.0-9-amd64"]
    );
    assert_eq!(e.cmdline, "root=/dev/sda1 ro quoted arg");
    assert_eq!(e.submenu, vec!["Advanced options for Debian GNU/Linux"]);

    let e = default_boot(
        Some(&debian(
            "gnulinux-advanced-ab62>gnulinux-6.1.0-50-amd64-advanced-ab62",
        )),
        None,
        &[],
    )
    .unwrap();
    assert!(e.cmdline.ends_with("single"), "{e:?}");

    let e = default_boot(Some(&debian("Memory test")), None, &[]).unwrap();
    assert_eq!(e.kernel, "/boot/memtest86+.bin");

    // GRUB_DEFAULT=saved: `set default="${saved_entry}"` and grubenv.
    let env = "# GRUB Environment Block\nsaved_entry=gnulinux-5.10.0-9-amd64-advanced-ab62\n#####";
    let e = default_boot(Some(&debian("${saved_entry}")), Some(env), &[]).unwrap();
    assert_eq!(e.kernel, "/vmlinuz-5.10.0-9-amd64");

    // A one-shot next_entry wins over the default.
    let env = "# GRUB Environment Block\nnext_entry=2\n####";
    let e = default_boot(Some(&debian("0")), Some(env), &[]).unwrap();
    assert_eq!(e.kernel, "/boot/memtest86+.bin");

    // Unknown default: the first entry.
    let e = default_boot(Some(&debian("no-such-entry")), None, &[]).unwrap();
    assert_eq!(e.kernel, "/boot/vmlinuz-6.1.0-50-amd64");
}

const RHEL_GRUB: &str = r#"
set pager=1
if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
elif [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi
insmod part_msdos
blscfg
"#;

fn bls(id: &str, ver: &str) -> (String, String) {
    (
        format!("{id}.conf"),
        format!(
            "title Red Hat Enterprise Linux ({ver}) 9.4 (Plow)\nversion {ver}\nlinux /vmlinuz-{ver}\ninitrd /initramfs-{ver}.img $tuned_initrd\noptions $kernelopts $tuned_params\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class rhel\n"
        ),
    )
}

#[test]
fn bls_entries_with_kernelopts_and_saved_entry() {
    let entries = vec![
        bls(
            "8d1c-5.14.0-70.13.1.el9_0.x86_64",
            "5.14.0-70.13.1.el9_0.x86_64",
        ),
        bls(
            "8d1c-5.14.0-427.13.1.el9_4.x86_64",
            "5.14.0-427.13.1.el9_4.x86_64",
        ),
        bls("8d1c-0-rescue", "0-rescue-8d1c"),
    ];
    let env = "# GRUB Environment Block\nkernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto rd.lvm.lv=rhel/root\nsaved_entry=8d1c-5.14.0-70.13.1.el9_0.x86_64\n###";
    let e = default_boot(Some(RHEL_GRUB), Some(env), &entries).unwrap();
    assert_eq!(e.kernel, "/vmlinuz-5.14.0-70.13.1.el9_0.x86_64");
    assert_eq!(e.initrd, vec!["/initramfs-5.14.0-70.13.1.el9_0.x86_64.img"]);
    assert_eq!(
        e.cmdline,
        "root=/dev/mapper/rhel-root ro crashkernel=auto rd.lvm.lv=rhel/root"
    );
    // No saved_entry: the newest version.
    let env = "kernelopts=root=/dev/sda2 ro\n";
    let e = default_boot(Some(RHEL_GRUB), Some(env), &entries).unwrap();
    assert_eq!(e.kernel, "/vmlinuz-5.14.0-427.13.1.el9_4.x86_64");
    assert_eq!(e.cmdline, "root=/dev/sda2 ro");
    assert_eq!(cmdline_bus_specific(&e.cmdline), vec!["/dev/sda2"]);
    // BLS only (no grub.cfg).
    let e = default_boot(None, None, &entries).unwrap();
    assert_eq!(e.id.as_deref(), Some("8d1c-5.14.0-427.13.1.el9_4.x86_64"));
    assert!(default_boot(None, None, &[]).is_err());
    assert_eq!(parse_grubenv(env)["kernelopts"], "root=/dev/sda2 ro");
    assert!(vercmp("5.14.0-427", "5.14.0-70").is_gt());
}

#[test]
fn fstab_and_crypttab_rewrite_only_the_device_field() {
    let fstab = "# /etc/fstab\n/dev/sda1\t/\text4\terrors=remount-ro 0 1\nUUID=1111 /home ext4 defaults 0 2\n/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:1:0-part1 /data xfs defaults 0 0\n/dev/hdb2 none swap sw 0 0\n/dev/sdc1 /mnt ext4 noauto 0 0\nproc /proc proc defaults 0 0\n";
    let map = BTreeMap::from([
        ("/dev/sda1".to_string(), "aaaa-bbbb".to_string()),
        (
            "/dev/disk/by-path/pci-0000:00:10.0-scsi-0:0:1:0-part1".to_string(),
            "cccc".to_string(),
        ),
        ("/dev/hdb2".to_string(), "dddd".to_string()),
    ]);
    let r = rewrite(fstab, TabKind::Fstab, &map);
    assert_eq!(
        r.text,
        "# /etc/fstab\nUUID=aaaa-bbbb\t/\text4\terrors=remount-ro 0 1\nUUID=1111 /home ext4 defaults 0 2\nUUID=cccc /data xfs defaults 0 0\nUUID=dddd none swap sw 0 0\n/dev/sdc1 /mnt ext4 noauto 0 0\nproc /proc proc defaults 0 0\n"
    );
    assert_eq!(r.changes.len(), 4);
    assert_eq!(r.unresolved(), vec!["/dev/sdc1"]);
    assert_eq!(r.changes[0].line, 2);

    let crypttab = "cryptroot /dev/sda3 none luks,discard\nswap /dev/sdb1 /dev/urandom swap\n";
    let map = BTreeMap::from([("/dev/sda3".to_string(), "eeee".to_string())]);
    let r = rewrite(crypttab, TabKind::Crypttab, &map);
    assert_eq!(
        r.text,
        "cryptroot UUID=eeee none luks,discard\nswap /dev/sdb1 /dev/urandom swap\n"
    );
    assert_eq!(r.unresolved(), vec!["/dev/sdb1"]);

    for (d, want) in [
        ("/dev/sda", true),
        ("/dev/sdaa12", true),
        ("/dev/hdc1", true),
        ("/dev/vda1", false),
        ("/dev/mapper/vg-root", false),
        ("/dev/sd", false),
        ("/dev/sda1x", false),
        ("LABEL=root", false),
        (
            "/dev/disk/by-id/ata-VMware_Virtual_SATA_Hard_Drive_01000000000000000001-part1",
            true,
        ),
        (
            "/dev/disk/by-id/scsi-36000c29f1d2c3b4a5968778899aabbcc-part2",
            true,
        ),
        ("/dev/disk/by-id/wwn-0x6000c29f1d2c3b4a-part1", true),
        (
            "/dev/disk/by-id/nvme-VMware_Virtual_NVMe_Disk_VMWare_NVME_0000-part1",
            true,
        ),
        ("/dev/disk/by-id/dm-name-vg-root", false),
        ("/dev/disk/by-id/lvm-pv-uuid-Abc123", false),
        ("/dev/disk/by-uuid/1234-ABCD", false),
    ] {
        assert_eq!(is_bus_specific(d), want, "{d}");
    }
    // Unchanged text stays byte-identical (no trailing newline either).
    let r = rewrite(
        "UUID=1 / ext4 defaults 0 1",
        TabKind::Fstab,
        &BTreeMap::new(),
    );
    assert_eq!(r.text, "UUID=1 / ext4 defaults 0 1");
    assert!(!r.changed());
}

#[test]
fn kernel_config_states_and_bzimage_version() {
    let k = KernelConfig::parse(
        "# Automatically generated file; DO NOT EDIT.\nCONFIG_VIRTIO_BLK=m\nCONFIG_SCSI_VIRTIO=y\n# CONFIG_VIRTIO_NET is not set\nCONFIG_VIRTIO_PCI=m\n",
    );
    assert_eq!(k.module_state("virtio_blk"), State::Module);
    assert_eq!(k.module_state("virtio_scsi"), State::BuiltIn);
    assert_eq!(k.module_state("virtio_net"), State::Absent);
    assert_eq!(k.module_state("unknown"), State::Absent);
    // A minimal bzImage header: "HdrS" at 0x202, version pointer at 0x20E.
    let mut img = vec![0u8; 0x1000];
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x20E..0x210].copy_from_slice(&0x0400u16.to_le_bytes());
    let v = b"6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
    img[0x600..0x600 + v.len()].copy_from_slice(v);
    assert_eq!(bzimage_release(&img).as_deref(), Some("6.1.0-50-amd64"));
    assert_eq!(bzimage_release(&img[..0x300]), None);
    assert_eq!(bzimage_release(b"MZ"), None);
}

#[test]
fn hostile_grub_cfg_nesting_is_refused_with_its_line() {
    let deep = "submenu 'a' {\n".repeat(100) + "menuentry 'x' {\nlinux /k\n}\n";
    let e = default_boot(Some(&deep), None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nesting") && e.contains("offset 33"), "{e}");
    // Unbalanced braces and stray fi/else do not panic.
    let odd = "}\n}\nfi\nelse\nmenuentry 'x' {\nlinux /k a\n";
    assert!(default_boot(Some(odd), None, &[]).is_err());
}
