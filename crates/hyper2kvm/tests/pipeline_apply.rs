//! The migrate pipeline with a fixer written for the test: it plans
//! actions across two disks (files on an NTFS volume of disk 0, registry
//! edits of a hive on disk 1); `plan.json` lists exactly them; the
//! executor carries out exactly those on the staged qcow2 outputs (read
//! back with ntfs-3g's ntfscat/ntfsls and hivex's hivexget); a dry run
//! writes nothing but the plan; a failure in the middle of applying leaves
//! no output but the report; sources never change; a second application
//! changes nothing; peak memory while applying a 200 MiB file and editing
//! a 100 MiB hive is printed.

use guest::plan::{Action, FileSource, HiveRef, PlannedAction, RegData, VolumeRef};
use hyper2kvm::diskconv::OutFormat;
use hyper2kvm::migrate::fixers::{Fixer, VmView};
use hyper2kvm::migrate::{self, source::Overrides, Options};
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::{need, s, sfdisk, sha256, sha256_hex, sparse_file};

const HIVE: &str = "Windows/System32/config/SYSTEM";

/// The tests of this file run one at a time, so the peak RSS measured by
/// the memory test is its own.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A raw disk of `mib` MiB with one active NTFS partition from 1 MiB to
/// the end, formatted by mkntfs.
fn ntfs_disk(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let disk = dir.join(name);
    sparse_file(&disk, mib << 20);
    sfdisk(&disk, "label: dos\nstart=2048, type=7, bootable\n");
    let part = dir.join(format!("{name}.part"));
    sparse_file(&part, (mib - 1) << 20);
    run("mkntfs", &["-F", "-Q", "-q", "-p", "2048", s(&part)]);
    run(
        "dd",
        &[
            &format!("if={}", s(&part)),
            &format!("of={}", s(&disk)),
            "bs=1M",
            "seek=1",
            "conv=notrunc,sparse",
            "status=none",
        ],
    );
    std::fs::remove_file(&part).unwrap();
    disk
}

fn run(prog: &str, args: &[&str]) -> String {
    need(prog);
    let o = Command::new(prog).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A SYSTEM-like hive with a few keys and values, as file bytes.
fn small_hive() -> Vec<u8> {
    let mut h = regf::Hive::new_empty("SYSTEM").unwrap();
    h.create_key(r"ControlSet001\Services\atapi").unwrap();
    h.set_value(
        r"ControlSet001\Services\atapi",
        "Start",
        &regf::Value::Dword(3),
    )
    .unwrap();
    h.set_value(
        r"ControlSet001\Services\atapi",
        "Obsolete",
        &regf::Value::String("x".into()),
    )
    .unwrap();
    h.commit()
}

/// Put `files` on partition 1 of a raw disk with our own NTFS writer
/// (setup only; results are read back with ntfs-3g).
fn put(disk: &Path, files: &[(&str, &[u8])]) {
    let mut fs = guest::fs::open_image_rw(disk, Some(1), false).unwrap();
    for (p, b) in files {
        if let Some((d, _)) = p.rsplit_once('/') {
            fs.mkdir_p(d).unwrap();
        }
        fs.write(p, b).unwrap();
    }
    fs.flush().unwrap();
}

fn vol(disk: usize) -> VolumeRef {
    VolumeRef {
        disk,
        partition: Some(1),
    }
}

fn hive(disk: usize) -> HiveRef {
    HiveRef {
        volume: vol(disk),
        path: HIVE.into(),
    }
}

fn put_file(disk: usize, path: &str, source: FileSource, bytes_for_hash: &[u8]) -> Action {
    Action::PutFile {
        volume: vol(disk),
        path: path.into(),
        source,
        size: bytes_for_hash.len() as u64,
        sha256: sha256_hex(bytes_for_hash),
    }
}

/// The test's fixer: returns the actions it was built with.
struct TestFixer(Vec<Action>);

impl Fixer for TestFixer {
    fn name(&self) -> &'static str {
        "test"
    }
    fn plan(&self, vm: &VmView) -> anyhow::Result<Vec<PlannedAction>> {
        assert_eq!(vm.disks.len(), 2, "the fixer sees every disk");
        assert_eq!(vm.inspection.disks.len(), 2);
        assert_eq!(vm.inspection.disks[1].volumes[0].fs, "ntfs");
        Ok(self
            .0
            .iter()
            .enumerate()
            .map(|(i, a)| PlannedAction::new("test", format!("test action {i}"), a.clone()))
            .collect())
    }
}

fn options(sources: &[PathBuf], out: &Path) -> Options {
    Options {
        sources: sources.to_vec(),
        out: out.to_path_buf(),
        virtio_win: None,
        format: OutFormat::Qcow2,
        compress: None,
        block: domain::writer::BlockBus::VirtioBlk,
        dry_run: false,
        validate: false,
        validate_timeout: 10,
        accel: "tcg".into(),
        force: false,
        allow_outside: false,
        overrides: Overrides {
            memory_mib: Some(512),
            vcpus: Some(1),
            firmware: Some("bios".into()),
            os: Some("linux".into()),
            name: Some("pipe".into()),
        },
        threads: 1,
        geometry: None,
        success_markers: vec![],
        geometry_off: true,
        progress: false,
        print_plan: false,
        first_boot: None,
        linux_bootstrap: true,
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Partition 1 of a converted qcow2 output, flattened by qemu-img.
fn out_partition(img: &Path, dir: &Path) -> PathBuf {
    let raw = testkit::qemu::qemu_raw_file(img, Some("qcow2"), dir);
    let part = dir.join(format!("{}.p1", img.file_name().unwrap().to_string_lossy()));
    run(
        "dd",
        &[
            &format!("if={}", s(&raw)),
            &format!("of={}", s(&part)),
            "bs=1M",
            "skip=1",
            "conv=sparse",
            "status=none",
        ],
    );
    std::fs::remove_file(&raw).unwrap();
    part
}

fn ntfscat(part: &Path, path: &str) -> Vec<u8> {
    need("ntfscat");
    let o = Command::new("ntfscat")
        .args(["-f", s(part), path])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ntfscat {path}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn hivexget(hive: &Path, key: &str, name: &str) -> (bool, String) {
    need("hivexget");
    let o = Command::new("hivexget")
        .args([s(hive), key, name])
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

struct Vm {
    _t: tempfile::TempDir,
    dir: PathBuf,
    disks: Vec<PathBuf>,
    sums: Vec<Vec<u8>>,
}

fn two_disk_vm() -> Vm {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let d0 = ntfs_disk(&dir, "d0.raw", 40);
    let d1 = ntfs_disk(&dir, "d1.raw", 40);
    put(&d0, &[("keep/old.txt", b"old contents")]);
    put(
        &d1,
        &[
            (HIVE, &small_hive()),
            ("Windows/System32/config/SYSTEM.LOG1", b""),
        ],
    );
    let sums = [&d0, &d1].iter().map(|p| sha256(p)).collect();
    Vm {
        _t: t,
        dir,
        disks: vec![d0, d1],
        sums,
    }
}

fn cross_disk_actions(host_file: &Path, host_bytes: &[u8]) -> Vec<Action> {
    vec![
        Action::MkDir {
            volume: vol(0),
            path: "h2k/empty/dir".into(),
        },
        put_file(
            0,
            "h2k/hello.txt",
            FileSource::Inline {
                bytes: b"hello from the plan\r\n".to_vec(),
            },
            b"hello from the plan\r\n",
        ),
        put_file(
            0,
            "h2k/deep/from-host.bin",
            FileSource::Host {
                path: host_file.to_path_buf(),
            },
            host_bytes,
        ),
        Action::CopyOnce {
            volume: vol(1),
            from: HIVE.into(),
            to: format!("{HIVE}.h2k-backup"),
        },
        Action::SetValue {
            hive: hive(1),
            key: r"ControlSet001\Services\viostor".into(),
            name: "Start".into(),
            data: RegData::Dword(0),
        },
        Action::SetValue {
            hive: hive(1),
            key: r"ControlSet001\Services\atapi".into(),
            name: "Start".into(),
            data: RegData::Dword(0),
        },
        Action::DeleteValue {
            hive: hive(1),
            key: r"ControlSet001\Services\atapi".into(),
            name: "Obsolete".into(),
        },
        Action::SetValue {
            hive: hive(1),
            key: r"ControlSet001\Services\viostor".into(),
            name: "ImagePath".into(),
            data: RegData::ExpandSz(r"system32\drivers\viostor.sys".into()),
        },
    ]
}

#[test]
fn a_fixer_plans_across_two_disks_and_apply_does_exactly_that() {
    let _serial = serial();
    let vm = two_disk_vm();
    let host_bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let host_file = vm.dir.join("payload.bin");
    std::fs::write(&host_file, &host_bytes).unwrap();
    let actions = cross_disk_actions(&host_file, &host_bytes);
    let fixers: Vec<Box<dyn Fixer>> = vec![Box::new(TestFixer(actions.clone()))];

    // Dry run: only the plan (and the report) are written.
    let out = vm.dir.join("out");
    let mut o = options(&vm.disks, &out);
    o.dry_run = true;
    migrate::run_with(&o, &fixers)
        .map_err(|f| f.into_error())
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["plan.json", "report.json"]);
    let plan = json(&out.join("plan.json"));
    let planned: Vec<PlannedAction> = serde_json::from_value(plan["actions"].clone()).unwrap();
    let ours: Vec<&Action> = planned
        .iter()
        .filter(|a| a.fixer == "test")
        .map(|a| &a.action)
        .collect();
    assert_eq!(ours, actions.iter().collect::<Vec<_>>());
    assert!(
        planned
            .iter()
            .all(|a| a.fixer == "test" || matches!(a.action, Action::Manual { .. })),
        "nothing else is planned: {planned:?}"
    );

    // The real run reuses the dry run's folder without --force.
    o.dry_run = false;
    let report = migrate::run_with(&o, &fixers)
        .map_err(|f| f.into_error())
        .unwrap();
    assert!(report.success);
    assert_eq!(report.applied.len(), planned.len(), "{:?}", report.applied);
    for (line, a) in report.applied.iter().zip(&planned) {
        assert!(line.starts_with(&format!("{}:", a.fixer)), "{line}");
    }
    assert!(
        report.checks.iter().any(|c| c.contains("NTFS")),
        "{:?}",
        report.checks
    );
    let r = json(&out.join("report.json"));
    assert_eq!(r["success"], true);
    assert_eq!(r["dry_run"], false);

    // Read back with ntfs-3g and hivex.
    let img0 = out.join("pipe-disk0.qcow2");
    let img1 = out.join("pipe-disk1.qcow2");
    let p0 = out_partition(&img0, &vm.dir);
    assert_eq!(ntfscat(&p0, "/h2k/hello.txt"), b"hello from the plan\r\n");
    assert_eq!(ntfscat(&p0, "/h2k/deep/from-host.bin"), host_bytes);
    assert_eq!(ntfscat(&p0, "/keep/old.txt"), b"old contents");
    let ls = run("ntfsls", &["-f", s(&p0), "-p", "/h2k/empty"]);
    assert!(ls.contains("dir"), "{ls}");
    let p1 = out_partition(&img1, &vm.dir);
    let hive_file = vm.dir.join("SYSTEM.out");
    std::fs::write(&hive_file, ntfscat(&p1, &format!("/{HIVE}"))).unwrap();
    assert_eq!(
        hivexget(&hive_file, r"ControlSet001\Services\viostor", "Start"),
        (true, "0".into())
    );
    assert_eq!(
        hivexget(&hive_file, r"ControlSet001\Services\atapi", "Start"),
        (true, "0".into())
    );
    assert_eq!(
        hivexget(&hive_file, r"ControlSet001\Services\viostor", "ImagePath"),
        (true, r"system32\drivers\viostor.sys".into())
    );
    assert!(
        !hivexget(&hive_file, r"ControlSet001\Services\atapi", "Obsolete").0,
        "deleted value still there"
    );
    // The backup is the hive as it was; the log was reset.
    std::fs::write(&hive_file, ntfscat(&p1, &format!("/{HIVE}.h2k-backup"))).unwrap();
    assert_eq!(
        hivexget(&hive_file, r"ControlSet001\Services\atapi", "Obsolete"),
        (true, "x".into())
    );
    assert!(ntfscat(&p1, &format!("/{HIVE}.LOG1")).is_empty());
    // ntfs-3g's checker agrees with ours.
    for p in [&p0, &p1] {
        run("ntfsfix", &["-n", s(p)]);
    }
    for (d, sum) in vm.disks.iter().zip(&vm.sums) {
        assert_eq!(&sha256(d), sum, "source {} changed", d.display());
    }

    // A second application changes nothing.
    let disks: Vec<std::sync::Arc<dyn vdisk::DiskWrite>> = [&img0, &img1]
        .iter()
        .map(|p| {
            std::sync::Arc::new(vdisk::qcow2::open_rw(p).unwrap())
                as std::sync::Arc<dyn vdisk::DiskWrite>
        })
        .collect();
    let again = guest::apply::execute(&planned, &disks, &guest::apply::host_files).unwrap();
    assert_eq!(again.changed, 0, "{:?}", again.lines);
    drop(disks);
    let p0b = out_partition(&img0, &vm.dir);
    assert_eq!(sha256(&p0b), sha256(&p0), "second apply changed disk 0");
}

#[test]
fn a_failure_in_the_middle_of_apply_leaves_only_the_report() {
    let _serial = serial();
    let vm = two_disk_vm();
    let mut actions = cross_disk_actions(&vm.dir.join("none"), b"");
    actions.remove(2);
    // Disk 0 is written first; then disk 1 wants a file below a file.
    actions.push(put_file(
        1,
        &format!("{HIVE}/not-a-dir.txt"),
        FileSource::Inline {
            bytes: b"x".to_vec(),
        },
        b"x",
    ));
    let fixers: Vec<Box<dyn Fixer>> = vec![Box::new(TestFixer(actions))];
    let out = vm.dir.join("out");
    let f = migrate::run_with(&options(&vm.disks, &out), &fixers).unwrap_err();
    let msg = format!("{:#}", f.error);
    assert!(
        msg.contains("not-a-dir.txt") || msg.contains("not a directory"),
        "{msg}"
    );
    let (path, report) = f.report.expect("a report for this run");
    assert_eq!(path, out.join("report.json"));
    assert!(!report.success);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["report.json"]);
    let r = json(&out.join("report.json"));
    assert!(
        r["error"].as_str().unwrap().contains("applying the plan"),
        "{r}"
    );
    for (d, sum) in vm.disks.iter().zip(&vm.sums) {
        assert_eq!(&sha256(d), sum, "source {} changed", d.display());
    }
}

fn vm_hwm_kib() -> u64 {
    let st = std::fs::read_to_string("/proc/self/status").unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn applying_a_200_mib_file_and_a_100_mib_hive_edit_keeps_memory_bounded() {
    let _serial = serial();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let d0 = ntfs_disk(dir, "big0.raw", 320);
    let d1 = ntfs_disk(dir, "big1.raw", 240);
    // A 100 MiB hive: 100 values of 1 MiB each.
    let hive_path = dir.join("SYSTEM.big");
    {
        let mut h = regf::Hive::new_empty("SYSTEM").unwrap();
        h.create_key(r"ControlSet001\Blobs").unwrap();
        let blob = vec![0x5au8; 1 << 20];
        for i in 0..100 {
            h.set_value(
                r"ControlSet001\Blobs",
                &format!("b{i}"),
                &regf::Value::Binary(blob.clone()),
            )
            .unwrap();
        }
        std::fs::write(&hive_path, h.commit()).unwrap();
    }
    let hive_len = std::fs::metadata(&hive_path).unwrap().len();
    assert!(hive_len > 100 << 20, "{hive_len}");
    {
        let mut fs = guest::fs::open_image_rw(&d1, Some(1), false).unwrap();
        fs.mkdir_p("Windows/System32/config").unwrap();
        let mut f = std::fs::File::open(&hive_path).unwrap();
        fs.write_from(HIVE, hive_len, &mut f).unwrap();
        fs.flush().unwrap();
    }
    let payload = dir.join("payload.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&payload).unwrap());
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
        for k in 0..200u8 {
            let mut c = chunk.clone();
            c[0] = k;
            f.write_all(&c).unwrap();
        }
    }
    let (want, len) =
        guest::apply::sha256_reader(&mut std::fs::File::open(&payload).unwrap()).unwrap();
    let actions = vec![
        Action::PutFile {
            volume: vol(0),
            path: "big/payload.bin".into(),
            source: FileSource::Host {
                path: payload.clone(),
            },
            size: len,
            sha256: want.clone(),
        },
        Action::SetValue {
            hive: hive(1),
            key: r"ControlSet001\Services\viostor".into(),
            name: "Start".into(),
            data: RegData::Dword(0),
        },
    ];
    let fixers: Vec<Box<dyn Fixer>> = vec![Box::new(TestFixer(actions))];
    let out = dir.join("out");
    // Reset the peak RSS (setup held the hive in memory), then migrate.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = vm_hwm_kib();
    let report = migrate::run_with(&options(&[d0.clone(), d1.clone()], &out), &fixers)
        .map_err(|f| f.into_error())
        .unwrap();
    let peak = vm_hwm_kib();
    println!(
        "peak RSS while migrating (convert + apply of a {} MiB file and a {} MiB hive): {} MiB (was {} MiB before)",
        len >> 20,
        hive_len >> 20,
        peak >> 10,
        before >> 10
    );
    println!("{:#?}", report.checks);
    // The file is streamed in 1 MiB pieces; the hive is held in memory
    // (its bins, then the committed copy): bounded by about twice the
    // hive, not by the disks or the file.
    assert!(
        peak < before + 5 * (hive_len >> 10) / 2 + (32 << 10),
        "peak {peak} KiB"
    );
    let p0 = out_partition(&out.join("pipe-disk0.qcow2"), dir);
    let mut cat = Command::new("ntfscat")
        .args(["-f", s(&p0), "/big/payload.bin"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (got, n) = guest::apply::sha256_reader(cat.stdout.as_mut().unwrap()).unwrap();
    assert!(cat.wait().unwrap().success());
    assert_eq!((got, n), (want, len));
    std::fs::remove_file(&p0).unwrap();
    let p1 = out_partition(&out.join("pipe-disk1.qcow2"), dir);
    let h = dir.join("SYSTEM.out");
    std::fs::write(&h, ntfscat(&p1, &format!("/{HIVE}"))).unwrap();
    assert_eq!(
        hivexget(&h, r"ControlSet001\Services\viostor", "Start"),
        (true, "0".into())
    );
}

#[test]
fn compressed_qcow2_outputs_are_edited_in_place_and_stay_consistent() {
    let _serial = serial();
    let vm = two_disk_vm();
    let host_bytes = vec![0xa5u8; 200_000];
    let host_file = vm.dir.join("payload.bin");
    std::fs::write(&host_file, &host_bytes).unwrap();
    let fixers: Vec<Box<dyn Fixer>> = vec![Box::new(TestFixer(cross_disk_actions(
        &host_file,
        &host_bytes,
    )))];
    let out = vm.dir.join("out");
    let mut o = options(&vm.disks, &out);
    o.compress = Some(vdisk::writer::Compression::Zstd);
    migrate::run_with(&o, &fixers)
        .map_err(|f| f.into_error())
        .unwrap();
    for i in 0..2 {
        let img = out.join(format!("pipe-disk{i}.qcow2"));
        // No corruption, no leak (asserted by qemu_check).
        let c = testkit::qemu::qemu_check(&img);
        assert!(
            c["compressed-clusters"].as_u64().unwrap_or(0) > 0,
            "the output is compressed: {c}"
        );
    }
    let p0 = out_partition(&out.join("pipe-disk0.qcow2"), &vm.dir);
    assert_eq!(ntfscat(&p0, "/h2k/deep/from-host.bin"), host_bytes);
    assert_eq!(ntfscat(&p0, "/keep/old.txt"), b"old contents");
    let p1 = out_partition(&out.join("pipe-disk1.qcow2"), &vm.dir);
    let h = vm.dir.join("SYSTEM.z");
    std::fs::write(&h, ntfscat(&p1, &format!("/{HIVE}"))).unwrap();
    assert_eq!(
        hivexget(&h, r"ControlSet001\Services\viostor", "Start"),
        (true, "0".into())
    );
}
