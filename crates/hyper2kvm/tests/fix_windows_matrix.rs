//! `hyper2kvm fix-windows` across the matrix of phony Windows guests
//! (`crates/phony`): every version the builder makes (XP, 2003, 7 x86 and
//! x64, 2008 R2, 10, 2016, 2019, 2022, 11) × BIOS/UEFI where the version
//! boots both (UEFI from Vista/2008 x64 on; XP, 2003 and 32-bit 7 are BIOS
//! only; 11 is UEFI only) × `--block virtio-blk|virtio-scsi`, with the fake
//! virtio-win tree built from the real INF templates.
//!
//! Each cell runs `fix-windows --dry-run --json` (virtio-blk: must write
//! nothing and plan what the real run does), `fix-windows --json`, then
//! reads the image back with tools no one here wrote:
//! - `hivexregedit --export` of SYSTEM and SOFTWARE before and after: the
//!   keys and values added, changed and removed are exactly the plan's
//!   registry actions on that hive (`support/regdiff.rs`);
//! - in every control set `Select` references: the storage service with
//!   the INF's values at Start=0 and no StartOverride, `AutoReboot=0`,
//!   the bootstrap controller (msahci on 7/2008 R2, storahci on 8+: Start=0
//!   without StartOverride; MergeIDE on XP/2003: atapi/intelide/pciide at
//!   Start=0 and the IDE CriticalDeviceDatabase entries), and the device
//!   binding: CriticalDeviceDatabase entries (pre-8) or DriverDatabase
//!   `DeviceIds` (8+) for hardware IDs of the chosen INF, and nothing else
//!   of VEN_1AF4;
//! - `DevicePath` names the staging directory once;
//! - every file the plan puts is byte-identical to its source: read with
//!   sleuthkit (`ifind`/`icat` at the partition's offset in the whole
//!   disk) for `System32` files, `ntfscat` for the rest, mtools on the ESP;
//!   BCD backups equal the store as it was;
//! - `ntfsfix -n` finds the touched NTFS volumes clean;
//! - regipy reads one changed value of each hive;
//! - a second run changes nothing (sha256 of the image).
//!
//! XP and 2003 have no vioscsi driver on any virtio-win media: that cell
//! must be refused with the reason and leave the image byte-identical.
//! The before-exports are made once per guest and shared by both buses;
//! cells run as separate tests (libtest runs them in parallel).

#[path = "support/regdiff.rs"]
mod regdiff;
mod support;
#[path = "support/tsk.rs"]
mod tsk;

use guest::drivers::Arch;
use guest::inspect::Firmware;
use guest::plan::{Action, FileSource, PlannedAction, VolumeRef};
use phony::{Expected, Options, PartInfo, Version};
use regdiff::{assert_exact_diff, decode, export, selected_sets, utf16, val, Export};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::{bin, fake_virtio_win, need, sha};

/// The legacy driver directories the current ISO listing lacks (XP and
/// 2003 viostor), filled from the XP-era INF template.
const LEGACY: [&str; 6] = [
    "cd/viostor/xp/x86/viostor.inf",
    "cd/viostor/xp/x86/viostor.sys",
    "cd/viostor/xp/x86/viostor.cat",
    "cd/viostor/2k3/x86/viostor.inf",
    "cd/viostor/2k3/x86/viostor.sys",
    "cd/viostor/2k3/x86/viostor.cat",
];

/// The fake virtio-win tree (ISO layout, `cd/` root), built once per test
/// process under the target's scratch directory.
fn media() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fix_windows_matrix-media");
        let _ = std::fs::remove_dir_all(&dir);
        fake_virtio_win(&dir, "iso-list.txt", &LEGACY).join("cd")
    })
}

/// `fix-windows IMG --virtio-win MEDIA --block BUS --json EXTRA…`.
fn fix(img: &Path, bus: &str, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("fix-windows")
        .arg(img)
        .arg("--virtio-win")
        .arg(media())
        .args(["--block", bus, "--json"])
        .args(extra)
        .output()
        .unwrap()
}

/// The JSON of a successful run.
fn fix_ok(img: &Path, bus: &str, extra: &[&str]) -> serde_json::Value {
    let o = fix(img, bus, extra);
    assert!(
        o.status.success(),
        "fix-windows {} --block {bus} {extra:?}: {}",
        img.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn actions(j: &serde_json::Value) -> Vec<PlannedAction> {
    serde_json::from_value(j["actions"].clone()).unwrap()
}

fn part<'a>(e: &'a Expected, v: &VolumeRef) -> &'a PartInfo {
    assert_eq!(v.disk, 0);
    let n = v.partition.expect("a partitioned disk");
    e.partitions.iter().find(|p| p.number == n).unwrap()
}

/// A file of the NTFS volume at sector `start` of the whole-disk image,
/// read by sleuthkit.
fn tsk_cat(img: &Path, start: u64, path: &str) -> Vec<u8> {
    tsk::cat(img, start, path)
}

/// A file of the FAT volume at sector `start`, by mtools.
fn fat_cat(img: &Path, start: u64, path: &str, scratch: &Path) -> Vec<u8> {
    need("mcopy");
    let _ = std::fs::remove_file(scratch);
    testkit::run(
        Command::new("mcopy")
            .args(["-n", "-i"])
            .arg(format!("{}@@{}", img.display(), start * 512))
            .arg(format!("::{path}"))
            .arg(scratch),
    );
    std::fs::read(scratch).unwrap()
}

/// A partition copied out of the disk image (for the ntfs-3g tools).
fn extract(img: &Path, p: &PartInfo, out: &Path) -> PathBuf {
    testkit::winimg::extract(img, p.start, p.sectors, out)
}

/// `ntfsfix -n`: the ntfs-3g checker's verdict on a partition image.
fn ntfsfix_clean(part: &Path, what: &str) {
    need("ntfsfix");
    let o = Command::new("ntfsfix")
        .arg("-n")
        .arg(part)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("processed successfully"),
        "{what}: ntfsfix -n: {text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One value read by regipy (Python, its own hive parser).
fn regipy(hive: &Path, key: &str, name: &str) -> String {
    let script = r#"
import sys
from regipy.registry import RegistryHive
k = RegistryHive(sys.argv[1]).get_key(sys.argv[2])
for v in k.iter_values():
    if v.name.lower() == sys.argv[3].lower():
        print(v.value)
"#;
    testkit::run(
        Command::new("python3")
            .args(["-c", script])
            .arg(hive)
            .arg(key)
            .arg(name),
    )
    .trim()
    .to_string()
}

/// The PCI hardware IDs anywhere in an INF's text (upper-case), by a plain
/// text scan independent of our INF parser.
fn inf_ids(inf: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(inf).unwrap().to_uppercase();
    let mut ids = vec![];
    for l in text.lines() {
        for tok in l.split([',', '=', ' ', '\t']) {
            let t = tok.trim();
            if t.starts_with("PCI\\VEN_1AF4") && !ids.iter().any(|x| x == t) {
                ids.push(t.to_string());
            }
        }
    }
    assert!(!ids.is_empty(), "no PCI IDs in {}", inf.display());
    ids
}

/// A DWORD of an export.
fn dword(e: &Export, key: &str, name: &str) -> Option<u32> {
    let (t, b) = decode(val(e, key, name)?);
    assert_eq!(t, 4, "{key}\\{name} is not a DWORD");
    Some(u32::from_le_bytes(b[..4].try_into().unwrap()))
}

/// A string (SZ/EXPAND_SZ) of an export.
fn string(e: &Export, key: &str, name: &str) -> Option<String> {
    let (t, b) = decode(val(e, key, name)?);
    assert!(t == 1 || t == 2, "{key}\\{name} is not a string (type {t})");
    Some(utf16(&b))
}

/// The `Services\<svc>` AddReg DWORDs of the INF's service install
/// sections, as (subkey, name, value), e.g. (`Parameters`, `BusType`, 1),
/// by a text scan of `HKR, "Sub", "Name", %REG_DWORD%|0x00010001, N`.
fn inf_service_dwords(inf: &Path) -> Vec<(String, String, u32)> {
    let text = std::fs::read_to_string(inf).unwrap();
    let mut out = vec![];
    for l in text.lines() {
        let f: Vec<String> = l
            .split(';')
            .next()
            .unwrap()
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect();
        if f.len() == 5
            && f[0].eq_ignore_ascii_case("HKR")
            && f[1].to_lowercase().starts_with("parameters")
            && (f[3] == "%REG_DWORD%" || f[3].eq_ignore_ascii_case("0x00010001"))
        {
            let n = f[4].trim_start_matches("0x");
            let radix = if f[4].starts_with("0x") { 16 } else { 10 };
            if let Ok(v) = u32::from_str_radix(n, radix) {
                out.push((f[1].clone(), f[2].clone(), v));
            }
        }
    }
    out
}

/// A phony guest and its exports before any fix.
struct Guest {
    version: Version,
    dir: tempfile::TempDir,
    name: String,
    img: PathBuf,
    e: Expected,
    sys_before: Export,
    soft_before: Export,
    sha: Vec<u8>,
}

fn build(v: Version, arch: Arch, fw: Firmware) -> Guest {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new(v);
    o.arch = Some(arch);
    o.firmware = Some(fw);
    o.size = phony::min_size(&o);
    let img = dir.path().join("pristine.img");
    let e = phony::build(&o, &testkit::testdata(""), &img).unwrap();
    let name = format!("{} {arch:?} {fw:?}", e.os_id);
    let sys = part(&e, &e.system_volume()).start;
    let hive = |path: &str, out: &str| {
        let p = dir.path().join(out);
        std::fs::write(&p, tsk_cat(&img, sys, path)).unwrap();
        p
    };
    let sys_before = export(&hive(&e.system_hive, "SYSTEM.before"));
    let soft_before = export(&hive(&e.software_hive, "SOFTWARE.before"));
    let sha = sha(&img);
    Guest {
        version: v,
        dir,
        name,
        img,
        e,
        sys_before,
        soft_before,
        sha,
    }
}

/// The whole cell: both buses on one guest.
fn cell(v: Version, arch: Arch, fw: Firmware) {
    let g = build(v, arch, fw);
    for bus in ["virtio-blk", "virtio-scsi"] {
        let img = g.dir.path().join(format!("{bus}.img"));
        testkit::run(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&g.img)
                .arg(&img),
        );
        if v.info().nt5 && bus == "virtio-scsi" {
            refused_without_vioscsi(&g, &img);
        } else {
            fixed(&g, &img, bus);
        }
    }
}

/// XP/2003 on virtio-scsi: no driver exists; refused with the reason,
/// nothing written. (With `--json` the error is the JSON on stdout.)
fn refused_without_vioscsi(g: &Guest, img: &Path) {
    let o = fix(img, "virtio-scsi", &[]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "{}: {out}", g.name);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["success"], false, "{}: {out}", g.name);
    let err = j["error"].as_str().unwrap();
    assert!(
        err.contains("no storage-scsi driver")
            && err.contains("STOP 0x7B")
            && err.contains("nothing was written"),
        "{}: {err}",
        g.name
    );
    assert_eq!(sha(img), g.sha, "{}: a refused run wrote", g.name);
}

fn fixed(g: &Guest, img: &Path, bus: &str) {
    let what = format!("{} {bus}", g.name);
    let e = &g.e;
    // The dry run (on virtio-blk; virtio-scsi plans the same way) writes
    // nothing and plans exactly what the run then does.
    let dry = (bus == "virtio-blk").then(|| {
        let dry = fix_ok(img, bus, &["--dry-run"]);
        assert_eq!(sha(img), g.sha, "{what}: --dry-run wrote");
        actions(&dry)
    });
    let j = fix_ok(img, bus, &[]);
    let plan = actions(&j);
    if let Some(dry) = dry {
        assert_eq!(dry, plan, "{what}: the dry run plans what the run does");
    }
    assert!(plan.iter().all(|a| !a.reason.is_empty()), "{what}");
    assert!(j["report"]["changed"].as_u64().unwrap() > 0, "{what}");
    let once = sha(img);

    // The registry: exact diffs, then the facts that matter.
    let d = g.dir.path();
    let sysp = part(e, &e.system_volume());
    let sys_img = extract(img, sysp, &d.join(format!("{bus}-sys.part")));
    ntfsfix_clean(&sys_img, &what);
    let hive = |path: &str, out: &str| {
        let p = d.join(format!("{bus}-{out}"));
        std::fs::write(&p, testkit::winimg::ntfscat(&sys_img, path)).unwrap();
        p
    };
    let sys_after_p = hive(&e.system_hive, "SYSTEM");
    let soft_after_p = hive(&e.software_hive, "SOFTWARE");
    let svc = if bus == "virtio-blk" {
        "viostor"
    } else {
        "vioscsi"
    };
    let soft_after = export(&soft_after_p);
    let sys_after = if full_system_diff(g.version, bus) {
        let sys_after = export(&sys_after_p);
        exact_diffs(&what, g, &plan, &sys_after, &soft_after);
        sys_after
    } else {
        let roots = storage_roots(e, svc, &plan);
        let sys_after = partial_export(&sys_after_p, &roots);
        planned_values_present(&what, &sys_after, &roots, &e.system_hive_ref(), &plan);
        let soft_ref = e.software_hive_ref();
        let sw = format!("{what} SOFTWARE");
        assert_exact_diff(&sw, &g.soft_before, &soft_after, &soft_ref, &plan);
        sys_after
    };
    let inf = storage_inf(&plan, svc, &what);
    services(&what, e, &sys_after, svc, &inf);
    binding(&what, e, &sys_after, svc, &inf);
    let dp = string(
        &soft_after,
        "microsoft\\windows\\currentversion",
        "devicepath",
    )
    .unwrap_or_default();
    assert_eq!(
        dp.matches("%SystemRoot%\\Drivers\\VirtIO").count(),
        1,
        "{what}: DevicePath {dp:?}"
    );
    if bus == "virtio-blk" {
        let cs = &selected_sets(&sys_after)[0];
        assert_eq!(
            regipy(&sys_after_p, &format!("\\{cs}\\Services\\viostor"), "Start"),
            "0",
            "{what}: regipy reads the service's Start"
        );
        assert!(
            regipy(
                &soft_after_p,
                "\\Microsoft\\Windows\\CurrentVersion",
                "DevicePath"
            )
            .contains("Drivers\\VirtIO"),
            "{what}: regipy reads DevicePath"
        );
    }

    files(&what, g, img, &sys_img, &plan);

    // Second run: nothing to do, byte-identical image.
    let j2 = fix_ok(img, bus, &[]);
    assert_eq!(j2["report"]["changed"], 0, "{what}: {}", j2["report"]);
    assert_eq!(sha(img), once, "{what}: the second run changed the image");
    for p in [sys_img, sys_after_p, soft_after_p] {
        let _ = std::fs::remove_file(p);
    }
}

/// Whether the cell diffs the whole SYSTEM hive (hivex exports of the
/// big SYSTEM hive are most of the test's time): always on virtio-blk, and
/// on virtio-scsi for Windows 7 (CriticalDeviceDatabase) and 10
/// (DriverDatabase); the other virtio-scsi cells read the storage subtrees
/// only ([`storage_roots`]) and check the plan's values there.
fn full_system_diff(v: Version, bus: &str) -> bool {
    bus == "virtio-blk" || matches!(v, Version::Win7 | Version::Win10)
}

/// The SYSTEM subtrees the storage checks read (hivex key paths).
fn storage_roots(e: &Expected, svc: &str, plan: &[PlannedAction]) -> Vec<String> {
    let mut roots = vec!["Select".to_string()];
    let boot: &[&str] = if e.major < 6 {
        &["atapi", "intelide", "pciide"]
    } else if (e.major, e.minor) < (6, 2) {
        &["msahci"]
    } else {
        &["storahci"]
    };
    for cs in &e.control_sets.in_use {
        for s in std::iter::once(&svc).chain(boot) {
            roots.push(format!("{cs}\\Services\\{s}"));
        }
        roots.push(format!("{cs}\\Control\\CrashControl"));
        if (e.major, e.minor) < (6, 2) {
            roots.push(format!("{cs}\\Control\\CriticalDeviceDatabase"));
        }
    }
    if (e.major, e.minor) >= (6, 2) {
        roots.push("DriverDatabase\\DeviceIds\\PCI".into());
        roots.push("DriverDatabase\\DeviceIds\\{4d36e97b-e325-11ce-bfc1-08002be10318}".into());
        roots.push("DriverDatabase\\DriverInfFiles".into());
        let pkg = plan.iter().find_map(|a| match &a.action {
            Action::SetValue { key, .. } if key.starts_with("DriverDatabase\\DriverPackages\\") => {
                Some(key.split('\\').take(3).collect::<Vec<_>>().join("\\"))
            }
            _ => None,
        });
        roots.extend(pkg);
    }
    roots
}

/// `hivexregedit --export` of each root, merged.
fn partial_export(hive: &Path, roots: &[String]) -> Export {
    let mut out = Export::new();
    for r in roots {
        let text = testkit::run(
            Command::new("hivexregedit")
                .arg("--export")
                .arg(hive)
                .arg(format!("\\{r}")),
        );
        out.extend(regdiff::parse(&text));
    }
    out
}

/// Inside `roots`, every value the plan sets has the planned data and
/// every key or value it deletes is gone.
fn planned_values_present(
    what: &str,
    sys: &Export,
    roots: &[String],
    hive: &guest::plan::HiveRef,
    plan: &[PlannedAction],
) {
    let inside = |k: &str| {
        let k = k.to_lowercase();
        roots.iter().any(|r| {
            let r = r.to_lowercase();
            k == r || k.starts_with(&format!("{r}\\"))
        })
    };
    let mut n = 0;
    for a in plan.iter().filter(|a| a.action.hive() == Some(hive)) {
        match &a.action {
            Action::SetValue {
                key, name, data, ..
            } if inside(key) => {
                assert_eq!(
                    val(sys, key, name),
                    Some(regdiff::hivex_text(data).as_str()),
                    "{what}: {key}\\{name} as planned"
                );
                n += 1;
            }
            Action::DeleteKey { key, .. } if inside(key) => {
                assert!(
                    !sys.contains_key(&key.to_lowercase()),
                    "{what}: {key} deleted"
                );
            }
            Action::DeleteValue { key, name, .. } if inside(key) => {
                assert_eq!(val(sys, key, name), None, "{what}: {key}\\{name} deleted");
            }
            _ => {}
        }
    }
    assert!(
        n > 5,
        "{what}: only {n} planned values in the storage subtrees"
    );
}

/// The hivex diffs of SYSTEM and SOFTWARE are exactly the plan's registry
/// actions, and the plan edits no other hive.
fn exact_diffs(
    what: &str,
    g: &Guest,
    plan: &[PlannedAction],
    sys_after: &Export,
    soft_after: &Export,
) {
    let e = &g.e;
    let sys_ref = e.system_hive_ref();
    let soft_ref = e.software_hive_ref();
    assert_exact_diff(
        &format!("{what} SYSTEM"),
        &g.sys_before,
        sys_after,
        &sys_ref,
        plan,
    );
    assert_exact_diff(
        &format!("{what} SOFTWARE"),
        &g.soft_before,
        soft_after,
        &soft_ref,
        plan,
    );
    let hives = [&sys_ref, &soft_ref];
    for a in plan {
        if let Some(h) = a.action.hive() {
            assert!(
                hives.contains(&h),
                "{what}: an action on another hive {a:?}"
            );
        }
    }
}

/// The storage driver's INF on the media: beside the `.sys` the plan
/// copies to `System32\drivers`.
fn storage_inf(plan: &[PlannedAction], svc: &str, what: &str) -> PathBuf {
    let sys = plan
        .iter()
        .find_map(|a| match &a.action {
            Action::PutFile {
                path,
                source: FileSource::Host { path: host },
                ..
            } if path
                .to_lowercase()
                .ends_with(&format!("system32/drivers/{svc}.sys")) =>
            {
                Some(host.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{what}: no {svc}.sys copied to System32\\drivers"));
    sys.with_file_name(format!("{svc}.inf"))
}

/// Every control set `Select` references: the storage service, the
/// bootstrap controller, AutoReboot.
fn services(what: &str, e: &Expected, sys: &Export, svc: &str, inf: &Path) {
    let sets = selected_sets(sys);
    let want: Vec<String> = e
        .control_sets
        .in_use
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    assert_eq!(sets, want, "{what}: control sets in Select");
    let params = inf_service_dwords(inf);
    assert!(
        !params.is_empty() || e.major < 6,
        "{what}: no AddReg in {inf:?}"
    );
    for cs in &sets {
        let k = format!("{cs}\\services\\{svc}");
        assert_eq!(dword(sys, &k, "start"), Some(0), "{what} {k}");
        assert_eq!(dword(sys, &k, "type"), Some(1), "{what} {k}");
        assert!(dword(sys, &k, "errorcontrol").is_some(), "{what} {k}");
        assert!(
            string(sys, &k, "group")
                .unwrap_or_default()
                .eq_ignore_ascii_case("scsi miniport"),
            "{what} {k} Group"
        );
        assert!(
            string(sys, &k, "imagepath")
                .unwrap_or_default()
                .to_lowercase()
                .ends_with(&format!("drivers\\{svc}.sys")),
            "{what} {k} ImagePath"
        );
        assert!(
            !sys.contains_key(&format!("{k}\\startoverride")),
            "{what}: {k} keeps a StartOverride"
        );
        for (sub, name, v) in &params {
            assert_eq!(
                dword(sys, &format!("{k}\\{sub}"), name),
                Some(*v),
                "{what}: {k}\\{sub}\\{name} as the INF gives it"
            );
        }
        assert_eq!(
            dword(sys, &format!("{cs}\\control\\crashcontrol"), "autoreboot"),
            Some(0),
            "{what} {cs}"
        );
        bootstrap(what, e, sys, cs);
    }
}

/// AHCI on Vista and later, MergeIDE on XP/2003.
fn bootstrap(what: &str, e: &Expected, sys: &Export, cs: &str) {
    if e.major < 6 {
        for s in ["atapi", "intelide", "pciide"] {
            assert_eq!(
                dword(sys, &format!("{cs}\\services\\{s}"), "start"),
                Some(0),
                "{what}: MergeIDE {cs} {s}"
            );
        }
        let cdd = format!("{cs}\\control\\criticaldevicedatabase");
        for (dev, svc) in [
            ("primary_ide_channel", "atapi"),
            ("secondary_ide_channel", "atapi"),
            ("*pnp0600", "atapi"),
            ("pci#cc_0101", "pciide"),
            ("pci#ven_8086&dev_7010", "intelide"),
            ("pci#ven_8086&dev_7111", "intelide"),
        ] {
            assert_eq!(
                string(sys, &format!("{cdd}\\{dev}"), "service")
                    .map(|s| s.to_lowercase())
                    .as_deref(),
                Some(svc),
                "{what}: MergeIDE {cdd}\\{dev}"
            );
        }
        return;
    }
    let ahci = if (e.major, e.minor) >= (6, 2) {
        "storahci"
    } else {
        "msahci"
    };
    let k = format!("{cs}\\services\\{ahci}");
    assert_eq!(dword(sys, &k, "start"), Some(0), "{what} {k}");
    assert!(
        !sys.contains_key(&format!("{k}\\startoverride")),
        "{what}: {k} keeps a StartOverride"
    );
}

/// The device binding: CDD before Windows 8, DriverDatabase after; every
/// VEN_1AF4 entry we find is an ID of the INF and names the service.
fn binding(what: &str, e: &Expected, sys: &Export, svc: &str, inf: &Path) {
    let ids = inf_ids(inf);
    let in_inf = |id: &str| ids.iter().any(|x| x.eq_ignore_ascii_case(id));
    let base = if svc == "viostor" { "1001" } else { "1004" };
    if (e.major, e.minor) < (6, 2) {
        for cs in selected_sets(sys) {
            let pre = format!("{cs}\\control\\criticaldevicedatabase\\");
            let ours: Vec<&String> = sys
                .keys()
                .filter(|k| {
                    k.strip_prefix(&pre)
                        .is_some_and(|r| r.starts_with("pci#ven_1af4") && !r.contains('\\'))
                })
                .collect();
            assert!(
                ours.iter().any(|k| k.contains(&format!("dev_{base}"))),
                "{what}: no CDD entry for DEV_{base} in {cs}: {ours:?}"
            );
            for k in ours {
                let id = k[pre.len()..].replace('#', "\\");
                assert!(in_inf(&id), "{what}: {k} is not an ID of {inf:?}");
                assert_eq!(
                    string(sys, k, "service").as_deref(),
                    Some(svc),
                    "{what} {k}"
                );
                assert_eq!(
                    string(sys, k, "classguid").map(|s| s.to_uppercase()),
                    Some("{4D36E97B-E325-11CE-BFC1-08002BE10318}".into()),
                    "{what} {k}"
                );
            }
        }
        assert!(
            !sys.contains_key("driverdatabase"),
            "{what}: DriverDatabase on a pre-8 hive"
        );
        return;
    }
    let pre = "driverdatabase\\deviceids\\";
    let infname = format!("{svc}.inf");
    let ours: Vec<&String> = sys
        .iter()
        .filter(|(k, vs)| k.starts_with(pre) && vs.contains_key(&infname))
        .map(|(k, _)| k)
        .collect();
    assert!(
        ours.iter()
            .any(|k| k.contains(&format!("ven_1af4&dev_{base}"))),
        "{what}: no DeviceIds entry for DEV_{base}: {ours:?}"
    );
    for k in ours.iter().filter(|k| k.contains("\\pci\\")) {
        let id = &k[pre.len()..];
        assert!(in_inf(id), "{what}: {k} is not an ID of {inf:?}");
    }
    assert!(
        sys.contains_key(&format!("driverdatabase\\driverinffiles\\{infname}")),
        "{what}: DriverInfFiles"
    );
    let arch = match e.arch {
        Arch::Amd64 => "amd64",
        _ => "x86",
    };
    let pkg = format!("driverdatabase\\driverpackages\\{infname}_{arch}_");
    let pkgs: Vec<&String> = sys
        .keys()
        .filter(|k| k.starts_with(&pkg) && !k[pkg.len()..].contains('\\'))
        .collect();
    assert_eq!(pkgs.len(), 1, "{what}: DriverPackages {pkgs:?}");
    assert_eq!(pkgs[0].len(), pkg.len() + 16, "{what}: label {}", pkgs[0]);
    let conf = format!("{}\\configurations", pkgs[0]);
    assert!(
        sys.iter().any(|(k, vs)| k.starts_with(&conf)
            && vs.get("service").map(|d| utf16(&decode(d).1)) == Some(svc.to_string())),
        "{what}: no configuration binds {svc}"
    );
    // The INF is listed under the class GUID (as Windows lists packages).
    let class = "driverdatabase\\deviceids\\{4d36e97b-e325-11ce-bfc1-08002be10318}";
    assert!(
        sys.get(class).is_some_and(|vs| vs.contains_key(&infname)),
        "{what}: {class} does not list {infname}"
    );
}

/// Every PutFile byte-identical to its source (sleuthkit for System32,
/// ntfscat for the rest, mtools on FAT), every CopyOnce a copy of the file
/// as it was in the pristine image, the boot volume clean.
fn files(what: &str, g: &Guest, img: &Path, sys_img: &Path, plan: &[PlannedAction]) {
    let e = &g.e;
    let scratch = g.dir.path().join("fat.tmp");
    let mut extracted: Vec<(u32, PathBuf)> = vec![];
    let mut read = |v: &VolumeRef, path: &str, from: &Path| -> Vec<u8> {
        let p = part(e, v);
        match p.fs.as_str() {
            "fat" => fat_cat(from, p.start, path, &scratch),
            "ntfs" if path.to_lowercase().contains("/system32/") => tsk_cat(from, p.start, path),
            "ntfs" if p.number == e.system_partition && from == img => {
                testkit::winimg::ntfscat(sys_img, path)
            }
            "ntfs" => {
                let part_img = match extracted.iter().find(|(n, _)| *n == p.number) {
                    Some((_, i)) if from == img => i.clone(),
                    _ => {
                        let i =
                            g.dir
                                .path()
                                .join(format!("p{}-{}.part", p.number, extracted.len()));
                        extract(from, p, &i);
                        if from == img {
                            extracted.push((p.number, i.clone()));
                        }
                        i
                    }
                };
                testkit::winimg::ntfscat(&part_img, path)
            }
            other => panic!("{what}: a file on a {other} volume"),
        }
    };
    let mut n = 0;
    for a in plan {
        match &a.action {
            Action::PutFile {
                volume,
                path,
                source,
                size,
                ..
            } => {
                let want = match source {
                    FileSource::Host { path: host } => std::fs::read(host).unwrap(),
                    FileSource::Inline { bytes } => bytes.clone(),
                    other => panic!("{what}: unexpected source {other:?}"),
                };
                assert_eq!(want.len() as u64, *size, "{what}: {path}");
                assert!(read(volume, path, img) == want, "{what}: {path} differs");
                n += 1;
            }
            Action::CopyOnce { volume, from, to } => {
                let was = read(volume, from, &g.img);
                assert!(
                    read(volume, to, img) == was,
                    "{what}: {to} is not {from} as it was"
                );
                assert!(read(volume, from, img) == was, "{what}: {from} changed");
            }
            _ => {}
        }
    }
    assert!(n > 3, "{what}: only {n} files put");
    // Boot volumes of NTFS touched by the plan: clean.
    for (num, p) in &extracted {
        ntfsfix_clean(p, &format!("{what} partition {num}"));
    }
}

macro_rules! cells {
    ($($name:ident: $v:ident $arch:ident $fw:ident;)*) => {$(
        #[test]
        fn $name() {
            cell(Version::$v, Arch::$arch, Firmware::$fw);
        }
    )*};
}

cells! {
    winxp_x86_bios: WinXp X86 Bios;
    win2003_x86_bios: Win2003 X86 Bios;
    win7_x86_bios: Win7 X86 Bios;
    win7_x64_bios: Win7 Amd64 Bios;
    win7_x64_uefi: Win7 Amd64 Uefi;
    win2008r2_bios: Win2008R2 Amd64 Bios;
    win2008r2_uefi: Win2008R2 Amd64 Uefi;
    win10_bios: Win10 Amd64 Bios;
    win10_uefi: Win10 Amd64 Uefi;
    win2016_bios: Win2016 Amd64 Bios;
    win2016_uefi: Win2016 Amd64 Uefi;
    win2019_bios: Win2019 Amd64 Bios;
    win2019_uefi: Win2019 Amd64 Uefi;
    win2022_bios: Win2022 Amd64 Bios;
    win2022_uefi: Win2022 Amd64 Uefi;
    win2025_bios: Win2025 Amd64 Bios;
    win2025_uefi: Win2025 Amd64 Uefi;
    win11_uefi: Win11 Amd64 Uefi;
}
