//! Boot configuration: `boot.ini` (NT 5.x) and the BCD store (Vista+),
//! read for the system roots they name.

use super::reg;
use regf::Hive;

/// The Windows Boot Manager object of every BCD store.
pub const BOOTMGR: &str = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}";
/// BCD element: the boot manager's default object (GUID string).
const DEFAULT_OBJECT: &str = "23000003";
/// BCD element: an OS loader's system root (`\Windows`).
const SYSTEM_ROOT: &str = "22000002";

/// Largest `boot.ini` parsed (real ones are a few hundred bytes).
pub const MAX_BOOT_INI: usize = 64 << 10;

fn clean_root(p: &str) -> Option<String> {
    let r = p
        .trim()
        .trim_matches('"')
        .replace('\\', "/")
        .trim_matches('/')
        .to_string();
    (!r.is_empty() && !r.contains("..")).then_some(r)
}

/// System roots named by `boot.ini` (ANSI text), the default first, no
/// duplicates (compared case-insensitively), `/`-separated.
pub fn boot_ini_roots(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(&text[..text.len().min(MAX_BOOT_INI)]);
    let mut out: Vec<String> = Vec::new();
    let mut add = |arc: &str| {
        // multi(0)disk(0)rdisk(0)partition(1)\WINDOWS
        if let Some((_, path)) = arc.rsplit_once(')') {
            if let Some(r) = clean_root(path) {
                if !out.iter().any(|o| o.eq_ignore_ascii_case(&r)) {
                    out.push(r);
                }
            }
        }
    };
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_ascii_lowercase();
            continue;
        }
        if section == "[boot loader]" {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim().eq_ignore_ascii_case("default") {
                    add(v);
                }
            }
        } else if section == "[operating systems]" {
            let arc = line.split(['=', ' ']).next().unwrap_or("");
            if arc.to_ascii_lowercase().starts_with("multi(")
                || arc.to_ascii_lowercase().starts_with("scsi(")
            {
                add(arc);
            }
        }
    }
    out
}

/// System roots named by a BCD store's OS loaders, the boot manager's
/// default first.
pub fn bcd_roots(bcd: &Hive) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let root_of = |obj: &str| {
        reg::key(bcd, &format!("Objects\\{obj}\\Elements\\{SYSTEM_ROOT}"))
            .and_then(|k| reg::string(&k, "Element"))
            .and_then(|p| clean_root(&p))
    };
    let default = reg::key(
        bcd,
        &format!("Objects\\{BOOTMGR}\\Elements\\{DEFAULT_OBJECT}"),
    )
    .and_then(|k| reg::string(&k, "Element"));
    if let Some(r) = default.as_deref().and_then(root_of) {
        out.push(r);
    }
    if let Some(objs) = reg::key(bcd, "Objects") {
        for o in reg::subkeys(&objs) {
            if let Some(r) = root_of(&reg::name(&o)) {
                if !out.iter().any(|x| x.eq_ignore_ascii_case(&r)) {
                    out.push(r);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ini_default_first_then_entries() {
        let t = b"[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS\r\n[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(2)\\WINNT=\"Windows 2000\" /fastdetect\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS=\"XP\" /noexecute=optin\r\nC:\\CMDCONS\\BOOTSECT.DAT=\"Recovery Console\" /cmdcons\r\n";
        assert_eq!(boot_ini_roots(t), vec!["WINDOWS", "WINNT"]);
        assert!(boot_ini_roots(b"garbage \xff\xfe").is_empty());
        assert!(boot_ini_roots(b"[boot loader]\ndefault=multi(0)\\..\\x").is_empty());
    }
}
