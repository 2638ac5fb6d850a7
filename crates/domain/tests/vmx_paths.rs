//! VMX file names as admins' copies have them: absolute paths into the
//! VM's own folder, ESXi datastore and Windows paths of the original host
//! (VMware's tools fall back to the file name in the VM's folder), CD-ROM
//! images present or missing, and devices beyond the parser's bounds.

use domain::*;
use std::path::{Path, PathBuf};

const HEAD: &str =
    "config.version = \"8\"\nvirtualHW.version = \"19\"\nguestOS = \"windows9-64\"\nmemsize = \"2048\"\n";

fn vm_dir(t: &Path) -> PathBuf {
    let d = t.join("vm");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("disk.vmdk"), b"# Disk DescriptorFile\n").unwrap();
    d
}

fn write_vmx(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("vm.vmx");
    std::fs::write(&p, format!("{HEAD}{body}")).unwrap();
    p
}

fn scsi_disk(name: &str) -> String {
    format!(
        "scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"{}\"\n",
        name.replace('"', "|22")
    )
}

const DENY: ParseOptions = ParseOptions {
    allow_outside: false,
};
const ALLOW: ParseOptions = ParseOptions {
    allow_outside: true,
};

fn disk_path(m: &VmModel) -> PathBuf {
    match &m.disks[0].source {
        DiskSource::File { path } => path.clone(),
        other => panic!("not a file: {other:?}"),
    }
}

#[test]
fn absolute_path_inside_the_vms_folder_is_accepted() {
    let t = tempfile::tempdir().unwrap();
    let d = vm_dir(t.path());
    let abs = d.join("disk.vmdk");
    let p = write_vmx(&d, &scsi_disk(abs.to_str().unwrap()));
    let m = vmx::parse_file(&p, &DENY).expect("absolute path inside the VM folder");
    assert_eq!(disk_path(&m), d.join("disk.vmdk"));
    assert_eq!(m.disks[0].source_name, abs.to_str().unwrap());
    assert!(
        !m.warnings.iter().any(|w| w.contains("does not exist")),
        "{:?}",
        m.warnings
    );
    // The same through a symlinked route to the folder.
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&d, &link).unwrap();
    let p = write_vmx(&d, &scsi_disk(link.join("disk.vmdk").to_str().unwrap()));
    let m = vmx::parse_file(&p, &DENY).expect("absolute path via a symlinked folder");
    assert_eq!(disk_path(&m), d.join("disk.vmdk"));
}

#[test]
fn datastore_and_foreign_paths_fall_back_to_the_vms_folder_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let d = vm_dir(t.path());
    for name in [
        "/vmfs/volumes/datastore1/vm/disk.vmdk",
        "/vmfs/volumes/5f1e2d3c-aabbccdd/vm/disk.vmdk",
        r"C:\Users\admin\Documents\Virtual Machines\vm\disk.vmdk",
        "[datastore1] vm/disk.vmdk",
    ] {
        for opts in [DENY, ALLOW] {
            let p = write_vmx(&d, &scsi_disk(name));
            let m = vmx::parse_file(&p, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(disk_path(&m), d.join("disk.vmdk"), "{name}");
            let w: Vec<&String> = m
                .warnings
                .iter()
                .filter(|w| w.contains("does not exist on this host"))
                .collect();
            assert_eq!(w.len(), 1, "{name}: {:?}", m.warnings);
            assert!(
                w[0].contains("scsi0:0.fileName") && w[0].contains("\"disk.vmdk\""),
                "{}",
                w[0]
            );
        }
    }
}

#[test]
fn missing_everywhere_is_refused_with_both_places_named() {
    let t = tempfile::tempdir().unwrap();
    let d = vm_dir(t.path());
    let p = write_vmx(&d, &scsi_disk("/vmfs/volumes/datastore1/vm/gone.vmdk"));
    for opts in [DENY, ALLOW] {
        let e = vmx::parse_file(&p, &opts).unwrap_err().to_string();
        assert!(
            e.contains("/vmfs/volumes/datastore1/vm/gone.vmdk")
                && e.contains("does not exist on this host")
                && e.contains(&d.join("gone.vmdk").display().to_string()),
            "{e}"
        );
    }
}

#[test]
fn existing_absolute_path_outside_still_needs_the_flag() {
    let t = tempfile::tempdir().unwrap();
    let d = vm_dir(t.path());
    let other = t.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    // Same file name in both places: the real outside file is named, so
    // no fallback to the folder's copy.
    std::fs::write(other.join("disk.vmdk"), b"x").unwrap();
    let p = write_vmx(&d, &scsi_disk(other.join("disk.vmdk").to_str().unwrap()));
    let e = vmx::parse_file(&p, &DENY).unwrap_err().to_string();
    assert!(e.contains("allow-outside-paths"), "{e}");
    let m = vmx::parse_file(&p, &ALLOW).unwrap();
    assert_eq!(disk_path(&m), other.join("disk.vmdk"));
}

fn cdrom(dtype: &str, file: &str, extra: &str) -> String {
    format!(
        "{}sata0.present = \"TRUE\"\nsata0:1.present = \"TRUE\"\nsata0:1.deviceType = \"{dtype}\"\nsata0:1.fileName = \"{file}\"\n{extra}",
        scsi_disk("disk.vmdk")
    )
}

#[test]
fn cdrom_images_are_resolved_or_warned_about() {
    let t = tempfile::tempdir().unwrap();
    let d = vm_dir(t.path());
    std::fs::write(d.join("tools.iso"), b"iso").unwrap();
    let outside = t.path().join("isos");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("install.iso"), b"iso").unwrap();
    let outside_iso = outside.join("install.iso").display().to_string();

    // (fileName, deviceType, extra keys, parse options, expected path, warning needle)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        ParseOptions,
        Option<PathBuf>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "tools.iso",
            "cdrom-image",
            "",
            DENY,
            Some(d.join("tools.iso")),
            "",
        ),
        (
            "/vmfs/volumes/datastore1/ISO/tools.iso",
            "cdrom-image",
            "",
            DENY,
            Some(d.join("tools.iso")),
            "does not exist on this host",
        ),
        ("missing.iso", "cdrom-image", "", DENY, None, "not found"),
        (
            "/vmfs/volumes/datastore1/ISO/missing.iso",
            "cdrom-image",
            "",
            ALLOW,
            None,
            "not attached",
        ),
        (
            &outside_iso,
            "cdrom-image",
            "",
            DENY,
            None,
            "allow-outside-paths",
        ),
        (
            &outside_iso,
            "cdrom-image",
            "",
            ALLOW,
            Some(outside.join("install.iso")),
            "",
        ),
        (
            "auto detect",
            "cdrom-raw",
            "",
            DENY,
            None,
            "host's CD/DVD drive",
        ),
        (
            "tools.iso",
            "cdrom-image",
            "sata0:1.startConnected = \"FALSE\"\n",
            DENY,
            None,
            "not connected at power-on",
        ),
    ];
    for (file, dtype, extra, opts, want, needle) in cases {
        let p = write_vmx(&d, &cdrom(dtype, file, extra));
        let m = vmx::parse_file(&p, &opts).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.cdroms.len(), 1, "{file}");
        assert_eq!(m.cdroms[0].image.as_deref(), Some(file));
        assert_eq!(m.cdroms[0].path, want, "{file} ({dtype}, {opts:?})");
        if needle.is_empty() {
            assert!(m.warnings.is_empty(), "{file}: {:?}", m.warnings);
        } else {
            assert!(
                m.warnings
                    .iter()
                    .any(|w| w.contains(needle) && w.contains("sata0:1")),
                "{file}: want {needle:?} in {:?}",
                m.warnings
            );
        }
    }
}

#[test]
fn dropped_nics_and_devices_are_warnings() {
    let t = tempfile::tempdir().unwrap();
    let d = vm_dir(t.path());
    let mut body = scsi_disk("disk.vmdk");
    for n in 0..5000 {
        body.push_str(&format!(
            "ethernet{n}.present = \"TRUE\"\nethernet{n}.virtualDev = \"e1000\"\nethernet{n}.addressType = \"static\"\nethernet{n}.address = \"00:50:56:00:{:02x}:{:02x}\"\n",
            n >> 8,
            n & 0xff
        ));
    }
    body.push_str("ethernet7000.present = \"FALSE\"\n");
    body.push_str("scsi70.present = \"TRUE\"\nscsi70:0.present = \"TRUE\"\nscsi70:0.fileName = \"disk.vmdk\"\n");
    body.push_str("scsi0:300.present = \"TRUE\"\nscsi0:300.fileName = \"disk.vmdk\"\n");
    let p = write_vmx(&d, &body);
    let m = vmx::parse_file(&p, &DENY).unwrap();
    assert_eq!(m.nics.len(), 100);
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("4900 network adapter(s)") && w.contains("dropped")),
        "{:?}",
        m.warnings
    );
    let dev = m
        .warnings
        .iter()
        .find(|w| w.contains("device(s) with a controller number"))
        .unwrap_or_else(|| panic!("{:?}", m.warnings));
    assert!(
        dev.starts_with("2 device(s)") && dev.contains("scsi70:0") && dev.contains("scsi0:300"),
        "{dev}"
    );
    assert_eq!(m.disks.len(), 1);
}
