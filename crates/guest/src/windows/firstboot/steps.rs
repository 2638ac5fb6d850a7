//! The runner's step list as data, and the bounded-retry rule the
//! generated script follows, modelled as pure functions so it can be tested
//! without Windows.
//!
//! A [`Step`] is run by the script's `:run` subroutine: it skips a step
//! already `ok` or given up, otherwise counts an attempt in
//! `HKLM\SOFTWARE\hyper2kvm\FirstBoot\Steps\<id>` (`Attempts`, before the
//! step runs, so a crash or power loss during the step counts too), runs
//! it, and maps its exit code: one of [`Step::ok_codes`] is `ok`, one of
//! [`Step::reboot_codes`] is `ok` with a reboot wanted, anything else a
//! failed attempt, retried after a pause until [`Step::max_attempts`]
//! attempts were made; then the step is recorded `gaveup` and skipped from
//! then on. [`decide`] and [`record`] are that rule.

use crate::inspect::WindowsInstall;

/// The boot a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The first boot on the bootstrap domain (old disk bus): install
    /// drivers, retire the old hypervisor's tools.
    Bootstrap,
    /// The first boot on virtio (final domain): network, checks, cleanup.
    Final,
}

impl Phase {
    /// `bootstrap` / `final`, as written to COM1 and the plan.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Bootstrap => "bootstrap",
            Phase::Final => "final",
        }
    }
}

/// Attempts a step gets unless it says otherwise.
pub const MAX_ATTEMPTS: u32 = 3;

/// Exit codes meaning "done, reboot wanted" (ERROR_SUCCESS_REBOOT_REQUIRED,
/// ERROR_SUCCESS_REBOOT_INITIATED).
pub const REBOOT_CODES: &[i32] = &[3010, 1641];

/// One step of the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Stable id, `[a-z0-9-]` (registry key name and cmd label).
    pub id: String,
    /// Which boot runs it.
    pub phase: Phase,
    /// A required step that gives up is reported as a failure of the
    /// migration (`failed gave-up required`); an optional one only as a
    /// finding. Neither blocks the steps after it.
    pub required: bool,
    /// Attempts before giving up (at least 1).
    pub max_attempts: u32,
    /// Exit codes meaning success.
    pub ok_codes: Vec<i32>,
    /// Exit codes meaning success with a reboot wanted.
    pub reboot_codes: Vec<i32>,
    /// cmd lines; the step's result is the exit code of the first line
    /// that does not return 0, else 0.
    pub commands: Vec<String>,
    /// One line: what the step is for (a comment in the script, the
    /// plan's reason).
    pub what: String,
}

impl Step {
    /// A step with the default attempts and exit codes.
    pub fn new(id: &str, phase: Phase, required: bool, what: &str, commands: Vec<String>) -> Step {
        Step {
            id: id.to_string(),
            phase,
            required,
            max_attempts: MAX_ATTEMPTS,
            ok_codes: vec![0],
            reboot_codes: REBOOT_CODES.to_vec(),
            commands,
            what: what.to_string(),
        }
    }

    /// The cmd label of the step's body.
    pub fn label(&self) -> String {
        format!("s_{}", self.id.replace('-', "_"))
    }
}

/// What the runner has recorded for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Not finished (never run, or failed attempts left).
    #[default]
    Pending,
    /// Succeeded.
    Ok,
    /// Failed [`Step::max_attempts`] times: skipped from now on.
    GaveUp,
}

/// A step's persisted state (`Attempts`, `State` under its registry key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepState {
    /// Attempts started so far (across boots).
    pub attempts: u32,
    /// Recorded status.
    pub status: Status,
}

/// What the runner does with a step now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: done or given up before.
    Skip,
    /// Attempts are used up: record `gaveup`, report, go on.
    GiveUp,
    /// Run attempt number `n` (1-based), counted before it runs.
    Run(u32),
}

/// The script's `:run` decision for a step in `state`.
pub fn decide(step: &Step, state: StepState) -> Decision {
    match state.status {
        Status::Ok | Status::GaveUp => Decision::Skip,
        Status::Pending if state.attempts >= step.max_attempts.max(1) => Decision::GiveUp,
        Status::Pending => Decision::Run(state.attempts + 1),
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code among the ok codes.
    Ok,
    /// Exit code among the reboot codes.
    OkReboot,
    /// Anything else.
    Failed,
}

/// Classify an exit code the way the script does.
pub fn outcome(step: &Step, code: i32) -> Outcome {
    if step.ok_codes.contains(&code) {
        Outcome::Ok
    } else if step.reboot_codes.contains(&code) {
        Outcome::OkReboot
    } else {
        Outcome::Failed
    }
}

/// The state after attempt `Decision::Run(n)` exited with `code`.
pub fn record(step: &Step, state: StepState, code: i32) -> StepState {
    let attempts = state.attempts + 1;
    match outcome(step, code) {
        Outcome::Ok | Outcome::OkReboot => StepState {
            attempts,
            status: Status::Ok,
        },
        Outcome::Failed => StepState {
            attempts,
            status: Status::Pending,
        },
    }
}

/// Run a step as the script does within one boot: attempts until it
/// succeeds or gives up, each attempt's exit code taken from `codes` (an
/// exhausted iterator means the boot ended, e.g. a power loss: the state
/// is what was persisted so far). Returns the final state and the exit
/// codes consumed.
pub fn simulate_boot(
    step: &Step,
    mut state: StepState,
    codes: &mut dyn Iterator<Item = i32>,
) -> (StepState, Vec<i32>) {
    let mut used = Vec::new();
    loop {
        match decide(step, state) {
            Decision::Skip => return (state, used),
            Decision::GiveUp => {
                state.status = Status::GaveUp;
                return (state, used);
            }
            Decision::Run(_) => {
                let Some(code) = codes.next() else {
                    // counted before running: a lost boot still used it
                    state.attempts += 1;
                    return (state, used);
                };
                used.push(code);
                state = record(step, state, code);
                if state.status == Status::Ok {
                    return (state, used);
                }
            }
        }
    }
}

/// How this Windows version installs a staged driver package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PnpUtil {
    /// No pnputil (XP, Server 2003): Plug and Play finds the package
    /// through `DevicePath`.
    None,
    /// `pnputil.exe -i -a <inf>` (Vista/2008 through 8.1/2012 R2, and
    /// Windows 10 before 1607).
    Legacy,
    /// `pnputil.exe /add-driver <inf> /install` (Windows 10 1607 / Server
    /// 2016 and later).
    AddDriver,
}

/// First build of Windows 10 / Server 2016 whose pnputil documents
/// `/add-driver` (1607). Earlier Windows 10 builds keep the legacy syntax,
/// which every Windows 10 pnputil still accepts.
pub const ADD_DRIVER_BUILD: u32 = 14393;

impl PnpUtil {
    /// For an install.
    pub fn of(install: &WindowsInstall) -> PnpUtil {
        match (install.major, install.minor) {
            (..=5, _) => PnpUtil::None,
            (6, _) => PnpUtil::Legacy,
            _ if install.build != 0 && install.build < ADD_DRIVER_BUILD => PnpUtil::Legacy,
            _ => PnpUtil::AddDriver,
        }
    }

    /// The command installing `inf` (a path the script can use, quoted
    /// here), or `None` when this version has no pnputil.
    pub fn command(self, inf: &str) -> Option<String> {
        let exe = r#""%SystemRoot%\System32\pnputil.exe""#;
        match self {
            PnpUtil::None => None,
            PnpUtil::Legacy => Some(format!(r#"{exe} -i -a "{inf}""#)),
            PnpUtil::AddDriver => Some(format!(r#"{exe} /add-driver "{inf}" /install"#)),
        }
    }

    /// Exit codes of this pnputil that mean the package is in the driver
    /// store. `/add-driver` returns ERROR_NO_MORE_ITEMS (259) when the
    /// package was added but matched no present device [I].
    pub fn ok_codes(self) -> Vec<i32> {
        match self {
            PnpUtil::AddDriver => vec![0, 259],
            _ => vec![0],
        }
    }
}

/// Whether `id` is a usable step id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A step id from free text: lower case, runs of other characters as `-`.
pub fn make_id(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        for c in p.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut s = out.trim_end_matches('-').to_string();
    s.truncate(64);
    s.trim_end_matches('-').to_string()
}
