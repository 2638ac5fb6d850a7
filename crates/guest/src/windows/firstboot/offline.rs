//! The offline half: registry changes made before the first boot, each
//! original value recorded first in the undo list
//! (`SOFTWARE\hyper2kvm\Backup`).

use super::super::bootdrivers::enum_instances;
use super::super::reg;
use super::super::storage::{subkeys, Out, Reg};
use super::super::tools::{vendor_of, winsock_vendor, Vendor};
use super::super::winsock::{self, CatalogItem, Entry, CATALOGS, PROTOCOL_CATALOG};
use crate::inspect::WindowsInstall;
use crate::plan::RegData;
use regf::Hive;
use std::collections::BTreeSet;

/// SOFTWARE key of the undo list: one value per changed value, named
/// `<HKLM path>|<value name>`, holding the original type and bytes; the
/// originally absent ones are listed in its `Absent` MULTI_SZ.
pub const BACKUP_KEY: &str = r"hyper2kvm\Backup";
/// Vendors whose components are retired (Hyper-V's inbox drivers stay:
/// inert without VMBus).
pub const RETIRED_VENDORS: &[&str] = &["vmware", "virtualbox", "parallels", "xen"];

/// The vendor of `name` when its components are retired.
pub fn retired(name: &str) -> Option<&'static Vendor> {
    vendor_of(name).filter(|v| RETIRED_VENDORS.contains(&v.id))
}

/// The raw type and bytes of a value.
pub fn raw(h: &Hive, key: &str, name: &str) -> Option<(u32, Vec<u8>)> {
    let k = h.get_key(key).ok()??;
    let v = k.value(name).ok()??;
    Some((v.kind().ok()?, v.raw().ok()?))
}

/// Which hive an HKLM path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `HKLM\SYSTEM`.
    System,
    /// `HKLM\SOFTWARE`.
    Software,
}

impl Root {
    fn name(self) -> &'static str {
        match self {
            Root::System => "SYSTEM",
            Root::Software => "SOFTWARE",
        }
    }
}

/// The undo list under construction, and the restore lines the runner's
/// final phase runs.
pub struct Undo<'a> {
    sys: &'a Reg<'a>,
    soft: &'a Reg<'a>,
    absent_before: Vec<String>,
    absent: Vec<String>,
    /// cmd lines restoring what was relaxed for the first boot.
    pub restore: Vec<String>,
    /// Problems.
    pub warnings: Vec<String>,
}

impl<'a> Undo<'a> {
    /// Over the two hives.
    pub fn new(sys: &'a Reg<'a>, soft: &'a Reg<'a>) -> Undo<'a> {
        let absent_before = reg::key(soft.hive, BACKUP_KEY)
            .map(|k| reg::list(&k, "Absent"))
            .unwrap_or_default();
        Undo {
            sys,
            soft,
            absent: absent_before.clone(),
            absent_before,
            restore: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The SYSTEM hive as it is before the plan.
    pub fn system_hive(&self) -> &'a Hive {
        self.sys.hive
    }

    fn reg(&self, root: Root) -> &'a Reg<'a> {
        match root {
            Root::System => self.sys,
            Root::Software => self.soft,
        }
    }

    /// The undo entry name of a value.
    pub fn entry(root: Root, key: &str, name: &str) -> String {
        format!(r"{}\{key}|{name}", root.name())
    }

    /// The original of a value: from the undo list when recorded there,
    /// else as the hive holds it now. `None`: absent.
    pub fn original(&self, root: Root, key: &str, name: &str) -> Option<(u32, Vec<u8>)> {
        let e = Self::entry(root, key, name);
        if let Some(r) = raw(self.soft.hive, BACKUP_KEY, &e) {
            return Some(r);
        }
        if self.absent.iter().any(|a| a.eq_ignore_ascii_case(&e)) {
            return None;
        }
        raw(self.reg(root).hive, key, name)
    }

    /// Record the original of a value about to change (once: a recorded
    /// original is never overwritten).
    pub fn save(&mut self, out: &mut Out, root: Root, key: &str, name: &str) {
        let e = Self::entry(root, key, name);
        if raw(self.soft.hive, BACKUP_KEY, &e).is_some()
            || self.absent.iter().any(|a| a.eq_ignore_ascii_case(&e))
        {
            return;
        }
        match raw(self.reg(root).hive, key, name) {
            Some((kind, bytes)) => out.set(
                self.soft,
                BACKUP_KEY,
                &e,
                RegData::Raw { kind, bytes },
                "undo list: the original of a value the migration changes",
            ),
            None => self.absent.push(e),
        }
    }

    /// Set a value, its original saved first.
    pub fn set(
        &mut self,
        out: &mut Out,
        root: Root,
        key: &str,
        name: &str,
        data: RegData,
        why: &str,
    ) {
        let want = data.to_value();
        if raw(self.reg(root).hive, key, name) == Some((want.kind(), want.to_bytes())) {
            return;
        }
        self.save(out, root, key, name);
        out.set(self.reg(root), key, name, data, why);
    }

    /// Delete a value, its original saved first.
    pub fn delete(&mut self, out: &mut Out, root: Root, key: &str, name: &str, why: &str) {
        if raw(self.reg(root).hive, key, name).is_none() {
            return;
        }
        self.save(out, root, key, name);
        out.delete_value(self.reg(root), key, name, why);
    }

    /// Set a DWORD for the first boot and have the final phase put the
    /// original back.
    pub fn relax(&mut self, out: &mut Out, root: Root, key: &str, name: &str, v: u32, why: &str) {
        let orig = self.original(root, key, name);
        if orig
            .as_ref()
            .is_some_and(|(k, b)| *k == 4 && b.get(..4) == Some(&v.to_le_bytes()[..]))
        {
            return;
        }
        self.set(out, root, key, name, RegData::Dword(v), why);
        let path = format!(r"HKLM\{}\{key}", root.name());
        match orig {
            None => self
                .restore
                .push(format!(r#"call :regdelv "{path}" "{name}""#)),
            Some((4, b)) if b.len() >= 4 => self.restore.push(format!(
                r#"reg add "{path}" /v "{name}" /t REG_DWORD /d {} /f"#,
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            )),
            Some((kind, _)) => {
                self.warnings.push(format!(
                    r"{path}\{name} had type {kind}, not REG_DWORD: the first boot leaves it at {v}; restore it by hand from the undo list"
                ));
                return;
            }
        }
        self.restore
            .push(r#"if not "%ERRORLEVEL%"=="0" exit /b %ERRORLEVEL%"#.to_string());
    }

    /// Write the `Absent` list when it grew.
    pub fn finish(&mut self, out: &mut Out) {
        if self.absent != self.absent_before {
            out.set(
                self.soft,
                BACKUP_KEY,
                "Absent",
                RegData::MultiSz(self.absent.clone()),
                "undo list: values the migration created (absent before)",
            );
        }
    }
}

/// Remove the retired vendors' filters from every class, device and
/// CriticalDeviceDatabase `UpperFilters`/`LowerFilters` list, then disable their services, then
/// drop their network providers: in every control set in use. The order
/// matters: a listed filter whose service is disabled kills its device
/// stack.
pub fn retire_tools(install: &WindowsInstall, sys: &Hive, undo: &mut Undo, out: &mut Out) {
    let mut services = Vec::new();
    for cs in &install.control_sets.in_use {
        let class = format!(r"{cs}\Control\Class");
        for c in subkeys(sys, &class) {
            filters(&format!(r"{class}\{c}"), undo, out);
        }
        // A CriticalDeviceDatabase entry hands its filters to a device
        // instance created from it (a re-enumerated mouse).
        let cdd = format!(r"{cs}\Control\CriticalDeviceDatabase");
        for c in subkeys(sys, &cdd) {
            filters(&format!(r"{cdd}\{c}"), undo, out);
        }
        for (path, _) in enum_instances(sys, cs) {
            filters(&format!(r"{cs}\Enum\{path}"), undo, out);
        }
        for s in subkeys(sys, &format!(r"{cs}\Services")) {
            if retired(&s).is_some() {
                services.push(format!(r"{cs}\Services\{s}"));
            }
        }
    }
    for key in services {
        let start = reg::key(sys, &key).and_then(|k| reg::dword(&k, "Start"));
        if start.is_some_and(|s| s != 4) {
            undo.set(
                out,
                Root::System,
                &key,
                "Start",
                RegData::Dword(4),
                "another hypervisor's component: disabled (its filters were removed first)",
            );
        }
    }
    for cs in &install.control_sets.in_use {
        for order in ["Order", "HwOrder"] {
            let key = format!(r"{cs}\Control\NetworkProvider\{order}");
            let Some(k) = reg::key(sys, &key) else {
                continue;
            };
            let list = reg::list(&k, "ProviderOrder");
            let kept: Vec<String> = list
                .iter()
                .filter(|p| retired(p).is_none())
                .cloned()
                .collect();
            if kept.len() != list.len() {
                undo.set(
                    out,
                    Root::System,
                    &key,
                    "ProviderOrder",
                    RegData::Sz(kept.join(",")),
                    "another hypervisor's network provider (shared folders) dropped from the provider order",
                );
            }
        }
    }
}

fn filters(key: &str, undo: &mut Undo, out: &mut Out) {
    let Some(k) = reg::key(undo.sys.hive, key) else {
        return;
    };
    for list in ["UpperFilters", "LowerFilters"] {
        let cur = reg::list(&k, list);
        let kept: Vec<String> = cur
            .iter()
            .filter(|f| retired(f).is_none())
            .cloned()
            .collect();
        if kept.len() == cur.len() {
            continue;
        }
        let gone: BTreeSet<&String> = cur.iter().filter(|f| retired(f).is_some()).collect();
        let why = format!(
            "remove {} from the filter list before the service is disabled (a listed filter whose service is disabled kills the device stack)",
            gone.into_iter().cloned().collect::<Vec<_>>().join(", ")
        );
        if kept.is_empty() {
            undo.delete(out, Root::System, key, list, &why);
        } else {
            undo.set(out, Root::System, key, list, RegData::MultiSz(kept), &why);
        }
    }
}

/// Whether a Winsock catalog item is a retired vendor's provider.
fn retired_provider(item: &CatalogItem) -> bool {
    winsock_vendor(&item.dll_file()).is_some_and(|v| RETIRED_VENDORS.contains(&v.id))
}

/// Why a catalog is left alone, or `None` when removing `gone` from it is
/// safe: its entries are numbered 1..N as its count says, every one
/// decodes, and no remaining layered provider's chain names a removed
/// entry.
fn catalog_unsafe(entries: &[Entry], gone: &[bool], count: Option<u32>) -> Option<String> {
    let numbered = entries
        .iter()
        .enumerate()
        .all(|(i, e)| e.index == i as u64 + 1);
    if !numbered || count != Some(entries.len() as u32) {
        return Some(format!(
            "its {} entries are not numbered 1..N as its count ({count:?}) says",
            entries.len()
        ));
    }
    if let Some(e) = entries.iter().find(|e| e.item.is_none()) {
        return Some(format!(
            "entry {} has no decodable PackedCatalogItem",
            e.key
        ));
    }
    let removed: Vec<u32> = entries
        .iter()
        .zip(gone)
        .filter(|(_, g)| **g)
        .filter_map(|(e, _)| e.item.as_ref().map(|i| i.id))
        .collect();
    let chained = entries.iter().zip(gone).find(|(e, g)| {
        !**g && e
            .item
            .as_ref()
            .is_some_and(|i| i.chain.len() > 1 && i.chain.iter().any(|c| removed.contains(c)))
    });
    chained.map(|(e, _)| {
        format!(
            "entry {} is a layered provider chained over a provider to remove",
            e.key
        )
    })
}

/// Give key `to` exactly the values of key `from` (each original saved).
fn copy_values(sys: &Hive, from: &str, to: &str, undo: &mut Undo, out: &mut Out, why: &str) {
    let names = |key: &str| -> Vec<String> {
        sys.get_key(key)
            .ok()
            .flatten()
            .and_then(|k| k.values().ok())
            .map(|v| v.iter().filter_map(|x| x.name().ok()).collect())
            .unwrap_or_default()
    };
    let src = names(from);
    for n in &src {
        if let Some((kind, bytes)) = raw(sys, from, n) {
            undo.set(out, Root::System, to, n, RegData::Raw { kind, bytes }, why);
        }
    }
    for n in names(to) {
        if !src.iter().any(|s| s.eq_ignore_ascii_case(&n)) {
            undo.delete(out, Root::System, to, &n, why);
        }
    }
}

/// Remove the retired vendors' Winsock providers (VMware's vsock,
/// `vsocklib.dll`) from both protocol catalogs of every control set in
/// use, as Windows' own `WSCDeinstallProvider` leaves the catalog: the
/// remaining entries moved down so that they stay numbered 1..N, the
/// removed last keys deleted, `Num_Catalog_Entries[64]` set to the new
/// count (`Next_Catalog_Entry_ID` is an id counter, not a count: left).
/// Every value changed or deleted is first in the undo list. A catalog
/// that is not in the shape Windows writes, or where a remaining layered
/// provider is chained over a removed one, is left alone with a warning
/// (the vendor's uninstaller removes its providers at the first boot).
pub fn retire_winsock(install: &WindowsInstall, sys: &Hive, undo: &mut Undo, out: &mut Out) {
    let why = "another hypervisor's Winsock provider removed from the protocol catalog (the entries after it renumbered, the count updated)";
    for cs in &install.control_sets.in_use {
        let base = format!(r"{cs}\{PROTOCOL_CATALOG}");
        for (catalog, count_name) in CATALOGS {
            let entries = winsock::entries(sys, cs, catalog);
            let gone: Vec<bool> = entries
                .iter()
                .map(|e| e.item.as_ref().is_some_and(retired_provider))
                .collect();
            if !gone.contains(&true) {
                continue;
            }
            let count = reg::key(sys, &base).and_then(|k| reg::dword(&k, count_name));
            if let Some(r) = catalog_unsafe(&entries, &gone, count) {
                undo.warnings.push(format!(
                    r"{base}\{catalog}: another hypervisor's Winsock providers stay ({r}); its uninstaller removes them at the first boot"
                ));
                continue;
            }
            let kept: Vec<&Entry> = entries
                .iter()
                .zip(&gone)
                .filter(|(_, g)| !**g)
                .map(|(e, _)| e)
                .collect();
            for (j, e) in kept.iter().enumerate() {
                let target = &entries[j].key;
                if &e.key != target {
                    copy_values(
                        sys,
                        &format!(r"{base}\{catalog}\{}", e.key),
                        &format!(r"{base}\{catalog}\{target}"),
                        undo,
                        out,
                        why,
                    );
                }
            }
            for e in &entries[kept.len()..] {
                let key = format!(r"{base}\{catalog}\{}", e.key);
                let names: Vec<String> = sys
                    .get_key(&key)
                    .ok()
                    .flatten()
                    .and_then(|k| k.values().ok())
                    .map(|v| v.iter().filter_map(|x| x.name().ok()).collect())
                    .unwrap_or_default();
                for n in names {
                    undo.delete(out, Root::System, &key, &n, why);
                }
                out.delete_key(undo.sys, &key, why);
            }
            undo.set(
                out,
                Root::System,
                &base,
                count_name,
                RegData::Dword(kept.len() as u32),
                why,
            );
        }
    }
}
