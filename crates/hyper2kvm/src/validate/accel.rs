//! Accelerator choice. `auto` probes KVM with a real (tiny) boot, because
//! `/dev/kvm` existing proves little: under a nested hypervisor KVM may
//! open fine and still crash or hang real guests. A probe that crashes,
//! times out or misbehaves in any way means "KVM unusable": fall back to
//! TCG. The probe result is cached for the life of the process.

use super::bootsector::{serial_boot_sector, Action};
use super::markers::{CustomMarker, MarkerKind};
use super::runner::boot_with;
use super::{Accel, BootSpec};
use std::sync::OnceLock;
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

static PROBE: OnceLock<(ConcreteAccel, String)> = OnceLock::new();

/// Turn a requested accelerator into a concrete one, with notes on how it
/// was chosen.
pub fn resolve_accel(accel: Accel) -> (ConcreteAccel, Vec<String>) {
    match accel {
        Accel::Kvm => (ConcreteAccel::Kvm, Vec::new()),
        Accel::Tcg => (ConcreteAccel::Tcg, Vec::new()),
        Accel::Auto => {
            let (a, why) = PROBE.get_or_init(probe_kvm);
            (*a, vec![format!("accel auto: {why}")])
        }
    }
}

/// Probe KVM: open `/dev/kvm`, then boot a 512-byte sector under
/// `-accel kvm` that prints [`PROBE_MARKER`] on COM1 and exits QEMU
/// through `isa-debug-exit`. KVM is usable only if the marker shows up.
pub fn probe_kvm() -> (ConcreteAccel, String) {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
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
    let disk = dir.path().join("probe.raw");
    let mut img = vec![0u8; 64 * 1024];
    img[..512].copy_from_slice(&sector);
    if let Err(e) = std::fs::write(&disk, &img) {
        return (ConcreteAccel::Tcg, format!("probe: {e}; using tcg"));
    }
    let spec = BootSpec {
        argv: vec![
            "qemu-system-x86_64".into(),
            "-machine".into(),
            "pc".into(),
            "-m".into(),
            "32".into(),
            "-drive".into(),
            format!("file={},format=raw,if=ide", disk.display()),
            "-device".into(),
            "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
            "-nic".into(),
            "none".into(),
        ],
        phase: "kvm-probe".into(),
        timeout: Duration::from_secs(20),
        accel: Accel::Kvm,
        out_dir: dir.path().to_path_buf(),
        cwd: None,
        markers: vec![CustomMarker {
            kind: MarkerKind::Success,
            text: PROBE_MARKER.into(),
        }],
        firmware_log: false,
        screen_text: false,
    };
    let mut notes = Vec::new();
    match boot_with(&spec, ConcreteAccel::Kvm, &mut notes) {
        Ok(r) if r.ok => (
            ConcreteAccel::Kvm,
            "KVM probe boot succeeded; using kvm".into(),
        ),
        Ok(r) => (
            ConcreteAccel::Tcg,
            format!("KVM probe boot failed ({}); using tcg", r.reason),
        ),
        Err(e) => (
            ConcreteAccel::Tcg,
            format!("KVM probe could not run ({e}); using tcg"),
        ),
    }
}
