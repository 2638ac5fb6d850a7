//! Throw-away overlays for a validation boot: every writable disk in the
//! caller's argv is replaced by an empty qcow2 overlay (in a private
//! directory, deleted after the boot) whose backing file is the original,
//! so the guest can write as it likes and the disks stay byte for byte as
//! they were. This covers `-drive` and `-blockdev` (JSON and `key=value`
//! forms) alike, which QEMU's own `-snapshot` does not.
//!
//! * `-drive` with `file=` (not read-only, not `media=cdrom`): overlay with
//!   the drive's `format=` as backing format; `file=`/`format=` are
//!   rewritten to the overlay and `qcow2`.
//! * `-blockdev` format node whose `file` is a host file (inline
//!   `{"driver":"file","filename":...}` or a reference to a protocol node
//!   on a host file): overlay with the node's `driver` as backing format.
//!   A referenced protocol node is then unused by it and forced read-only.
//! * `-blockdev` protocol node (`driver` `file`/`host_device`) used
//!   directly: overlay with backing format `raw`.
//! * Read-only drives and nodes are left alone; CD-ROM drives are forced
//!   read-only. A disk whose file does not exist is passed through: QEMU
//!   fails to open it and says so.
//!
//! Everything else that could write is refused with a clear error rather
//! than guessed at: a drive without `format=`, a writable drive or node not
//! backed by a host file, options that would change what the overlay
//! shows (`offset`, `size`, `backing`, ...), legacy `-hda`-style options.

use super::ValidateError;
use serde_json::{Map, Value};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Legacy disk options: no way to give a format, so refused.
const LEGACY_DISKS: &[&str] = &[
    "-hda",
    "-hdb",
    "-hdc",
    "-hdd",
    "-fda",
    "-fdb",
    "-sd",
    "-mtdblock",
    "-pflash",
];
/// `-drive` keys that would make the overlay show different data.
const DRIVE_REFUSED: &[&str] = &["offset", "size", "backing", "data-file", "encrypt"];
/// Generic block-node options carried over to an overlay node.
const NODE_KEPT: &[&str] = &[
    "driver",
    "node-name",
    "file",
    "discard",
    "cache",
    "detect-zeroes",
    "read-only",
    "auto-read-only",
    "force-share",
];
/// Options of a protocol node that also apply to the overlay's file node.
const PROTOCOL_CHILD: &[&str] = &["aio", "locking", "aio-max-batch"];
/// Protocol drivers that open a host file or block device.
const HOST_FILE_DRIVERS: &[&str] = &["file", "host_device"];
/// QEMU format drivers whose virtual size our block layer can read, with
/// the layer format name it reports.
const SIZED_FORMATS: &[(&str, &str)] = &[
    ("qcow2", "qcow2"),
    ("vmdk", "vmdk"),
    ("vpc", "vhd"),
    ("vhdx", "vhdx"),
    ("vdi", "vdi"),
];

/// Where overlays go and how relative disk paths resolve.
pub(crate) struct OverlayCtx<'a> {
    /// Private directory for `ovl-N.qcow2` (absolute).
    pub dir: &'a Path,
    /// QEMU's working directory (absolute): relative disk paths start here.
    pub cwd: &'a Path,
    /// Overlays made so far.
    pub count: usize,
}

fn spec(msg: String) -> ValidateError {
    ValidateError::Spec(msg)
}

impl OverlayCtx<'_> {
    /// Make `ovl-N.qcow2` over `file` (as QEMU would resolve it) in
    /// `format`. `None` when the file does not exist (QEMU will report it).
    fn overlay(
        &mut self,
        what: &str,
        file: &str,
        format: &str,
        notes: &mut Vec<String>,
    ) -> Result<Option<PathBuf>, ValidateError> {
        let base = self.cwd.join(file);
        if !base.exists() {
            notes.push(format!(
                "{what}: {} does not exist; passed to QEMU unchanged",
                base.display()
            ));
            return Ok(None);
        }
        let size = virtual_size(&base, format).map_err(|e| spec(format!("{what}: {e}")))?;
        let Some(base_name) = base.to_str() else {
            return Err(spec(format!(
                "{what}: path {} is not UTF-8 and cannot be a qcow2 backing file name",
                base.display()
            )));
        };
        let ovl = self.dir.join(format!("ovl-{}.qcow2", self.count));
        self.count += 1;
        vdisk::writer::create_qcow2_overlay(&ovl, size, base_name, format)
            .map_err(|e| spec(format!("{what}: cannot create the validation overlay: {e}")))?;
        notes.push(format!(
            "{what}: {base_name} ({format}) boots from throw-away overlay {}",
            ovl.display()
        ));
        Ok(Some(ovl))
    }
}

/// Virtual size of `base` read as `format`: a raw file's length (also for
/// block devices), otherwise what our block layer reads from the header,
/// after checking the contents really are that format.
fn virtual_size(base: &Path, format: &str) -> Result<u64, String> {
    if format == "raw" {
        let mut f = std::fs::File::open(base).map_err(|e| format!("{}: {e}", base.display()))?;
        return f
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("{}: cannot find its size: {e}", base.display()));
    }
    let Some((_, layer)) = SIZED_FORMATS.iter().find(|(q, _)| *q == format) else {
        return Err(format!(
            "format {format:?} of {}: validation overlays support raw, {}",
            base.display(),
            SIZED_FORMATS
                .iter()
                .map(|(q, _)| *q)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    // The argv is the caller's own VM definition: QEMU follows its backing
    // chains wherever they point, so we may too.
    let opts = vdisk::OpenOptions {
        allow_outside: true,
        ..Default::default()
    };
    let disk = vdisk::open_opts(base, opts).map_err(|e| e.to_string())?;
    let found = disk.layer().format;
    if found != *layer {
        return Err(format!(
            "{} is given as format={format} but its contents are {found}",
            base.display()
        ));
    }
    Ok(disk.size())
}

/// Split QEMU option syntax (`a=b,c`, `,,` is a literal comma).
fn split_opts(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
            } else {
                out.push(String::new());
                continue;
            }
        }
        if let Some(l) = out.last_mut() {
            l.push(c);
        }
    }
    out
}

fn join_opts(items: &[String]) -> String {
    items
        .iter()
        .map(|i| i.replace(',', ",,"))
        .collect::<Vec<_>>()
        .join(",")
}

fn key_of(item: &str) -> &str {
    item.split_once('=').map_or(item, |(k, _)| k)
}

fn truthy(v: &str) -> bool {
    matches!(v, "on" | "yes" | "true")
}

/// QEMU's test for a protocol prefix (`nbd:...`, `json:...`): a colon
/// before any slash.
fn has_protocol(name: &str) -> bool {
    match (name.find(':'), name.find('/')) {
        (Some(c), Some(s)) => c < s,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Rewrite one `-drive` value.
fn drive(
    value: &str,
    at: usize,
    ctx: &mut OverlayCtx,
    notes: &mut Vec<String>,
) -> Result<String, ValidateError> {
    let mut items = split_opts(value);
    let get = |items: &[String], k: &str| -> Option<String> {
        items.iter().rev().find_map(|i| match i.split_once('=') {
            Some((key, v)) if key == k => Some(v.to_string()),
            None if i == k => Some("on".into()),
            _ => None,
        })
    };
    let what = format!("argv[{at}] -drive {value}");
    let file = get(&items, "file");
    if file.is_none() && !items.iter().any(|i| key_of(i).starts_with("file.")) {
        return Ok(value.to_string()); // an empty drive
    }
    if get(&items, "readonly").is_some_and(|v| truthy(&v)) {
        return Ok(value.to_string());
    }
    if get(&items, "media").as_deref() == Some("cdrom") {
        items.retain(|i| key_of(i) != "readonly");
        items.push("readonly=on".into());
        notes.push(format!("{what}: CD-ROM forced read-only"));
        return Ok(join_opts(&items));
    }
    if let Some(k) = items.iter().map(|i| key_of(i)).find(|k| {
        k.starts_with("file.")
            || DRIVE_REFUSED
                .iter()
                .any(|r| k == r || k.starts_with(&format!("{r}.")))
    }) {
        return Err(spec(format!(
            "{what}: option {k:?} cannot be carried over to a throw-away overlay; \
             validation would not boot the same disk"
        )));
    }
    let file = file.unwrap_or_default();
    let path = match file.strip_prefix("file:") {
        Some(p) => p.to_string(),
        None if has_protocol(&file) => {
            return Err(spec(format!(
                "{what}: {file:?} is not a host file, so validation cannot keep the guest \
                 from writing it; give it readonly=on"
            )))
        }
        None => file.clone(),
    };
    let Some(format) = get(&items, "format") else {
        return Err(spec(format!(
            "{what}: no format= given; validation needs it to put a throw-away overlay over \
             the disk and does not guess"
        )));
    };
    let Some(ovl) = ctx.overlay(&what, &path, &format, notes)? else {
        return Ok(value.to_string());
    };
    for i in items.iter_mut() {
        match key_of(i) {
            "file" => *i = format!("file={}", ovl.display()),
            "format" => *i = "format=qcow2".into(),
            _ => {}
        }
    }
    Ok(join_opts(&items))
}

/// A parsed `-blockdev`.
struct Node {
    /// Index of the value in the argv.
    at: usize,
    json: bool,
    v: Map<String, Value>,
}

impl Node {
    fn str(&self, k: &str) -> Option<&str> {
        self.v.get(k).and_then(Value::as_str)
    }
    fn name(&self) -> &str {
        self.str("node-name").unwrap_or("(no node-name)")
    }
    fn read_only(&self) -> bool {
        match self.v.get("read-only") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => truthy(s),
            _ => false,
        }
    }
    /// `filename` of a host-file protocol node.
    fn host_file(&self) -> Option<&str> {
        host_file(&self.v)
    }
    fn render(&self) -> String {
        if self.json {
            Value::Object(self.v.clone()).to_string()
        } else {
            let mut items = Vec::new();
            flatten("", &self.v, &mut items);
            join_opts(&items)
        }
    }
}

fn host_file(m: &Map<String, Value>) -> Option<&str> {
    let d = m.get("driver")?.as_str()?;
    if HOST_FILE_DRIVERS.contains(&d) {
        m.get("filename")?.as_str()
    } else {
        None
    }
}

/// A `-blockdev` value: JSON object (true) or `key=value` form (false).
fn parse_blockdev(value: &str) -> Result<(bool, Map<String, Value>), String> {
    let t = value.trim_start();
    if !t.starts_with('{') {
        return Ok((false, parse_keyval(value)?));
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(m)) => Ok((true, m)),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// `a.b=c,d=e` into nested objects of strings.
fn parse_keyval(s: &str) -> Result<Map<String, Value>, String> {
    let mut root = Map::new();
    for item in split_opts(s) {
        let Some((key, val)) = item.split_once('=') else {
            return Err(format!("{item:?} is not key=value"));
        };
        let parts: Vec<&str> = key.split('.').collect();
        let mut m = &mut root;
        for (n, p) in parts.iter().enumerate() {
            if p.is_empty() {
                return Err(format!("bad key {key:?}"));
            }
            if n + 1 == parts.len() {
                if m.insert(p.to_string(), Value::String(val.to_string()))
                    .is_some()
                {
                    return Err(format!("{key:?} given twice or both as value and group"));
                }
            } else {
                let e = m
                    .entry(p.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(next) = e else {
                    return Err(format!("{key:?} given both as value and group"));
                };
                m = next;
            }
        }
    }
    Ok(root)
}

fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut Vec<String>) {
    for (k, v) in m {
        let key = format!("{prefix}{k}");
        match v {
            Value::Object(o) => flatten(&format!("{key}."), o, out),
            Value::String(s) => out.push(format!("{key}={s}")),
            Value::Bool(b) => out.push(format!("{key}={}", if *b { "on" } else { "off" })),
            other => out.push(format!("{key}={other}")),
        }
    }
}

/// Refuse options an overlay node would not carry.
fn check_kept(v: &Map<String, Value>, what: &str) -> Result<(), ValidateError> {
    match v.keys().find(|k| !NODE_KEPT.contains(&k.as_str())) {
        Some(k) => Err(spec(format!(
            "{what}: option {k:?} cannot be carried over to a throw-away overlay; \
             validation would not boot the same disk"
        ))),
        None => Ok(()),
    }
}

/// An overlay node in place of `node` (checked by [`check_kept`]):
/// generic options kept, format qcow2, file = the overlay (with `child`
/// options for the file node).
fn overlay_node(
    node: &Map<String, Value>,
    child: Map<String, Value>,
    ovl: &Path,
) -> Map<String, Value> {
    let mut v = Map::new();
    for (k, val) in node {
        if k != "file" && k != "driver" {
            v.insert(k.clone(), val.clone());
        }
    }
    let mut file = child;
    file.insert("driver".into(), Value::String("file".into()));
    file.insert("filename".into(), Value::String(ovl.display().to_string()));
    v.insert("driver".into(), Value::String("qcow2".into()));
    v.insert("file".into(), Value::Object(file));
    v
}

/// Rewrite every `-blockdev` (values at `nodes[].at`) in place.
fn blockdevs(
    argv: &mut [String],
    mut nodes: Vec<Node>,
    ctx: &mut OverlayCtx,
    notes: &mut Vec<String>,
) -> Result<(), ValidateError> {
    // Protocol nodes referenced as `file` by a writable format node.
    let mut referenced: Vec<String> = Vec::new();
    for n in nodes.iter().filter(|n| !n.read_only()) {
        if let Some(r) = n.str("file") {
            referenced.push(r.to_string());
        }
    }
    let protocol_files: Vec<(String, String)> = nodes
        .iter()
        .filter_map(|n| Some((n.str("node-name")?.to_string(), n.host_file()?.to_string())))
        .collect();
    for n in nodes.iter_mut() {
        let what = format!("argv[{}] -blockdev node {}", n.at, n.name());
        if n.read_only() {
            continue;
        }
        let Some(driver) = n.str("driver").map(String::from) else {
            return Err(spec(format!("{what}: no driver")));
        };
        let mut changed = None;
        if let Some(filename) = n.host_file().map(String::from) {
            if referenced.iter().any(|r| r == n.name()) {
                let ro = if n.json {
                    Value::Bool(true)
                } else {
                    Value::String("on".into())
                };
                n.v.insert("read-only".into(), ro);
                notes.push(format!(
                    "{what}: forced read-only (the format node over it boots from an overlay)"
                ));
                changed = Some(n.v.clone());
            } else {
                // A protocol node used directly as a raw disk.
                let mut child = Map::new();
                let mut top = Map::new();
                for (k, val) in &n.v {
                    if PROTOCOL_CHILD.contains(&k.as_str()) {
                        child.insert(k.clone(), val.clone());
                    } else if k != "filename" {
                        top.insert(k.clone(), val.clone());
                    }
                }
                check_kept(&top, &what)?;
                if let Some(ovl) = ctx.overlay(&what, &filename, "raw", notes)? {
                    changed = Some(overlay_node(&top, child, &ovl));
                }
            }
        } else {
            let base = match n.v.get("file") {
                Some(Value::Object(f)) => match host_file(f) {
                    Some(name) => {
                        let mut child = f.clone();
                        child.remove("filename");
                        Some((name.to_string(), child))
                    }
                    None => {
                        return Err(spec(format!(
                            "{what}: its file is not a host file, so validation cannot keep \
                             the guest from writing it; give it \"read-only\""
                        )))
                    }
                },
                // A reference to a protocol node on a host file; anything
                // else is a filter over another node, protected at that
                // node (or at a -drive, protected as a -drive).
                Some(Value::String(r)) => protocol_files
                    .iter()
                    .find(|(p, _)| p == r)
                    .map(|(_, name)| (name.clone(), Map::new())),
                _ => {
                    return Err(spec(format!(
                        "{what}: driver {driver} is writable and not backed by a host file, so \
                         validation cannot keep the guest from writing it; give it \"read-only\""
                    )))
                }
            };
            if let Some((name, child)) = base {
                check_kept(&n.v, &what)?;
                if let Some(ovl) = ctx.overlay(&what, &name, &driver, notes)? {
                    changed = Some(overlay_node(&n.v, child, &ovl));
                }
            }
        }
        if let Some(v) = changed {
            n.v = v;
            argv[n.at] = n.render();
        }
    }
    Ok(())
}

/// The argv with every writable disk on a throw-away overlay in
/// `ctx.dir` (see the module documentation).
pub(crate) fn protect(
    argv: &[String],
    ctx: &mut OverlayCtx,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, ValidateError> {
    let mut out = argv.to_vec();
    let mut nodes = Vec::new();
    let mut i = 1;
    while i < out.len() {
        let raw = out[i].clone();
        let opt = raw
            .strip_prefix('-')
            .filter(|o| o.starts_with('-'))
            .unwrap_or(&raw);
        let Some(value) = out.get(i + 1).cloned() else {
            if opt == "-drive" || opt == "-blockdev" || LEGACY_DISKS.contains(&opt) {
                return Err(spec(format!("argv[{i}] {raw} has no value")));
            }
            break;
        };
        if LEGACY_DISKS.contains(&opt) {
            return Err(spec(format!(
                "argv[{i}] {raw} {value}: gives no format; use -drive file=...,format=... so \
                 validation can boot it from a throw-away overlay"
            )));
        }
        match opt {
            "-drive" => {
                out[i + 1] = drive(&value, i + 1, ctx, notes)?;
                i += 2;
            }
            "-blockdev" => {
                let (json, v) = parse_blockdev(&value)
                    .map_err(|e| spec(format!("argv[{}] -blockdev {value}: {e}", i + 1)))?;
                nodes.push(Node { at: i + 1, json, v });
                i += 2;
            }
            _ => i += 1,
        }
    }
    blockdevs(&mut out, nodes, ctx, notes)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_syntax_round_trips() {
        let items = split_opts("file=a,,b.raw,format=raw,readonly");
        assert_eq!(items, ["file=a,b.raw", "format=raw", "readonly"]);
        assert_eq!(join_opts(&items), "file=a,,b.raw,format=raw,readonly");
        assert!(has_protocol("nbd:localhost:10809"));
        assert!(has_protocol("json:{}"));
        assert!(!has_protocol("/a/b:c.raw"));
        assert!(!has_protocol("disk.raw"));
        let m = parse_keyval("driver=qcow2,file.driver=file,file.filename=x,,y").unwrap();
        assert_eq!(m["file"]["filename"], "x,y");
        let mut items = Vec::new();
        flatten("", &m, &mut items);
        assert_eq!(
            join_opts(&items),
            "driver=qcow2,file.driver=file,file.filename=x,,y"
        );
        assert!(parse_keyval("file=a,file.driver=file").is_err());
        assert!(parse_keyval("driver").is_err());
    }
}
