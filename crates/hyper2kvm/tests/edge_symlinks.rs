//! Symbolic links inside a VM's folder must not let a name found inside an
//! image or a VM description reach a file outside that folder: a VMDK
//! extent, a qcow2 backing file, a VMX disk and a directory component that
//! are links to files outside are refused (naming the link and its target)
//! with no output written; `--allow-outside-paths` accepts them, and the
//! bytes then read are the linked file's (checked with qemu-img). Links
//! that stay inside the folder keep working.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::qemu::{qemu_img, qemu_raw};
use testkit::s;

mod support;

use support::bin;

/// A marker that only the file outside the VM folder holds.
const SECRET: &[u8] = b"SECRET-OUTSIDE-THE-VM-FOLDER 0123456789";
const SIZE: usize = 1 << 20;

fn hyper2kvm(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A raw disk of 1 MiB holding [`SECRET`] at offset 64 KiB.
fn secret_raw(path: &Path) {
    let mut data = vec![0u8; SIZE];
    data[65536..65536 + SECRET.len()].copy_from_slice(SECRET);
    std::fs::write(path, data).unwrap();
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The VM folder `vm/` and a sibling folder `outside/` under one temp dir.
fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let vm = t.path().join("vm");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&vm).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    (t, vm, outside)
}

/// `convert` of `src` is refused with a message naming `link` and
/// `target`, and writes nothing; with `--allow-outside-paths` it succeeds
/// and the output (read back by qemu-img) holds the secret.
fn assert_convert_gated(src: &Path, link: &Path, target: &Path, work: &Path) {
    let dst = work.join("out.qcow2");
    for cmd in [&["info", s(src)][..], &["convert", s(src), s(&dst)][..]] {
        let o = hyper2kvm(cmd);
        let err = stderr(&o);
        assert!(!o.status.success(), "{cmd:?} accepted a link outside");
        assert!(err.contains("symbolic link"), "{cmd:?}: {err}");
        assert!(
            err.contains(s(link)),
            "{cmd:?} does not name the link: {err}"
        );
        assert!(
            err.contains(s(target)),
            "{cmd:?} does not name the target: {err}"
        );
        assert!(err.contains("--allow-outside-paths"), "{cmd:?}: {err}");
    }
    let written: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("out.qcow2"))
        .collect();
    assert!(written.is_empty(), "refused convert wrote {written:?}");

    let o = hyper2kvm(&[
        "convert",
        s(src),
        s(&dst),
        "--allow-outside-paths",
        "--quiet",
    ]);
    assert!(o.status.success(), "allowed convert failed: {}", stderr(&o));
    let bytes = qemu_raw(&dst, Some("qcow2"), work);
    assert!(
        contains(&bytes, SECRET),
        "output lacks the linked file's data"
    );
}

#[test]
fn vmdk_extent_symlink_outside_is_refused() {
    let (t, vm, outside) = layout();
    let raw = t.path().join("src.raw");
    secret_raw(&raw);
    let vmdk = vm.join("pw.vmdk");
    testkit::qemu::vmdk_from_raw(&raw, "monolithicFlat", &vmdk);
    // The descriptor names pw-flat.vmdk; make that a link to a file
    // outside the VM folder (the /etc/passwd case).
    let flat = vm.join("pw-flat.vmdk");
    let target = outside.join("passwd");
    std::fs::rename(&flat, &target).unwrap();
    symlink(&target, &flat).unwrap();
    assert_convert_gated(&vmdk, &flat, &target, t.path());
}

#[test]
fn qcow2_backing_symlink_outside_is_refused() {
    let (t, vm, outside) = layout();
    let target = outside.join("base.raw");
    secret_raw(&target);
    let link = vm.join("base.raw");
    symlink(&target, &link).unwrap();
    let top = vm.join("top.qcow2");
    // Relative backing name, as qemu-img writes it with -b NAME.
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        s(&top),
    ]);
    assert_convert_gated(&top, &link, &target, t.path());
}

#[test]
fn symlinked_directory_component_outside_is_refused() {
    let (t, vm, outside) = layout();
    let real_dir = outside.join("disks");
    std::fs::create_dir_all(&real_dir).unwrap();
    secret_raw(&real_dir.join("base.raw"));
    let link = vm.join("disks");
    symlink(&real_dir, &link).unwrap();
    let top = vm.join("top.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "disks/base.raw",
        "-F",
        "raw",
        s(&top),
    ]);
    assert_convert_gated(&top, &link, &real_dir, t.path());
}

#[test]
fn symlinks_that_stay_inside_the_vm_folder_are_followed() {
    let (t, vm, _outside) = layout();
    let sub = vm.join("store");
    std::fs::create_dir_all(&sub).unwrap();
    secret_raw(&sub.join("base.raw"));
    symlink("store", vm.join("alias")).unwrap();
    symlink(sub.join("base.raw"), vm.join("base.raw")).unwrap();
    for backing in ["base.raw", "alias/base.raw"] {
        let top = vm.join("top.qcow2");
        let _ = std::fs::remove_file(&top);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            backing,
            "-F",
            "raw",
            s(&top),
        ]);
        let dst = t.path().join("ok.qcow2");
        let _ = std::fs::remove_file(&dst);
        let o = hyper2kvm(&["convert", s(&top), s(&dst), "--quiet"]);
        assert!(o.status.success(), "{backing}: {}", stderr(&o));
        assert!(contains(&qemu_raw(&dst, Some("qcow2"), t.path()), SECRET));
    }
}

const VMX: &str = r#".encoding = "UTF-8"
config.version = "8"
virtualHW.version = "11"
displayName = "linky"
guestOS = "other-64"
memsize = "256"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "DISK"
scsi0:0.deviceType = "scsi-hardDisk"
"#;

/// A VMX in `vm/` whose disk is named `disk_name`; the disk itself is a
/// sparse VMDK made by qemu-img at `real` (outside).
fn vmx_with(vm: &Path, disk_name: &str, real: &Path, work: &Path) -> PathBuf {
    let raw = work.join("vmx-src.raw");
    secret_raw(&raw);
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    testkit::qemu::vmdk_from_raw(&raw, "monolithicSparse", real);
    let vmx = vm.join("linky.vmx");
    std::fs::write(&vmx, VMX.replace("DISK", disk_name)).unwrap();
    vmx
}

/// `migrate --dry-run` refuses (naming link and target) and leaves only
/// `report.json`; with `--allow-outside-paths` it plans.
fn assert_migrate_gated(vmx: &Path, link: &Path, target: &Path, work: &Path) {
    let out = work.join("out");
    let o = hyper2kvm(&["migrate", s(vmx), "--out", s(&out), "--dry-run", "--quiet"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "migrate accepted a link outside");
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains(s(link)), "link not named: {err}");
    assert!(err.contains(s(target)), "target not named: {err}");
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["report.json".to_string()]);

    let out2 = work.join("out2");
    let o = hyper2kvm(&[
        "migrate",
        s(vmx),
        "--out",
        s(&out2),
        "--dry-run",
        "--quiet",
        "--allow-outside-paths",
    ]);
    assert!(o.status.success(), "allowed migrate failed: {}", stderr(&o));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["disks"][0]["virtual_size"], SIZE as u64);
}

#[test]
fn vmx_disk_symlink_outside_is_refused() {
    let (t, vm, outside) = layout();
    let target = outside.join("disk.vmdk");
    let vmx = vmx_with(&vm, "disk.vmdk", &target, t.path());
    let link = vm.join("disk.vmdk");
    symlink(&target, &link).unwrap();
    assert_migrate_gated(&vmx, &link, &target, t.path());
}

#[test]
fn vmx_disk_behind_a_symlinked_directory_is_refused() {
    let (t, vm, outside) = layout();
    let target = outside.join("store").join("disk.vmdk");
    let vmx = vmx_with(&vm, "disks/disk.vmdk", &target, t.path());
    let link = vm.join("disks");
    symlink(outside.join("store"), &link).unwrap();
    assert_migrate_gated(&vmx, &link, &outside.join("store"), t.path());
}
