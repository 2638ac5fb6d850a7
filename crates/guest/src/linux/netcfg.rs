//! Network configurations bound to interface names, from the files each
//! tool reads: ifupdown `/etc/network/interfaces`, netplan YAML (a small
//! line-based reader of `ethernets:`), NetworkManager keyfiles, RHEL/SUSE
//! `ifcfg-*`, systemd-networkd `.network`. Pure functions over text; the
//! caller says which file it was.

use crate::inspect::LinuxInterface;

fn iface(name: &str, file: &str, kind: &str) -> LinuxInterface {
    LinuxInterface {
        name: name.into(),
        file: file.into(),
        kind: kind.into(),
        mac: None,
        addresses: vec![],
    }
}

/// `255.255.255.0` → 24.
fn mask_bits(mask: &str) -> Option<u32> {
    let ip: std::net::Ipv4Addr = mask.trim().parse().ok()?;
    Some(u32::from(ip).count_ones())
}

fn unquote(v: &str) -> &str {
    v.trim().trim_matches(|c| c == '"' || c == '\'')
}

/// ifupdown: `iface NAME inet static|dhcp` stanzas with `address`,
/// `netmask`, `hwaddress ether MAC`; `lo` skipped.
pub fn ifupdown(text: &str, file: &str) -> Vec<LinuxInterface> {
    let mut out: Vec<LinuxInterface> = Vec::new();
    let mut cur: Option<usize> = None;
    let mut mask: Option<u32> = None;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["iface", name, ..] => {
                finish_mask(&mut out, cur, mask.take());
                cur = (*name != "lo").then(|| {
                    out.iter().position(|i| i.name == *name).unwrap_or_else(|| {
                        out.push(iface(name, file, "ifupdown"));
                        out.len() - 1
                    })
                });
            }
            ["auto" | "allow-hotplug" | "mapping" | "source" | "source-directory", ..] => {
                finish_mask(&mut out, cur.take(), mask.take())
            }
            ["address", a, ..] => {
                if let Some(i) = cur {
                    out[i].addresses.push(a.to_string());
                }
            }
            ["netmask", m, ..] => mask = mask_bits(m),
            ["hwaddress", rest @ ..] => {
                if let (Some(i), Some(m)) = (cur, rest.last()) {
                    out[i].mac = Some(m.to_ascii_lowercase());
                }
            }
            _ => {}
        }
    }
    finish_mask(&mut out, cur, mask);
    out
}

/// Give a `netmask` to the stanza's addresses written without `/bits`.
fn finish_mask(out: &mut [LinuxInterface], cur: Option<usize>, mask: Option<u32>) {
    if let (Some(i), Some(m)) = (cur, mask) {
        for a in &mut out[i].addresses {
            if !a.contains('/') {
                *a = format!("{a}/{m}");
            }
        }
    }
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// netplan: the interfaces under `ethernets:` with `match: macaddress`,
/// `match: name`, `set-name` and `addresses` (flow `[a, b]` or block
/// `- a` lists).
pub fn netplan(text: &str, file: &str) -> Vec<LinuxInterface> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(""))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let mut out = Vec::new();
    let Some(eth) = lines.iter().position(|l| l.trim() == "ethernets:") else {
        return out;
    };
    let base = indent(lines[eth]);
    let mut i = eth + 1;
    let Some(child) = lines.get(i).map(|l| indent(l)).filter(|&c| c > base) else {
        return out;
    };
    while i < lines.len() && indent(lines[i]) > base {
        let l = lines[i];
        i += 1;
        if indent(l) != child {
            continue;
        }
        let id = l.trim().trim_end_matches(':').to_string();
        let mut it = iface(unquote(&id), file, "netplan");
        let mut in_addrs = false;
        while i < lines.len() && indent(lines[i]) > child {
            let t = lines[i].trim();
            i += 1;
            if let Some(v) = t.strip_prefix("- ") {
                if in_addrs {
                    it.addresses.push(unquote(v).to_string());
                }
                continue;
            }
            in_addrs = false;
            let (k, v) = t.split_once(':').unwrap_or((t, ""));
            let v = unquote(v);
            match k.trim() {
                "macaddress" => it.mac = Some(v.to_ascii_lowercase()),
                "name" | "set-name" if !v.is_empty() => it.name = v.to_string(),
                "addresses" if v.starts_with('[') => it.addresses.extend(
                    v.trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .map(|a| unquote(a).to_string())
                        .filter(|a| !a.is_empty()),
                ),
                "addresses" => in_addrs = true,
                _ => {}
            }
        }
        out.push(it);
    }
    out
}

/// `[section]` → key=value lines of an INI-like file.
fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut sec = String::new();
    let mut v = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with('[') && l.ends_with(']') {
            sec = l[1..l.len() - 1].to_string();
        } else if let Some((k, val)) = l.split_once('=') {
            if !l.starts_with('#') && !l.starts_with(';') {
                v.push((sec.clone(), k.trim().to_string(), val.trim().to_string()));
            }
        }
    }
    v
}

/// NetworkManager keyfile: `[connection] interface-name=`, `[ethernet]
/// mac-address=`, `[ipv4]/[ipv6] addressN=ADDR/BITS[,GW]`. `None` when
/// the connection is bound to neither a name nor a MAC.
pub fn nm_keyfile(text: &str, file: &str) -> Option<LinuxInterface> {
    let kv = ini(text);
    let get = |s: &str, k: &str| {
        kv.iter()
            .find(|x| x.0 == s && x.1 == k)
            .map(|x| x.2.clone())
    };
    let name = get("connection", "interface-name");
    let mac = get("ethernet", "mac-address").map(|m| m.to_ascii_lowercase());
    if name.is_none() && mac.is_none() {
        return None;
    }
    let mut it = iface(name.as_deref().unwrap_or(""), file, "networkmanager");
    it.mac = mac;
    it.addresses = kv
        .iter()
        .filter(|x| (x.0 == "ipv4" || x.0 == "ipv6") && x.1.starts_with("address"))
        .filter_map(|x| x.2.split([',', ';']).next().map(str::to_string))
        .collect();
    Some(it)
}

/// `ifcfg-NAME` (RHEL `network-scripts`, SUSE `network`): `DEVICE=`
/// (else the file suffix), `HWADDR=`, `IPADDR[n]=` with `PREFIX[n]=` or
/// `NETMASK[n]=`. `lo` gives `None`.
pub fn ifcfg(text: &str, file: &str) -> Option<LinuxInterface> {
    let kv: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v).to_string()))
        .collect();
    let get = |k: &str| kv.iter().find(|x| x.0 == k).map(|x| x.1.clone());
    let suffix = file.rsplit('/').next()?.strip_prefix("ifcfg-")?;
    let name = get("DEVICE").unwrap_or_else(|| suffix.to_string());
    if name == "lo" {
        return None;
    }
    let mut it = iface(&name, file, "ifcfg");
    it.mac = get("HWADDR").map(|m| m.to_ascii_lowercase());
    for (k, v) in &kv {
        let Some(n) = k.strip_prefix("IPADDR") else {
            continue;
        };
        let bits = get(&format!("PREFIX{n}")).or_else(|| {
            get(&format!("NETMASK{n}")).and_then(|m| mask_bits(&m).map(|b| b.to_string()))
        });
        it.addresses.push(match bits {
            Some(b) if !v.contains('/') => format!("{v}/{b}"),
            _ => v.clone(),
        });
    }
    Some(it)
}

/// systemd-networkd `.network`: `[Match] Name=` (first name, globs kept),
/// `MACAddress=`, `[Network] Address=` / `[Address] Address=`.
pub fn networkd(text: &str, file: &str) -> Option<LinuxInterface> {
    let kv = ini(text);
    let get = |s: &str, k: &str| {
        kv.iter()
            .find(|x| x.0 == s && x.1 == k)
            .map(|x| x.2.clone())
    };
    let name = get("Match", "Name").and_then(|n| n.split_whitespace().next().map(String::from));
    let mac = get("Match", "MACAddress").map(|m| m.to_ascii_lowercase());
    if name.is_none() && mac.is_none() {
        return None;
    }
    let mut it = iface(name.as_deref().unwrap_or(""), file, "systemd-networkd");
    it.mac = mac;
    it.addresses = kv
        .iter()
        .filter(|x| (x.0 == "Network" || x.0 == "Address") && x.1 == "Address")
        .map(|x| x.2.clone())
        .collect();
    Some(it)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_read_names_macs_and_addresses() {
        let i = ifupdown(
            "auto lo\niface lo inet loopback\nallow-hotplug ens192\niface ens192 inet static\n  address 192.0.2.10\n  netmask 255.255.255.0\n  hwaddress ether 00:50:56:AA:BB:CC\niface eth0 inet dhcp\n",
            "/etc/network/interfaces",
        );
        assert_eq!(i.len(), 2);
        assert_eq!(i[0].name, "ens192");
        assert_eq!(i[0].addresses, ["192.0.2.10/24"]);
        assert_eq!(i[0].mac.as_deref(), Some("00:50:56:aa:bb:cc"));
        assert_eq!((i[1].name.as_str(), i[1].addresses.len()), ("eth0", 0));
        let n = netplan(
            "network:\n  version: 2\n  ethernets:\n    ens192:\n      addresses: [192.0.2.11/24, \"2001:db8::1/64\"]\n    lan:\n      match:\n        macaddress: 00:50:56:01:02:03\n      set-name: eth1\n      addresses:\n        - 198.51.100.5/24\n  bridges:\n    br0: {}\n",
            "/etc/netplan/50.yaml",
        );
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].addresses, ["192.0.2.11/24", "2001:db8::1/64"]);
        assert_eq!(n[1].name, "eth1");
        assert_eq!(n[1].mac.as_deref(), Some("00:50:56:01:02:03"));
        assert_eq!(n[1].addresses, ["198.51.100.5/24"]);
        let k = nm_keyfile("[connection]\nid=x\ninterface-name=ens192\n[ipv4]\naddress1=192.0.2.12/24,192.0.2.1\nmethod=manual\n", "f").unwrap();
        assert_eq!(
            (k.name.as_str(), k.addresses[0].as_str()),
            ("ens192", "192.0.2.12/24")
        );
        let c = ifcfg(
            "DEVICE=eth0\nHWADDR=\"00:50:56:0A:0B:0C\"\nIPADDR=192.0.2.13\nNETMASK=255.255.0.0\n",
            "/etc/sysconfig/network-scripts/ifcfg-eth0",
        )
        .unwrap();
        assert_eq!(c.addresses, ["192.0.2.13/16"]);
        assert_eq!(c.mac.as_deref(), Some("00:50:56:0a:0b:0c"));
        let d = networkd(
            "[Match]\nName=ens192\n[Network]\nAddress=192.0.2.14/24\n",
            "f",
        )
        .unwrap();
        assert_eq!((d.name.as_str(), d.addresses.len()), ("ens192", 1));
        assert!(networkd("[Network]\nDHCP=yes\n", "f").is_none());
    }
}
