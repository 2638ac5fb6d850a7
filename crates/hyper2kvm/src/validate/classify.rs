//! Turning what was observed during a boot (marker hits, QMP events, QEMU's
//! exit, the clock) into one [`BootOutcome`] and a one-line reason. Pure:
//! no processes, so every precedence rule is unit-tested.

use super::bugcheck::{decode_panic, PanicInfo};
use super::markers::{Hit, MarkerKind, Source};
use super::qmp::Event;
use serde::Serialize;

/// How the boot ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootOutcome {
    /// A success marker was seen.
    Success {
        /// Marker id (`login_prompt`, `marker`).
        marker: String,
        /// The matching line.
        line: String,
    },
    /// A named failure was seen on a console.
    Failure {
        /// Marker id (`no_bootable_device`, `root_device_missing`, ...).
        id: String,
        /// The matching line.
        line: String,
        /// Which console showed it.
        source: Source,
    },
    /// QEMU reported `GUEST_PANICKED`.
    GuestPanic {
        /// The decoded event.
        panic: PanicInfo,
    },
    /// The guest reset itself (reboot or triple fault) before success.
    GuestReset,
    /// The guest powered off before success.
    GuestShutdown,
    /// QEMU exited by itself (bad arguments, missing file, crash).
    QemuExited {
        /// Exit status, if it exited normally.
        status: Option<i32>,
        /// Last lines of QEMU's stderr.
        stderr: String,
    },
    /// Nothing decisive within the time limit.
    Timeout {
        /// Last serial line, or None if the serial console stayed silent.
        last_serial_line: Option<String>,
        /// Last firmware (SeaBIOS debug port) line.
        last_firmware_line: Option<String>,
        /// Whether the serial console was still printing near the end
        /// (a slow boot rather than a hang).
        still_printing: bool,
    },
}

impl BootOutcome {
    /// True for [`BootOutcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, BootOutcome::Success { .. })
    }
}

/// Everything the classifier looks at.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Marker hits in the order seen.
    pub hits: Vec<Hit>,
    /// QMP events in the order received.
    pub events: Vec<Event>,
    /// QEMU exited on its own with this status (`Some(None)`: killed by a
    /// signal).
    pub exited: Option<Option<i32>>,
    /// QEMU's stderr tail.
    pub stderr_tail: String,
    /// The time limit was reached.
    pub timed_out: bool,
    /// The time limit in seconds.
    pub timeout_secs: f64,
    /// Last non-empty serial line.
    pub last_serial_line: Option<String>,
    /// Last non-empty firmware line.
    pub last_firmware_line: Option<String>,
    /// Seconds between the last serial output and the end.
    pub serial_quiet_secs: Option<f64>,
}

/// The first decisive item, what ends the watch loop: a success or
/// failure hit, a panic, shutdown or reset event.
pub fn decisive(obs: &Observations) -> bool {
    obs.hits
        .iter()
        .any(|h| matches!(h.kind, MarkerKind::Success | MarkerKind::Failure))
        || obs
            .events
            .iter()
            .any(|e| matches!(e.name.as_str(), "GUEST_PANICKED" | "SHUTDOWN" | "RESET"))
}

fn hint_suffix(obs: &Observations) -> String {
    let mut hints: Vec<&str> = Vec::new();
    for h in &obs.hits {
        if h.kind == MarkerKind::Hint && !hints.contains(&h.line.as_str()) {
            hints.push(&h.line);
        }
    }
    if hints.is_empty() {
        String::new()
    } else {
        format!(" [also: {}]", hints.join("; "))
    }
}

fn progress_suffix(obs: &Observations) -> String {
    let mut ids: Vec<&str> = Vec::new();
    for h in &obs.hits {
        if h.kind == MarkerKind::Progress && !ids.contains(&h.id.as_str()) {
            ids.push(&h.id);
        }
    }
    match ids.last() {
        Some(last) => format!(" (got as far as: {last})"),
        None => String::new(),
    }
}

/// Marker ids that are findings even in a successful boot: a step of the
/// Windows first-boot runner that gave up (the boot went on without it).
pub const FINDINGS: &[&str] = &["firstboot_step_failed"];

/// The lines of the findings seen ([`FINDINGS`]), each once, in order.
pub fn findings(obs: &Observations) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in &obs.hits {
        if FINDINGS.contains(&h.id.as_str()) && !out.contains(&h.line) {
            out.push(h.line.clone());
        }
    }
    out
}

/// Decide the outcome. Precedence: the first decisive marker if it is a
/// success; otherwise a Hyper-V panic (its bugcheck is the most precise
/// thing we can have); otherwise the highest-ranked failure marker; then
/// any other panic, reset, shutdown, QEMU exit; else a timeout.
pub fn classify(obs: &Observations) -> (BootOutcome, String) {
    let first_decisive = obs
        .hits
        .iter()
        .find(|h| matches!(h.kind, MarkerKind::Success | MarkerKind::Failure));
    if let Some(h) = first_decisive.filter(|h| h.kind == MarkerKind::Success) {
        let mut reason = format!("success: {} ({:?})", h.reason, h.line);
        let findings = findings(obs);
        if !findings.is_empty() {
            reason.push_str(&format!(" [findings: {}]", findings.join("; ")));
        }
        return (
            BootOutcome::Success {
                marker: h.id.clone(),
                line: h.line.clone(),
            },
            reason,
        );
    }
    let panics: Vec<PanicInfo> = obs
        .events
        .iter()
        .filter(|e| e.name == "GUEST_PANICKED")
        .map(|e| decode_panic(&e.data))
        .collect();
    if let Some(p) = panics.iter().find(|p| p.bugcheck.is_some()) {
        return (
            BootOutcome::GuestPanic { panic: p.clone() },
            format!("guest panic: {}", p.describe()),
        );
    }
    // Highest rank; the earliest among equals.
    let mut best: Option<&Hit> = None;
    for h in obs.hits.iter().filter(|h| h.kind == MarkerKind::Failure) {
        if best.is_none_or(|b| h.rank > b.rank) {
            best = Some(h);
        }
    }
    if let Some(h) = best {
        let mut reason = format!("{}: {} ({:?})", h.id, h.reason, h.line);
        reason.push_str(&hint_suffix(obs));
        if !panics.is_empty() {
            reason.push_str(" [guest panic event]");
        }
        return (
            BootOutcome::Failure {
                id: h.id.clone(),
                line: h.line.clone(),
                source: h.source,
            },
            reason,
        );
    }
    if let Some(p) = panics.first() {
        return (
            BootOutcome::GuestPanic { panic: p.clone() },
            format!(
                "guest panic: {}{}{}",
                p.describe(),
                hint_suffix(obs),
                progress_suffix(obs)
            ),
        );
    }
    for e in &obs.events {
        let reason = e.data.get("reason").and_then(|r| r.as_str()).unwrap_or("");
        if e.name == "RESET" || (e.name == "SHUTDOWN" && reason == "guest-reset") {
            return (
                BootOutcome::GuestReset,
                format!(
                    "guest reset itself before reaching a success marker (reboot loop or triple fault){}{}",
                    hint_suffix(obs),
                    progress_suffix(obs)
                ),
            );
        }
        if e.name == "SHUTDOWN" && reason.starts_with("guest") {
            return (
                BootOutcome::GuestShutdown,
                format!(
                    "guest powered off ({reason}) before reaching a success marker{}{}",
                    hint_suffix(obs),
                    progress_suffix(obs)
                ),
            );
        }
    }
    if let Some(status) = obs.exited {
        let tail = obs.stderr_tail.trim();
        let last = tail.lines().last().unwrap_or("").to_string();
        let how = match status {
            Some(c) => format!("status {c}"),
            None => "a signal".to_string(),
        };
        return (
            BootOutcome::QemuExited {
                status,
                stderr: tail.to_string(),
            },
            format!(
                "QEMU exited with {how} before a verdict{}{}",
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                },
                hint_suffix(obs)
            ),
        );
    }
    let still_printing = obs
        .serial_quiet_secs
        .is_some_and(|q| q < (obs.timeout_secs / 10.0).clamp(2.0, 15.0));
    let mut reason = format!("timeout after {:.0} s: ", obs.timeout_secs);
    match &obs.last_serial_line {
        None => {
            reason.push_str("no output at all on the serial console");
            if let Some(f) = &obs.last_firmware_line {
                reason.push_str(&format!(" (firmware log ends with {f:?})"));
            }
        }
        Some(l) if still_printing => {
            reason.push_str(&format!("still printing, last line {l:?} (slow boot?)"))
        }
        Some(l) => reason.push_str(&format!("serial output stopped at {l:?}")),
    }
    reason.push_str(&hint_suffix(obs));
    reason.push_str(&progress_suffix(obs));
    (
        BootOutcome::Timeout {
            last_serial_line: obs.last_serial_line.clone(),
            last_firmware_line: obs.last_firmware_line.clone(),
            still_printing,
        },
        reason,
    )
}
