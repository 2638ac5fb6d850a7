//! Building the QEMU command line for a validation boot from the caller's
//! argv: every writable disk is moved onto a throw-away overlay
//! ([`super::disks`]), options that would fight ours are dropped (with a
//! note), ours are appended.

use super::accel::ConcreteAccel;
use super::disks::{protect, OverlayCtx};
use super::{BootSpec, ValidateError};
use std::path::Path;

/// Options we own, each taking one value: dropped from the caller's argv.
const DROP_WITH_VALUE: &[&str] = &[
    "-accel", "-display", "-serial", "-qmp", "-monitor", "-vnc", "-action", "-pidfile", "-mon",
];
/// Flag options we own: dropped. (`-snapshot` is not needed: the disks are
/// on overlays, which also cover `-blockdev`.)
const DROP_FLAG: &[&str] = &[
    "-enable-kvm",
    "-nographic",
    "-no-reboot",
    "-snapshot",
    "-no-shutdown",
];

/// Remove `accel=...` from a `-machine` value.
fn strip_machine_accel(v: &str) -> String {
    v.split(',')
        .filter(|p| !p.starts_with("accel="))
        .collect::<Vec<_>>()
        .join(",")
}

/// The full argv: the caller's with its writable disks on overlays in
/// `overlays.dir` (sanitised; as they are with [`BootSpec::write_disks`]),
/// plus the serial file, the firmware debug console, QMP, no display,
/// `-action` so that a reset or power-off pauses the VM (the last screen
/// can then be captured; a reboot resets it with
/// [`BootSpec::follow_reboots`]) and the accelerator.
pub(crate) fn build_argv(
    spec: &BootSpec,
    accel: ConcreteAccel,
    serial_log: &Path,
    firmware_log: Option<&Path>,
    qmp_sock: &Path,
    overlays: &mut OverlayCtx,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, ValidateError> {
    let Some(program) = spec.argv.first() else {
        return Err(ValidateError::Spec("the QEMU argv is empty".into()));
    };
    if spec
        .argv
        .iter()
        .any(|a| a == "-daemonize" || a == "--daemonize")
    {
        return Err(ValidateError::Spec(
            "the QEMU argv has -daemonize; validation must own the QEMU process".into(),
        ));
    }
    let argv = if spec.write_disks {
        notes.push("disks booted as they are (no overlays): the guest's writes stay".into());
        spec.argv.clone()
    } else {
        protect(&spec.argv, overlays, notes)?
    };
    let mut out = vec![program.clone()];
    let mut i = 1;
    while i < argv.len() {
        let raw = &argv[i];
        let opt = if raw.starts_with("--") {
            &raw[1..]
        } else {
            raw.as_str()
        };
        let value = argv.get(i + 1);
        if DROP_FLAG.contains(&opt) {
            notes.push(format!(
                "dropped {raw} from the argv (validation sets its own)"
            ));
            i += 1;
            continue;
        }
        if DROP_WITH_VALUE.contains(&opt) {
            notes.push(format!(
                "dropped {raw} {} from the argv (validation sets its own)",
                value.map(String::as_str).unwrap_or("")
            ));
            i += 2;
            continue;
        }
        if (opt == "-machine" || opt == "-M") && value.is_some() {
            let v = value.map(String::as_str).unwrap_or("");
            let s = strip_machine_accel(v);
            if s != v {
                notes.push(format!("removed accel= from {raw} {v}"));
            }
            out.push(raw.clone());
            out.push(s);
            i += 2;
            continue;
        }
        if opt == "-cpu" && accel == ConcreteAccel::Tcg {
            if let Some(v) = value {
                if v == "host" || v.starts_with("host,") {
                    let s = format!("max{}", &v[4..]);
                    notes.push(format!("-cpu {v} needs KVM; using -cpu {s} under TCG"));
                    out.push(raw.clone());
                    out.push(s);
                    i += 2;
                    continue;
                }
            }
        }
        out.push(raw.clone());
        i += 1;
    }
    let s = |p: &Path| p.display().to_string();
    for p in [serial_log, qmp_sock].into_iter().chain(firmware_log) {
        if s(p).contains(',') {
            return Err(ValidateError::Spec(format!(
                "path {} contains a comma, which QEMU option syntax cannot carry",
                p.display()
            )));
        }
    }
    out.extend(
        [
            "-display",
            "none",
            "-monitor",
            "none",
            "-action",
            if spec.follow_reboots {
                "reboot=reset,shutdown=pause,panic=pause"
            } else {
                "reboot=shutdown,shutdown=pause,panic=pause"
            },
            "-accel",
            accel.name(),
            "-serial",
        ]
        .map(String::from),
    );
    out.push(format!("file:{}", s(serial_log)));
    if let Some(fw) = firmware_log {
        out.push("-chardev".into());
        out.push(format!("file,id=h2kfw,path={}", s(fw)));
        out.push("-device".into());
        out.push("isa-debugcon,iobase=0x402,chardev=h2kfw".into());
    }
    out.push("-qmp".into());
    out.push(format!("unix:{},server=on,wait=off", s(qmp_sock)));
    Ok(out)
}
