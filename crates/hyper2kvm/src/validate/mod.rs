//! Validation by booting: run a migrated VM under QEMU on throw-away disk
//! overlays, watch its consoles and QMP events, and say precisely whether
//! and how it booted.
//!
//! # One boot: [`boot`]
//!
//! The caller gives a [`BootSpec`]: a QEMU argv (program first; disks as
//! `-drive` with `format=` or `-blockdev`, *without* serial, QMP, monitor
//! or display options), a phase name, a time limit, an accelerator and an
//! output directory.
//!
//! The disks are never written (validation must not change the migration
//! result): [`boot`] creates a private directory
//! `<out>/.<phase>-overlays-XXXX`, puts an empty qcow2 overlay
//! `ovl-N.qcow2` there over every writable disk (backing file: the disk's
//! absolute path, backing format: the drive's `format=` or the node's
//! `driver`) and rewrites the `-drive` / `-blockdev` to boot from it;
//! read-only disks and CD-ROMs stay as they are (CD-ROMs forced
//! read-only). A writable disk that cannot be protected this way (no
//! `format=`, not a host file, `-hda`-style options, options such as
//! `offset=` that an overlay would not carry) is refused with an error.
//! The directory is deleted after QEMU has exited. A caller's `-snapshot`
//! is dropped. [`boot`] then appends:
//!
//! * `-display none -monitor none`;
//! * `-action reboot=shutdown,shutdown=pause,panic=pause` — a reboot, a
//!   power-off or a panic pauses the VM so its last screen can be captured;
//! * `-accel kvm|tcg` (`-cpu host` becomes `-cpu max` under TCG);
//! * `-serial file:<out>/<phase>-serial.log`;
//! * `-chardev file,id=h2kfw,path=<out>/<phase>-firmware.log
//!   -device isa-debugcon,iobase=0x402,chardev=h2kfw` — SeaBIOS's own log
//!   (`No bootable device`, `Boot failed: ...`);
//! * `-qmp unix:<private tmp socket>,server=on,wait=off`.
//!
//! It then follows the serial and firmware logs, reads the VGA text screen
//! (guest memory at 0xB8000, through QMP `pmemsave`) every two seconds —
//! this is where boot-sector messages such as `NTLDR is missing` appear —
//! and collects QMP events (`GUEST_PANICKED`, `SHUTDOWN`, `RESET`, `STOP`).
//! It stops at the first success marker; at a failure marker, panic,
//! reset or power-off (after a 2 s settle period that gathers context); when
//! QEMU exits; or at the time limit. Then it saves `<out>/<phase>-screen.png`
//! (QMP `screendump`, PNG), sends `quit`, and reaps QEMU; a guard kills it
//! on every error path. QEMU's own output goes to `<out>/<phase>-qemu.log`.
//!
//! Three options serve a boot that is part of the migration rather than a
//! check of it (`migrate --first-boot`): [`BootSpec::write_disks`] boots
//! the disks themselves (no overlays), [`BootSpec::follow_reboots`] makes a
//! guest reboot a reset the watch follows (`-action reboot=reset`; more
//! than [`MAX_FOLLOWED_RESETS`] resets are a reboot loop), and
//! [`BootSpec::powerdown_grace`] asks the guest to power off (ACPI
//! `system_powerdown`) and waits that long before the `quit`.
//!
//! The verdict is a [`BootOutcome`] plus a one-line reason; the rules are
//! the data table [`markers::MARKERS`] and the bugcheck table
//! [`bugcheck::BUGCHECKS`].
//!
//! # A migration output directory: [`validate_dir`] (`hyper2kvm validate DIR`)
//!
//! File contract with `hyper2kvm migrate`:
//!
//! * input `DIR/<vmname>-<phase>.argv.json` — one per VM and phase
//!   (`bootstrap`, `final`): a JSON array of strings, the QEMU argv
//!   starting with the program name (`qemu-system-x86_64`), disks given
//!   with `-drive` or `-blockdev` (the domain writer's own argv), no
//!   serial/QMP/monitor/display/accel options. Relative paths in it are
//!   relative to `DIR` (QEMU runs with `DIR` as its working directory).
//! * input, optional, `DIR/validate.json`:
//!   `{"success_markers": ["..."], "failure_markers": ["..."],
//!   "timeout_seconds": 600}` — extra serial/screen substrings that mean
//!   success or failure, and a default time limit.
//! * output `DIR/validation-<phase>.json` — the [`BootReport`] (JSON), with
//!   `ok`, `outcome` (tagged by `kind`), `reason`, `seconds`, the last
//!   serial and firmware lines, screen text, QMP events and artefact paths.
//! * output artefacts in `DIR/validation/`: `<phase>-serial.log`,
//!   `<phase>-firmware.log`, `<phase>-qemu.log`, `<phase>-screen.png`
//!   (the overlays live there during the boot only).
//!
//! A directory holds one VM; with several `<vmname>`s the caller must pick
//! one (`--vm`).

pub mod accel;
mod argv;
pub mod bootsector;
pub mod bugcheck;
pub mod classify;
mod dir;
mod disks;
pub mod markers;
pub mod qmp;
mod runner;

pub use accel::{probe_kvm, probe_kvm_for, resolve_accel, ConcreteAccel, ProbeTarget};
pub use classify::BootOutcome;
pub use dir::{
    find_phases, read_argv, read_config, validate_dir, DirOptions, DirResult, PhaseFile,
    ValidateConfig,
};
pub use markers::{CustomMarker, MarkerKind, Source};
pub use runner::{boot, vga_text_lines};

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which accelerator to boot with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Probe KVM with a tiny boot on the same machine type and CPU model;
    /// use TCG if it is absent or misbehaves, or if QEMU then dies under
    /// KVM before the guest printed anything (one retry, noted).
    Auto,
    /// KVM, no probe.
    Kvm,
    /// TCG (software emulation): slow but always works.
    Tcg,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Accel, String> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => Err(format!("accel must be auto, kvm or tcg, not {s:?}")),
        }
    }
}

/// What to boot and how.
#[derive(Clone, Debug)]
pub struct BootSpec {
    /// QEMU argv, program first, without serial/QMP/monitor/display
    /// options; disks as `-drive` (with `format=`) or `-blockdev`.
    pub argv: Vec<String>,
    /// Phase name (`bootstrap`, `final`): prefixes the artefact names.
    pub phase: String,
    /// Time limit for reaching a verdict.
    pub timeout: Duration,
    /// Accelerator.
    pub accel: Accel,
    /// Where the logs and the screenshot go (created if missing).
    pub out_dir: PathBuf,
    /// Working directory for QEMU (relative paths in `argv`).
    pub cwd: Option<PathBuf>,
    /// Extra markers (checked before the built-in table).
    pub markers: Vec<CustomMarker>,
    /// Capture SeaBIOS's debug port 0x402 into `<phase>-firmware.log`.
    pub firmware_log: bool,
    /// Read the VGA text screen while the guest runs.
    pub screen_text: bool,
    /// Boot the disks themselves instead of throw-away overlays: what the
    /// guest writes stays. Only for a boot that is part of the migration
    /// (the unattended first boot), never for validation.
    pub write_disks: bool,
    /// A guest reboot resets the VM and the watch goes on
    /// (`-action reboot=reset`): a reset is then not decisive, unless the
    /// guest resets more than [`MAX_FOLLOWED_RESETS`] times (a reboot
    /// loop).
    pub follow_reboots: bool,
    /// At the verdict, if QEMU still runs, ask the guest to power off
    /// (ACPI `system_powerdown` over QMP) and wait up to this long for it
    /// before `quit`. `None`: `quit` at once.
    pub powerdown_grace: Option<Duration>,
    /// Serial lines containing this text are printed to stderr as they
    /// arrive (progress for an admin watching the command).
    pub echo_serial: Option<String>,
}

/// Resets a [`BootSpec::follow_reboots`] boot tolerates before the resets
/// count as a failure (a reboot loop).
pub const MAX_FOLLOWED_RESETS: usize = 5;

impl BootSpec {
    /// A spec with defaults: 300 s, `auto` accelerator, firmware log and
    /// screen text on, no extra markers, disks on overlays, a reboot ends
    /// the watch, `quit` at the verdict, nothing echoed.
    pub fn new(argv: Vec<String>, phase: &str, out_dir: &Path) -> BootSpec {
        BootSpec {
            argv,
            phase: phase.to_string(),
            timeout: Duration::from_secs(300),
            accel: Accel::Auto,
            out_dir: out_dir.to_path_buf(),
            cwd: None,
            markers: Vec::new(),
            firmware_log: true,
            screen_text: true,
            write_disks: false,
            follow_reboots: false,
            powerdown_grace: None,
            echo_serial: None,
        }
    }
}

/// The result of one boot; written as `validation-<phase>.json`.
#[derive(Clone, Debug, Serialize)]
pub struct BootReport {
    /// Phase name.
    pub phase: String,
    /// True when the outcome is a success.
    pub ok: bool,
    /// How the boot ended.
    pub outcome: BootOutcome,
    /// One line for humans.
    pub reason: String,
    /// Accelerator actually used.
    pub accel: String,
    /// Wall-clock seconds from QEMU start to the verdict.
    pub seconds: f64,
    /// Milestones seen, in order (`firmware`, `bootloader`, `kernel`, ...).
    pub progress: Vec<String>,
    /// Every marker match.
    pub hits: Vec<markers::Hit>,
    /// QMP events.
    pub events: Vec<qmp::Event>,
    /// Last lines of the serial console.
    pub last_serial_lines: Vec<String>,
    /// Last lines of the firmware debug log.
    pub last_firmware_lines: Vec<String>,
    /// Text on the VGA screen at the end (empty in graphics mode).
    pub screen_text: Vec<String>,
    /// The PNG screendump, if one was taken.
    pub screenshot: Option<PathBuf>,
    /// Serial log file.
    pub serial_log: PathBuf,
    /// Firmware log file.
    pub firmware_log: Option<PathBuf>,
    /// QEMU's stdout/stderr.
    pub qemu_log: PathBuf,
    /// The exact argv run.
    pub argv: Vec<String>,
    /// How things were decided (accelerator probe, argv changes, ...).
    pub notes: Vec<String>,
    /// How QEMU was stopped after the verdict when a power-off was asked
    /// for ([`BootSpec::powerdown_grace`]): whether the guest powered off
    /// by itself within the grace period.
    pub powerdown: Option<String>,
}

/// Validation failure (not a failed boot: that is a [`BootReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The spec or input files are unusable.
    #[error("{0}")]
    Spec(String),
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl ValidateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ValidateError {
        ValidateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
