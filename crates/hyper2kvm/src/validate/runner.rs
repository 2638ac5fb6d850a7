//! Running one validation boot: QEMU with its disks on throw-away overlays
//! (deleted afterwards), serial and firmware logs to files, QMP on a
//! private Unix socket; watch until a verdict, take a screendump, quit,
//! reap. A guard kills QEMU on every exit path, before the overlays go.

use super::accel::{remember_kvm_failure, resolve_accel, retry_under_tcg, ConcreteAccel};
use super::argv::build_argv;
use super::classify::{classify, decisive, Observations};
use super::disks::OverlayCtx;
use super::markers::{clean_line, match_line, Hit, MarkerKind, Source};
use super::qmp::{Event, Qmp};
use super::{Accel, BootReport, BootSpec, ValidateError, MAX_FOLLOWED_RESETS};
use serde_json::json;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lines kept per console for the report.
const KEEP_LINES: usize = 40;
/// Bytes read per console per poll (a flooding guest cannot stall us).
const MAX_READ: u64 = 1 << 20;
/// How long to keep collecting after a decisive failure/panic/shutdown.
const SETTLE: Duration = Duration::from_millis(2000);
/// Prompts that arrive without a newline.
const PROMPT_IDS: &[&str] = &[
    "login_prompt",
    "initramfs_shell",
    "dracut_shell",
    "uefi_shell",
    "grub_rescue",
];

/// Kills and reaps QEMU when dropped, whatever happened.
struct QemuGuard {
    child: Child,
    /// Killed by the signal handler if the process is stopped.
    _registered: crate::cleanup::Registered,
}

impl QemuGuard {
    fn new(child: Child) -> QemuGuard {
        let _registered = crate::cleanup::register_child(child.id());
        QemuGuard { child, _registered }
    }
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Follows a growing log file.
struct LogTail {
    path: PathBuf,
    source: Source,
    offset: u64,
    partial: String,
    lines: VecDeque<String>,
    last_growth: Option<Instant>,
    /// Complete lines containing this are printed to stderr.
    echo: Option<String>,
}

impl LogTail {
    fn new(path: PathBuf, source: Source) -> LogTail {
        LogTail {
            path,
            source,
            offset: 0,
            partial: String::new(),
            lines: VecDeque::new(),
            last_growth: None,
            echo: None,
        }
    }

    /// Read what is new; return the marker hits in it.
    fn poll(&mut self, custom: &[super::markers::CustomMarker]) -> Vec<Hit> {
        let mut hits = Vec::new();
        let Ok(mut f) = File::open(&self.path) else {
            return hits;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return hits;
        }
        let mut buf = Vec::new();
        let n = f.take(MAX_READ).read_to_end(&mut buf).unwrap_or(0);
        if n == 0 {
            return hits;
        }
        self.offset += n as u64;
        self.last_growth = Some(Instant::now());
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            hits.extend(match_line(&line, self.source, custom));
            let c = clean_line(&line);
            if self.echo.as_ref().is_some_and(|e| c.contains(e.as_str())) {
                eprintln!("{c}");
            }
            if !c.is_empty() {
                if self.lines.len() == KEEP_LINES {
                    self.lines.pop_front();
                }
                self.lines.push_back(c);
            }
        }
        // A line longer than 64 KiB without a newline is cut.
        if self.partial.len() > 64 * 1024 {
            let line = std::mem::take(&mut self.partial);
            hits.extend(match_line(&line, self.source, custom));
        }
        if !self.partial.is_empty() {
            hits.extend(
                match_line(&self.partial, self.source, custom)
                    .into_iter()
                    .filter(|h| h.id == "marker" || PROMPT_IDS.contains(&h.id.as_str())),
            );
        }
        hits
    }

    fn last_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lines.iter().cloned().collect();
        let p = clean_line(&self.partial);
        if !p.is_empty() {
            v.push(p);
        }
        v
    }
}

/// Decode an 80x25 VGA text buffer (character, attribute pairs) into its
/// plausible text lines. Returns nothing when the buffer does not look like
/// text (graphics mode).
pub fn vga_text_lines(mem: &[u8]) -> Vec<String> {
    let chars: Vec<u8> = mem.iter().step_by(2).copied().collect();
    let printable = chars
        .iter()
        .filter(|c| (0x20..0x7f).contains(*c) || **c == 0)
        .count();
    if chars.is_empty() || printable * 10 < chars.len() * 9 {
        return Vec::new();
    }
    chars
        .chunks(80)
        .map(|row| {
            row.iter()
                .map(|c| {
                    if (0x20..0x7f).contains(c) {
                        *c as char
                    } else {
                        ' '
                    }
                })
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn add_hits(obs: &mut Observations, new: Vec<Hit>) {
    for h in new {
        if !obs
            .hits
            .iter()
            .any(|o| o.id == h.id && o.source == h.source && o.line == h.line)
        {
            obs.hits.push(h);
        }
    }
}

fn read_screen_text(qmp: &mut Qmp, vga_file: &Path) -> Option<Vec<String>> {
    let _ = std::fs::remove_file(vga_file);
    qmp.execute(
        "pmemsave",
        json!({"val": 0xB8000u64, "size": 4000, "filename": vga_file.display().to_string()}),
        Duration::from_secs(3),
    )
    .ok()?;
    let mem = std::fs::read(vga_file).ok()?;
    Some(vga_text_lines(&mem))
}

/// The observations a verdict is taken on. A boot that follows reboots
/// ([`BootSpec::follow_reboots`]) drops its `RESET` events, unless there
/// were more than [`MAX_FOLLOWED_RESETS`] of them (a reboot loop): then
/// they count as usual.
fn verdict_view(obs: &Observations, follow_reboots: bool) -> Cow<'_, Observations> {
    let resets = obs.events.iter().filter(|e| e.name == "RESET").count();
    if !follow_reboots || resets == 0 || resets > MAX_FOLLOWED_RESETS {
        return Cow::Borrowed(obs);
    }
    let mut view = obs.clone();
    view.events.retain(|e| e.name != "RESET");
    Cow::Owned(view)
}

/// Press the ACPI power button and wait up to `grace` for the guest to
/// power off (QEMU's `SHUTDOWN` event or exit). Says what happened; the
/// caller sends `quit` either way.
fn power_down(q: &mut Qmp, child: &mut Child, grace: Duration) -> String {
    let t = Instant::now();
    if let Err(e) = q.execute("system_powerdown", json!({}), Duration::from_secs(3)) {
        return format!("system_powerdown failed ({e}); QEMU was told to quit");
    }
    while t.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return format!(
                "QEMU exited {:.1} s after the ACPI power button",
                t.elapsed().as_secs_f64()
            );
        }
        match q.poll_events(Duration::from_millis(200)) {
            Ok(evs)
                if evs
                    .iter()
                    .any(|e| e.get("event").and_then(|n| n.as_str()) == Some("SHUTDOWN")) =>
            {
                return format!(
                    "the guest powered off {:.1} s after the ACPI power button",
                    t.elapsed().as_secs_f64()
                );
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    format!(
        "the guest did not power off within {:.0} s of the ACPI power button; QEMU was told to quit",
        grace.as_secs_f64()
    )
}

fn tail_of(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let s = String::from_utf8_lossy(&text[start..]);
    s.lines()
        .rev()
        .take(10)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Boot once and classify. See the module documentation of
/// [`crate::validate`] for what is added to the argv.
pub fn boot(spec: &BootSpec) -> Result<BootReport, ValidateError> {
    if spec.phase.is_empty()
        || !spec
            .phase
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ValidateError::Spec(format!(
            "phase name {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
            spec.phase
        )));
    }
    std::fs::create_dir_all(&spec.out_dir).map_err(|e| ValidateError::io(&spec.out_dir, e))?;
    let (accel, mut notes) = resolve_accel(spec.accel, &spec.argv);
    let first = boot_with(spec, accel, &mut notes)?;
    if spec.accel != Accel::Auto || accel != ConcreteAccel::Kvm {
        return Ok(first);
    }
    let guest_output = !first.last_serial_lines.is_empty()
        || !first.last_firmware_lines.is_empty()
        || !first.screen_text.is_empty()
        || !first.hits.is_empty();
    let Some(why) = retry_under_tcg(&first.outcome, guest_output) else {
        return Ok(first);
    };
    // Keep the KVM attempt's QEMU log beside the retry's.
    let kvm_log = spec.out_dir.join(format!("{}-qemu-kvm.log", spec.phase));
    let kept = std::fs::rename(&first.qemu_log, &kvm_log).is_ok();
    remember_kvm_failure(&spec.argv, &why);
    let mut notes = first.notes;
    notes.push(format!(
        "QEMU died under KVM before the guest printed anything ({why}){}; retried once under TCG",
        if kept {
            format!(" (its log: {})", kvm_log.display())
        } else {
            String::new()
        }
    ));
    boot_with(spec, ConcreteAccel::Tcg, &mut notes)
}

pub(crate) fn boot_with(
    spec: &BootSpec,
    accel: ConcreteAccel,
    notes: &mut Vec<String>,
) -> Result<BootReport, ValidateError> {
    let dir = &spec.out_dir;
    let serial_log = dir.join(format!("{}-serial.log", spec.phase));
    let firmware_log = dir.join(format!("{}-firmware.log", spec.phase));
    let qemu_log = dir.join(format!("{}-qemu.log", spec.phase));
    let screen = dir.join(format!("{}-screen.png", spec.phase));
    let vga = dir.join(format!("{}-vga.bin", spec.phase));
    for p in [&serial_log, &firmware_log, &qemu_log, &screen, &vga] {
        let _ = std::fs::remove_file(p);
    }
    let sockdir = tempfile::Builder::new()
        .prefix("h2k-qmp")
        .tempdir()
        .map_err(|e| ValidateError::io(Path::new("/tmp"), e))?;
    let sock = sockdir.path().join("qmp.sock");
    // Overlays live beside the artefacts (room for what the guest writes),
    // in a private directory removed after the boot, on every path.
    let abs_out = dir.canonicalize().map_err(|e| ValidateError::io(dir, e))?;
    let cwd = std::env::current_dir().map_err(|e| ValidateError::io(Path::new("."), e))?;
    let cwd = match &spec.cwd {
        Some(c) => cwd.join(c),
        None => cwd,
    };
    let ovl_dir = tempfile::Builder::new()
        .prefix(&format!(".{}-overlays-", spec.phase))
        .tempdir_in(&abs_out)
        .map_err(|e| ValidateError::io(&abs_out, e))?;
    let mut overlays = OverlayCtx {
        dir: ovl_dir.path(),
        cwd: &cwd,
        count: 0,
    };
    let argv = build_argv(
        spec,
        accel,
        &serial_log,
        spec.firmware_log.then_some(firmware_log.as_path()),
        &sock,
        &mut overlays,
        notes,
    )?;

    let stderr = File::create(&qemu_log).map_err(|e| ValidateError::io(&qemu_log, e))?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(
            stderr
                .try_clone()
                .map_err(|e| ValidateError::io(&qemu_log, e))?,
        )
        .stderr(stderr);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| ValidateError::Spawn {
        program: argv[0].clone(),
        source: e,
    })?;
    let mut guard = QemuGuard::new(child);

    let mut obs = Observations {
        timeout_secs: spec.timeout.as_secs_f64(),
        ..Default::default()
    };
    let mut serial = LogTail::new(serial_log.clone(), Source::Serial);
    serial.echo = spec.echo_serial.clone();
    let mut firmware = LogTail::new(firmware_log.clone(), Source::Firmware);
    let deadline = start + spec.timeout;

    // Connect to QMP (QEMU creates the socket early; it may also die first).
    let mut qmp: Option<Qmp> = None;
    while qmp.is_none() && guard.child.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline.min(start + Duration::from_secs(30)) {
            notes.push("could not connect to QMP within 30 s".into());
            break;
        }
        if sock.exists() {
            match Qmp::connect(&sock, Duration::from_secs(10)) {
                Ok(q) => qmp = Some(q),
                Err(e) => {
                    notes.push(format!("QMP: {e}"));
                    break;
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let mut settle_until: Option<Instant> = None;
    let mut last_screen = Instant::now();
    let mut screen_lines: Vec<String> = Vec::new();
    loop {
        // Events, doubling as the poll interval.
        match qmp.as_mut() {
            Some(q) => match q.poll_events(Duration::from_millis(200)) {
                Ok(evs) => obs.events.extend(evs.into_iter().map(|v| {
                    Event {
                        name: v
                            .get("event")
                            .and_then(|e| e.as_str())
                            .unwrap_or("?")
                            .to_string(),
                        seconds: start.elapsed().as_secs_f64(),
                        data: v.get("data").cloned().unwrap_or(serde_json::Value::Null),
                    }
                })),
                Err(_) => qmp = None, // QEMU went away; try_wait below tells.
            },
            None => std::thread::sleep(Duration::from_millis(200)),
        }
        add_hits(&mut obs, serial.poll(&spec.markers));
        add_hits(&mut obs, firmware.poll(&spec.markers));
        if spec.screen_text && last_screen.elapsed() >= Duration::from_secs(2) {
            last_screen = Instant::now();
            if let Some(q) = qmp.as_mut() {
                if let Some(lines) = read_screen_text(q, &vga) {
                    let mut hits = Vec::new();
                    for l in &lines {
                        hits.extend(match_line(l, Source::Screen, &spec.markers));
                    }
                    add_hits(&mut obs, hits);
                    screen_lines = lines;
                }
            }
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            obs.exited = Some(status.code());
            break;
        }
        let success = obs.hits.iter().any(|h| h.kind == MarkerKind::Success);
        if success {
            break;
        }
        if settle_until.is_none() && decisive(&verdict_view(&obs, spec.follow_reboots)) {
            settle_until = Some(Instant::now() + SETTLE);
        }
        if settle_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        if Instant::now() >= deadline {
            obs.timed_out = true;
            break;
        }
    }

    // Final picture and text, then quit.
    let mut screenshot = None;
    let mut powerdown = None;
    if obs.exited.is_none() {
        if let Some(q) = qmp.as_mut() {
            if spec.screen_text {
                if let Some(lines) = read_screen_text(q, &vga) {
                    let mut hits = Vec::new();
                    for l in &lines {
                        hits.extend(match_line(l, Source::Screen, &spec.markers));
                    }
                    // Only late failures matter now; a success would
                    // already have ended the loop.
                    add_hits(&mut obs, hits);
                    screen_lines = lines;
                }
            }
            match q.execute(
                "screendump",
                json!({"filename": screen.display().to_string(), "format": "png"}),
                Duration::from_secs(10),
            ) {
                Ok(_) if screen.exists() => screenshot = Some(screen.clone()),
                Ok(_) => notes.push("screendump returned but wrote no file".into()),
                Err(e) => notes.push(format!("no screenshot: {e}")),
            }
            if let Some(grace) = spec.powerdown_grace {
                powerdown = Some(power_down(q, &mut guard.child, grace));
            }
            let _ = q.execute("quit", json!({}), Duration::from_secs(3));
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = guard.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(qmp);
    let seconds = start.elapsed().as_secs_f64();
    drop(guard); // kills if still alive, reaps
    let _ = std::fs::remove_file(&vga);
    let ovl_path = ovl_dir.path().to_path_buf();
    if let Err(e) = ovl_dir.close() {
        notes.push(format!(
            "could not remove the overlay directory {}: {e}",
            ovl_path.display()
        ));
    }

    // Whatever QEMU flushed last.
    add_hits(&mut obs, serial.poll(&spec.markers));
    add_hits(&mut obs, firmware.poll(&spec.markers));
    let serial_lines = serial.last_lines();
    let firmware_lines = firmware.last_lines();
    obs.last_serial_line = serial_lines.last().cloned();
    obs.last_firmware_line = firmware_lines.last().cloned();
    obs.serial_quiet_secs = serial.last_growth.map(|t| t.elapsed().as_secs_f64());
    if obs.exited.is_some() {
        obs.stderr_tail = tail_of(&qemu_log, 4096);
    }
    let (outcome, reason) = classify(&verdict_view(&obs, spec.follow_reboots));

    let mut progress: Vec<String> = Vec::new();
    for h in obs.hits.iter().filter(|h| h.kind == MarkerKind::Progress) {
        if !progress.contains(&h.id) {
            progress.push(h.id.clone());
        }
    }
    Ok(BootReport {
        phase: spec.phase.clone(),
        ok: outcome.is_success(),
        outcome,
        reason,
        accel: accel.name().to_string(),
        seconds,
        progress,
        hits: obs.hits,
        events: obs.events,
        last_serial_lines: serial_lines,
        last_firmware_lines: firmware_lines,
        screen_text: screen_lines,
        screenshot,
        serial_log,
        firmware_log: spec.firmware_log.then_some(firmware_log),
        qemu_log,
        argv,
        notes: std::mem::take(notes),
        powerdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resets(n: usize) -> Observations {
        Observations {
            events: (0..n)
                .map(|i| Event {
                    name: "RESET".into(),
                    seconds: i as f64,
                    data: json!({"guest": true, "reason": "guest-reset"}),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn followed_resets_are_not_decisive_until_a_loop() {
        // not following: the first reset decides
        assert!(decisive(&verdict_view(&resets(1), false)));
        // following: up to the limit they are dropped, beyond it they count
        assert!(!decisive(&verdict_view(&resets(MAX_FOLLOWED_RESETS), true)));
        let looping = resets(MAX_FOLLOWED_RESETS + 1);
        assert!(decisive(&verdict_view(&looping, true)));
        assert_eq!(
            classify(&verdict_view(&looping, true)).0,
            super::super::BootOutcome::GuestReset
        );
    }
}
