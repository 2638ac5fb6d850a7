//! Linux installs on a VM's disks: every ext2/3/4, XFS or btrfs volume
//! (partition, whole disk or LVM2 linear LV) holding `/etc/fstab` and an
//! os-release is a root; its `/etc/fstab` gives the mount layout (`/boot`,
//! the ESP), through which the boot loader config, the default kernel,
//! initrd and kernel config, bus-specific device names, network configs
//! bound to interface names, other hypervisors' tools, SELinux and LVM's
//! devices file are read. Anything unreadable is a warning, never a
//! failure.

use super::bootcfg::{default_boot, BootEntry};
use super::fstab::{is_bus_specific, rewrite, TabKind};
use super::initrd::{Initrd, Presence, STORAGE_DRIVERS};
use super::kconfig::{bzimage_release, KernelConfig, State};
use super::layout::{describe, scan, Layout, Scan, Target, MAX_FILE};
use super::netcfg;
use crate::inspect::{
    DiskInfo, Firmware, ForeignTool, LinuxBoot, LinuxDeviceName, LinuxEdit, LinuxInstall,
    LinuxInterface, LinuxMount, LinuxVirtio,
};
use std::collections::BTreeMap;
use vdisk::Disk;

/// Find and inspect every Linux install on `disks` (described by
/// `infos`); problems go to `warnings`.
pub fn inspect(
    disks: &[&dyn Disk],
    infos: &[DiskInfo],
    warnings: &mut Vec<String>,
) -> Vec<LinuxInstall> {
    let scan = scan(disks, infos, warnings);
    roots(&scan)
        .into_iter()
        .map(|r| Root::new(&scan, r).inspect(warnings))
        .collect()
}

/// Indices of the volumes that are roots.
pub(crate) fn roots(scan: &Scan) -> Vec<usize> {
    (0..scan.fs.len())
        .filter(|&i| {
            let fs = &scan.fs[i].fs;
            fs.stat("/etc/fstab").is_ok()
                && (fs.stat("/etc/os-release").is_ok() || fs.stat("/usr/lib/os-release").is_ok())
        })
        .collect()
}

/// One root being inspected: the scan, its layout and its warnings.
pub(crate) struct Root<'s, 'a> {
    pub scan: &'s Scan<'a>,
    pub layout: Layout,
    name: String,
    warnings: Vec<String>,
    /// Guest device name → UUID, for the `UUID=` rewrites.
    uuids: BTreeMap<String, String>,
}

impl<'s, 'a> Root<'s, 'a> {
    /// The layout of root `root` from its fstab.
    pub(crate) fn new(scan: &'s Scan<'a>, root: usize) -> Self {
        let v = &scan.fs[root];
        let name = v.lv.clone().unwrap_or_else(|| describe(&v.vref));
        let fstab =
            v.fs.read_file("/etc/fstab", 1 << 20)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
        Root {
            scan,
            layout: scan.layout(root, fstab.as_deref()),
            name,
            warnings: vec![],
            uuids: BTreeMap::new(),
        }
    }

    fn text(&mut self, path: &str) -> Option<String> {
        self.scan.text(&self.layout, path, &mut self.warnings)
    }
    fn exists(&self, path: &str) -> bool {
        self.scan.exists(&self.layout, path)
    }
    fn list(&self, path: &str) -> Vec<String> {
        let mut v = self.scan.list(&self.layout, path);
        v.sort();
        v
    }
    fn mount(&self, mp: &str) -> Option<Target> {
        self.layout.mounts.iter().find(|m| m.0 == mp).map(|m| m.1)
    }

    fn inspect(mut self, warnings: &mut Vec<String>) -> LinuxInstall {
        let root = &self.scan.fs[self.layout.root];
        let mut li = LinuxInstall {
            root: Some(root.vref.clone()),
            root_lv: root.lv.clone(),
            root_subvol: root.subvol.clone(),
            root_fs: Some(root.fs.fs_type().into()),
            ..Default::default()
        };
        if let Some(Target::Fs(b)) = self.mount("/boot") {
            li.boot = Some(self.scan.fs[b].vref.clone());
            li.boot_lv = self.scan.fs[b].lv.clone();
        }
        li.boot_mounts = self.boot_mounts();
        let esp = self.mount("/boot/efi").or_else(|| self.mount("/efi"));
        li.firmware = Some(if matches!(esp, Some(Target::Other(_))) {
            Firmware::Uefi
        } else {
            Firmware::Bios
        });
        self.os_release(&mut li);
        let cfg_files = self.boot_loader(&mut li);
        self.kernels(&mut li);
        self.initramfs_tool(&mut li);
        self.virtio(&mut li);
        self.device_names(&mut li, &cfg_files);
        self.interfaces(&mut li);
        self.foreign_tools(&mut li);
        self.misc(&mut li);
        let name = self.name.clone();
        warnings.extend(
            self.warnings
                .drain(..)
                .map(|w| format!("linux root {name}: {w}")),
        );
        li
    }

    /// The layout's separate volumes at or below `/boot`, with the type
    /// and UUID `mount` needs.
    fn boot_mounts(&self) -> Vec<LinuxMount> {
        let mut v: Vec<LinuxMount> = self
            .layout
            .mounts
            .iter()
            .filter(|(mp, _)| mp == "/boot" || mp.starts_with("/boot/"))
            .filter_map(|(mp, t)| {
                let fs = match *t {
                    Target::Fs(i) => match self.scan.fs[i].fs.fs_type() {
                        "ext2" | "ext3" | "ext4" => "ext4",
                        other => other,
                    },
                    Target::Other(i) if self.scan.other[i].fs == "fat" => "vfat",
                    Target::Other(_) => return None,
                };
                Some(LinuxMount {
                    path: mp.clone(),
                    fs: fs.into(),
                    uuid: self.scan.uuid(*t)?,
                })
            })
            .collect();
        v.sort_by_key(|m| m.path.len());
        v
    }

    fn os_release(&mut self, li: &mut LinuxInstall) {
        let text = self
            .text("/etc/os-release")
            .or_else(|| self.text("/usr/lib/os-release"))
            .unwrap_or_default();
        let kv = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        };
        li.distro = kv("ID");
        li.version = kv("VERSION_ID");
        li.pretty_name = kv("PRETTY_NAME");
    }

    /// A path as grub wrote it (relative to the filesystem it reads) →
    /// the guest path.
    fn grub_path(&self, p: &str) -> String {
        let p = match p.find(')') {
            Some(i) if p.starts_with('(') => &p[i + 1..],
            _ => p,
        };
        let p = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        };
        if self.mount("/boot").is_some() {
            return format!("/boot{p}");
        }
        if self.exists(&p) {
            return p;
        }
        let boot = format!("/boot{p}");
        if self.exists(&boot) {
            return boot;
        }
        // A btrfs subvolume prefix (`/@/boot/...`).
        match p[1..].split_once('/') {
            Some((_, rest)) if self.exists(&format!("/{rest}")) => format!("/{rest}"),
            _ => p,
        }
    }

    /// The boot loader, its config and default entry; returns the config
    /// files read (for the `root=` rewrite).
    fn boot_loader(&mut self, li: &mut LinuxInstall) -> Vec<String> {
        let env_path = ["/boot/grub2/grubenv", "/boot/grub/grubenv"]
            .into_iter()
            .find(|p| self.exists(p));
        let env = env_path.and_then(|p| self.text(p));
        let bls: Vec<(String, String)> = self
            .list(BLS_DIR)
            .into_iter()
            .filter(|n| n.ends_with(".conf"))
            .filter_map(|n| Some((n.clone(), self.text(&format!("{BLS_DIR}/{n}"))?)))
            .collect();
        let mut files: Vec<String> = env_path.iter().map(|s| s.to_string()).collect();
        let chosen = self.find_config(env.as_deref(), &bls);
        let Some((e, cfg, kind)) = chosen else {
            li.boot_loader = Some(if self.exists("/boot/efi/loader/loader.conf") {
                "systemd-boot".into()
            } else {
                "unknown".into()
            });
            self.warnings
                .push("no boot loader configuration with a default entry found".into());
            return files;
        };
        if kind == "grub2-bls" {
            files.extend(bls.iter().map(|(n, _)| format!("{BLS_DIR}/{n}")));
        }
        if cfg != BLS_DIR {
            files.push(cfg.clone());
        }
        li.boot_loader = Some(kind.into());
        li.boot_config = Some(cfg);
        li.default_boot = Some(LinuxBoot {
            title: (!e.title.is_empty()).then(|| e.title.clone()),
            kernel: self.grub_path(&e.kernel),
            initrd: e.initrd.iter().map(|p| self.grub_path(p)).collect(),
            cmdline: e.cmdline.clone(),
            release: None,
        });
        files
    }

    /// The first boot loader config with a default entry: grub2 (`/boot`,
    /// then the ESP), BLS entries alone, grub-legacy; (entry, config
    /// path, loader kind).
    fn find_config(
        &mut self,
        env: Option<&str>,
        bls: &[(String, String)],
    ) -> Option<(BootEntry, String, &'static str)> {
        let mut cands = vec![
            "/boot/grub2/grub.cfg".to_string(),
            "/boot/grub/grub.cfg".into(),
        ];
        for d in self.list("/boot/efi/EFI") {
            cands.push(format!("/boot/efi/EFI/{d}/grub.cfg"));
        }
        for c in cands {
            let Some(text) = self.text(&c) else { continue };
            match default_boot(Some(&text), env, bls) {
                Ok(e) => {
                    let kind = if !bls.is_empty() && text.contains("blscfg") {
                        "grub2-bls"
                    } else {
                        "grub2"
                    };
                    return Some((e, c, kind));
                }
                Err(e) => self.warnings.push(format!("{c}: {e}")),
            }
        }
        if !bls.is_empty() {
            match default_boot(None, env, bls) {
                Ok(e) => return Some((e, BLS_DIR.into(), "grub2-bls")),
                Err(e) => self.warnings.push(format!("{BLS_DIR}: {e}")),
            }
        }
        ["/boot/grub/menu.lst", "/boot/grub/grub.conf"]
            .into_iter()
            .find_map(|c| Some((menu_lst(&self.text(c)?)?, c.to_string(), "grub-legacy")))
    }

    /// The default kernel's release; the other kernels in `/boot`.
    fn kernels(&mut self, li: &mut LinuxInstall) {
        let Some(b) = li.default_boot.as_mut() else {
            return;
        };
        let from_name = b
            .kernel
            .rsplit('/')
            .next()
            .and_then(|n| {
                n.strip_prefix("vmlinuz-")
                    .or_else(|| n.strip_prefix("vmlinux-"))
            })
            .map(String::from);
        b.release = match self.scan.read(&self.layout, &b.kernel, 256 << 20) {
            Ok(k) => bzimage_release(&k).or(from_name),
            Err(e) => {
                self.warnings.push(format!("{}: {e}", b.kernel));
                from_name
            }
        };
        let def = b.release.clone().unwrap_or_default();
        let mut others: Vec<String> = self
            .list("/boot")
            .into_iter()
            .filter_map(|n| n.strip_prefix("vmlinuz-").map(String::from))
            .filter(|r| *r != def)
            .collect();
        others.sort_by(|a, b| super::bootcfg::vercmp(b, a));
        li.other_kernels = others;
    }

    fn initramfs_tool(&mut self, li: &mut LinuxInstall) {
        let any = |s: &Self, names: &[&str]| {
            names.iter().any(|n| {
                ["/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"]
                    .iter()
                    .any(|d| s.exists(&format!("{d}{n}")))
            })
        };
        li.initramfs_tool = if any(self, &["update-initramfs"])
            && self.exists("/etc/initramfs-tools/initramfs.conf")
        {
            Some("initramfs-tools".into())
        } else if any(self, &["dracut"]) {
            Some("dracut".into())
        } else if any(self, &["mkinitrd"]) {
            Some("mkinitrd".into())
        } else {
            None
        };
    }

    /// What the default initrd (+ the kernel's built-ins) drives.
    fn virtio(&mut self, li: &mut LinuxInstall) {
        let Some(b) = li.default_boot.clone() else {
            return;
        };
        let kc = b
            .release
            .as_ref()
            .and_then(|r| self.text(&format!("/boot/config-{r}")))
            .map(|t| KernelConfig::parse(&t));
        let mut bytes = Vec::new();
        for p in &b.initrd {
            match self.scan.read(&self.layout, p, MAX_FILE) {
                Ok(v) => bytes.extend(v),
                Err(e) => self.warnings.push(format!("initrd {p}: {e}")),
            }
        }
        if bytes.is_empty() {
            return;
        }
        let report = match Initrd::parse(&bytes) {
            Ok(i) => i.report(),
            Err(e) => {
                self.warnings
                    .push(format!("initrd {}: {e}", b.initrd.join(" + ")));
                return;
            }
        };
        let built_in = |m: &str| {
            kc.as_ref()
                .is_some_and(|k| k.module_state(m) == State::BuiltIn)
        };
        let has = |m: &str| report.presence(m) != Presence::Absent || built_in(m);
        let mut drivers = report.storage_drivers.clone();
        for d in STORAGE_DRIVERS {
            if built_in(d) && !drivers.iter().any(|x| x == d) {
                drivers.push(d.to_string());
            }
        }
        li.virtio = Some(LinuxVirtio {
            blk: report.drives_virtio_blk(kc.as_ref()),
            scsi: has("virtio_scsi") && has("virtio_pci"),
            storage_drivers: drivers,
            kernel_config: kc.is_some(),
        });
        li.facts
            .push(("initrd_generator".into(), format!("{:?}", report.generator)));
        li.facts
            .push(("initrd_kernels".into(), report.kernel_versions.join(" ")));
    }

    /// The UUID for a bus-specific guest device name, when we know it.
    fn uuid_for(&mut self, dev: &str) -> Option<String> {
        if let Some(u) = self.uuids.get(dev) {
            return Some(u.clone());
        }
        let u = self.scan.resolve(dev).and_then(|t| self.scan.uuid(t))?;
        self.uuids.insert(dev.into(), u.clone());
        Some(u)
    }

    /// Bus-specific names in fstab/crypttab and the boot loader config,
    /// and the `UUID=` rewrites.
    fn device_names(&mut self, li: &mut LinuxInstall, cfg_files: &[String]) {
        for (file, kind) in [
            ("/etc/fstab", TabKind::Fstab),
            ("/etc/crypttab", TabKind::Crypttab),
        ] {
            let Some(text) = self.text(file) else {
                continue;
            };
            let probe = rewrite(&text, kind, &BTreeMap::new());
            for c in &probe.changes {
                self.uuid_for(&c.old);
            }
            let r = rewrite(&text, kind, &self.uuids);
            for c in &r.changes {
                li.device_names.push(LinuxDeviceName {
                    file: file.into(),
                    line: c.line,
                    device: c.old.clone(),
                    replacement: c.new.clone(),
                });
            }
            if r.changed() {
                li.edits.push(LinuxEdit {
                    path: file.into(),
                    old: text.clone(),
                    new: r.text,
                    reason: format!("{file}: bus-specific device names to UUID="),
                });
            }
        }
        let mut files = cfg_files.to_vec();
        files.push("/etc/default/grub".into());
        for file in files {
            let Some(text) = self.text(&file) else {
                continue;
            };
            for (_, dev, _) in root_args(&text, &BTreeMap::new()).1 {
                self.uuid_for(&dev);
            }
            let (new, found) = root_args(&text, &self.uuids);
            for (line, dev, repl) in &found {
                li.device_names.push(LinuxDeviceName {
                    file: file.clone(),
                    line: *line,
                    device: dev.clone(),
                    replacement: repl.clone(),
                });
            }
            if new != text {
                li.edits.push(LinuxEdit {
                    path: file.clone(),
                    old: text,
                    new,
                    reason: format!("{file}: root=/resume= bus-specific device names to UUID="),
                });
            }
        }
    }

    fn interfaces(&mut self, li: &mut LinuxInstall) {
        let mut out: Vec<LinuxInterface> = Vec::new();
        let mut files = vec!["/etc/network/interfaces".to_string()];
        files.extend(
            self.list("/etc/network/interfaces.d")
                .iter()
                .map(|n| format!("/etc/network/interfaces.d/{n}")),
        );
        for f in files {
            if let Some(t) = self.text(&f) {
                out.extend(netcfg::ifupdown(&t, &f));
            }
        }
        let dirs: [NetDir; 5] = [
            (
                "/etc/netplan",
                &|n| n.ends_with(".yaml") || n.ends_with(".yml"),
                netcfg::netplan,
            ),
            (
                "/etc/NetworkManager/system-connections",
                &|_| true,
                |t, f| netcfg::nm_keyfile(t, f).into_iter().collect(),
            ),
            (
                "/etc/sysconfig/network-scripts",
                &|n| n.starts_with("ifcfg-"),
                |t, f| netcfg::ifcfg(t, f).into_iter().collect(),
            ),
            (
                "/etc/sysconfig/network",
                &|n| n.starts_with("ifcfg-"),
                |t, f| netcfg::ifcfg(t, f).into_iter().collect(),
            ),
            (
                "/etc/systemd/network",
                &|n| n.ends_with(".network"),
                |t, f| netcfg::networkd(t, f).into_iter().collect(),
            ),
        ];
        for (dir, want, parse) in dirs {
            for n in self.list(dir).into_iter().filter(|n| want(n)) {
                let f = format!("{dir}/{n}");
                if let Some(t) = self.text(&f) {
                    out.extend(parse(&t, &f));
                }
            }
        }
        li.interfaces = out;
    }

    fn foreign_tools(&mut self, li: &mut LinuxInstall) {
        let tool = |vendor: &str, kind: &str, name: &str, location: &str| ForeignTool {
            vendor: vendor.into(),
            kind: kind.into(),
            name: name.into(),
            location: location.into(),
            uninstall: None,
        };
        if let Some(status) = self.text("/var/lib/dpkg/status") {
            for pkg in dpkg_installed(&status) {
                if let Some(v) = package_vendor(&pkg) {
                    li.foreign_tools
                        .push(tool(v, "package", &pkg, "/var/lib/dpkg/status"));
                }
            }
        }
        for (vendor, kind, path) in TOOL_FILES {
            if self.exists(path) {
                let name = path.rsplit('/').next().unwrap_or(path);
                li.foreign_tools.push(tool(vendor, kind, name, path));
            }
        }
        for n in self
            .list("/opt")
            .into_iter()
            .filter(|n| n.starts_with("VBoxGuestAdditions-"))
        {
            li.foreign_tools
                .push(tool("virtualbox", "tarball", &n, &format!("/opt/{n}")));
        }
        // A tarball install's own uninstaller, where it left one.
        for t in li.foreign_tools.iter_mut().filter(|t| t.kind == "tarball") {
            let u = match t.vendor.as_str() {
                "vmware" => "/usr/bin/vmware-uninstall-tools.pl".to_string(),
                "virtualbox" => format!("{}/uninstall.sh", t.location),
                _ => continue,
            };
            if self.scan.exists(&self.layout, &u) {
                t.uninstall = Some(u);
            }
        }
    }

    fn misc(&mut self, li: &mut LinuxInstall) {
        li.selinux = self.text("/etc/selinux/config").and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("SELINUX="))
                .map(|v| v.trim().trim_matches('"').to_string())
        });
        li.lvm_devices_file = self.exists("/etc/lvm/devices/system.devices");
        for (mp, t) in self.layout.mounts.clone() {
            let what = match t {
                Target::Fs(i) => self.scan.fs[i]
                    .lv
                    .clone()
                    .unwrap_or_else(|| describe(&self.scan.fs[i].vref)),
                Target::Other(i) => describe(&self.scan.other[i].vref),
            };
            li.facts.push((format!("mount {mp}"), what));
        }
    }
}

/// Why a migration needs the bootstrap boot (the guest's own kernel
/// rebuilding its initramfs and rewriting names): empty when the default
/// initrd drives virtio-blk and nothing bus- or name-specific was found.
pub fn bootstrap_reasons(li: &LinuxInstall) -> Vec<String> {
    let mut r = Vec::new();
    match &li.virtio {
        Some(v) if v.blk => {}
        Some(_) => r.push("the default initrd does not drive virtio-blk".to_string()),
        None => r.push("the default initrd could not be checked for virtio-blk".to_string()),
    }
    if !li.device_names.is_empty() {
        r.push(format!(
            "{} bus-specific device name(s) to rewrite to UUID=",
            li.device_names.len()
        ));
    }
    let named: Vec<&str> = li
        .interfaces
        .iter()
        .filter(|i| !i.name.is_empty())
        .map(|i| i.name.as_str())
        .collect();
    if !named.is_empty() {
        r.push(format!(
            "network config bound to {} (pin names to MACs)",
            named.join(", ")
        ));
    }
    if !li.foreign_tools.is_empty() {
        r.push("other hypervisors' tools to disable".to_string());
    }
    r
}

/// One line: what a migration will do for `li`.
pub fn migration_summary(li: &LinuxInstall) -> String {
    let r = bootstrap_reasons(li);
    if r.is_empty() {
        "initrd drives virtio-blk: no bootstrap boot needed".into()
    } else {
        format!("bootstrap boot needed: {}", r.join("; "))
    }
}

/// A directory of network configs: (path, which names, parser).
type NetDir<'f> = (
    &'f str,
    &'f dyn Fn(&str) -> bool,
    fn(&str, &str) -> Vec<LinuxInterface>,
);

/// Where BLS entries live.
const BLS_DIR: &str = "/boot/loader/entries";

/// Files whose presence shows another hypervisor's tools: (vendor, kind,
/// path).
const TOOL_FILES: &[(&str, &str, &str)] = &[
    ("vmware", "tarball", "/etc/vmware-tools/locations"),
    ("vmware", "service", "/usr/bin/vmtoolsd"),
    ("vmware", "service", "/usr/sbin/vmtoolsd"),
    ("vmware", "config", "/etc/vmware-tools"),
    ("virtualbox", "service", "/etc/init.d/vboxadd"),
    ("virtualbox", "service", "/usr/sbin/VBoxService"),
    ("hyperv", "service", "/usr/sbin/hv_kvp_daemon"),
    ("hyperv", "service", "/usr/sbin/hypervkvpd"),
    ("xen", "service", "/usr/sbin/xe-daemon"),
];

/// The vendor of a package name that is another hypervisor's guest tools.
fn package_vendor(pkg: &str) -> Option<&'static str> {
    const P: &[(&str, &str)] = &[
        ("open-vm-tools", "vmware"),
        ("vmware-tools", "vmware"),
        ("virtualbox-guest-", "virtualbox"),
        ("hyperv-daemons", "hyperv"),
        ("hyperv-", "hyperv"),
        ("hv-kvp-daemon", "hyperv"),
        ("xe-guest-utilities", "xen"),
    ];
    P.iter().find(|(p, _)| pkg.starts_with(p)).map(|(_, v)| *v)
}

/// Installed packages of a dpkg `status` file.
pub fn dpkg_installed(status: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in status.split("\n\n") {
        let mut name = None;
        let mut installed = false;
        for l in stanza.lines() {
            if let Some(v) = l.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = l.strip_prefix("Status:") {
                installed = v.split_whitespace().last() == Some("installed");
            }
        }
        if let (Some(n), true) = (name, installed) {
            out.push(n);
        }
    }
    out
}

/// Find `root=`/`resume=` values that are bus-specific in a boot loader
/// config (grub.cfg, grubenv, BLS entry, `/etc/default/grub`): the text
/// with each one that `uuids` resolves replaced by `UUID=...`, and
/// (line, device, replacement) for each found.
pub fn root_args(
    text: &str,
    uuids: &BTreeMap<String, String>,
) -> (String, Vec<(usize, String, Option<String>)>) {
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = ["root=", "resume="]
            .iter()
            .filter_map(|k| {
                rest.match_indices(k)
                    .find(|(i, _)| {
                        *i == 0
                            || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                                && !b"_.-".contains(&rest.as_bytes()[i - 1])
                    })
                    .map(|(i, k)| i + k.len())
            })
            .min()
        {
            let len = rest[at..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ';')
                .unwrap_or(rest.len() - at);
            let dev = &rest[at..at + len];
            out.push_str(&rest[..at]);
            if is_bus_specific(dev) {
                let repl = uuids.get(dev).map(|u| format!("UUID={u}"));
                out.push_str(repl.as_deref().unwrap_or(dev));
                found.push((n + 1, dev.to_string(), repl));
            } else {
                out.push_str(dev);
            }
            rest = &rest[at + len..];
        }
        out.push_str(rest);
    }
    (out, found)
}

/// The default entry of a grub-legacy `menu.lst`.
pub fn menu_lst(text: &str) -> Option<BootEntry> {
    let mut default = 0usize;
    let mut entries: Vec<BootEntry> = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let (k, v) = l.split_once([' ', '\t', '=']).unwrap_or((l, ""));
        let v = v.trim();
        match k {
            "default" if entries.is_empty() => default = v.parse().unwrap_or(0),
            "title" => entries.push(BootEntry {
                title: v.into(),
                ..Default::default()
            }),
            "kernel" => {
                if let Some(e) = entries.last_mut() {
                    let (k, args) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
                    e.kernel = k.into();
                    e.cmdline = args.trim().into();
                }
            }
            "initrd" => {
                if let Some(e) = entries.last_mut() {
                    e.initrd.push(v.into());
                }
            }
            _ => {}
        }
    }
    entries.retain(|e| !e.kernel.is_empty());
    let i = default.min(entries.len().checked_sub(1)?);
    entries.into_iter().nth(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_args_rewrites_only_bus_specific_root_and_resume() {
        let map = BTreeMap::from([("/dev/sda1".to_string(), "u-1".to_string())]);
        let text = "GRUB_CMDLINE_LINUX=\"root=/dev/sda1 resume=/dev/sdb2 cryptroot=/dev/sda1\"\n\tlinux /vmlinuz root=UUID=x ro\n";
        let (new, found) = root_args(text, &map);
        assert_eq!(new, "GRUB_CMDLINE_LINUX=\"root=UUID=u-1 resume=/dev/sdb2 cryptroot=/dev/sda1\"\n\tlinux /vmlinuz root=UUID=x ro\n");
        assert_eq!(
            found,
            vec![
                (1, "/dev/sda1".to_string(), Some("UUID=u-1".to_string())),
                (1, "/dev/sdb2".to_string(), None)
            ]
        );
    }

    #[test]
    fn menu_lst_default_entry() {
        let e = menu_lst("default 1\ntimeout 5\ntitle A\n root (hd0,0)\n kernel /vmlinuz-a root=/dev/sda2 ro\n initrd /initrd-a\ntitle B\n kernel /vmlinuz-b root=LABEL=/ quiet\n initrd /initrd-b\n").unwrap();
        assert_eq!(e.title, "B");
        assert_eq!(e.kernel, "/vmlinuz-b");
        assert_eq!(e.cmdline, "root=LABEL=/ quiet");
        assert_eq!(e.initrd, ["/initrd-b"]);
    }

    #[test]
    fn dpkg_status_installed_packages() {
        let s = "Package: open-vm-tools\nStatus: install ok installed\nVersion: 2\n\nPackage: gone\nStatus: deinstall ok config-files\n";
        assert_eq!(dpkg_installed(s), ["open-vm-tools"]);
    }
}
