//! `migrate --first-boot`: the unattended bootstrap boot of a fixed
//! Windows guest. Once the outputs and domains are in place, the
//! bootstrap domain is booted headless — its own QEMU argv
//! (`<vm>-bootstrap.argv.json`, driver CD included) through the validation
//! runner ([`crate::validate::boot`]), so the command line is the one
//! `validate --phase bootstrap` uses — but on the output disks themselves
//! (the runner's work must stay), following guest reboots, with KVM where
//! the probe says it works and TCG otherwise. The runner's COM1 lines
//! (`hyper2kvm-firstboot: …`) are echoed to stderr as they arrive.
//!
//! The boot ends with success at `hyper2kvm-firstboot: bootstrap done`,
//! with failure at a required step that gave up, a decoded bugcheck, a
//! reboot loop or the time limit. Either way the guest is then asked to
//! power off (ACPI `system_powerdown` over QMP), given a grace period,
//! and QEMU is told to `quit`. The result goes to `report.json`
//! (`first_boot`); the artefacts (serial log, QEMU log, screenshot) to
//! `DIR/first-boot/`.

use super::{Options, Plan, Report};
use crate::validate::markers::{clean_line, CustomMarker, MarkerKind};
use crate::validate::{self, BootOutcome, BootSpec};
use anyhow::{bail, Context, Result};
use guest::windows::firstboot::script::PREFIX;
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The runner's line that ends its bootstrap phase (also with
/// ` failed: <optional steps>` after it).
pub const BOOTSTRAP_DONE: &str = "hyper2kvm-firstboot: bootstrap done";
/// Phase name of the boot (artefact prefix, argv file suffix).
pub const PHASE: &str = "bootstrap";
/// Directory under `DIR` for the boot's artefacts.
pub const ARTEFACT_DIR: &str = "first-boot";
/// Most bytes of the serial log read back for the runner's lines.
const MAX_SERIAL: u64 = 4 << 20;

/// How the unattended bootstrap boot runs.
#[derive(Debug, Clone)]
pub struct FirstBootSettings {
    /// Time limit for the runner to report its bootstrap phase done.
    pub timeout: Duration,
    /// After the verdict: how long the guest gets to power off after the
    /// ACPI power button before QEMU is told to quit.
    pub grace: Duration,
}

/// The result of the unattended bootstrap boot (`report.json`'s
/// `first_boot`).
#[derive(Debug, Clone, Serialize)]
pub struct FirstBootResult {
    /// The domain booted (`bootstrap`).
    pub phase: String,
    /// The runner reported its bootstrap phase done.
    pub ok: bool,
    /// `done`, `step-failed`, `bugcheck`, `timeout` or `failed` (anything
    /// else: see `boot`).
    pub outcome: String,
    /// One line for humans.
    pub reason: String,
    /// The runner's COM1 lines, in order.
    pub lines: Vec<String>,
    /// Wall-clock seconds of the boot.
    pub seconds: f64,
    /// Accelerator used.
    pub accel: String,
    /// The serial log.
    pub serial_log: PathBuf,
    /// How the guest was stopped.
    pub shutdown: Option<String>,
    /// The boot's classification as `validate` reports it.
    pub boot: BootOutcome,
}

/// Whether the plan holds the Windows first-boot runner.
pub fn runner_planned(plan: &Plan) -> bool {
    plan.actions
        .iter()
        .any(|a| a.fixer == guest::windows::firstboot::FIXER)
}

/// Refuse `--first-boot` before anything is converted when there is no
/// runner to boot (no Windows install was fixed).
pub fn check(o: &Options, plan: &Plan) -> Result<()> {
    if o.first_boot.is_some() && !runner_planned(plan) {
        bail!(
            "--first-boot: no Windows first-boot runner is planned for this VM (it runs only \
             for a Windows install fixed with --virtio-win media); nothing was converted"
        );
    }
    Ok(())
}

/// The boot's outcome in one word.
fn outcome_word(o: &BootOutcome) -> &'static str {
    match o {
        BootOutcome::Success { .. } => "done",
        BootOutcome::Failure { id, .. } if id.starts_with("firstboot_") => "step-failed",
        BootOutcome::GuestPanic { panic } if panic.bugcheck.is_some() => "bugcheck",
        BootOutcome::Timeout { .. } => "timeout",
        _ => "failed",
    }
}

/// The runner's lines in the serial log (its last [`MAX_SERIAL`] bytes).
fn runner_lines(serial_log: &Path) -> Result<Vec<String>> {
    let mut f = std::fs::File::open(serial_log)
        .with_context(|| format!("reading the serial log {}", serial_log.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading the serial log {}", serial_log.display()))?
        .len();
    f.seek(SeekFrom::Start(len.saturating_sub(MAX_SERIAL)))
        .with_context(|| format!("reading the serial log {}", serial_log.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_SERIAL)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading the serial log {}", serial_log.display()))?;
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .map(clean_line)
        .filter(|l| l.contains(PREFIX))
        .collect())
}

/// The boot's spec: the bootstrap domain's argv on the disks themselves,
/// following reboots, success at [`BOOTSTRAP_DONE`], power-off at the end.
fn spec(o: &Options, s: &FirstBootSettings, argv: Vec<String>) -> Result<BootSpec> {
    let mut spec = BootSpec::new(argv, PHASE, &o.out.join(ARTEFACT_DIR));
    spec.timeout = s.timeout;
    spec.accel = o.accel.parse().map_err(anyhow::Error::msg)?;
    spec.cwd = Some(o.out.clone());
    spec.markers = vec![CustomMarker {
        kind: MarkerKind::Success,
        text: BOOTSTRAP_DONE.into(),
    }];
    spec.write_disks = true;
    spec.follow_reboots = true;
    spec.powerdown_grace = Some(s.grace);
    spec.echo_serial = Some(PREFIX.into());
    Ok(spec)
}

/// Boot the bootstrap domain of VM `name` until its runner reports the
/// bootstrap phase done; record the result in `report`. A failed boot is
/// an error naming the kind of failure and the serial log.
pub fn run(o: &Options, name: &str, report: &mut Report) -> Result<()> {
    let Some(settings) = &o.first_boot else {
        return Ok(());
    };
    let argv_file = o.out.join(format!("{name}-{PHASE}.argv.json"));
    let argv = validate::read_argv(&argv_file)?;
    let spec = spec(o, settings, argv)?;
    eprintln!(
        "first boot: starting the {PHASE} domain headless (up to {} s); the runner's lines follow",
        settings.timeout.as_secs()
    );
    let r = validate::boot(&spec)
        .with_context(|| format!("first boot of the {PHASE} domain ({})", argv_file.display()))?;
    let result = FirstBootResult {
        phase: PHASE.into(),
        ok: r.ok,
        outcome: outcome_word(&r.outcome).into(),
        reason: r.reason.clone(),
        lines: runner_lines(&r.serial_log)?,
        seconds: r.seconds,
        accel: r.accel.clone(),
        serial_log: r.serial_log.clone(),
        shutdown: r.powerdown.clone(),
        boot: r.outcome.clone(),
    };
    eprintln!(
        "first boot: {} after {:.0} s under {}{}",
        if result.ok {
            "bootstrap phase done"
        } else {
            "FAILED"
        },
        result.seconds,
        result.accel,
        result
            .shutdown
            .as_deref()
            .map(|s| format!("; {s}"))
            .unwrap_or_default()
    );
    let ok = result.ok;
    let (word, reason, log) = (
        result.outcome.clone(),
        result.reason.clone(),
        result.serial_log.clone(),
    );
    report.first_boot = Some(result);
    if !ok {
        report.success = false;
        bail!(
            "first boot of the {PHASE} domain failed ({word}): {reason}; serial log: {}",
            log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::bugcheck::decode_panic;
    use crate::validate::markers::Source;
    use serde_json::json;

    #[test]
    fn outcomes_are_named_by_kind() {
        let panic = |info| BootOutcome::GuestPanic {
            panic: decode_panic(&info),
        };
        let failure = |id: &str| BootOutcome::Failure {
            id: id.into(),
            line: String::new(),
            source: Source::Serial,
        };
        let cases = [
            (
                BootOutcome::Success {
                    marker: "marker".into(),
                    line: BOOTSTRAP_DONE.into(),
                },
                "done",
            ),
            (failure("firstboot_required_failed"), "step-failed"),
            (failure("no_bootable_device"), "failed"),
            (
                panic(json!({"action": "pause", "info": {"type": "hyper-v",
                    "arg1": 0x7b, "arg2": 0, "arg3": 0, "arg4": 0, "arg5": 0}})),
                "bugcheck",
            ),
            (panic(json!({"action": "pause"})), "failed"),
            (BootOutcome::GuestReset, "failed"),
            (
                BootOutcome::Timeout {
                    last_serial_line: None,
                    last_firmware_line: None,
                    still_printing: false,
                },
                "timeout",
            ),
        ];
        for (o, want) in cases {
            assert_eq!(outcome_word(&o), want, "{o:?}");
        }
    }
}
