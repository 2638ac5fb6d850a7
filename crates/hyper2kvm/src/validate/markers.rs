//! The marker table: which console text means success, a named failure,
//! a hint or progress. Kept as data ([`MARKERS`]) so that a new rule is one
//! line, and tested rule by rule against captured-looking console text.
//!
//! Matching is line-based and case-sensitive: a rule matches a line (ANSI
//! escape sequences stripped) when the line contains every string in
//! [`Marker::all_of`]. Prompts without a trailing newline (`login: `,
//! `(initramfs) `) are matched on the unfinished last line too.

use serde::Serialize;

/// What a marker means for the boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKind {
    /// The guest got far enough: validation stops with success.
    Success,
    /// A decisive, named failure: validation stops (after a short settle
    /// period that collects more context).
    Failure,
    /// Something went wrong but the boot may still continue (e.g. SeaBIOS
    /// failing one boot device before trying the next). Reported with the
    /// final outcome if the boot does not succeed.
    Hint,
    /// A milestone: used to say how far a failed or stuck boot got.
    Progress,
}

/// Where a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The guest's first serial port (COM1).
    Serial,
    /// The firmware debug port 0x402 (SeaBIOS's own log).
    Firmware,
    /// The VGA text-mode screen (0xB8000), read while the guest runs.
    Screen,
}

/// One rule of the table.
#[derive(Clone, Copy, Debug)]
pub struct Marker {
    /// Stable identifier, used in reports (`no_bootable_device`, ...).
    pub id: &'static str,
    /// What a match means.
    pub kind: MarkerKind,
    /// The line must contain every one of these strings.
    pub all_of: &'static [&'static str],
    /// Among several failures seen, the highest rank names the outcome
    /// (the most specific message wins: `ALERT! UUID=... does not exist`
    /// over `(initramfs)`).
    pub rank: u8,
    /// One-line human explanation.
    pub reason: &'static str,
}

const fn m(
    id: &'static str,
    kind: MarkerKind,
    all_of: &'static [&'static str],
    rank: u8,
    reason: &'static str,
) -> Marker {
    Marker {
        id,
        kind,
        all_of,
        rank,
        reason,
    }
}

use MarkerKind::{Failure, Hint, Progress, Success};

/// The built-in rules.
#[rustfmt::skip]
pub const MARKERS: &[Marker] = &[
    // --- success ----------------------------------------------------------
    m("login_prompt", Success, &["login:"], 0, "Linux login prompt on the serial console"),
    m("windows_firstboot_done", Success, &["hyper2kvm-firstboot: final done"], 0,
      "Windows first-boot runner finished its final phase (drivers, network, cleanup) on virtio"),
    // --- Windows first-boot runner (one COM1 line per step) -------------------
    m("firstboot_required_failed", Failure, &["hyper2kvm-firstboot: ", " failed gave-up required"], 65,
      "a required first-boot step gave up after its attempts (see the step named in the line and %SystemRoot%\\hyper2kvm\\firstboot.log)"),
    m("firstboot_step_failed", Hint, &["hyper2kvm-firstboot: ", " failed gave-up optional"], 35,
      "an optional first-boot step gave up after its attempts (the boot goes on)"),
    m("firstboot_attempt_failed", Hint, &["hyper2kvm-firstboot: ", " failed attempt "], 20,
      "a first-boot step attempt failed; the runner retries it"),
    // --- firmware / boot sector ----------------------------------------------
    m("no_bootable_device", Failure, &["No bootable device"], 50,
      "firmware found no bootable device (empty or unreadable boot disk, wrong boot order or controller)"),
    m("boot_disk_unreadable", Hint, &["Boot failed: could not read the boot disk"], 40,
      "firmware could not read the boot disk"),
    m("not_bootable_disk", Hint, &["Boot failed: not a bootable disk"], 40,
      "firmware: disk has no boot signature (no MBR boot code)"),
    m("disk_read_error", Failure, &["A disk read error occurred"], 60,
      "boot sector could not read the disk (BIOS disk access / geometry mismatch)"),
    m("ntldr_missing", Failure, &["NTLDR is missing"], 60,
      "boot sector could not find NTLDR (wrong active partition or broken boot sector)"),
    m("bootmgr_missing", Failure, &["BOOTMGR is missing"], 60,
      "boot sector could not find BOOTMGR (wrong active partition or broken boot sector)"),
    m("bootmgr_compressed", Failure, &["BOOTMGR is compressed"], 60,
      "BOOTMGR is compressed"),
    m("missing_os", Failure, &["Missing operating system"], 55,
      "MBR found no active partition with a valid boot sector"),
    m("invalid_partition_table", Failure, &["Invalid partition table"], 55,
      "MBR rejected the partition table"),
    m("error_loading_os", Failure, &["Error loading operating system"], 55,
      "MBR could not load the partition boot sector"),
    m("windows_boot_failed", Failure, &["Windows failed to start"], 55,
      "Windows Boot Manager failed to start Windows"),
    m("grub_rescue", Failure, &["grub rescue>"], 60,
      "GRUB dropped to its rescue shell (cannot find its modules or /boot)"),
    m("grub_error", Hint, &["error: ", "no such"], 30, "GRUB reported an error"),
    m("uefi_no_bootable_device", Failure, &["No bootable option or device was found"], 50,
      "UEFI firmware found no bootable option (no EFI system partition / boot entry visible)"),
    m("uefi_shell", Failure, &["Shell>"], 45,
      "UEFI firmware found nothing bootable and started its shell (no EFI system partition / boot entry visible)"),
    m("uefi_secure_boot_denied", Hint, &["BdsDxe: failed to load", "Access Denied"], 45,
      "UEFI Secure Boot refused a boot loader"),
    m("uefi_boot_failed", Hint, &["BdsDxe: failed to load"], 40, "UEFI firmware could not load a boot option"),
    // --- Linux kernel / initramfs ----------------------------------------------
    m("root_mount_failed", Failure, &["VFS: Unable to mount root fs"], 85,
      "kernel could not mount the root filesystem (missing disk or filesystem driver, wrong root=)"),
    m("kernel_panic", Failure, &["Kernel panic"], 70, "Linux kernel panic"),
    m("root_wait_timeout", Failure, &["Gave up waiting for root file system device"], 80,
      "initramfs never saw the root device (storage driver missing from the initramfs?)"),
    m("root_device_missing", Failure, &["ALERT!", "does not exist"], 90,
      "initramfs: root device does not exist (storage driver missing from the initramfs?)"),
    m("initramfs_shell", Failure, &["(initramfs)"], 60, "initramfs dropped to its emergency shell"),
    m("dracut_timeout", Failure, &["dracut-initqueue", "timeout"], 80,
      "dracut timed out waiting for the root device (storage driver missing from the initramfs?)"),
    m("dracut_emergency", Failure, &["Entering emergency mode"], 75,
      "dracut/systemd entered emergency mode"),
    m("dracut_shell", Failure, &["dracut:/#"], 60, "dracut dropped to its emergency shell"),
    m("emergency_mode", Failure, &["You are in emergency mode"], 70,
      "systemd emergency mode (a required mount or device failed)"),
    m("sysroot_mount_failed", Hint, &["Failed to mount", "/sysroot"], 50,
      "failed to mount /sysroot"),
    m("fsck_failed", Hint, &["fsck", "UNEXPECTED INCONSISTENCY"], 50,
      "fsck found an inconsistency"),
    // --- progress ------------------------------------------------------------
    m("firmware", Progress, &["SeaBIOS (version"], 0, "SeaBIOS started"),
    m("boot_disk", Progress, &["Booting from Hard Disk"], 0, "firmware booting from hard disk"),
    m("boot_disk", Progress, &["BdsDxe: starting Boot"], 0, "UEFI firmware starting a boot option"),
    m("bootloader", Progress, &["Welcome to GRUB"], 0, "GRUB started"),
    m("bootloader", Progress, &["Loading Linux"], 0, "GRUB loading Linux"),
    m("kernel", Progress, &["Linux version"], 0, "Linux kernel started"),
    m("initramfs", Progress, &["Loading, please wait"], 0, "initramfs started"),
    m("initramfs", Progress, &["Begin: Loading essential drivers"], 0, "initramfs started"),
    m("userspace", Progress, &["Reached target"], 0, "systemd reaching targets"),
    m("userspace", Progress, &["Welcome to "], 0, "systemd started"),
    m("firstboot", Progress, &["hyper2kvm-firstboot: runner start"], 0, "Windows started the first-boot runner"),
    m("firstboot_step", Progress, &["hyper2kvm-firstboot: ", " ok"], 0, "a first-boot step succeeded"),
    m("firstboot_bootstrap_done", Progress, &["hyper2kvm-firstboot: bootstrap done"], 0,
      "the first-boot runner finished its bootstrap phase"),
];

/// A marker given at run time (from `validate.json` or the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomMarker {
    /// What a match means.
    pub kind: MarkerKind,
    /// Substring to find in a line.
    pub text: String,
}

/// One match of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// The rule's id (`marker` for a custom marker).
    pub id: String,
    /// What the match means.
    pub kind: MarkerKind,
    /// The rule's rank.
    pub rank: u8,
    /// The rule's explanation.
    pub reason: String,
    /// The matching line (trimmed, ANSI-stripped, capped at 200 chars).
    pub line: String,
    /// Where the line came from.
    pub source: Source,
}

/// Remove ANSI escape sequences and other control characters (keeps tab).
pub fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters then one final byte in 0x40..=0x7e.
                    for d in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

fn cap(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// All rules (built-in then custom) matching one line. The line is cleaned
/// first.
pub fn match_line(line: &str, source: Source, custom: &[CustomMarker]) -> Vec<Hit> {
    let line = clean_line(line);
    if line.is_empty() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for c in custom {
        if !c.text.is_empty() && line.contains(c.text.as_str()) {
            hits.push(Hit {
                id: "marker".into(),
                kind: c.kind,
                rank: 100,
                reason: format!("marker {:?}", c.text),
                line: cap(&line, 200),
                source,
            });
        }
    }
    for mk in MARKERS {
        if mk.all_of.iter().all(|s| line.contains(s)) {
            // `login:` inside a longer sentence (e.g. "Last login: ...")
            // is not the prompt.
            if mk.id == "login_prompt" && !is_login_prompt(&line) {
                continue;
            }
            hits.push(Hit {
                id: mk.id.into(),
                kind: mk.kind,
                rank: mk.rank,
                reason: mk.reason.into(),
                line: cap(&line, 200),
                source,
            });
        }
    }
    hits
}

/// `h2k-guest login:` / `login:` at the end of the line, or followed by
/// a kernel message the console printed after the prompt before its
/// line was read (`h2k-guest login: [   26.84] kvm: ...`).
fn is_login_prompt(line: &str) -> bool {
    if line.contains("Last login") {
        return false;
    }
    if line.trim_end().ends_with("login:") {
        return true;
    }
    let Some((before, after)) = line.split_once("login: ") else {
        return false;
    };
    !before.trim().contains(' ') && starts_with_printk_time(after)
}

/// `[   26.842611]`: a kernel message's timestamp.
fn starts_with_printk_time(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('[') else {
        return false;
    };
    let Some((t, _)) = rest.split_once(']') else {
        return false;
    };
    let t = t.trim_start();
    t.contains('.') && !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(
            clean_line(
                "\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mBasic System\x1b[0m.\r"
            ),
            "OK  ] Reached target Basic System."
        );
    }

    #[test]
    fn ids_are_known_kinds() {
        for mk in MARKERS {
            assert!(!mk.all_of.is_empty(), "{}", mk.id);
            if mk.kind == Failure {
                assert!(mk.rank > 0, "{}", mk.id);
            }
        }
    }
}
