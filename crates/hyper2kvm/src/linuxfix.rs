//! The Linux bootstrap boot: the guest fixes itself with its own kernel,
//! initramfs and tools.
//!
//! Given the *output* disk image(s) (never the source: they are written),
//! the guest's kernel, initrd and command line (read from its `/boot` by
//! the caller), [`run_bootstrap`]:
//!
//! 1. builds an extra uncompressed newc archive ([`extra_cpio`]) holding
//!    `/h2k-init` (the `rdinit=` wrapper), `/h2k/hook` and `/h2k/fix.sh`
//!    plus the files the fix installs; it carries no `bin`/`lib` entries
//!    (they would replace the initrd's merged-/usr symlinks);
//! 2. appends it to the initrd (padded to 4 bytes, as the kernel's
//!    unpacker expects);
//! 3. boots QEMU (TCG unless told otherwise) with `-kernel/-initrd/-append`
//!    on a controller the old initrd drives ([`Controller`]) and a 1 MiB raw
//!    result disk; the wrapper registers the hook (initramfs-tools: a line
//!    in `/scripts/init-bottom/ORDER`; dracut: `pre-pivot/99-hyper2kvm.sh`
//!    under `/var/lib/dracut/hooks` or `/lib/dracut/hooks`) and `exec`s the
//!    real `/init`; once the root is mounted the hook mounts `/proc`,
//!    `/sys`, `/dev` and a tmpfs `/run` in it, copies the script there and
//!    chroots into the root, where `fix.sh` runs every step with the
//!    guest's own tools, writing each to `/dev/console` and its log to the
//!    result disk (found by its header `H2KRESULT <nonce>`), then syncs,
//!    remounts `/` read-only and powers off through `/proc/sysrq-trigger`;
//! 4. reads the result disk back ([`parse_result`]) and fails with the
//!    guest's own error text when a step failed.
//!
//! The steps of `fix.sh`: remount `/` rw; mount the separate volumes at
//! or below `/boot` by type and UUID ([`Bootstrap::mounts`]); add virtio_blk, virtio_scsi,
//! virtio_pci, virtio_net to `/etc/initramfs-tools/modules` (dracut: an
//! `add_drivers` file in `/etc/dracut.conf.d/`); replace files whose old
//! contents the caller inspected ([`FileEdit`]: fstab/crypttab rewritten to
//! `UUID=`), keeping `<path>.hyper2kvm-backup`; pin interface names with
//! systemd `.link` files ([`LinkPin`]); move `/etc/lvm/devices/system.devices`
//! aside; copy the initrd to `<initrd>.hyper2kvm-backup` (once) and
//! rebuild it (`update-initramfs -u -k <version>` / `dracut -f`); check
//! the new one carries virtio_blk (or the kernel has it built in);
//! `/.autorelabel` when SELinux is enforcing. Between the backup and the
//! rebuild, other hypervisors' tarball installs are removed by their own
//! uninstallers ([`Bootstrap::uninstallers`]).

use guest::linux::cpio::Writer;
use guest::linux::initrd::{InitrdReport, Presence};
use guest::linux::kconfig::{KernelConfig, State};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Drivers the rebuilt initramfs must carry.
pub const VIRTIO_MODULES: &[&str] = &["virtio_blk", "virtio_scsi", "virtio_pci", "virtio_net"];

/// Size of the result disk.
const RESULT_DISK: usize = 1 << 20;
/// The log starts at this offset of the result disk.
const RESULT_LOG_AT: usize = 4096;

/// The disk controller of the bootstrap boot (one the old initrd drives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Controller {
    /// PIIX IDE (`-drive if=ide`): the fallback, `ata_piix` is in nearly
    /// every initrd (dracut host-only included). At most 3 disks.
    Ide,
    /// AHCI SATA (`-device ahci`).
    Sata,
    /// virtio-blk.
    VirtioBlk,
    /// virtio-scsi.
    VirtioScsi,
    /// VMware PVSCSI.
    Pvscsi,
    /// LSI SAS 1068 (`mptsas`).
    LsiSas,
}

/// Pick the controller from what the initrd (and the kernel's built-ins)
/// drive: virtio-blk when it can, then the source-like controllers, IDE
/// as the fallback.
pub fn choose_controller(initrd: &InitrdReport, kconfig: Option<&KernelConfig>) -> Controller {
    let has = |m: &str| {
        initrd.presence(m) != Presence::Absent
            || kconfig.is_some_and(|k| k.module_state(m) == State::BuiltIn)
    };
    if initrd.drives_virtio_blk(kconfig) {
        Controller::VirtioBlk
    } else if has("ahci") {
        Controller::Sata
    } else if has("ata_piix") {
        Controller::Ide
    } else if has("vmw_pvscsi") && has("sd_mod") {
        Controller::Pvscsi
    } else if has("mptsas") && has("sd_mod") {
        Controller::LsiSas
    } else if has("virtio_scsi") && has("virtio_pci") && has("sd_mod") {
        Controller::VirtioScsi
    } else {
        Controller::Ide
    }
}

/// A file the fix replaces, with the contents the caller inspected.
#[derive(Clone, Debug)]
pub struct FileEdit {
    /// Absolute path in the guest (`/etc/fstab`).
    pub path: String,
    /// Contents read at inspection: the step fails when the file differs.
    pub old: Vec<u8>,
    /// New contents.
    pub new: Vec<u8>,
}

/// An interface name to keep on its MAC address.
#[derive(Clone, Debug)]
pub struct LinkPin {
    /// MAC address (`00:50:56:3f:12:34`).
    pub mac: String,
    /// The name it had (`ens192`).
    pub name: String,
}

/// Everything one bootstrap boot needs.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    /// Output disk images, boot disk first, with their format (`raw` or
    /// `qcow2`). These are written.
    pub disks: Vec<(PathBuf, String)>,
    /// The guest's kernel image.
    pub kernel: Vec<u8>,
    /// The guest's default initrd.
    pub initrd: Vec<u8>,
    /// The guest's command line (from its boot loader config).
    pub cmdline: String,
    /// Path of that initrd in the guest's root (`/boot/initrd.img-6.1.0-18-amd64`).
    pub initrd_path: String,
    /// Kernel release (`6.1.0-18-amd64`).
    pub kernel_version: String,
    /// Controller for the disks.
    pub controller: Controller,
    /// Files to replace.
    pub edits: Vec<FileEdit>,
    /// Interface names to pin.
    pub links: Vec<LinkPin>,
    /// Separate volumes at or below `/boot` to mount (by type and UUID)
    /// before anything there is read or written; unmounted at the end.
    /// A `vfat` one (the ESP) that will not mount is reported, not fatal.
    pub mounts: Vec<guest::inspect::LinuxMount>,
    /// Other hypervisors' tarball-install uninstallers to run (absolute
    /// paths in the guest), after the initrd backup and before the
    /// rebuild; a failing one is reported in its step's output, not fatal.
    pub uninstallers: Vec<String>,
    /// Working directory (kernel/initrd copies, result disk, serial log).
    pub work_dir: PathBuf,
    /// Time limit of the boot.
    pub timeout: Duration,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// `-accel` value (`tcg`; `kvm` where it works).
    pub accel: String,
}

/// One step's outcome, as the guest reported it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepResult {
    /// Step name (`rebuild-initramfs`).
    pub name: String,
    /// Exit status (0: success).
    pub rc: i32,
    /// What the guest's tools printed.
    pub output: String,
}

/// The result of a bootstrap boot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BootstrapReport {
    /// Steps in order.
    pub steps: Vec<StepResult>,
    /// Wall-clock seconds of the boot.
    pub seconds: f64,
    /// Serial console log.
    pub serial_log: PathBuf,
    /// The controller used.
    pub controller: Controller,
}

/// Bootstrap failures.
#[derive(Debug, thiserror::Error)]
pub enum LinuxFixError {
    /// A value cannot be passed safely to the guest.
    #[error("bootstrap input: {0}")]
    Input(String),
    /// File I/O on the host.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// Program.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A fix step failed inside the guest.
    #[error("bootstrap step {step} failed in the guest (exit {rc}):\n{output}")]
    StepFailed {
        /// Step name.
        step: String,
        /// Exit status.
        rc: i32,
        /// The guest's own output.
        output: String,
    },
    /// The guest never finished (hook not reached, hang, timeout).
    #[error("bootstrap boot ended without a result ({why}); last steps: {steps:?}; serial console tail:\n{serial_tail}")]
    Incomplete {
        /// Timeout or QEMU exit.
        why: String,
        /// Steps reported so far.
        steps: Vec<String>,
        /// Last lines of the serial console.
        serial_tail: String,
    },
    /// The cpio writer refused a name.
    #[error("building the bootstrap archive")]
    Cpio(#[from] guest::linux::cpio::WriteError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LinuxFixError + '_ {
    move |source| LinuxFixError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Single-quote for sh.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The `rdinit=` wrapper: register the hook with whichever initramfs this
/// is, then run its own `/init`.
const WRAPPER: &str = r#"#!/bin/sh
# hyper2kvm bootstrap: register the fix hook, then run the guest's own /init.
if [ -f /scripts/init-bottom/ORDER ]; then
    echo '/h2k/hook "${rootmnt}"' >> /scripts/init-bottom/ORDER
    echo "h2k: hook registered (initramfs-tools init-bottom)"
else
    for d in /var/lib/dracut/hooks /lib/dracut/hooks /usr/lib/dracut/hooks; do
        if [ -d "$d" ]; then
            [ -d "$d/pre-pivot" ] || mkdir "$d/pre-pivot"
            echo '/bin/sh /h2k/hook "$NEWROOT"' > "$d/pre-pivot/99-hyper2kvm.sh"
            echo "h2k: hook registered (dracut pre-pivot in $d)"
            break
        fi
    done
fi
exec /init "$@"
"#;

/// The hook: runs in the initramfs with the root mounted at `$1`.
fn hook_script(files: &[String]) -> String {
    format!(
        r#"#!/bin/sh
# hyper2kvm bootstrap hook: the guest's root is mounted at $1.
R=${{1:-/root}}
say() {{ echo "h2k: $*" > /dev/console 2>/dev/null || echo "h2k: $*"; }}
say "hook running, root at $R"
# (A root's /dev may hold static nodes: test for a mount, not a file.)
mounted() {{ while read -r _ m _; do [ "$m" = "$1" ] && return 0; done < /proc/mounts; return 1; }}
mounted "$R/proc" || mount -t proc proc "$R/proc"
mounted "$R/sys" || mount -t sysfs sysfs "$R/sys"
mounted "$R/dev" || mount -o bind /dev "$R/dev" || mount -t devtmpfs devtmpfs "$R/dev"
mount -t tmpfs -o mode=0755,size=64m h2krun "$R/run" || say "cannot mount a tmpfs on $R/run"
mkdir "$R/run/h2k"
for f in {files}; do cat "/h2k/$f" > "$R/run/h2k/$f"; done
fix() {{ "$@" "$R" /bin/sh /run/h2k/fix.sh; }}
if command -v chroot >/dev/null 2>&1; then
    fix chroot
else
    # dracut's initramfs has no chroot: the root's own, through the
    # initramfs' loader, else the root's loader and libraries.
    for c in "$R/usr/sbin/chroot" "$R/usr/bin/chroot" "$R/sbin/chroot"; do [ -x "$c" ] && break; done
    say "no chroot in the initramfs; using $c"
    fix "$c"
    rc=$?
    if [ "$rc" -eq 126 ] || [ "$rc" -eq 127 ]; then
        for ld in "$R/lib64/ld-linux-x86-64.so.2" "$R/usr/lib64/ld-linux-x86-64.so.2" "$R/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"; do
            [ -e "$ld" ] || continue
            say "running $c with $ld"
            fix "$ld" --library-path "$R/lib/x86_64-linux-gnu:$R/usr/lib/x86_64-linux-gnu:$R/lib64:$R/usr/lib64" "$c"
            break
        done
    fi
fi
say "fix script returned $?; powering off"
echo o > /proc/sysrq-trigger
poweroff -f
sleep 600
"#,
        files = files.join(" ")
    )
}

/// The fix script body (parameters are prepended by [`fix_script`]).
const FIX_BODY: &str = r#"
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH LANG=C LC_ALL=C
H=/run/h2k
LOG=$H/log
: > "$LOG"
con() { echo "$*" > /dev/console 2>/dev/null; }

result() {
    for d in /sys/class/block/*; do
        [ -e "$d/partition" ] && continue
        dev=/dev/${d##*/}
        [ -b "$dev" ] || continue
        hdr=$(dd if="$dev" bs=64 count=1 2>/dev/null | head -n 1 | tr -d '\000')
        if [ "$hdr" = "H2KRESULT $NONCE" ]; then
            dd if="$LOG" of="$dev" bs=4096 seek=1 conv=notrunc,fsync 2>/dev/null
            return 0
        fi
    done
    con "h2k: result disk not found"
    return 1
}

finish() {
    echo "H2K-END rc=$1" >> "$LOG"
    result
    sync
    for p in $MOUNTED; do umount "$p" 2>/dev/null || con "h2k: cannot unmount $p"; done
    sync
    mount -o remount,ro / 2>/dev/null || con "h2k: / stays rw (busy)"
    sync
    con "h2k: done (rc=$1), powering off"
    echo o > /proc/sysrq-trigger
    sleep 600
}

step() {
    name=$1; shift
    con "h2k: step $name"
    echo "H2K-STEP $name" >> "$LOG"
    "$@" > "$H/out" 2>&1
    rc=$?
    cat "$H/out" >> "$LOG"
    cat "$H/out" > /dev/console 2>/dev/null
    echo "H2K-RC $name $rc" >> "$LOG"
    con "h2k: step $name rc=$rc"
    result
    [ "$rc" -eq 0 ] || finish "$rc"
}

remount_rw() { mount -o remount,rw /; }

is_mounted() { while read -r _ m _; do [ "$m" = "$1" ] && return 0; done < /proc/mounts; return 1; }

# Each entry of $MOUNTS: path|type|uuid. The guest's own modprobe loads
# the filesystem driver (the initramfs may lack it).
MOUNTED=""
mount_boot() {
    [ -n "$MOUNTS" ] || { echo "no separate /boot volumes"; return 0; }
    for m in $MOUNTS; do
        p=${m%%|*}; r=${m#*|}; t=${r%%|*}; u=${r#*|}
        if is_mounted "$p"; then echo "$p is mounted already"; continue; fi
        modprobe "$t" 2>/dev/null
        [ "$t" = vfat ] && modprobe nls_cp437 2>/dev/null && modprobe nls_ascii 2>/dev/null
        if mount -t "$t" "UUID=$u" "$p"; then
            echo "mounted $p ($t, UUID=$u)"
            MOUNTED="$p $MOUNTED"
        elif [ "$t" = vfat ]; then
            echo "could not mount $p ($t, UUID=$u); the steps do not need it"
        else
            echo "cannot mount $p ($t, UUID=$u)"; return 1
        fi
    done
}

tool() {
    if [ -f /etc/initramfs-tools/initramfs.conf ] && command -v update-initramfs >/dev/null; then
        echo initramfs-tools
    elif command -v dracut >/dev/null; then
        echo dracut
    else
        echo none
    fi
}

add_modules() {
    case $(tool) in
    initramfs-tools)
        for m in $MODS; do
            grep -qx "$m" /etc/initramfs-tools/modules 2>/dev/null || echo "$m" >> /etc/initramfs-tools/modules
        done
        echo "initramfs-tools: /etc/initramfs-tools/modules now lists $MODS" ;;
    dracut)
        mkdir -p /etc/dracut.conf.d
        echo "add_drivers+=\" $MODS \"" > /etc/dracut.conf.d/90-hyper2kvm-virtio.conf
        echo "dracut: /etc/dracut.conf.d/90-hyper2kvm-virtio.conf adds $MODS" ;;
    *)
        echo "neither initramfs-tools (update-initramfs) nor dracut is installed"; return 1 ;;
    esac
}

edit_files() {
    for e in $EDITS; do
        p=$(cat "$H/$e.path")
        if ! cmp -s "$H/$e.old" "$p"; then
            echo "$p changed since it was inspected; not replacing it"; return 1
        fi
        [ -e "$p.hyper2kvm-backup" ] || cp -p "$p" "$p.hyper2kvm-backup" || return 1
        cat "$H/$e.new" > "$p" || return 1
        echo "rewrote $p (backup $p.hyper2kvm-backup)"
    done
}

pin_links() {
    mkdir -p /etc/systemd/network || return 1
    for l in $LINKS; do
        cat "$H/$l" > "/etc/systemd/network/10-hyper2kvm-$l.link" || return 1
        echo "wrote /etc/systemd/network/10-hyper2kvm-$l.link"
    done
}

lvm_devices() {
    f=/etc/lvm/devices/system.devices
    if [ -f "$f" ]; then mv "$f" "$f.hyper2kvm-backup" && echo "moved $f aside"; else echo "no $f"; fi
}

backup_initrd() {
    [ -f "$INITRD" ] || { echo "$INITRD does not exist"; return 1; }
    if [ -e "$INITRD.hyper2kvm-backup" ]; then
        echo "$INITRD.hyper2kvm-backup already exists; kept"
    else
        cp -p "$INITRD" "$INITRD.hyper2kvm-backup" && echo "saved $INITRD.hyper2kvm-backup"
    fi
}

uninstall_tools() {
    [ -n "$UNINST" ] || { echo "no tarball-installed tools to remove"; return 0; }
    for u in $UNINST; do
        if [ ! -e "$u" ]; then echo "$u is gone already"; continue; fi
        echo "running $u"
        if [ -x "$u" ]; then "$u" < /dev/null; else sh "$u" < /dev/null; fi
        rc=$?
        if [ "$rc" -eq 0 ]; then echo "$u: done"; else echo "$u FAILED (exit $rc): the tools stay installed; remove them by hand"; fi
    done
    return 0
}

rebuild() {
    case $(tool) in
    initramfs-tools) update-initramfs -u -k "$KVER" ;;
    dracut) dracut -f "$INITRD" "$KVER" ;;
    *) echo "no initramfs generator"; return 1 ;;
    esac
}

verify() {
    if grep -q '/virtio_blk\.ko' "/lib/modules/$KVER/modules.builtin" 2>/dev/null; then
        echo "virtio_blk is built into $KVER"; return 0
    fi
    case $(tool) in
    initramfs-tools) lsinitramfs "$INITRD" > "$H/list" ;;
    dracut) lsinitrd "$INITRD" > "$H/list" ;;
    esac
    if grep -q 'virtio_blk\.ko' "$H/list"; then
        echo "$INITRD carries virtio_blk"
    else
        echo "$INITRD still lacks virtio_blk after the rebuild"; return 1
    fi
}

selinux() {
    if [ -f /etc/selinux/config ] && grep -q '^SELINUX=enforcing' /etc/selinux/config; then
        touch /.autorelabel && echo "SELinux enforcing: /.autorelabel"
    else
        echo "SELinux not enforcing"
    fi
}

con "h2k: fix script running in the guest's root ($(uname -r))"
step remount-rw remount_rw
step mount-boot mount_boot
step virtio-modules add_modules
step edit-files edit_files
step pin-interface-names pin_links
step lvm-devices lvm_devices
step backup-initrd backup_initrd
step remove-foreign-tools uninstall_tools
step rebuild-initramfs rebuild
step verify-initramfs verify
step selinux selinux
finish 0
"#;

/// Check values that end up in file names or the script.
fn validate(b: &Bootstrap) -> Result<(), LinuxFixError> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+/~:@".contains(c))
    };
    if !plain(&b.kernel_version) || b.kernel_version.contains('/') {
        return Err(LinuxFixError::Input(format!(
            "kernel version {:?}",
            b.kernel_version
        )));
    }
    if !b.initrd_path.starts_with('/') || !plain(&b.initrd_path) {
        return Err(LinuxFixError::Input(format!(
            "initrd path {:?}",
            b.initrd_path
        )));
    }
    for e in &b.edits {
        if !e.path.starts_with('/') || !plain(&e.path) {
            return Err(LinuxFixError::Input(format!("edit path {:?}", e.path)));
        }
    }
    for u in &b.uninstallers {
        if !u.starts_with('/') || !plain(u) {
            return Err(LinuxFixError::Input(format!("uninstaller {u:?}")));
        }
    }
    for m in &b.mounts {
        let fs_ok = !m.fs.is_empty() && m.fs.chars().all(|c| c.is_ascii_alphanumeric());
        let uuid_ok =
            !m.uuid.is_empty() && m.uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if !m.path.starts_with('/') || !plain(&m.path) || !fs_ok || !uuid_ok {
            return Err(LinuxFixError::Input(format!(
                "mount {} ({}, UUID={})",
                m.path, m.fs, m.uuid
            )));
        }
    }
    for l in &b.links {
        let mac_ok = l.mac.len() == 17
            && l.mac
                .split(':')
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        let name_ok = !l.name.is_empty()
            && l.name.len() <= 15
            && l.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !mac_ok || !name_ok {
            return Err(LinuxFixError::Input(format!(
                "interface pin {} -> {:?}",
                l.mac, l.name
            )));
        }
    }
    // Slots left for the result disk: PIIX IDE has 4, our AHCI use 6.
    let max = match b.controller {
        Controller::Ide => 3,
        Controller::Sata => 5,
        _ => 15,
    };
    if b.disks.is_empty() || b.disks.len() > max {
        return Err(LinuxFixError::Input(format!(
            "{} disks on {:?} (1..={max} plus the result disk)",
            b.disks.len(),
            b.controller
        )));
    }
    for (p, f) in &b.disks {
        if f != "raw" && f != "qcow2" {
            return Err(LinuxFixError::Input(format!(
                "{}: format {f:?} (raw or qcow2)",
                p.display()
            )));
        }
    }
    Ok(())
}

/// The fix script with its parameters.
pub fn fix_script(b: &Bootstrap, nonce: &str) -> String {
    let edits: Vec<String> = (0..b.edits.len()).map(|i| format!("edit{i}")).collect();
    let links: Vec<String> = b.links.iter().map(|l| l.name.clone()).collect();
    let mounts: Vec<String> = b
        .mounts
        .iter()
        .map(|m| format!("{}|{}|{}", m.path, m.fs, m.uuid))
        .collect();
    format!(
        "#!/bin/sh\n# hyper2kvm bootstrap fix script (runs in the guest's root).\nKVER={}\nINITRD={}\nNONCE={}\nMODS={}\nEDITS={}\nLINKS={}\nMOUNTS={}\nUNINST={}\n{FIX_BODY}",
        sq(&b.kernel_version),
        sq(&b.initrd_path),
        sq(nonce),
        sq(&VIRTIO_MODULES.join(" ")),
        sq(&edits.join(" ")),
        sq(&links.join(" ")),
        sq(&mounts.join(" ")),
        sq(&b.uninstallers.join(" ")),
    )
}

/// The systemd `.link` file pinning `l.name` to `l.mac`.
pub fn link_file(l: &LinkPin) -> String {
    format!(
        "# hyper2kvm: keep the name this interface had before the migration\n[Match]\nMACAddress={}\n\n[Link]\nName={}\n",
        l.mac.to_ascii_lowercase(),
        l.name
    )
}

/// The extra archive appended to the initrd.
pub fn extra_cpio(b: &Bootstrap, nonce: &str) -> Result<Vec<u8>, LinuxFixError> {
    validate(b)?;
    let mut files: Vec<(String, Vec<u8>)> =
        vec![("fix.sh".into(), fix_script(b, nonce).into_bytes())];
    for (i, e) in b.edits.iter().enumerate() {
        files.push((format!("edit{i}.path"), e.path.clone().into_bytes()));
        files.push((format!("edit{i}.old"), e.old.clone()));
        files.push((format!("edit{i}.new"), e.new.clone()));
    }
    for l in &b.links {
        files.push((l.name.clone(), link_file(l).into_bytes()));
    }
    let names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    let mut w = Writer::new();
    w.file("h2k-init", 0o755, WRAPPER.as_bytes())?;
    w.dir("h2k", 0o755)?;
    w.file("h2k/hook", 0o755, hook_script(&names).as_bytes())?;
    for (n, d) in &files {
        w.file(&format!("h2k/{n}"), 0o644, d)?;
    }
    Ok(w.finish())
}

/// The initrd of the bootstrap boot: the guest's, zero-padded to 4 bytes,
/// then the extra archive.
pub fn bootstrap_initrd(initrd: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(initrd.len() + extra.len() + 4);
    v.extend_from_slice(initrd);
    v.resize(initrd.len().div_ceil(4) * 4, 0);
    v.extend_from_slice(extra);
    v
}

/// The command line of the bootstrap boot: the guest's own, minus `quiet`
/// and `splash`, plus the serial console last (so `/dev/console` is
/// ttyS0), `rdinit=/h2k-init`, `panic=1` (a panic ends the boot: QEMU runs
/// with `-no-reboot`) and dracut's no-shell options.
pub fn bootstrap_cmdline(guest: &str) -> String {
    let mut w: Vec<&str> = guest
        .split_whitespace()
        .filter(|x| {
            !matches!(*x, "quiet" | "splash")
                && !x.starts_with("rdinit=")
                && !x.starts_with("panic=")
        })
        .collect();
    w.extend([
        "console=ttyS0,115200n8",
        "rdinit=/h2k-init",
        "panic=1",
        "rd.shell=0",
        "rd.emergency=poweroff",
    ]);
    w.join(" ")
}

/// QEMU disk options for `controller` (the result disk last).
fn disk_args(controller: Controller, disks: &[(PathBuf, String)]) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let dev = |a: &mut Vec<String>, s: String| {
        a.push("-device".into());
        a.push(s);
    };
    match controller {
        Controller::Sata => dev(&mut a, "ahci,id=hc".into()),
        Controller::VirtioScsi => dev(&mut a, "virtio-scsi-pci,id=hc".into()),
        Controller::Pvscsi => dev(&mut a, "pvscsi,id=hc".into()),
        Controller::LsiSas => dev(&mut a, "mptsas1068,id=hc".into()),
        Controller::Ide | Controller::VirtioBlk => {}
    }
    for (i, (p, f)) in disks.iter().enumerate() {
        let file = format!(
            "file={},format={f}",
            p.display().to_string().replace(',', ",,")
        );
        a.push("-drive".into());
        match controller {
            Controller::Ide => a.push(format!("{file},if=ide,index={i},media=disk")),
            Controller::VirtioBlk => a.push(format!("{file},if=virtio")),
            _ => {
                a.push(format!("{file},if=none,id=d{i}"));
                let d = match controller {
                    Controller::Sata => format!("ide-hd,drive=d{i},bus=hc.{i}"),
                    _ => format!("scsi-hd,drive=d{i},bus=hc.0,scsi-id={i}"),
                };
                dev(&mut a, d);
            }
        }
    }
    a
}

/// The full QEMU argv of the bootstrap boot.
pub fn qemu_argv(
    b: &Bootstrap,
    kernel: &Path,
    initrd: &Path,
    result: &Path,
    serial: &Path,
) -> Vec<String> {
    let mut disks = b.disks.clone();
    disks.push((result.to_path_buf(), "raw".into()));
    let machine = if b.controller == Controller::Sata {
        "q35"
    } else {
        "pc"
    };
    let mut a: Vec<String> = [
        "qemu-system-x86_64",
        "-machine",
        machine,
        "-accel",
        &b.accel,
        "-m",
        &b.memory_mib.to_string(),
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push("-serial".into());
    a.push(format!("file:{}", serial.display()));
    a.push("-kernel".into());
    a.push(kernel.display().to_string());
    a.push("-initrd".into());
    a.push(initrd.display().to_string());
    a.push("-append".into());
    a.push(bootstrap_cmdline(&b.cmdline));
    a.extend(disk_args(b.controller, &disks));
    a
}

/// Parse the log the guest wrote (result disk from offset 4096, up to the
/// first NUL): the steps and whether `H2K-END` was reached.
pub fn parse_result(log: &str) -> (Vec<StepResult>, Option<i32>) {
    let mut steps: Vec<StepResult> = Vec::new();
    let mut end = None;
    let mut cur: Option<(String, String)> = None;
    for line in log.lines() {
        if let Some(n) = line.strip_prefix("H2K-STEP ") {
            cur = Some((n.to_string(), String::new()));
        } else if let Some(r) = line.strip_prefix("H2K-RC ") {
            let (n, rc) = r.rsplit_once(' ').unwrap_or((r, "-1"));
            let out = cur.take().map(|c| c.1).unwrap_or_default();
            steps.push(StepResult {
                name: n.to_string(),
                rc: rc.parse().unwrap_or(-1),
                output: out,
            });
        } else if let Some(r) = line.strip_prefix("H2K-END rc=") {
            end = Some(r.trim().parse().unwrap_or(-1));
        } else if let Some(c) = cur.as_mut() {
            c.1.push_str(line);
            c.1.push('\n');
        }
    }
    if let Some((n, out)) = cur {
        steps.push(StepResult {
            name: n,
            rc: -1,
            output: out + "(step did not finish)\n",
        });
    }
    (steps, end)
}

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", t, std::process::id())
}

fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read(path).unwrap_or_default();
    let s = String::from_utf8_lossy(&s);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Run QEMU until it exits or the time limit passes (then kill it).
fn run_qemu(
    argv: &[String],
    log: &Path,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>, LinuxFixError> {
    let out = std::fs::File::create(log).map_err(io(log))?;
    let err = out.try_clone().map_err(io(log))?;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| LinuxFixError::Spawn {
            program: argv[0].clone(),
            source,
        })?;
    let _registered = crate::cleanup::register_child(child.id());
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(Some(st)),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(500)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
        }
    }
}

/// Run the bootstrap boot (see the module docs). The disks in `b` are
/// modified by the guest. Returns the steps when all succeeded.
pub fn run_bootstrap(b: &Bootstrap) -> Result<BootstrapReport, LinuxFixError> {
    let nonce = nonce();
    let extra = extra_cpio(b, &nonce)?;
    let w = &b.work_dir;
    std::fs::create_dir_all(w).map_err(io(w))?;
    let kernel = w.join("bootstrap-vmlinuz");
    let initrd = w.join("bootstrap-initrd");
    let result = w.join("bootstrap-result.raw");
    let serial = w.join("bootstrap-serial.log");
    let qlog = w.join("bootstrap-qemu.log");
    std::fs::write(&kernel, &b.kernel).map_err(io(&kernel))?;
    std::fs::write(&initrd, bootstrap_initrd(&b.initrd, &extra)).map_err(io(&initrd))?;
    let mut disk = vec![0u8; RESULT_DISK];
    let hdr = format!("H2KRESULT {nonce}\n");
    disk[..hdr.len()].copy_from_slice(hdr.as_bytes());
    std::fs::write(&result, &disk).map_err(io(&result))?;
    let argv = qemu_argv(b, &kernel, &initrd, &result, &serial);
    let start = Instant::now();
    let status = run_qemu(&argv, &qlog, b.timeout)?;
    let seconds = start.elapsed().as_secs_f64();
    let back = std::fs::read(&result).map_err(io(&result))?;
    let log = &back[RESULT_LOG_AT..];
    let log = &log[..log.iter().position(|c| *c == 0).unwrap_or(log.len())];
    let (steps, end) = parse_result(&String::from_utf8_lossy(log));
    if let Some(f) = steps.iter().find(|s| s.rc != 0) {
        return Err(LinuxFixError::StepFailed {
            step: f.name.clone(),
            rc: f.rc,
            output: f.output.clone(),
        });
    }
    if end != Some(0) {
        let why = match status {
            None => format!("no result within {} s", b.timeout.as_secs()),
            Some(st) => format!(
                "QEMU exited ({st}) before the fix script finished; QEMU log: {}",
                tail(&qlog, 5)
            ),
        };
        return Err(LinuxFixError::Incomplete {
            why,
            steps: steps.iter().map(|s| s.name.clone()).collect(),
            serial_tail: tail(&serial, 40),
        });
    }
    Ok(BootstrapReport {
        steps,
        seconds,
        serial_log: serial,
        controller: b.controller,
    })
}
