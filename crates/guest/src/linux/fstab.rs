//! Bus-specific device names in `/etc/fstab` and `/etc/crypttab`
//! (`/dev/sdX`, `/dev/hdX`, `/dev/disk/by-path/...`, and the
//! `/dev/disk/by-id/` names made from an ATA/SCSI/NVMe identity: `ata-`,
//! `scsi-`, `wwn-`, `nvme-`), which change when a disk moves from
//! SCSI/IDE to VirtIO, and their rewrite to `UUID=`.

use std::collections::BTreeMap;

/// Which file the text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TabKind {
    /// `/etc/fstab`: the device is field 1.
    Fstab,
    /// `/etc/crypttab`: the device is field 2.
    Crypttab,
}

/// `/dev/disk/by-id/` prefixes made from the disk's bus identity (not
/// `dm-`, `lvm-pv-uuid-`, `md-uuid-`: those follow the volume).
const BUS_IDS: &[&str] = &["ata-", "scsi-", "wwn-", "nvme-", "usb-"];

/// True for names that depend on the disk's bus or slot.
pub fn is_bus_specific(dev: &str) -> bool {
    if dev.starts_with("/dev/disk/by-path/") {
        return true;
    }
    if let Some(id) = dev.strip_prefix("/dev/disk/by-id/") {
        return BUS_IDS.iter().any(|p| id.starts_with(p));
    }
    for p in ["/dev/sd", "/dev/hd"] {
        if let Some(rest) = dev.strip_prefix(p) {
            let letters = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
            return letters > 0 && rest[letters..].chars().all(|c| c.is_ascii_digit());
        }
    }
    false
}

/// One device field found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// 1-based line number.
    pub line: usize,
    /// The device as written.
    pub old: String,
    /// Its replacement (`UUID=...`), None when the map has no UUID for it.
    pub new: Option<String>,
}

/// A rewrite plan: the changes and the new text (unresolved names left as
/// they were).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// Every bus-specific device field, resolved or not.
    pub changes: Vec<Change>,
    /// The rewritten text (same bytes as the input where nothing changed).
    pub text: String,
}

impl Rewrite {
    /// True when at least one name is replaced.
    pub fn changed(&self) -> bool {
        self.changes.iter().any(|c| c.new.is_some())
    }
    /// Names with no UUID in the map.
    pub fn unresolved(&self) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| c.new.is_none())
            .map(|c| c.old.as_str())
            .collect()
    }
}

/// Find bus-specific device fields in `text` and replace each with
/// `UUID=<uuid>` from `uuids` (device name → filesystem UUID). Only the
/// device field is replaced; spacing, comments and other lines stay
/// byte-identical. Swap and other entries are treated alike.
pub fn rewrite(text: &str, kind: TabKind, uuids: &BTreeMap<String, String>) -> Rewrite {
    let field = match kind {
        TabKind::Fstab => 0,
        TabKind::Crypttab => 1,
    };
    let mut changes = Vec::new();
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_start();
        if body.starts_with('#') || body.trim().is_empty() {
            out.push_str(line);
            continue;
        }
        // Byte spans of whitespace-separated fields.
        let mut spans = Vec::new();
        let mut start = None;
        for (j, c) in line.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    spans.push((s, j));
                }
            } else if start.is_none() {
                start = Some(j);
            }
        }
        if let Some(s) = start {
            spans.push((s, line.len()));
        }
        let Some(&(a, b)) = spans.get(field) else {
            out.push_str(line);
            continue;
        };
        let dev = &line[a..b];
        if !is_bus_specific(dev) {
            out.push_str(line);
            continue;
        }
        let new = uuids.get(dev).map(|u| format!("UUID={u}"));
        out.push_str(&line[..a]);
        out.push_str(new.as_deref().unwrap_or(dev));
        out.push_str(&line[b..]);
        changes.push(Change {
            line: i + 1,
            old: dev.to_string(),
            new,
        });
    }
    Rewrite { changes, text: out }
}

/// Bus-specific `root=` / `resume=` values on a kernel command line.
pub fn cmdline_bus_specific(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            (matches!(k, "root" | "resume") && is_bus_specific(v)).then(|| v.to_string())
        })
        .collect()
}
