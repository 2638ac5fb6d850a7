//! Opt-in peer check: libguestfs' `virt-inspector` recognises phony guests
//! and agrees with the builder on product name, major/minor version,
//! architecture, host name and drive letters.
//!
//! Runs only with `HYPER2KVM_PEER=1` (it boots the libguestfs appliance
//! under TCG: minutes per guest). Needs Debian's `libguestfs-tools` and a
//! kernel in /boot (`linux-image-amd64`), which `scripts/install-deps.sh`
//! does not install. `PHONY_PEER_GUESTS` picks the guests (comma-separated
//! from `win7-x64`, `win10`, `xp`, `2003`, `win7`, `2008r2`, `2016`,
//! `2019`, `2022`, `win11`; default `win7-x64,win10`).

mod common;

use guest::drivers::Arch;
use phony::{Hypervisor, Options, Version};
use std::process::Command;
use testkit::need;

/// Text of the first `<tag>…</tag>` in `xml`.
fn tag<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let a = xml.find(&open)? + open.len();
    let b = xml[a..].find(&format!("</{tag}>"))? + a;
    Some(&xml[a..b])
}

/// `<drive_mapping name="C">/dev/sda2</drive_mapping>` entries.
fn drive_mappings(xml: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut rest = xml;
    while let Some(i) = rest.find("<drive_mapping name=\"") {
        rest = &rest[i + 21..];
        let Some(q) = rest.find('"') else { break };
        let letter = rest[..q].to_string();
        let Some(gt) = rest.find('>') else { break };
        let Some(end) = rest.find("</drive_mapping>") else {
            break;
        };
        out.push((format!("{letter}:"), rest[gt + 1..end].to_string()));
        rest = &rest[end..];
    }
    out
}

fn options(name: &str) -> Options {
    let (v, arch) = match name {
        "win7-x64" => (Version::Win7, Some(Arch::Amd64)),
        other => (Version::parse(other).unwrap(), None),
    };
    let mut o = Options::new(v);
    o.arch = arch;
    o.hypervisor = Hypervisor::Vmware;
    o.size = phony::min_size(&o).max(512 << 20);
    o
}

#[test]
fn virt_inspector_agrees_with_the_builder() {
    if std::env::var("HYPER2KVM_PEER").as_deref() != Ok("1") {
        eprintln!("skipped: set HYPER2KVM_PEER=1 to compare with virt-inspector");
        return;
    }
    need("virt-inspector");
    let list = std::env::var("PHONY_PEER_GUESTS").unwrap_or_else(|_| "win7-x64,win10".into());
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let g = common::build(&options(name));
        let o = Command::new("virt-inspector")
            .arg("-a")
            .arg(&g.img)
            .env("LIBGUESTFS_BACKEND", "direct")
            .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
            .output()
            .unwrap();
        let xml = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!("virt-inspector on {name}:\n{xml}");
        assert!(
            o.status.success(),
            "virt-inspector failed on {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let e = &g.e;
        assert_eq!(tag(&xml, "name"), Some("windows"), "{name}");
        assert_eq!(
            tag(&xml, "product_name"),
            Some(e.product_name.as_str()),
            "{name}"
        );
        assert_eq!(
            tag(&xml, "major_version"),
            Some(e.major.to_string().as_str()),
            "{name}"
        );
        assert_eq!(
            tag(&xml, "minor_version"),
            Some(e.minor.to_string().as_str()),
            "{name}"
        );
        let arch = match e.arch {
            Arch::X86 => "i386",
            Arch::Amd64 => "x86_64",
        };
        assert_eq!(tag(&xml, "arch"), Some(arch), "{name}");
        assert_eq!(tag(&xml, "hostname"), Some(e.hostname.as_str()), "{name}");
        let want: Vec<(String, String)> = e
            .drive_letters
            .iter()
            .map(|(l, n)| (l.clone(), format!("/dev/sda{n}")))
            .collect();
        assert_eq!(drive_mappings(&xml), want, "{name}");
        // libguestfs 1.48 maps builds >= 22000 to "win10" still
        let osinfo = if e.os_id == "win11" {
            "win10"
        } else {
            &e.os_id
        };
        assert_eq!(tag(&xml, "osinfo"), Some(osinfo), "{name}");
        assert_eq!(
            tag(&xml, "windows_systemroot"),
            Some(format!("/{}", e.systemroot).as_str()),
            "{name}"
        );
    }
}
