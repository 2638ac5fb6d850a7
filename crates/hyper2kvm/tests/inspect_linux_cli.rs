//! `hyper2kvm inspect` on the real Debian 12 fixture
//! (`tests/fixtures/linux-guest.sh`, both initramfs variants; needs root):
//! the Linux install in text and JSON, its default kernel and root UUID
//! checked against `debugfs` and `blkid`, and the one-line migration
//! verdict (host-only initrd: bootstrap boot; MODULES=most: none).

use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::{run, tool};

fn fixture(out: &Path, host_only: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c = Command::new("bash");
    c.arg(root.join("tests/fixtures/linux-guest.sh")).arg(out);
    if host_only {
        c.arg("--host-only-initramfs");
    }
    run(&mut c);
}

fn inspect(img: &Path, json: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hyper2kvm"));
    c.arg("inspect").arg(img);
    if json {
        c.arg("--json");
    }
    run(&mut c)
}

/// The kernel release and root filesystem UUID by the oracles.
fn oracle(img: &PathBuf) -> (String, String) {
    let ls = run(tool("debugfs")
        .args(["-R", "ls -p /boot"])
        .arg(format!("{}?offset=1048576", img.display())));
    let rel = ls
        .split('/')
        .find_map(|f| f.strip_prefix("vmlinuz-"))
        .unwrap()
        .to_string();
    let uuid = run(tool("blkid")
        .args(["-p", "-O", "1048576", "-o", "value", "-s", "UUID"])
        .arg(img));
    (rel, uuid.trim().to_string())
}

#[test]
fn inspect_cli_reports_linux_install() {
    let tmp = tempfile::tempdir().unwrap();
    for host_only in [true, false] {
        let img = tmp.path().join("guest.raw");
        fixture(&img, host_only);
        let (rel, uuid) = oracle(&img);
        let text = inspect(&img, false);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let has = |l: &str| lines.contains(&l);
        assert!(
            has("Linux: Debian GNU/Linux 12 (bookworm) (distro debian, version 12), firmware bios"),
            "{text}"
        );
        assert!(
            has("root: disk 0 partition 1 (ext4); /boot: on the root"),
            "{text}"
        );
        assert!(has("boot loader: grub2 (/boot/grub/grub.cfg)"), "{text}");
        assert!(
            has(&format!(
                "default kernel: /boot/vmlinuz-{rel} (release {rel})"
            )),
            "{text}"
        );
        assert!(has(&format!("initrd: /boot/initrd.img-{rel}")), "{text}");
        assert!(
            has(&format!(
                "cmdline: root=UUID={uuid} ro console=ttyS0,115200n8 no_timer_check"
            )),
            "{text}"
        );
        assert!(has("initramfs tool: initramfs-tools"), "{text}");
        let (virtio, verdict) = if host_only {
            (
                "initrd virtio-blk: no, virtio-scsi: no; storage drivers: ata_piix, ahci, sd_mod",
                "migration: bootstrap boot needed: the default initrd does not drive virtio-blk",
            )
        } else {
            (
                "initrd virtio-blk: yes, virtio-scsi: yes;",
                "migration: initrd drives virtio-blk: no bootstrap boot needed",
            )
        };
        assert!(lines.iter().any(|l| l.starts_with(virtio)), "{text}");
        assert!(has(verdict), "{text}");

        let v: serde_json::Value = serde_json::from_str(&inspect(&img, true)).unwrap();
        let li = &v[0]["vm"]["linux"][0];
        assert_eq!(li["distro"], "debian");
        assert_eq!(li["version"], "12");
        assert_eq!(li["root"]["disk"], 0);
        assert_eq!(li["root"]["partition"], 1);
        assert_eq!(li["root_fs"], "ext4");
        assert_eq!(li["firmware"], "bios");
        assert_eq!(li["boot_loader"], "grub2");
        assert_eq!(li["default_boot"]["kernel"], format!("/boot/vmlinuz-{rel}"));
        assert_eq!(li["default_boot"]["release"], rel.as_str());
        assert_eq!(li["virtio"]["blk"], !host_only);
        let drivers: Vec<&str> = li["virtio"]["storage_drivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(drivers.contains(&"virtio_blk"), !host_only, "{drivers:?}");
        assert!(drivers.contains(&"ahci") && drivers.contains(&"ata_piix"));
        std::fs::remove_file(&img).unwrap();
    }
}
