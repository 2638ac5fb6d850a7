//! Fake virtio-win trees for tests: every path of a real ISO or package
//! listing, with INF files made from the virtio-win INF templates (`.inx`)
//! and every other file a few deterministic bytes naming its path.
//!
//! An INF `<base>.inf` comes from the template whose name ends with
//! `_<base>.inx` or `_<base>.inf` (case-insensitive); under an XP/2003
//! directory (`xp`, `wxp`, `2k3`, `wnet`) `<base>_WinXP.inx` is preferred.
//! Placeholders are filled the way the virtio-win build does for the
//! architecture found in the path (`amd64`; `x86` or `i386`), see
//! [`fill_template`]. An INF without a template gets a minimal stub.

use super::{Arch, Error, Result};
use std::path::Path;

/// Largest path list read, in bytes.
const MAX_LIST: u64 = 16 << 20;
/// Directory names of the XP/2003 era (their viostor uses the WinXP INF).
const LEGACY_DIRS: [&str; 4] = ["xp", "wxp", "2k3", "wnet"];

fn ferr(m: impl Into<String>) -> Error {
    Error::Fixture(m.into())
}

/// Fill a virtio-win INF template for `arch`: `$ARCH$` → `amd64`/`x86`,
/// `_INX_SUBSYS_VENDOR_ID` → `1AF4`, `INX_PLATFORM_DRIVERS_DIR` → `12`,
/// `INX_COMPANY` → `Red Hat, Inc.`, the `INX_PREFIX_*` display prefixes,
/// `INX_BASE_ON_SYSTEM_ROOT_DRIVER_DIR`, `INX_COPYRIGHT_*` and
/// `$KMDFVERSION$`.
pub fn fill_template(text: &str, arch: Arch) -> String {
    let subs: [(&str, &str); 11] = [
        ("$ARCH$", arch.inf_name()),
        ("_INX_SUBSYS_VENDOR_ID", "1AF4"),
        ("INX_PLATFORM_DRIVERS_DIR", "12"),
        ("INX_COMPANY", "Red Hat, Inc."),
        ("INX_PREFIX_VENDOR", "Red Hat "),
        ("INX_PREFIX_VIRTIO", "Red Hat "),
        ("INX_PREFIX_QEMU", ""),
        (
            "INX_BASE_ON_SYSTEM_ROOT_DRIVER_DIR",
            "%%SystemRoot%%\\System32\\drivers",
        ),
        ("INX_COPYRIGHT_1", "Copyright (c) Red Hat, Inc."),
        ("INX_COPYRIGHT_2", "Fake build for hyper2kvm tests."),
        ("$KMDFVERSION$", "1.15"),
    ];
    let mut s = text.to_string();
    for (k, v) in subs {
        s = s.replace(k, v);
    }
    s
}

/// The architecture a media path is for: a component `amd64`, or `x86` /
/// `i386`; `None` when the path names none.
pub fn arch_of_path(path: &str) -> Option<Arch> {
    path.split('/')
        .find_map(|c| match c.to_ascii_lowercase().as_str() {
            "amd64" => Some(Arch::Amd64),
            "x86" | "i386" => Some(Arch::X86),
            _ => None,
        })
}

/// The template file name (among `templates`) for INF `inf_name`;
/// `legacy` prefers the XP-era `<base>_WinXP.inx`.
pub fn template_for(inf_name: &str, legacy: bool, templates: &[String]) -> Option<String> {
    let lower = inf_name.to_ascii_lowercase();
    let base = lower.strip_suffix(".inf")?;
    if legacy {
        let want = format!("{base}_winxp.inx");
        if let Some(t) = templates.iter().find(|t| t.to_ascii_lowercase() == want) {
            return Some(t.clone());
        }
    }
    let mut c: Vec<&String> = templates
        .iter()
        .filter(|t| {
            let l = t.to_ascii_lowercase();
            l.ends_with(&format!("_{base}.inx")) || l.ends_with(&format!("_{base}.inf"))
        })
        .collect();
    c.sort();
    c.first().map(|s| s.to_string())
}

fn check_rel(p: &str) -> Result<()> {
    if p.starts_with('/')
        || p.contains('\\')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(ferr(format!("path '{p}' is not a plain relative path")));
    }
    Ok(())
}

/// Create under `out_dir` every path of `list_file` (one per line) plus
/// `extra_paths`, INF files from the templates in `inx_dir`, other files
/// with deterministic contents. Returns the paths written, in order.
pub fn build_fake_virtio_win(
    list_file: &Path,
    inx_dir: &Path,
    out_dir: &Path,
    extra_paths: &[&str],
) -> Result<Vec<String>> {
    let meta =
        std::fs::metadata(list_file).map_err(|e| ferr(format!("{}: {e}", list_file.display())))?;
    if meta.len() > MAX_LIST {
        return Err(ferr(format!(
            "{}: list larger than {MAX_LIST} bytes",
            list_file.display()
        )));
    }
    let list = std::fs::read_to_string(list_file)
        .map_err(|e| ferr(format!("{}: {e}", list_file.display())))?;
    let mut templates: Vec<String> = std::fs::read_dir(inx_dir)
        .map_err(|e| ferr(format!("{}: {e}", inx_dir.display())))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    templates.sort();
    let mut paths: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    paths.extend(extra_paths.iter().map(|s| s.to_string()));
    let mut written = Vec::with_capacity(paths.len());
    for p in paths {
        check_rel(&p)?;
        let host = out_dir.join(&p);
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ferr(format!("{}: {e}", parent.display())))?;
        }
        let name = p.rsplit('/').next().unwrap_or(&p);
        let data: Vec<u8> = if name.to_ascii_lowercase().ends_with(".inf") {
            let legacy = p
                .split('/')
                .any(|c| LEGACY_DIRS.iter().any(|l| l.eq_ignore_ascii_case(c)));
            let arch = arch_of_path(&p).unwrap_or(Arch::Amd64);
            match template_for(name, legacy, &templates) {
                Some(t) => {
                    let tp = inx_dir.join(&t);
                    let raw = std::fs::read(&tp).map_err(|e| ferr(format!("{}: {e}", tp.display())))?;
                    fill_template(&String::from_utf8_lossy(&raw), arch).into_bytes()
                }
                None => format!(
                    "; fake INF for {p} (no template)\r\n[Version]\r\nSignature=\"$Windows NT$\"\r\n"
                )
                .into_bytes(),
            }
        } else {
            format!("fake virtio-win file {p}\n").into_bytes()
        };
        std::fs::write(&host, data).map_err(|e| ferr(format!("{}: {e}", host.display())))?;
        written.push(p);
    }
    Ok(written)
}
