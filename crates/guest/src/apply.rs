//! The executor's registry core: carry out the registry actions of a plan
//! on one open hive. The volume/file side of the executor (open each
//! volume for writing once, each hive replayed and committed once) builds
//! on this.

use crate::plan::{Action, RegData};
use regf::{ErrorKind, Hive, Value};

impl RegData {
    /// As a regf value.
    pub fn to_value(&self) -> Value {
        match self {
            RegData::Sz(s) => Value::String(s.clone()),
            RegData::ExpandSz(s) => Value::ExpandString(s.clone()),
            RegData::MultiSz(v) => Value::MultiString(v.clone()),
            RegData::Dword(d) => Value::Dword(*d),
            RegData::Qword(q) => Value::Qword(*q),
            RegData::Binary(b) => Value::Binary(b.clone()),
            RegData::None(b) => Value::None(b.clone()),
            RegData::Raw { kind, bytes } => Value::Raw {
                kind: *kind,
                data: bytes.clone(),
            },
        }
    }
}

/// Apply one registry action to `hive`. Returns a line saying what changed,
/// or `None` when the hive already was in the wanted state (so applying a
/// plan twice changes nothing the second time). Non-registry actions are
/// ignored (`None`).
pub fn apply_registry(hive: &mut Hive, action: &Action) -> regf::Result<Option<String>> {
    match action {
        Action::CreateKey { key, .. } => {
            if hive.key(key).is_ok() {
                return Ok(None);
            }
            hive.create_key(key)?;
            Ok(Some(format!("created key {key}")))
        }
        Action::DeleteKey { key, .. } => match hive.delete_key(key, true) {
            Ok(()) => Ok(Some(format!("deleted key {key}"))),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        },
        Action::SetValue {
            key, name, data, ..
        } => {
            let v = data.to_value();
            if let Ok(k) = hive.key(key) {
                if let Some(cur) = k.value(name)? {
                    if cur.kind()? == v.kind() && cur.raw()? == v.to_bytes() {
                        return Ok(None);
                    }
                }
            } else {
                hive.create_key(key)?;
            }
            hive.set_value(key, name, &v)?;
            Ok(Some(format!("set {key}\\{name}")))
        }
        Action::DeleteValue { key, name, .. } => {
            let present = match hive.key(key) {
                Ok(k) => k.value(name)?.is_some(),
                Err(_) => false,
            };
            if !present {
                return Ok(None);
            }
            hive.delete_value(key, name)?;
            Ok(Some(format!("deleted value {key}\\{name}")))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------
// The executor.
// ---------------------------------------------------------------------

use crate::fs::{FsError, GuestFs};
use crate::plan::{FileSource, HiveRef, PlannedAction, VolumeRef};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;
use vdisk::{Disk, DiskWrite};

/// Why applying a plan failed. Every variant names where.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan names a disk the VM does not have, or is otherwise
    /// inconsistent.
    #[error("invalid plan: {0}")]
    Plan(String),
    /// A volume could not be opened, read or written.
    #[error("disk {disk} partition {partition}: {what}")]
    Fs {
        /// Disk index.
        disk: usize,
        /// Partition (`whole disk` when none).
        partition: String,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// A hive could not be opened, edited or checked.
    #[error("hive {path} on disk {disk}: {what}")]
    Hive {
        /// Disk index.
        disk: usize,
        /// Hive path on the volume.
        path: String,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: Box<regf::Error>,
    },
    /// A checker found errors in what was written.
    #[error("{what} is inconsistent after applying the plan: {errors}")]
    Check {
        /// What was checked.
        what: String,
        /// The errors, `; `-joined.
        errors: String,
    },
    /// The bytes of a file to put are not those planned.
    #[error("{path}: the source has {got_size} bytes with SHA-256 {got}, the plan expects {want_size} bytes with {want}")]
    Checksum {
        /// File path on the volume.
        path: String,
        /// Planned hash.
        want: String,
        /// Planned size.
        want_size: u64,
        /// Actual hash.
        got: String,
        /// Actual size.
        got_size: u64,
    },
    /// A file's source could not be read.
    #[error("cannot read the source of {path}: {source}")]
    Source {
        /// File path on the volume.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The block layer failed.
    #[error("disk {disk}: {source}")]
    Disk {
        /// Disk index.
        disk: usize,
        /// The cause.
        #[source]
        source: Box<vdisk::Error>,
    },
}

/// Opens the bytes of a [`FileSource::Host`] or [`FileSource::Iso`] (the
/// executor reads [`FileSource::Inline`] and [`FileSource::Guest`]
/// itself). [`host_files`] opens host files and refuses ISOs.
pub type SourceOpener<'a> = dyn Fn(&FileSource) -> std::io::Result<Box<dyn Read>> + 'a;

/// A [`SourceOpener`] for host files only.
pub fn host_files(src: &FileSource) -> std::io::Result<Box<dyn Read>> {
    match src {
        FileSource::Host { path } => {
            Ok(Box::new(std::fs::File::open(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            })?))
        }
        FileSource::Inline { bytes } => Ok(Box::new(std::io::Cursor::new(bytes.clone()))),
        other => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("no opener for file source {other:?}"),
        )),
    }
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExecReport {
    /// One line per planned action, in plan order: what changed, or that
    /// nothing needed to.
    pub lines: Vec<String>,
    /// Checker results of what was touched (NTFS/FAT checker per volume,
    /// hive checker per hive).
    pub checks: Vec<String>,
    /// Number of actions that changed something.
    pub changed: usize,
}

/// A shared writable disk, so filesystems (which own their disk) can be
/// opened over a disk the caller keeps.
#[derive(Debug, Clone)]
struct SharedDisk(Arc<dyn DiskWrite>);

impl Disk for SharedDisk {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> vdisk::Result<()> {
        self.0.read_at(buf, offset)
    }
    fn extent(&self, offset: u64, max_len: u64) -> vdisk::Result<vdisk::Extent> {
        self.0.extent(offset, max_len)
    }
    fn layer(&self) -> vdisk::LayerInfo {
        self.0.layer()
    }
}

impl DiskWrite for SharedDisk {
    fn write_at(&self, buf: &[u8], offset: u64) -> vdisk::Result<()> {
        self.0.write_at(buf, offset)
    }
    fn flush(&self) -> vdisk::Result<()> {
        self.0.flush()
    }
}

fn part_name(v: &VolumeRef) -> String {
    v.partition
        .map(|p| p.to_string())
        .unwrap_or_else(|| "whole disk".into())
}

fn fs_err(v: &VolumeRef, what: impl Into<String>) -> impl FnOnce(FsError) -> ApplyError {
    let (disk, partition, what) = (v.disk, part_name(v), what.into());
    move |source| ApplyError::Fs {
        disk,
        partition,
        what,
        source: Box::new(source),
    }
}

fn hive_err(h: &HiveRef, what: impl Into<String>) -> impl FnOnce(regf::Error) -> ApplyError {
    let (disk, path, what) = (h.volume.disk, h.path.clone(), what.into());
    move |source| ApplyError::Hive {
        disk,
        path,
        what,
        source: Box::new(source),
    }
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (lowercase hex) and length of everything `r` yields.
pub fn sha256_reader(r: &mut dyn Read) -> std::io::Result<(String, u64)> {
    let mut h = Hashing {
        inner: r,
        hash: Sha256::new(),
        n: 0,
    };
    std::io::copy(&mut h, &mut std::io::sink())?;
    Ok((hex(&h.hash.finalize()), h.n))
}

/// A writer that only hashes.
struct HashSink(Sha256, u64);
impl std::io::Write for HashSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        self.1 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Carry out `actions` on the VM's output disks (`disks[i]` is disk `i`),
/// in place. Each volume is opened for writing once; each hive is read
/// with its transaction logs (replayed), gets all of its registry actions,
/// is checked, committed and written back once, and its logs are reset.
/// Files are streamed in 1 MiB pieces with their SHA-256 checked (all
/// sources are verified before anything is written). Geometry rewrites
/// run last, when no filesystem is open. After each volume the
/// filesystem checker runs on it. Applying the same plan twice changes
/// nothing the second time. `Manual`, `PinGeometry` and `FirstBoot`
/// actions change no disk: they get their report line only.
pub fn execute(
    actions: &[PlannedAction],
    disks: &[Arc<dyn DiskWrite>],
    open: &SourceOpener,
) -> Result<ExecReport, ApplyError> {
    let mut rep = ExecReport::default();
    let mut lines: Vec<Option<String>> = vec![None; actions.len()];
    check_plan(actions, disks.len())?;
    verify_sources(actions, open)?;
    // Volumes in order of first appearance.
    let mut volumes: Vec<VolumeRef> = vec![];
    for a in actions {
        if let Some(v) = a.action.volume() {
            if !volumes.contains(v) {
                volumes.push(v.clone());
            }
        }
    }
    for v in &volumes {
        apply_volume(v, actions, disks, open, &mut lines, &mut rep)?;
    }
    for (i, a) in actions.iter().enumerate() {
        if let Action::RewriteGeometry {
            disk,
            cylinders,
            heads,
            sectors,
        } = &a.action
        {
            let chs = crate::geometry::Chs {
                cylinders: *cylinders,
                heads: *heads,
                sectors: *sectors,
            };
            let changes = rewrite_geometry(disks[*disk].as_ref(), chs).map_err(|source| {
                ApplyError::Disk {
                    disk: *disk,
                    source: Box::new(source),
                }
            })?;
            lines[i] = Some(if changes.is_empty() {
                format!(
                    "disk {disk}: geometry already {heads} heads / {sectors} sectors: unchanged"
                )
            } else {
                rep.changed += 1;
                format!("disk {disk}: {}", changes.join("; "))
            });
        }
    }
    for (i, a) in actions.iter().enumerate() {
        let l = lines[i].take().unwrap_or_else(|| match &a.action {
            Action::PinGeometry {
                disk,
                cylinders,
                heads,
                sectors,
            } => format!(
                "disk {disk}: BIOS geometry {cylinders}/{heads}/{sectors} pinned in the domains (no disk change)"
            ),
            Action::FirstBoot { step } => format!(
                "first-boot step {} ({}) recorded; no first-boot runner is installed yet",
                step.id, step.phase
            ),
            Action::Manual { text } => format!("manual: {text}"),
            Action::LinuxBootstrap { step, detail } => {
                format!("bootstrap-boot step {step} ({detail}): run by the guest itself")
            }
            other => format!("not applied: {other:?}"),
        });
        rep.lines.push(format!("{}: {l}", a.fixer));
    }
    Ok(rep)
}

fn check_plan(actions: &[PlannedAction], n: usize) -> Result<(), ApplyError> {
    for a in actions {
        let disk = match &a.action {
            Action::RewriteGeometry { disk, .. } | Action::PinGeometry { disk, .. } => Some(*disk),
            other => other.volume().map(|v| v.disk),
        };
        if let Some(d) = disk.filter(|&d| d >= n) {
            return Err(ApplyError::Plan(format!(
                "{} action names disk {d}, the VM has {n} disk(s)",
                a.fixer
            )));
        }
        if let Action::CopyOnce { volume, from, to } = &a.action {
            if from == to {
                return Err(ApplyError::Plan(format!(
                    "copy of {from} onto itself on disk {}",
                    volume.disk
                )));
            }
        }
    }
    Ok(())
}

/// Check every host/inline file source against its planned size and hash
/// before anything is written.
fn verify_sources(actions: &[PlannedAction], open: &SourceOpener) -> Result<(), ApplyError> {
    for a in actions {
        let Action::PutFile {
            path,
            source,
            size,
            sha256,
            ..
        } = &a.action
        else {
            continue;
        };
        if matches!(source, FileSource::Guest { .. }) {
            continue;
        }
        let src_err = |source| ApplyError::Source {
            path: path.clone(),
            source,
        };
        let mut r = open_source(source, open).map_err(src_err)?;
        let (got, n) = sha256_reader(&mut r).map_err(src_err)?;
        if got != sha256.to_ascii_lowercase() || n != *size {
            return Err(ApplyError::Checksum {
                path: path.clone(),
                want: sha256.clone(),
                want_size: *size,
                got,
                got_size: n,
            });
        }
    }
    Ok(())
}

fn open_source(src: &FileSource, open: &SourceOpener) -> std::io::Result<Box<dyn Read>> {
    match src {
        FileSource::Inline { bytes } => Ok(Box::new(std::io::Cursor::new(bytes.clone()))),
        other => open(other),
    }
}

fn apply_volume(
    v: &VolumeRef,
    actions: &[PlannedAction],
    disks: &[Arc<dyn DiskWrite>],
    open: &SourceOpener,
    lines: &mut [Option<String>],
    rep: &mut ExecReport,
) -> Result<(), ApplyError> {
    let disk = SharedDisk(disks[v.disk].clone());
    let (start, len) =
        crate::fs::volume_range(&disk, v.partition).map_err(fs_err(v, "cannot find the volume"))?;
    let win = vdisk::window::Window::new(disk, start, len).map_err(|source| ApplyError::Disk {
        disk: v.disk,
        source: Box::new(source),
    })?;
    let mut fs = GuestFs::open_rw(win, false).map_err(fs_err(v, "cannot open for writing"))?;
    let mut hives_done: BTreeSet<&HiveRef> = BTreeSet::new();
    for (i, a) in actions.iter().enumerate() {
        if a.action.volume() != Some(v) {
            continue;
        }
        if let Some(h) = a.action.hive() {
            if hives_done.insert(h) {
                apply_hive(&mut fs, h, actions, lines, rep)?;
            }
            continue;
        }
        let line = apply_file_action(&mut fs, v, &a.action, open)?;
        if line.1 {
            rep.changed += 1;
        }
        lines[i] = Some(line.0);
    }
    fs.flush().map_err(fs_err(v, "cannot flush"))?;
    let c = fs.check().map_err(fs_err(v, "cannot check"))?;
    let what = format!("disk {} partition {}", v.disk, part_name(v));
    if !c.errors.is_empty() {
        return Err(ApplyError::Check {
            what,
            errors: c.errors.join("; "),
        });
    }
    rep.checks.push(format!("{what}: {}", c.summary));
    Ok(())
}

/// One file-level action; returns its line and whether it changed
/// anything.
fn apply_file_action(
    fs: &mut GuestFs,
    v: &VolumeRef,
    a: &Action,
    open: &SourceOpener,
) -> Result<(String, bool), ApplyError> {
    let on = |p: &str| format!("disk {} partition {}: {p}", v.disk, part_name(v));
    match a {
        Action::MkDir { path, .. } => {
            if fs.stat(path).is_ok_and(|e| e.is_dir) {
                return Ok((on(&format!("directory {path} exists")), false));
            }
            fs.mkdir_p(path)
                .map_err(fs_err(v, format!("cannot create directory {path}")))?;
            Ok((on(&format!("created directory {path}")), true))
        }
        Action::PutFile {
            path,
            source,
            size,
            sha256,
            ..
        } => put_file(fs, v, path, source, *size, sha256, open),
        Action::CopyOnce { from, to, .. } => {
            if fs.stat(to).is_ok() {
                return Ok((on(&format!("{to} exists: not copied again")), false));
            }
            let bytes = fs
                .read(from)
                .map_err(fs_err(v, format!("cannot read {from}")))?;
            fs.write(to, &bytes)
                .map_err(fs_err(v, format!("cannot write {to}")))?;
            Ok((
                on(&format!("copied {from} to {to} ({} bytes)", bytes.len())),
                true,
            ))
        }
        other => Err(ApplyError::Plan(format!("not a file action: {other:?}"))),
    }
}

/// `PutFile`: unchanged when the file already has these bytes; else its
/// parents are created and the bytes streamed in with their hash checked.
fn put_file(
    fs: &mut GuestFs,
    v: &VolumeRef,
    path: &str,
    source: &FileSource,
    size: u64,
    sha256: &str,
    open: &SourceOpener,
) -> Result<(String, bool), ApplyError> {
    let on = |p: &str| format!("disk {} partition {}: {p}", v.disk, part_name(v));
    if let Ok(e) = fs.stat(path) {
        if !e.is_dir && e.size == size {
            let mut h = HashSink(Sha256::new(), 0);
            fs.read_to(path, &mut h)
                .map_err(fs_err(v, format!("cannot read {path}")))?;
            if hex(&h.0.finalize()) == sha256.to_ascii_lowercase() {
                return Ok((on(&format!("{path} already has these {size} bytes")), false));
            }
        }
    }
    if let Some(parent) = path.rsplit_once('/').map(|x| x.0).filter(|p| !p.is_empty()) {
        fs.mkdir_p(parent)
            .map_err(fs_err(v, format!("cannot create directory {parent}")))?;
    }
    let src_err = |source| ApplyError::Source {
        path: path.to_string(),
        source,
    };
    let mut r: Box<dyn Read> = match source {
        FileSource::Guest { volume, path: from } if volume == v => Box::new(std::io::Cursor::new(
            fs.read(from)
                .map_err(fs_err(v, format!("cannot read {from}")))?,
        )),
        FileSource::Guest { volume, path: from } => {
            return Err(ApplyError::Plan(format!(
            "{path}: copying {from} from another volume (disk {} partition {}) is not supported",
            volume.disk,
            part_name(volume)
        )))
        }
        other => open_source(other, open).map_err(src_err)?,
    };
    let mut hr = Hashing {
        inner: &mut r,
        hash: Sha256::new(),
        n: 0,
    };
    fs.write_from(path, size, &mut hr)
        .map_err(fs_err(v, format!("cannot write {path}")))?;
    let got = hex(&hr.hash.finalize());
    if got != sha256.to_ascii_lowercase() {
        return Err(ApplyError::Checksum {
            path: path.to_string(),
            want: sha256.to_string(),
            want_size: size,
            got,
            got_size: hr.n,
        });
    }
    Ok((
        on(&format!(
            "wrote {path} ({size} bytes, sha256 {})",
            &got[..16]
        )),
        true,
    ))
}

/// The transaction logs next to a hive on a volume (`NAME.LOG`,
/// `NAME.LOG1`, `NAME.LOG2`, any case), as paths.
fn hive_logs(fs: &GuestFs, h: &HiveRef) -> Result<Vec<String>, ApplyError> {
    let (dir, name) = match h.path.rsplit_once('/') {
        Some((d, n)) => (d.to_string(), n.to_ascii_lowercase()),
        None => (String::new(), h.path.to_ascii_lowercase()),
    };
    let list = fs
        .list(if dir.is_empty() { "/" } else { &dir })
        .map_err(fs_err(&h.volume, format!("cannot list {dir}")))?;
    let mut out = vec![];
    for suf in [".log", ".log1", ".log2"] {
        let want = format!("{name}{suf}");
        if let Some(e) = list
            .iter()
            .find(|e| !e.is_dir && e.name.to_ascii_lowercase() == want)
        {
            out.push(if dir.is_empty() {
                e.name.clone()
            } else {
                format!("{dir}/{}", e.name)
            });
        }
    }
    Ok(out)
}

fn apply_hive(
    fs: &mut GuestFs,
    h: &HiveRef,
    actions: &[PlannedAction],
    lines: &mut [Option<String>],
    rep: &mut ExecReport,
) -> Result<(), ApplyError> {
    let v = &h.volume;
    let primary = fs
        .read(&h.path)
        .map_err(fs_err(v, format!("cannot read hive {}", h.path)))?;
    let log_paths = hive_logs(fs, h)?;
    let mut logs = vec![];
    for p in &log_paths {
        let bytes = fs.read(p).map_err(fs_err(v, format!("cannot read {p}")))?;
        if !bytes.is_empty() {
            logs.push(regf::LogFile {
                name: p.rsplit('/').next().unwrap_or(p).to_string(),
                bytes,
            });
        }
    }
    let (mut hive, replay) = regf::Hive::open_with_logs(primary, &logs, regf::ReplayPolicy::Strict)
        .map_err(hive_err(h, "cannot open (with its logs)"))?;
    let mut changed = 0;
    for (i, a) in actions.iter().enumerate() {
        if a.action.hive() != Some(h) {
            continue;
        }
        let r = apply_registry(&mut hive, &a.action)
            .map_err(hive_err(h, format!("cannot apply {:?}", a.action)))?;
        lines[i] = Some(match r {
            Some(l) => {
                changed += 1;
                format!("{}: {l}", h.path)
            }
            None => format!("{}: already so: {}", h.path, describe_reg(&a.action)),
        });
    }
    rep.changed += changed;
    if changed == 0 && !replay.was_dirty && logs.is_empty() {
        rep.checks.push(format!("hive {}: unchanged", h.path));
        return Ok(());
    }
    // The hive checker's invariants on the edited hive (in place: no
    // copy of a hive that may be hundreds of MiB), then the base block of
    // the committed bytes.
    let mut problems: Vec<String> = hive.check_errors().iter().map(|p| p.to_string()).collect();
    let bytes = hive.commit();
    drop(hive);
    match regf::BaseBlock::parse(&bytes, 0) {
        Ok(b) if b.checksum_ok && b.seq1 == b.seq2 => {}
        Ok(b) => problems.push(format!(
            "base block after commit: checksum ok {}, sequence numbers {} / {}",
            b.checksum_ok, b.seq1, b.seq2
        )),
        Err(e) => problems.push(format!("base block after commit: {e}")),
    }
    if !problems.is_empty() {
        return Err(ApplyError::Check {
            what: format!("hive {} on disk {}", h.path, v.disk),
            errors: problems.join("; "),
        });
    }
    fs.write_from(&h.path, bytes.len() as u64, &mut bytes.as_slice())
        .map_err(fs_err(v, format!("cannot write hive {}", h.path)))?;
    for p in &log_paths {
        fs.write(p, &[])
            .map_err(fs_err(v, format!("cannot reset log {p}")))?;
    }
    rep.checks.push(format!(
        "hive {}: {} change(s){}, checked, committed ({} bytes), {} log(s) reset",
        h.path,
        changed,
        if replay.was_dirty {
            " after replaying its logs"
        } else {
            ""
        },
        bytes.len(),
        log_paths.len()
    ));
    Ok(())
}

fn describe_reg(a: &Action) -> String {
    match a {
        Action::CreateKey { key, .. } => format!("key {key} exists"),
        Action::DeleteKey { key, .. } => format!("key {key} absent"),
        Action::SetValue { key, name, .. } => format!("{key}\\{name} has the value"),
        Action::DeleteValue { key, name, .. } => format!("{key}\\{name} absent"),
        _ => String::new(),
    }
}

/// Rewrite BPB/MBR CHS fields of `disk` to `g` (see
/// [`crate::fixgeo::apply`]); returns one line per change.
fn rewrite_geometry(disk: &dyn DiskWrite, g: crate::geometry::Chs) -> vdisk::Result<Vec<String>> {
    let audit = crate::audit::audit(disk, &crate::geometry::DeviceGeometry::default())?;
    let plan = crate::fixgeo::GeometryPlan {
        mode: Some(crate::fixgeo::FixMode::Rewrite),
        automatic: false,
        reasons: vec![],
        buses: vec![],
        expected: None,
        pin: None,
        qemu_device_props: None,
        libvirt_override: None,
        rewrite_geometry: Some(g),
        after: vec![],
        notes: vec![],
    };
    Ok(crate::fixgeo::apply(disk, &audit, &plan)?
        .into_iter()
        .map(|c| format!("offset {:#x}: {}", c.offset, c.what))
        .collect())
}
