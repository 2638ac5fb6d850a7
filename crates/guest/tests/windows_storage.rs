//! The Windows boot-storage planner against real hives: the win7 (x86, two
//! control sets, CriticalDeviceDatabase) and win10-1709 (x64,
//! DriverDatabase) SYSTEM hives, an XP-shaped variant of win7 (MergeIDE),
//! fake virtio-win media built from the real INF templates, and the real
//! BCD store. The plan's registry actions are applied with
//! `apply_registry`, the hive is committed and written, and hivex
//! (`hivexregedit --export`) reads it back before and after: the diff must
//! be exactly the planned keys and values. regipy reads the result too.

mod support;
use guest::apply::apply_registry;
use guest::drivers::catalog::Catalog;
use guest::drivers::fixture::build_fake_virtio_win;
use guest::drivers::media::DirMedia;
use guest::drivers::select::{select, DriverSet};
use guest::drivers::{Arch, Role};
use guest::inspect::{Blocker, ControlSets, Firmware, WindowsInstall};
use guest::plan::{Action, FileSource, HiveRef, PlannedAction, RegData, VolumeRef};
use guest::windows::storage::{
    plan_storage, Error, FinalBus, GuestAccess, MediaOrigin, PartitionId, StorageMedia,
};
use regf::Hive;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::hives::{apply, export, unxz, val, Export};
use testkit::{need, sha256_hex, testdata};

const XP_EXTRA: [&str; 3] = [
    "cd/viostor/xp/x86/viostor.inf",
    "cd/viostor/xp/x86/viostor.sys",
    "cd/viostor/xp/x86/viostor.cat",
];

fn sys_vol() -> VolumeRef {
    VolumeRef {
        disk: 0,
        partition: Some(2),
    }
}

fn esp_vol() -> VolumeRef {
    VolumeRef {
        disk: 0,
        partition: Some(1),
    }
}

/// A fake virtio-win tree (ISO listing + XP extras) under `dir`; its root.
fn media_tree(dir: &Path) -> PathBuf {
    build_fake_virtio_win(
        &testdata("virtio-win-layout/iso-list.txt"),
        &testdata("virtio-win-inx"),
        dir,
        &XP_EXTRA,
    )
    .unwrap();
    dir.join("cd")
}

/// The storage driver of `bus` plus every other role the media has.
fn media_for(root: &Path, os: &str, arch: Arch, bus: FinalBus) -> StorageMedia {
    let m = DirMedia::new(root).unwrap();
    let origin = MediaOrigin::Dir(root.to_path_buf());
    let sm =
        StorageMedia::select(&m, &origin, &Catalog::builtin(), os, arch, bus, &sha256_hex).unwrap();
    // The same as selecting role by role with the driver catalog's select.
    let cat = Catalog::builtin();
    let mut set: DriverSet = select(&m, &cat, os, arch, &[bus.role()]).unwrap();
    for r in Role::ALL.into_iter().filter(|r| *r != bus.role()) {
        if let Ok(s) = select(&m, &cat, os, arch, &[r]) {
            set.drivers.extend(s.drivers);
        }
    }
    let dirs = |v: Vec<&str>| v.join(",");
    assert_eq!(
        dirs(sm.drivers.iter().map(|d| d.selected.dir.as_str()).collect()),
        dirs(set.drivers.iter().map(|d| d.dir.as_str()).collect())
    );
    assert_eq!(sm.drivers[0].selected.role, bus.role());
    sm
}

/// A SOFTWARE hive with the stock DevicePath.
fn software(dir: &Path) -> PathBuf {
    let mut h = Hive::new_empty("SOFTWARE").unwrap();
    h.create_key(r"Microsoft\Windows\CurrentVersion").unwrap();
    h.set_value(
        r"Microsoft\Windows\CurrentVersion",
        "DevicePath",
        &regf::Value::ExpandString(r"%SystemRoot%\inf".into()),
    )
    .unwrap();
    let p = dir.join("SOFTWARE");
    h.write_to(&p).unwrap();
    p
}

fn install(os: &str, major: u32, minor: u32, arch: Arch, sets: &[&str]) -> WindowsInstall {
    let hive = |p: &str| HiveRef {
        volume: sys_vol(),
        path: p.into(),
    };
    WindowsInstall {
        system: sys_vol(),
        systemroot: "Windows".into(),
        boot_volume: None,
        bcd: vec![],
        firmware: Firmware::Bios,
        system_hive: hive("Windows/System32/config/SYSTEM"),
        software_hive: hive("Windows/System32/config/SOFTWARE"),
        product_name: format!("Phony {os}"),
        os_id: os.into(),
        major,
        minor,
        build: 0,
        installation_type: None,
        edition_id: None,
        arch,
        hostname: None,
        control_sets: ControlSets {
            current: 1,
            default: 1,
            last_known_good: sets.len() as u32,
            in_use: sets.iter().map(|s| s.to_string()).collect(),
        },
        storage_drivers: vec![],
        boot_storage: vec![],
        virtio_ready: false,
        nics: vec![],
        foreign_tools: vec![],
        blockers: vec![],
        facts: vec![],
    }
}

/// Guest volumes as a map of files.
#[derive(Default)]
struct FakeGuest {
    files: HashMap<(VolumeRef, String), Vec<u8>>,
    parts: Vec<PartitionId>,
}

impl FakeGuest {
    fn with_drivers(files: &[&str]) -> FakeGuest {
        let mut g = FakeGuest::default();
        for f in files {
            g.put(
                &sys_vol(),
                &format!("Windows/System32/drivers/{f}"),
                b"inbox",
            );
        }
        g
    }
    fn put(&mut self, v: &VolumeRef, p: &str, b: &[u8]) {
        self.files.insert((v.clone(), p.to_lowercase()), b.to_vec());
    }
}

impl GuestAccess for FakeGuest {
    fn exists(&self, v: &VolumeRef, p: &str) -> bool {
        self.files.contains_key(&(v.clone(), p.to_lowercase()))
    }
    fn read(&self, v: &VolumeRef, p: &str, max: u64) -> Option<Vec<u8>> {
        self.files
            .get(&(v.clone(), p.to_lowercase()))
            .filter(|b| b.len() as u64 <= max)
            .cloned()
    }
    fn digest(&self, v: &VolumeRef, p: &str, max: u64) -> Option<(u64, String)> {
        self.read(v, p, max)
            .map(|b| (b.len() as u64, sha256_hex(&b)))
    }
    fn partitions(&self) -> Vec<PartitionId> {
        self.parts.clone()
    }
}

// ---- hivexregedit export parsing and diff ------------------------------

/// RegData as hivexregedit prints it.
fn hivex_text(d: &RegData) -> String {
    let v = d.to_value();
    match d {
        RegData::Dword(n) => format!("dword:{n:08x}"),
        _ => format!(
            "hex({:x}):{}",
            v.kind(),
            v.to_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Assert that `after` differs from `before` exactly by the plan's actions
/// on `hive_ref`.
fn assert_exact_diff(before: &Export, after: &Export, hive_ref: &HiveRef, plan: &[PlannedAction]) {
    let mut want_vals: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut want_keys: BTreeSet<String> = BTreeSet::new();
    let mut gone_keys: BTreeSet<String> = BTreeSet::new();
    let mut gone_vals: BTreeSet<(String, String)> = BTreeSet::new();
    let add_key = |k: &str, want_keys: &mut BTreeSet<String>| {
        let mut p = String::new();
        for c in k.split('\\') {
            if !p.is_empty() {
                p.push('\\');
            }
            p.push_str(&c.to_lowercase());
            want_keys.insert(p.clone());
        }
    };
    for a in plan.iter().filter(|a| a.action.hive() == Some(hive_ref)) {
        match &a.action {
            Action::SetValue {
                key, name, data, ..
            } => {
                add_key(key, &mut want_keys);
                want_vals.insert((key.to_lowercase(), name.to_lowercase()), hivex_text(data));
            }
            Action::CreateKey { key, .. } => add_key(key, &mut want_keys),
            Action::DeleteKey { key, .. } => {
                gone_keys.insert(key.to_lowercase());
            }
            Action::DeleteValue { key, name, .. } => {
                gone_vals.insert((key.to_lowercase(), name.to_lowercase()));
            }
            a => panic!("not a registry action: {a:?}"),
        }
    }
    // Keys: added ones are exactly the new planned keys, removed ones the
    // planned deletions (with their subkeys).
    let added: BTreeSet<String> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let expect_added: BTreeSet<String> = want_keys
        .iter()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(added, expect_added, "keys added");
    let removed: BTreeSet<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    let expect_removed: BTreeSet<String> = before
        .keys()
        .filter(|k| {
            gone_keys
                .iter()
                .any(|g| *k == g || k.starts_with(&format!("{g}\\")))
        })
        .cloned()
        .collect();
    assert_eq!(removed, expect_removed, "keys removed");
    // Values.
    let flat = |e: &Export| -> BTreeMap<(String, String), String> {
        e.iter()
            .flat_map(|(k, vs)| {
                vs.iter()
                    .map(move |(n, d)| ((k.clone(), n.clone()), d.clone()))
            })
            .collect()
    };
    let (b, a) = (flat(before), flat(after));
    for (kn, d) in &a {
        if b.get(kn) != Some(d) {
            assert_eq!(want_vals.get(kn), Some(d), "unplanned change of {kn:?}");
        }
    }
    for (kn, d) in &want_vals {
        assert_eq!(a.get(kn), Some(d), "planned value {kn:?} not in the result");
    }
    for kn in b.keys() {
        if !a.contains_key(kn) {
            let planned = gone_vals.contains(kn)
                || gone_keys
                    .iter()
                    .any(|g| kn.0 == *g || kn.0.starts_with(&format!("{g}\\")));
            assert!(planned, "unplanned removal of {kn:?}");
        }
    }
}

fn sz(s: &str) -> String {
    hivex_text(&RegData::Sz(s.into()))
}

/// The PCI IDs in an INF file's text for the models section `section`,
/// read with a plain text scan (independent of the INF parser).
fn inf_ids(inf: &Path, section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(inf).unwrap();
    let mut on = false;
    let mut ids = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            on = t.eq_ignore_ascii_case(&format!("[{section}]"));
            continue;
        }
        if on {
            if let Some((_, rhs)) = t.split_once('=') {
                for id in rhs.split(',').skip(1) {
                    let id = id.trim();
                    if !id.is_empty() && !ids.iter().any(|x: &String| x.eq_ignore_ascii_case(id)) {
                        ids.push(id.to_string());
                    }
                }
            }
        }
    }
    assert!(
        !ids.is_empty(),
        "no IDs in [{section}] of {}",
        inf.display()
    );
    ids
}

struct Run {
    plan: Vec<PlannedAction>,
    before: Export,
    after: Export,
    after_path: PathBuf,
    soft_after: Export,
}

/// Plan, apply to copies, export before and after, check the diffs and
/// that a second plan on the result changes nothing.
fn run(
    dir: &Path,
    hive: &Path,
    inst: &WindowsInstall,
    media: &StorageMedia,
    bus: FinalBus,
    guest: &FakeGuest,
) -> Run {
    let soft = software(dir);
    let sys = Hive::from_file(hive).unwrap();
    let sw = Hive::from_file(&soft).unwrap();
    let plan = plan_storage(inst, &sys, &sw, media, bus, guest)
        .unwrap()
        .actions;
    let after_path = dir.join("SYSTEM.after");
    let soft_after = dir.join("SOFTWARE.after");
    assert!(apply(hive, &inst.system_hive, &plan, &after_path) > 0);
    assert!(apply(&soft, &inst.software_hive, &plan, &soft_after) > 0);
    let before = export(hive);
    let after = export(&after_path);
    assert_exact_diff(&before, &after, &inst.system_hive, &plan);
    let sb = export(&soft);
    let sa = export(&soft_after);
    assert_exact_diff(&sb, &sa, &inst.software_hive, &plan);

    // Second run: planning against the fixed hives gives no registry
    // action; applying the whole first plan again changes nothing.
    let sys2 = Hive::from_file(&after_path).unwrap();
    let sw2 = Hive::from_file(&soft_after).unwrap();
    let plan2 = plan_storage(inst, &sys2, &sw2, media, bus, guest)
        .unwrap()
        .actions;
    let reg2: Vec<&PlannedAction> = plan2.iter().filter(|a| a.action.hive().is_some()).collect();
    assert!(
        reg2.is_empty(),
        "second plan still edits the registry: {reg2:#?}"
    );
    let files = |p: &[PlannedAction]| -> Vec<Action> {
        p.iter()
            .filter(|a| a.action.hive().is_none())
            .map(|a| a.action.clone())
            .collect()
    };
    assert_eq!(
        files(&plan),
        files(&plan2),
        "file actions are the same on a second run"
    );
    let mut again = Hive::from_file(&after_path).unwrap();
    for a in plan
        .iter()
        .filter(|a| a.action.hive() == Some(&inst.system_hive))
    {
        assert_eq!(
            apply_registry(&mut again, &a.action).unwrap(),
            None,
            "{a:?}"
        );
    }
    assert!(!again.is_modified());
    Run {
        plan,
        before,
        after,
        after_path,
        soft_after: sa,
    }
}

fn puts(plan: &[PlannedAction]) -> Vec<(String, FileSource, u64, String)> {
    plan.iter()
        .filter_map(|a| match &a.action {
            Action::PutFile {
                path,
                source,
                size,
                sha256,
                ..
            } => Some((path.clone(), source.clone(), *size, sha256.clone())),
            _ => None,
        })
        .collect()
}

/// Every PutFile from the media names a host file whose bytes match its
/// size and hash (sha256sum of the file, not our reader).
fn check_puts(plan: &[PlannedAction]) {
    need("sha256sum");
    for (path, src, size, sha) in puts(plan) {
        let FileSource::Host { path: host } = src else {
            continue;
        };
        assert_eq!(std::fs::metadata(&host).unwrap().len(), size, "{path}");
        let out = testkit::run(Command::new("sha256sum").arg(&host));
        assert_eq!(out.split_whitespace().next().unwrap(), sha, "{path}");
    }
}

fn regipy_values(hive: &Path, key: &str) -> BTreeMap<String, String> {
    let script = r#"
import sys
from regipy.registry import RegistryHive
h = RegistryHive(sys.argv[1])
k = h.get_key(sys.argv[2])
for v in k.iter_values():
    print("%s\t%s" % (v.name, v.value))
"#;
    let out = testkit::run(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(hive)
            .arg(key),
    );
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn win7_x86_virtio_blk_uses_the_critical_device_database() {
    let t = tempfile::tempdir().unwrap();
    let root = media_tree(&t.path().join("m"));
    let hive = unxz("SYSTEM-win7.xz", t.path());
    let inst = install("win7", 6, 1, Arch::X86, &["ControlSet001", "ControlSet002"]);
    let media = media_for(&root, "win7", Arch::X86, FinalBus::VirtioBlk);
    let guest = FakeGuest::with_drivers(&["msahci.sys", "pciidex.sys", "atapi.sys"]);
    let r = run(t.path(), &hive, &inst, &media, FinalBus::VirtioBlk, &guest);

    let ids = inf_ids(&root.join("viostor/w7/x86/viostor.inf"), "VioStor.NTx86");
    assert_eq!(ids.len(), 4, "{ids:?}");
    for cs in ["controlset001", "controlset002"] {
        let s = format!(r"{cs}\services\viostor");
        assert_eq!(val(&r.after, &s, "Start"), Some("dword:00000000"));
        assert_eq!(val(&r.after, &s, "Type"), Some("dword:00000001"));
        assert_eq!(val(&r.after, &s, "ErrorControl"), Some("dword:00000001"));
        assert_eq!(
            val(&r.after, &s, "Group"),
            Some(sz("SCSI miniport").as_str())
        );
        assert_eq!(
            val(&r.after, &s, "ImagePath"),
            Some(hivex_text(&RegData::ExpandSz(r"System32\drivers\viostor.sys".into())).as_str())
        );
        assert_eq!(
            val(&r.after, &format!(r"{s}\Parameters\PnpInterface"), "5"),
            Some("dword:00000001")
        );
        assert_eq!(
            val(&r.after, &format!(r"{s}\Parameters"), "BusType"),
            Some("dword:00000001")
        );
        for id in &ids {
            let k = format!(
                r"{cs}\control\criticaldevicedatabase\{}",
                id.replace('\\', "#")
            );
            assert_eq!(
                val(&r.after, &k, "Service"),
                Some(sz("viostor").as_str()),
                "{k}"
            );
            assert_eq!(
                val(&r.after, &k, "ClassGUID"),
                Some(sz("{4D36E97B-E325-11CE-BFC1-08002BE10318}").as_str())
            );
        }
        // Bootstrap: msahci boots; the CC_010601 binding was there already.
        assert_eq!(
            val(&r.before, &format!(r"{cs}\services\msahci"), "Start"),
            Some("dword:00000003")
        );
        assert_eq!(
            val(&r.after, &format!(r"{cs}\services\msahci"), "Start"),
            Some("dword:00000000")
        );
        assert_eq!(
            val(
                &r.after,
                &format!(r"{cs}\control\criticaldevicedatabase\pci#cc_010601"),
                "Service"
            ),
            Some(sz("msahci").as_str())
        );
        assert_eq!(
            val(
                &r.after,
                &format!(r"{cs}\control\crashcontrol"),
                "AutoReboot"
            ),
            Some("dword:00000000")
        );
    }
    // No DriverDatabase on Windows 7.
    assert!(!r.after.keys().any(|k| k.starts_with("driverdatabase")));
    // Files: viostor.sys to System32\drivers; packages staged.
    let p = puts(&r.plan);
    assert!(p
        .iter()
        .any(|(path, ..)| path == "Windows/System32/drivers/viostor.sys"));
    for f in ["viostor.inf", "viostor.cat", "viostor.sys"] {
        assert!(
            p.iter()
                .any(|(path, ..)| *path == format!("Windows/Drivers/VirtIO/viostor/{f}")),
            "{f}"
        );
    }
    assert!(p
        .iter()
        .any(|(path, ..)| path.starts_with("Windows/Drivers/VirtIO/NetKVM/")));
    check_puts(&r.plan);
    assert_eq!(
        val(
            &r.soft_after,
            r"microsoft\windows\currentversion",
            "DevicePath"
        ),
        Some(
            hivex_text(&RegData::ExpandSz(
                r"%SystemRoot%\inf;%SystemRoot%\Drivers\VirtIO".into()
            ))
            .as_str()
        )
    );
    assert!(!r
        .plan
        .iter()
        .any(|a| matches!(a.action, Action::Manual { .. })));
    // regipy reads the written hive.
    let v = regipy_values(&r.after_path, r"\ControlSet002\Services\viostor");
    assert_eq!(v.get("Start").map(String::as_str), Some("0"), "{v:?}");
    assert_eq!(v.get("Group").map(String::as_str), Some("SCSI miniport"));
}

#[test]
fn win10_x64_virtio_scsi_registers_in_the_driver_database() {
    let t = tempfile::tempdir().unwrap();
    let root = media_tree(&t.path().join("m"));
    let hive = unxz("SYSTEM-win10-1709.xz", t.path());
    let inst = install("win10", 10, 0, Arch::Amd64, &["ControlSet001"]);
    let media = media_for(&root, "win10", Arch::Amd64, FinalBus::VirtioScsi);
    let guest = FakeGuest::with_drivers(&["storahci.sys"]);
    let r = run(t.path(), &hive, &inst, &media, FinalBus::VirtioScsi, &guest);

    let s = r"controlset001\services\vioscsi";
    assert_eq!(val(&r.after, s, "Start"), Some("dword:00000000"));
    assert_eq!(
        val(&r.after, &format!(r"{s}\Parameters"), "BusType"),
        Some("dword:0000000a")
    );
    assert_eq!(
        val(&r.after, r"controlset001\services\storahci", "Start"),
        Some("dword:00000000")
    );
    // pciide's StartOverride is not ours to remove; storahci has none.
    assert!(r
        .after
        .contains_key(r"controlset001\services\pciide\startoverride"));
    // No CDD on Windows 10.
    assert!(!r
        .after
        .keys()
        .any(|k| k.contains("criticaldevicedatabase\\pci#ven_1af4")));

    let inf = root.join("vioscsi/w10/amd64/vioscsi.inf");
    let ids = inf_ids(&inf, "VirtioScsi.NTamd64");
    let inf_sha = sha256_hex(&std::fs::read(&inf).unwrap());
    let label = format!("vioscsi.inf_amd64_{}", &inf_sha[..16]);
    let pkg = format!(r"driverdatabase\driverpackages\{label}");
    assert!(r.after.contains_key(&pkg), "{pkg}");
    for (i, id) in ids.iter().enumerate() {
        let rank = if i % 2 == 0 { "01" } else { "02" };
        assert_eq!(
            val(
                &r.after,
                &format!(r"driverdatabase\deviceids\{id}"),
                "vioscsi.inf"
            ),
            Some(format!("hex(3):{rank},ff,00,00").as_str()),
            "{id}"
        );
        let d = format!(r"{pkg}\descriptors\{id}");
        assert_eq!(
            val(&r.after, &d, "Configuration"),
            Some(sz("scsi_inst").as_str())
        );
    }
    let inf_key = r"driverdatabase\driverinffiles\vioscsi.inf";
    assert_eq!(val(&r.after, inf_key, "Active"), Some(sz(&label).as_str()));
    assert_eq!(
        val(&r.after, inf_key, ""),
        Some(hivex_text(&RegData::MultiSz(vec![label.clone()])).as_str())
    );
    let cfg = format!(r"{pkg}\configurations\scsi_inst");
    assert_eq!(val(&r.after, &cfg, "Service"), Some(sz("vioscsi").as_str()));
    assert_eq!(
        val(
            &r.after,
            &format!(r"{cfg}\services\vioscsi\parameters\pnpinterface"),
            "5"
        ),
        Some("dword:00000001")
    );
    assert_eq!(
        val(
            &r.after,
            &format!(r"{cfg}\device\interrupt management\messagesignaledinterruptproperties"),
            "MSISupported"
        ),
        Some("dword:00000001")
    );
    assert_eq!(
        val(
            &r.after,
            r"driverdatabase\deviceids\{4d36e97b-e325-11ce-bfc1-08002be10318}",
            "vioscsi.inf"
        ),
        Some("hex(0):")
    );

    // Shape: the same value names and types as the real OEM packages of
    // this hive (pvscsi: package and INF entry; vmci: configuration and
    // descriptors), data types compared as hivex prints them.
    let kinds = |e: &Export, k: &str| -> BTreeMap<String, String> {
        e.get(&k.to_lowercase())
            .unwrap_or_else(|| panic!("{k}"))
            .iter()
            .map(|(n, d)| (n.clone(), d.split(':').next().unwrap().to_string()))
            .collect()
    };
    let real_pkg = kinds(
        &r.before,
        r"DriverDatabase\DriverPackages\pvscsi.inf_amd64_b0d59727d712523f",
    );
    let ours = kinds(&r.after, &pkg);
    for (n, t) in &ours {
        assert_eq!(real_pkg.get(n), Some(t), "package value {n}");
    }
    let missing: Vec<&String> = real_pkg.keys().filter(|n| !ours.contains_key(*n)).collect();
    assert_eq!(
        missing,
        ["importdate", "oempath", "signername"],
        "left out on purpose"
    );
    assert_eq!(
        kinds(&r.after, inf_key),
        kinds(&r.before, r"DriverDatabase\DriverInfFiles\oem2.inf")
    );
    let vmci = r"DriverDatabase\DriverPackages\vmci.inf_amd64_5e38a278d114b813";
    assert_eq!(
        kinds(&r.after, &cfg),
        kinds(
            &r.before,
            &format!(r"{vmci}\Configurations\vmci.install.x64.NT")
        )
    );
    assert_eq!(
        kinds(&r.after, &format!(r"{pkg}\descriptors\{}", ids[0])),
        kinds(
            &r.before,
            &format!(r"{vmci}\Descriptors\PCI\VEN_15AD&DEV_0740")
        )
    );
    // Version: OEM marker + amd64 + SCSIAdapter class as in pvscsi's blob
    // (the same class), then DriverVer 01/01/2008 and 0.0.0.1.
    let hexbytes = |s: &str| -> Vec<u8> {
        s.split_once(':')
            .unwrap()
            .1
            .split(',')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let real_v = hexbytes(
        val(
            &r.before,
            r"DriverDatabase\DriverPackages\pvscsi.inf_amd64_b0d59727d712523f",
            "Version",
        )
        .unwrap(),
    );
    let our_v = hexbytes(val(&r.after, &pkg, "Version").unwrap());
    assert_eq!(our_v.len(), 48);
    assert_eq!(our_v[..24], real_v[..24]);
    let ft = u64::from_le_bytes(our_v[24..32].try_into().unwrap());
    let py = testkit::run(Command::new("python3").arg("-c").arg(
        "import datetime;print((datetime.datetime(2008,1,1)-datetime.datetime(1601,1,1))//datetime.timedelta(microseconds=1)*10)",
    ));
    assert_eq!(ft, py.trim().parse::<u64>().unwrap());
    assert_eq!(u64::from_le_bytes(our_v[32..40].try_into().unwrap()), 1);
    assert!(our_v[40..].iter().all(|b| *b == 0));

    // The temporary list names the package for the first-boot step.
    let keys = val(&r.soft_after, r"hyper2kvm\temporary", "Keys").unwrap();
    let want = hivex_text(&RegData::MultiSz(vec![
        format!(r"SYSTEM\DriverDatabase\DriverPackages\{label}"),
        r"SYSTEM\DriverDatabase\DriverInfFiles\vioscsi.inf".into(),
    ]));
    assert_eq!(keys, want);
    // regipy reads the DriverDatabase entry.
    let v = regipy_values(&r.after_path, r"\DriverDatabase\DriverInfFiles\vioscsi.inf");
    assert_eq!(v.get("Active"), Some(&label), "{v:?}");
}

#[test]
fn xp_shaped_hive_gets_mergeide() {
    let t = tempfile::tempdir().unwrap();
    let root = media_tree(&t.path().join("m"));
    let hive = unxz("SYSTEM-win7.xz", t.path());
    let inst = install(
        "winxp",
        5,
        1,
        Arch::X86,
        &["ControlSet001", "ControlSet002"],
    );
    let media = media_for(&root, "winxp", Arch::X86, FinalBus::VirtioBlk);
    assert_eq!(
        media.driver(Role::StorageBlk).unwrap().selected.dir,
        "viostor/xp/x86"
    );
    // pciidex.sys missing: the plan says so.
    let guest = FakeGuest::with_drivers(&["atapi.sys", "intelide.sys", "pciide.sys"]);
    let r = run(t.path(), &hive, &inst, &media, FinalBus::VirtioBlk, &guest);
    let manual: Vec<&str> = r
        .plan
        .iter()
        .filter_map(|a| match &a.action {
            Action::Manual { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert!(manual[0].contains("pciidex.sys") && manual[0].contains("driver.cab"));

    let ids = inf_ids(&root.join("viostor/xp/x86/viostor.inf"), "RHEL.NTx86");
    assert_eq!(ids, [r"PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00"]);
    for cs in ["controlset001", "controlset002"] {
        for svc in ["atapi", "intelide", "pciide"] {
            assert_eq!(
                val(&r.after, &format!(r"{cs}\services\{svc}"), "Start"),
                Some("dword:00000000"),
                "{svc}"
            );
        }
        let cdd = format!(r"{cs}\control\criticaldevicedatabase");
        for (id, svc) in [
            ("primary_ide_channel", "atapi"),
            ("secondary_ide_channel", "atapi"),
            ("*pnp0600", "atapi"),
            ("pci#cc_0101", "pciide"),
            ("pci#ven_8086&dev_7010", "intelide"),
            ("pci#ven_8086&dev_7111", "intelide"),
            ("gendisk", "disk"),
        ] {
            assert_eq!(
                val(&r.after, &format!(r"{cdd}\{id}"), "Service"),
                Some(sz(svc).as_str()),
                "{id}"
            );
        }
        assert_eq!(
            val(
                &r.after,
                &format!(r"{cdd}\pci#ven_8086&dev_7111"),
                "ClassGUID"
            ),
            Some(sz("{4D36E96A-E325-11CE-BFC1-08002BE10318}").as_str())
        );
        assert_eq!(
            val(
                &r.after,
                &format!(r"{cdd}\{}", ids[0].replace('\\', "#").to_lowercase()),
                "Service"
            ),
            Some(sz("viostor").as_str())
        );
        // XP's viostor INF has no DmaRemappingCompatible; BusType is there.
        assert_eq!(
            val(
                &r.after,
                &format!(r"{cs}\services\viostor\parameters"),
                "BusType"
            ),
            Some("dword:00000001")
        );
        assert_eq!(
            val(
                &r.after,
                &format!(r"{cs}\services\viostor\parameters"),
                "DmaRemappingCompatible"
            ),
            None
        );
        // msahci is not touched on XP.
        assert_eq!(
            val(&r.after, &format!(r"{cs}\services\msahci"), "Start"),
            Some("dword:00000003")
        );
    }
}

#[test]
fn refusals_name_the_blocker_and_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let root = media_tree(&t.path().join("m"));
    let hive = unxz("SYSTEM-win7.xz", t.path());
    let sys = Hive::from_file(&hive).unwrap();
    let soft = Hive::from_file(software(t.path())).unwrap();
    let media = media_for(&root, "win7", Arch::X86, FinalBus::VirtioBlk);
    let guest = FakeGuest::default();
    for (id, msg) in [
        (
            "hibernated",
            "Windows is hibernated: boot the source VM and shut it down fully",
        ),
        (
            "fast-startup",
            "Fast Startup left the volume hibernated: run `shutdown /s /t 0` on the source",
        ),
        (
            "bitlocker",
            "BitLocker is on: run `manage-bde -off C:` on the source",
        ),
        (
            "dirty-ntfs",
            "the NTFS volume is dirty: run `chkdsk C: /f` on the source",
        ),
        (
            "dirty-hive",
            "the SYSTEM hive's logs cannot be replayed safely: boot and shut down the source",
        ),
    ] {
        let mut inst = install("win7", 6, 1, Arch::X86, &["ControlSet001"]);
        inst.blockers.push(Blocker {
            id: "pending-reboot".into(),
            refuse: false,
            message: "a reboot is pending".into(),
        });
        inst.blockers.push(Blocker {
            id: id.into(),
            refuse: true,
            message: msg.into(),
        });
        let e = plan_storage(&inst, &sys, &soft, &media, FinalBus::VirtioBlk, &guest).unwrap_err();
        assert!(
            matches!(&e, Error::Refused { blockers, .. } if blockers.len() == 1),
            "{e:?}"
        );
        let s = e.to_string();
        assert!(
            s.contains(msg) && s.contains(id) && s.contains("Phony win7"),
            "{s}"
        );
        assert!(!s.contains("pending"), "{s}");
    }
    // A warning-only blocker does not refuse.
    let mut inst = install("win7", 6, 1, Arch::X86, &["ControlSet001"]);
    inst.blockers.push(Blocker {
        id: "pending-reboot".into(),
        refuse: false,
        message: "a reboot is pending".into(),
    });
    assert!(plan_storage(&inst, &sys, &soft, &media, FinalBus::VirtioBlk, &guest).is_ok());
    // No storage driver for the bus on the media: an error, not a plan.
    let mut only_net = media.clone();
    only_net.drivers.retain(|d| d.selected.role == Role::Net);
    let e = plan_storage(&inst, &sys, &soft, &only_net, FinalBus::VirtioBlk, &guest).unwrap_err();
    assert!(e.to_string().contains("0x7B"), "{e}");
    // The media has no vioscsi for XP: selection says so the same way.
    let m = DirMedia::new(&root).unwrap();
    let e = StorageMedia::select(
        &m,
        &MediaOrigin::Dir(root.clone()),
        &Catalog::builtin(),
        "winxp",
        Arch::X86,
        FinalBus::VirtioScsi,
        &sha256_hex,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NoStorageDriver {
                role: Role::StorageScsi,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Disk and partition GUIDs of the real BCD's default loader, decoded with
/// Python's uuid (bytes_le) from the element hivex prints.
fn bcd_loader_guids(bcd: &Path) -> (String, String) {
    let e = export(bcd);
    let def = val(
        &e,
        r"Objects\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\Elements\23000003",
        "Element",
    )
    .unwrap();
    let def: Vec<u8> = def
        .split_once(':')
        .unwrap()
        .1
        .split(',')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    let def = String::from_utf16(
        &def.chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let def = def.trim_end_matches('\0').to_lowercase();
    let dev = val(&e, &format!(r"Objects\{def}\Elements\21000001"), "Element").unwrap();
    let hex: String = dev.split_once(':').unwrap().1.replace(',', "");
    let py = testkit::run(Command::new("python3").arg("-c").arg(format!(
        "import uuid;b=bytes.fromhex('{hex}');print(uuid.UUID(bytes_le=b[0x38:0x48]));print(uuid.UUID(bytes_le=b[0x20:0x30]))"
    )));
    let mut l = py.lines();
    (l.next().unwrap().to_string(), l.next().unwrap().to_string())
}

#[test]
fn bcd_backup_device_check_and_uefi_fallback_loader() {
    let t = tempfile::tempdir().unwrap();
    let root = media_tree(&t.path().join("m"));
    let hive = unxz("SYSTEM-win10-1709.xz", t.path());
    let bcd = unxz("BCD.xz", t.path());
    let sys = Hive::from_file(&hive).unwrap();
    let soft = Hive::from_file(software(t.path())).unwrap();
    let media = media_for(&root, "win10", Arch::Amd64, FinalBus::VirtioBlk);
    let mut inst = install("win10", 10, 0, Arch::Amd64, &["ControlSet001"]);
    inst.firmware = Firmware::Uefi;
    inst.boot_volume = Some(esp_vol());
    inst.bcd = vec![HiveRef {
        volume: esp_vol(),
        path: "EFI/Microsoft/Boot/BCD".into(),
    }];
    let mut guest = FakeGuest::with_drivers(&["storahci.sys"]);
    guest.put(
        &esp_vol(),
        "EFI/Microsoft/Boot/BCD",
        &std::fs::read(&bcd).unwrap(),
    );
    guest.put(
        &esp_vol(),
        "EFI/Microsoft/Boot/bootmgfw.efi",
        b"MZ fake boot manager",
    );
    let (disk, part) = bcd_loader_guids(&bcd);

    // The loader's partition exists: backup and fallback loader, no manual step.
    guest.parts = vec![PartitionId {
        volume: sys_vol(),
        start: 1 << 20,
        mbr_signature: None,
        gpt_disk: Some(disk.to_uppercase()),
        gpt_partition: Some(part.to_uppercase()),
    }];
    let p = plan_storage(&inst, &sys, &soft, &media, FinalBus::VirtioBlk, &guest).unwrap();
    let backups: Vec<&Action> = p
        .actions
        .iter()
        .map(|a| &a.action)
        .filter(|a| matches!(a, Action::CopyOnce { .. }))
        .collect();
    assert_eq!(
        backups,
        [&Action::CopyOnce {
            volume: esp_vol(),
            from: "EFI/Microsoft/Boot/BCD".into(),
            to: "EFI/Microsoft/Boot/BCD.hyper2kvm-backup".into(),
        }]
    );
    let fallback = p
        .actions
        .iter()
        .find_map(|a| match &a.action {
            Action::PutFile {
                volume,
                path,
                source,
                size,
                sha256,
            } if path == "EFI/BOOT/BOOTX64.EFI" => {
                Some((volume.clone(), source.clone(), *size, sha256.clone()))
            }
            _ => None,
        })
        .expect("fallback loader planned");
    assert_eq!(fallback.0, esp_vol());
    assert_eq!(
        fallback.1,
        FileSource::Guest {
            volume: esp_vol(),
            path: "EFI/Microsoft/Boot/bootmgfw.efi".into()
        }
    );
    assert_eq!(fallback.2, 20);
    assert_eq!(fallback.3, sha256_hex(b"MZ fake boot manager"));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a.action, Action::Manual { .. })),
        "{:?}",
        p.actions
    );

    // A fallback loader already there is left alone; a partition that is
    // not on this VM is reported for both device and osdevice.
    guest.put(&esp_vol(), "EFI/BOOT/BOOTX64.EFI", b"other loader");
    guest.parts[0].gpt_partition = Some("00000000-0000-0000-0000-000000000001".into());
    let p = plan_storage(&inst, &sys, &soft, &media, FinalBus::VirtioBlk, &guest).unwrap();
    assert!(!p
        .actions
        .iter()
        .any(|a| matches!(&a.action, Action::PutFile { path, .. } if path.starts_with("EFI/"))));
    let manual: Vec<&str> = p
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::Manual { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(manual.len(), 2, "{manual:?}");
    assert!(
        manual[0].contains("'s device names GPT disk") && manual[0].contains(&disk),
        "{}",
        manual[0]
    );
    assert!(manual[1].contains("osdevice") && manual[1].contains(&part));
}

#[test]
fn the_other_bus_on_each_path() {
    let t = tempfile::tempdir().unwrap();
    let root = media_tree(&t.path().join("m"));
    // Windows 7 on virtio-scsi: vioscsi in both control sets, CDD for its IDs.
    let hive = unxz("SYSTEM-win7.xz", t.path());
    let inst = install("win7", 6, 1, Arch::X86, &["ControlSet001", "ControlSet002"]);
    let media = media_for(&root, "win7", Arch::X86, FinalBus::VirtioScsi);
    let guest = FakeGuest::with_drivers(&["msahci.sys", "pciidex.sys", "atapi.sys"]);
    let r = run(t.path(), &hive, &inst, &media, FinalBus::VirtioScsi, &guest);
    let ids = inf_ids(&root.join("vioscsi/w7/x86/vioscsi.inf"), "VirtioScsi.NTx86");
    for cs in ["controlset001", "controlset002"] {
        let s = format!(r"{cs}\services\vioscsi");
        assert_eq!(val(&r.after, &s, "Start"), Some("dword:00000000"));
        assert_eq!(
            val(&r.after, &format!(r"{s}\parameters"), "BusType"),
            Some("dword:0000000a")
        );
        for id in &ids {
            let k = format!(
                r"{cs}\control\criticaldevicedatabase\{}",
                id.replace('\\', "#")
            );
            assert_eq!(
                val(&r.after, &k, "Service"),
                Some(sz("vioscsi").as_str()),
                "{k}"
            );
        }
        assert!(!r.after.contains_key(&format!(r"{cs}\services\viostor")));
    }

    // Windows 10 on virtio-blk: the viostor package in the DriverDatabase
    // (plan only; the export diff runs in the virtio-scsi test).
    // storahci disabled the way Windows 8+ disables unused boot drivers.
    let hive = unxz("SYSTEM-win10-1709.xz", t.path());
    let mut sys = Hive::from_file(&hive).unwrap();
    let ahci = r"ControlSet001\Services\storahci";
    sys.set_value(ahci, "Start", &regf::Value::Dword(3))
        .unwrap();
    sys.create_key(&format!(r"{ahci}\StartOverride")).unwrap();
    sys.set_value(
        &format!(r"{ahci}\StartOverride"),
        "0",
        &regf::Value::Dword(3),
    )
    .unwrap();
    let soft = Hive::from_file(software(t.path())).unwrap();
    let inst = install("win10", 10, 0, Arch::Amd64, &["ControlSet001"]);
    let media = media_for(&root, "win10", Arch::Amd64, FinalBus::VirtioBlk);
    let guest = FakeGuest::with_drivers(&["storahci.sys"]);
    let plan = plan_storage(&inst, &sys, &soft, &media, FinalBus::VirtioBlk, &guest)
        .unwrap()
        .actions;
    let ids = inf_ids(
        &root.join("viostor/w10/amd64/viostor.inf"),
        "VioStor.NTamd64",
    );
    assert_eq!(ids.len(), 4);
    for id in &ids {
        let hit = plan.iter().any(|a| {
            matches!(&a.action, Action::SetValue { key, name, .. }
                if key.eq_ignore_ascii_case(&format!(r"DriverDatabase\DeviceIds\{id}")) && name == "viostor.inf")
        });
        assert!(hit, "{id}");
    }
    assert!(plan.iter().any(|a| matches!(&a.action,
        Action::SetValue { key, name, data: RegData::Dword(0), .. }
            if key == r"ControlSet001\Services\viostor" && name == "Start")));
    for a in &plan {
        apply_registry(&mut sys, &a.action).unwrap();
    }
    assert_eq!(
        sys.key(ahci)
            .unwrap()
            .value("Start")
            .unwrap()
            .unwrap()
            .data()
            .unwrap(),
        regf::Value::Dword(0)
    );
    assert!(sys
        .get_key(&format!(r"{ahci}\StartOverride"))
        .unwrap()
        .is_none());
}
