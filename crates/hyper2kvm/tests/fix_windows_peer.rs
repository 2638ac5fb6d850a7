//! Side by side with virt-v2v (opt-in: runs only with `HYPER2KVM_PEER=1`;
//! `bench/windows.sh` runs it). On phony Windows 7 (x64, CriticalDevice-
//! Database path) and Windows 10 (DriverDatabase path) guests, with the
//! same fake virtio-win tree (`VIRTIO_WIN`), Debian's `virt-v2v -i disk
//! IMG -o local -of raw` converts one copy and `hyper2kvm fix-windows
//! --block virtio-blk` fixes another. Both results' SYSTEM hives (read with
//! sleuthkit, exported with `hivexregedit --export`) are diffed against
//! the pristine hive; every value virt-v2v writes for the storage driver —
//! its service key (`Services\viostor` and below), its
//! `CriticalDeviceDatabase\PCI#VEN_1AF4…` entries and its `DriverDatabase`
//! registration — must be written by us too: same key and compatible
//! data. What we write beyond it is printed (`peer: beyond virt-v2v: …`).
//!
//! Keys: the same path, except in `DriverDatabase`, where names are the
//! writer's choice: virt-v2v's INF name (`guestor.inf`), package label
//! (`guestor.inf_tmp` style) and configuration name (`guestor_conf`) are
//! mapped to ours (`viostor.inf`, `viostor.inf_<arch>_<16 hex>`, ours) —
//! both read from the keys each tool created under `DriverInfFiles` and
//! `DriverPackages` — before comparing.
//!
//! "Compatible" per value type:
//! - REG_DWORD/QWORD: equal.
//! - REG_SZ/REG_EXPAND_SZ: equal ignoring case after the name mapping.
//! - REG_MULTI_SZ: the same strings, ignoring case, after the mapping.
//! - REG_BINARY/REG_NONE/other: equal bytes, except the `DriverPackages`
//!   `Version` blob, where virt-v2v writes a placeholder (no date, no
//!   version) and we the INF's `DriverVer`: compatible when the length, the
//!   flags/architecture word (bytes 0–3) and the class GUID (bytes 8–23)
//!   agree; and the `DeviceIds` rank (4 bytes named after the INF):
//!   compatible when both are 4 bytes with the same feature score (byte 1).
//!
//! virt-v2v needs nbdkit and libnbd-bin besides virt-v2v, a kernel for its
//! appliance, and `rhsrvany.exe` (or `pvvxsvc.exe`) for its firstboot
//! scripts: a stub in a `VIRT_TOOLS_DATA_DIR` is enough (the guest never
//! boots here). Runs under TCG (`LIBGUESTFS_BACKEND_SETTINGS=force_tcg`):
//! about a minute per guest.

#[path = "support/regdiff.rs"]
mod regdiff;
mod support;
#[path = "support/tsk.rs"]
mod tsk;

use guest::drivers::Arch;
use phony::{Options, Version};
use regdiff::{decode, diff, export, multi, utf16, Export};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{bin, fake_virtio_win};

fn enabled() -> bool {
    std::env::var("HYPER2KVM_PEER").as_deref() == Ok("1")
}

/// Storage-driver keys of a SYSTEM hive (lower-case paths).
fn storage_key(k: &str) -> bool {
    let parts: Vec<&str> = k.split('\\').collect();
    if parts.first() == Some(&"driverdatabase") {
        return true;
    }
    if parts.len() >= 3 && parts[0].starts_with("controlset") {
        if parts[1] == "services" && (parts[2] == "viostor" || parts[2] == "vioscsi") {
            return true;
        }
        if parts.len() >= 4
            && parts[1] == "control"
            && parts[2] == "criticaldevicedatabase"
            && parts[3].starts_with("pci#ven_1af4")
        {
            return true;
        }
    }
    false
}

/// The DriverDatabase names a tool chose: (INF name, package label,
/// configuration names), read from the keys it created.
fn ddb_names(created: &[String]) -> (Option<String>, Option<String>) {
    let sub = |pre: &str| {
        created.iter().find_map(|k| {
            k.strip_prefix(pre)
                .filter(|r| !r.contains('\\'))
                .map(String::from)
        })
    };
    (
        sub("driverdatabase\\driverinffiles\\"),
        sub("driverdatabase\\driverpackages\\"),
    )
}

/// Configuration names listed under `DriverInfFiles\<inf>`.
fn confs(e: &Export, inf: &str) -> Vec<String> {
    regdiff::val(
        e,
        &format!("driverdatabase\\driverinffiles\\{inf}"),
        "configurations",
    )
    .map(|t| multi(&decode(t).1))
    .unwrap_or_default()
    .into_iter()
    .map(|s| s.to_lowercase())
    .collect()
}

fn compatible(
    key: &str,
    name: &str,
    theirs: &str,
    ours: &str,
    map: &dyn Fn(&str) -> String,
) -> bool {
    let (tt, tb) = decode(theirs);
    let (ot, ob) = decode(ours);
    if tt != ot {
        return false;
    }
    match tt {
        1 | 2 => map(&utf16(&tb)).eq_ignore_ascii_case(&utf16(&ob)),
        7 => {
            let a: Vec<String> = multi(&tb).iter().map(|s| map(s).to_lowercase()).collect();
            let b: Vec<String> = multi(&ob).iter().map(|s| s.to_lowercase()).collect();
            a == b
        }
        4 | 11 => tb == ob,
        _ if key.starts_with("driverdatabase\\driverpackages\\") && name == "version" => {
            tb.len() == ob.len() && tb.len() >= 24 && tb[..4] == ob[..4] && tb[8..24] == ob[8..24]
        }
        _ if key.starts_with("driverdatabase\\deviceids\\") => {
            tb.len() == 4 && ob.len() == 4 && tb[1] == ob[1]
        }
        _ => tb == ob,
    }
}

/// Build, convert with virt-v2v, fix with us, compare.
fn side_by_side(v: Version, arch: Arch) {
    if !enabled() {
        eprintln!("skipped: set HYPER2KVM_PEER=1 to compare with virt-v2v");
        return;
    }
    for t in ["virt-v2v", "nbdkit", "nbdcopy", "hivexregedit", "icat"] {
        testkit::need(t);
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let media = fake_virtio_win(&dir.join("vw"), "iso-list.txt", &[]).join("cd");
    let mut o = Options::new(v);
    o.arch = Some(arch);
    // virt-v2v wants 100 MB free on C: (sparse: costs nothing).
    o.size = phony::min_size(&o).max(2 << 30);
    let name = format!("{}-{arch:?}", v.info().os_id).to_lowercase();
    let pristine = dir.join(format!("{name}.img"));
    let e = phony::build(&o, &testkit::testdata(""), &pristine).unwrap();
    let start = e
        .partitions
        .iter()
        .find(|p| p.number == e.system_partition)
        .unwrap()
        .start;
    let system = |img: &Path, tag: &str| -> Export {
        let p = dir.join(format!("SYSTEM.{tag}"));
        std::fs::write(&p, tsk::cat(img, start, &e.system_hive)).unwrap();
        export(&p)
    };

    // virt-v2v on its own copy (it only reads the source, but keep the
    // pristine one pristine).
    let src = dir.join(format!("{name}-src.img"));
    testkit::run(
        Command::new("cp")
            .arg("--sparse=always")
            .arg(&pristine)
            .arg(&src),
    );
    let vtd = dir.join("virt-tools");
    std::fs::create_dir_all(&vtd).unwrap();
    std::fs::write(
        vtd.join("rhsrvany.exe"),
        b"MZ stub: the guest never boots\n",
    )
    .unwrap();
    let out = dir.join("v2v");
    std::fs::create_dir_all(&out).unwrap();
    let t = std::time::Instant::now();
    let o = Command::new("virt-v2v")
        .args(["-i", "disk"])
        .arg(&src)
        .args(["-o", "local", "-of", "raw", "-os"])
        .arg(&out)
        .env("LIBGUESTFS_BACKEND", "direct")
        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
        .env("VIRTIO_WIN", &media)
        .env("VIRT_TOOLS_DATA_DIR", &vtd)
        .output()
        .unwrap();
    eprintln!("peer: virt-v2v {name}: {:?}", t.elapsed());
    assert!(
        o.status.success(),
        "virt-v2v failed on {name}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let theirs_img: PathBuf = out.join(format!("{name}-src-sda"));
    assert!(theirs_img.exists(), "no {}", theirs_img.display());

    let ours_img = dir.join(format!("{name}-ours.img"));
    testkit::run(
        Command::new("cp")
            .arg("--sparse=always")
            .arg(&pristine)
            .arg(&ours_img),
    );
    let t = std::time::Instant::now();
    let o = Command::new(bin())
        .arg("fix-windows")
        .arg(&ours_img)
        .arg("--virtio-win")
        .arg(&media)
        .args(["--block", "virtio-blk"])
        .output()
        .unwrap();
    eprintln!("peer: hyper2kvm fix-windows {name}: {:?}", t.elapsed());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let before = system(&pristine, "before");
    let theirs = system(&theirs_img, "virt-v2v");
    let ours = system(&ours_img, "ours");
    compare(&name, &before, &theirs, &ours);
}

fn compare(name: &str, before: &Export, theirs: &Export, ours: &Export) {
    let td = diff(before, theirs);
    let od = diff(before, ours);
    let t_created: Vec<String> = td.keys_added.iter().cloned().collect();
    let o_created: Vec<String> = od.keys_added.iter().cloned().collect();
    let (t_inf, t_pkg) = ddb_names(&t_created);
    let (o_inf, o_pkg) = ddb_names(&o_created);
    let mut renames: Vec<(String, String)> = vec![];
    if let Some(ti) = &t_inf {
        let oi = o_inf.clone().unwrap_or_else(|| {
            panic!("{name}: virt-v2v registers {ti} in DriverDatabase, we register nothing")
        });
        for (tc, oc) in confs(theirs, ti).into_iter().zip(confs(ours, &oi)) {
            renames.push((tc, oc));
        }
        if let (Some(tp), Some(op)) = (&t_pkg, &o_pkg) {
            renames.push((tp.clone(), op.clone()));
        }
        renames.push((ti.clone(), oi));
    }
    // longest first: a label contains the INF name
    renames.sort_by_key(|(a, _)| std::cmp::Reverse(a.len()));
    let map = |s: &str| -> String {
        let mut out = s.to_lowercase();
        for (a, b) in &renames {
            out = out.replace(a.as_str(), b);
        }
        out
    };
    eprintln!("peer: {name}: DriverDatabase names virt-v2v -> ours: {renames:?}");

    let mut matched = BTreeMap::new();
    let mut missing = vec![];
    let mut incompatible = vec![];
    for ((k, n), data) in td.values_set.iter().filter(|((k, _), _)| storage_key(k)) {
        let (ok, on) = (map(k), map(n));
        match regdiff::val(ours, &ok, &on) {
            None => missing.push(format!("{k}\\{n} = {data}")),
            Some(ours_data) if !compatible(&ok, &on, data, ours_data, &map) => {
                incompatible.push(format!("{k}\\{n}: virt-v2v {data}, ours {ours_data}"))
            }
            Some(_) => {
                matched.insert((ok, on), ());
            }
        }
    }
    for k in td.keys_added.iter().filter(|k| storage_key(k)) {
        if !ours.contains_key(&map(k)) {
            missing.push(format!("key {k}"));
        }
    }
    eprintln!(
        "peer: {name}: virt-v2v writes {} storage values; we write all of them compatibly: {}",
        matched.len() + missing.len() + incompatible.len(),
        missing.is_empty() && incompatible.is_empty()
    );
    let beyond: Vec<String> = od
        .values_set
        .iter()
        .filter(|((k, n), _)| storage_key(k) && !matched.contains_key(&(k.clone(), n.clone())))
        .map(|((k, n), _)| format!("{k}\\{n}"))
        .collect();
    eprintln!(
        "peer: {name}: beyond virt-v2v: {} storage values",
        beyond.len()
    );
    for b in &beyond {
        eprintln!("peer: {name}: beyond virt-v2v: {b}");
    }
    assert!(
        td.values_set.keys().any(|(k, _)| storage_key(k)),
        "{name}: virt-v2v wrote no storage value (did it inject viostor?)"
    );
    assert!(
        missing.is_empty(),
        "{name}: virt-v2v writes, we do not: {missing:#?}"
    );
    assert!(
        incompatible.is_empty(),
        "{name}: incompatible data: {incompatible:#?}"
    );
}

#[test]
fn windows_7_storage_values_cover_virt_v2v() {
    side_by_side(Version::Win7, Arch::Amd64);
}

#[test]
fn windows_10_storage_values_cover_virt_v2v() {
    side_by_side(Version::Win10, Arch::Amd64);
}
