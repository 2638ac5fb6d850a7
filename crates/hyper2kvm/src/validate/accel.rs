//! Accelerator choice. `auto` probes KVM with a real (tiny) boot, because
//! `/dev/kvm` existing proves little: under a nested hypervisor KVM may
//! open fine and still crash or hang real guests. A probe that crashes,
//! times out or misbehaves in any way means "KVM unusable": fall back to
//! TCG. The probe boots with the machine type and CPU model of the boot
//! it vouches for ([`ProbeTarget`]): a nested KVM may run a real-mode
//! sector on the default `pc` machine and CPU and still abort QEMU
//! (`kvm_buf_set_msrs: Assertion ... failed`) on `q35` with the Hyper-V
//! enlightenments' MSRs. Results are cached per target for the life of
//! the process. If QEMU still dies under KVM before the guest printed
//! anything ([`retry_under_tcg`]), the runner boots once more under TCG,
//! says so in the report's notes, and remembers TCG for that target.

use super::bootsector::{serial_boot_sector, Action};
use super::classify::BootOutcome;
use super::markers::{CustomMarker, MarkerKind};
use super::runner::boot_with;
use super::{Accel, BootSpec};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// A resolved accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcreteAccel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl ConcreteAccel {
    /// QEMU's name (`-accel kvm|tcg`).
    pub fn name(self) -> &'static str {
        match self {
            ConcreteAccel::Kvm => "kvm",
            ConcreteAccel::Tcg => "tcg",
        }
    }
}

/// The marker the probe boot sector prints.
pub const PROBE_MARKER: &str = "H2K-KVM-PROBE-OK";

/// What a KVM probe must share with the boot it vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeTarget {
    /// The `-machine` value without `accel=` and the `pflash0/1=` node
    /// references (`pc` when the boot names none).
    pub machine: String,
    /// The `-cpu` value, if the boot names one.
    pub cpu: Option<String>,
}

impl ProbeTarget {
    /// The machine type and CPU model of a boot argv (`-machine`/`-M`,
    /// `-cpu`; the last occurrence wins, as in QEMU).
    pub fn from_argv(argv: &[String]) -> ProbeTarget {
        let mut t = ProbeTarget {
            machine: "pc".into(),
            cpu: None,
        };
        let mut it = argv.iter().skip(1);
        while let Some(a) = it.next() {
            let opt = a.strip_prefix('-').unwrap_or(a);
            match opt {
                "-machine" | "machine" | "M" => {
                    if let Some(v) = it.next() {
                        let kept: Vec<&str> = v
                            .split(',')
                            .filter(|p| {
                                !p.starts_with("accel=")
                                    && !p.starts_with("pflash0=")
                                    && !p.starts_with("pflash1=")
                            })
                            .collect();
                        t.machine = kept.join(",");
                    }
                }
                "-cpu" | "cpu" => t.cpu = it.next().cloned(),
                _ => {}
            }
        }
        t
    }
}

static PROBES: Mutex<Option<HashMap<ProbeTarget, (ConcreteAccel, String)>>> = Mutex::new(None);

fn cached(target: &ProbeTarget) -> Option<(ConcreteAccel, String)> {
    let g = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().and_then(|m| m.get(target).cloned())
}

fn remember(target: &ProbeTarget, v: (ConcreteAccel, String)) {
    let mut g = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashMap::new).insert(target.clone(), v);
}

/// Turn a requested accelerator into a concrete one for the boot `argv`,
/// with notes on how it was chosen. `auto` probes KVM with the boot's
/// machine type and CPU model (once per target per process).
pub fn resolve_accel(accel: Accel, argv: &[String]) -> (ConcreteAccel, Vec<String>) {
    match accel {
        Accel::Kvm => (ConcreteAccel::Kvm, Vec::new()),
        Accel::Tcg => (ConcreteAccel::Tcg, Vec::new()),
        Accel::Auto => {
            let target = ProbeTarget::from_argv(argv);
            let (a, why) = match cached(&target) {
                Some(v) => v,
                None => {
                    let v = probe_kvm_for(&target);
                    remember(&target, v.clone());
                    v
                }
            };
            (a, vec![format!("accel auto: {why}")])
        }
    }
}

/// Record that KVM failed a real boot of `argv` (see [`retry_under_tcg`]),
/// so later `auto` boots with the same machine type and CPU model use TCG
/// without trying KVM again.
pub fn remember_kvm_failure(argv: &[String], why: &str) {
    remember(
        &ProbeTarget::from_argv(argv),
        (
            ConcreteAccel::Tcg,
            format!("an earlier boot died under KVM ({why}); using tcg"),
        ),
    );
}

/// Whether a boot under KVM that ended with `outcome` should be retried
/// once under TCG, and why: QEMU itself died (killed by a signal, such as
/// the abort of a failed `kvm_buf_set_msrs` assertion, or exited non-zero,
/// as with `kernel doesn't allow setting HyperV VP_INDEX`) before the
/// guest printed anything (`guest_output`: serial, firmware log, screen
/// text or any marker). A guest that printed, failed, reset or timed out
/// is a verdict on the guest, not on KVM. (A command line QEMU refuses
/// whatever the accelerator also dies early; the retry then fails the
/// same way, which costs a second and says so.)
pub fn retry_under_tcg(outcome: &BootOutcome, guest_output: bool) -> Option<String> {
    let BootOutcome::QemuExited { status, stderr } = outcome else {
        return None;
    };
    if guest_output || *status == Some(0) {
        return None;
    }
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let how = match status {
        None => "killed by a signal".to_string(),
        Some(c) => format!("exit status {c}"),
    };
    Some(if last.is_empty() {
        how
    } else {
        format!("{how}: {last}")
    })
}

/// The QEMU argv of a probe of `target` booting the raw image `disk`:
/// the target's machine type and CPU model, 32 MiB, the disk on the
/// machine's default IDE/AHCI bus, `isa-debug-exit`, no NIC.
pub fn probe_argv(target: &ProbeTarget, disk: &Path) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "qemu-system-x86_64".into(),
        "-machine".into(),
        target.machine.clone(),
    ];
    if let Some(cpu) = &target.cpu {
        v.extend(["-cpu".into(), cpu.clone()]);
    }
    v.extend([
        "-m".into(),
        "32".into(),
        "-drive".into(),
        format!("file={},format=raw,if=ide", disk.display()),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
        "-nic".into(),
        "none".into(),
    ]);
    v
}

/// Probe KVM on the default `pc` machine and CPU (see [`probe_kvm_for`]).
pub fn probe_kvm() -> (ConcreteAccel, String) {
    probe_kvm_for(&ProbeTarget::from_argv(&[]))
}

/// Probe KVM for `target`: open `/dev/kvm`, then boot a 512-byte sector
/// under `-accel kvm` with the target's machine type and CPU model
/// ([`probe_argv`]) that prints [`PROBE_MARKER`] on COM1 and exits QEMU
/// through `isa-debug-exit`. KVM is usable only if the marker shows up.
pub fn probe_kvm_for(target: &ProbeTarget) -> (ConcreteAccel, String) {
    run_probe(target, ConcreteAccel::Kvm)
}

/// Boot the probe sector for `target` under `accel` (TCG too, so that the
/// probe itself can be tested where KVM is unusable).
pub fn run_probe(target: &ProbeTarget, accel: ConcreteAccel) -> (ConcreteAccel, String) {
    let on = format!(
        "machine {}{}",
        target.machine,
        target
            .cpu
            .as_deref()
            .map(|c| format!(", cpu {c}"))
            .unwrap_or_default()
    );
    let kvm_dev = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
    };
    if let (ConcreteAccel::Kvm, Err(e)) = (accel, kvm_dev().map(drop)) {
        return (
            ConcreteAccel::Tcg,
            format!("/dev/kvm unusable ({e}); using tcg"),
        );
    }
    let dir = match tempfile::Builder::new().prefix("h2k-kvm-probe").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return (
                ConcreteAccel::Tcg,
                format!("probe: no temp dir ({e}); using tcg"),
            )
        }
    };
    let sector = match serial_boot_sector(&format!("{PROBE_MARKER}\r\n"), Action::DebugExit(0x10)) {
        Ok(s) => s,
        Err(e) => return (ConcreteAccel::Tcg, format!("probe: {e}; using tcg")),
    };
    // 1 MiB: SeaBIOS's AHCI driver (q35) cannot read a 64 KiB disk.
    let disk = dir.path().join("probe.raw");
    let written = std::fs::write(&disk, sector).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&disk)?
            .set_len(1 << 20)
    });
    if let Err(e) = written {
        return (ConcreteAccel::Tcg, format!("probe: {e}; using tcg"));
    }
    let spec = BootSpec {
        argv: probe_argv(target, &disk),
        phase: "kvm-probe".into(),
        timeout: Duration::from_secs(20),
        accel: match accel {
            ConcreteAccel::Kvm => Accel::Kvm,
            ConcreteAccel::Tcg => Accel::Tcg,
        },
        out_dir: dir.path().to_path_buf(),
        cwd: None,
        markers: vec![CustomMarker {
            kind: MarkerKind::Success,
            text: PROBE_MARKER.into(),
        }],
        firmware_log: false,
        screen_text: false,
        write_disks: false,
        follow_reboots: false,
        powerdown_grace: None,
        echo_serial: None,
    };
    let mut notes = Vec::new();
    let n = accel.name();
    match boot_with(&spec, accel, &mut notes) {
        Ok(r) if r.ok => (
            accel,
            format!("{n} probe boot on {on} succeeded; using {n}"),
        ),
        Ok(r) => (
            ConcreteAccel::Tcg,
            format!("{n} probe boot on {on} failed ({}); using tcg", r.reason),
        ),
        Err(e) => (
            ConcreteAccel::Tcg,
            format!("{n} probe on {on} could not run ({e}); using tcg"),
        ),
    }
}
