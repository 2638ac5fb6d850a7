#![no_main]
//! Fuzz the Linux guest config readers of inspection: network configs
//! (ifupdown, netplan, NetworkManager keyfile, ifcfg, systemd-networkd),
//! the `root=`/`resume=` rewrite, grub-legacy `menu.lst` and dpkg's
//! `status`: never panic, whatever the text.
use guest::linux::inspect::{dpkg_installed, menu_lst, root_args};
use guest::linux::netcfg;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(&data[..data.len().min(1 << 20)]);
    let _ = netcfg::ifupdown(&text, "/etc/network/interfaces");
    let _ = netcfg::netplan(&text, "/etc/netplan/a.yaml");
    let _ = netcfg::nm_keyfile(&text, "/etc/NetworkManager/system-connections/a");
    let _ = netcfg::ifcfg(&text, "/etc/sysconfig/network-scripts/ifcfg-eth0");
    let _ = netcfg::networkd(&text, "/etc/systemd/network/a.network");
    let map = BTreeMap::from([("/dev/sda1".to_string(), "u".to_string())]);
    let _ = root_args(&text, &map);
    let _ = menu_lst(&text);
    let _ = dpkg_installed(&text);
});
