//! Interrupted runs, tested by signalling the real binary: SIGTERM and
//! SIGINT during `convert` and `migrate` leave no temporary file or
//! staging folder (and the process dies by that signal); `kill -9` leaves
//! them, and the next run into the same place removes those of processes
//! that have gone, says so, and keeps those of a run still going. Outputs
//! are read back with qemu-img.

use rand::{RngCore, SeedableRng};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::s;

mod support;

use support::bin;

/// A raw disk of `mib` MiB: a zero first MiB (no partition table by
/// chance), then random data, so that compressing it is slow.
fn random_raw(path: &Path, mib: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut buf = vec![0u8; 1 << 20];
    f.write_all(&buf).unwrap();
    for _ in 1..mib {
        rng.fill_bytes(&mut buf);
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

/// Start a slow conversion (zlib, one thread) with stderr captured.
fn spawn(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until `cond` holds while `child` runs (a child that ends first
/// fails the test: the source was converted before it could be stopped).
fn wait_while_running(child: &mut Child, what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended ({st:?}) before {what}");
        }
        assert!(t.elapsed() < Duration::from_secs(300), "no {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The id of a process that has ended.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn convert_args<'a>(src: &'a Path, dst: &'a Path) -> Vec<&'a str> {
    vec![
        "convert",
        s(src),
        s(dst),
        "--compress",
        "zlib",
        "--threads",
        "1",
        "--quiet",
    ]
}

#[test]
fn sigterm_and_sigint_during_convert_leave_no_temporary_file() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("big.raw");
    random_raw(&src, 160);
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dst = out.join("big.qcow2");
    for (sig, num) in [("TERM", 15), ("INT", 2)] {
        let mut child = spawn(&convert_args(&src, &dst));
        let tmp = out.join(format!(".big.qcow2.tmp-{}", child.id()));
        wait_while_running(&mut child, "the temporary file appeared", || tmp.exists());
        kill(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.signal(), Some(num), "SIG{sig}: {}", stderr(&o));
        assert!(names(&out).is_empty(), "SIG{sig} left {:?}", names(&out));
        let err = stderr(&o);
        assert!(err.contains(&format!("removed {}", s(&tmp))), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn kill_9_leaves_files_that_the_next_run_removes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("big.raw");
    random_raw(&src, 160);
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dst = out.join("disk.qcow2");
    let mut child = spawn(&convert_args(&src, &dst));
    let killed = out.join(format!(".disk.qcow2.tmp-{}", child.id()));
    wait_while_running(&mut child, "the temporary file appeared", || {
        killed.exists()
    });
    kill(&child, "KILL");
    child.wait().unwrap();
    assert!(
        killed.exists(),
        "kill -9 cannot clean up; the file must stay"
    );
    // Another stale one of a process that has gone, and a file of another
    // output that must be left alone.
    let gone = out.join(format!(".disk.qcow2.tmp-{}", dead_pid()));
    std::fs::write(&gone, b"partial").unwrap();
    let unrelated_name = format!(".other.qcow2.tmp-{}", dead_pid());
    let unrelated = out.join(&unrelated_name);
    std::fs::write(&unrelated, b"not ours").unwrap();

    let small = t.path().join("small.raw");
    random_raw(&small, 3);
    let o = Command::new(bin())
        .args(["convert", s(&small), s(&dst), "--quiet"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for f in [&killed, &gone] {
        assert!(!f.exists(), "{} not removed", f.display());
        assert!(
            err.contains(&format!("removed {}", s(f))) && err.contains("interrupted run"),
            "removal of {} not reported: {err}",
            f.display()
        );
    }
    assert!(unrelated.exists());
    assert_eq!(names(&out), vec![unrelated_name, "disk.qcow2".to_string()]);
    let info = testkit::qemu::qemu_info(&dst);
    assert_eq!(info["virtual-size"], 3 << 20);
}

fn staging_dirs(out: &Path) -> Vec<String> {
    names(out)
        .into_iter()
        .filter(|n| n.starts_with(".staging-"))
        .collect()
}

fn dry_run(src: &Path, out: &Path, force: bool) -> Output {
    let mut c = Command::new(bin());
    c.args(["migrate", s(src), "--out", s(out), "--dry-run", "--quiet"]);
    if force {
        c.arg("--force");
    }
    c.output().unwrap()
}

#[test]
fn migrate_staging_is_removed_on_sigterm_and_stale_staging_on_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("big.raw");
    random_raw(&src, 160);
    let small = t.path().join("small.raw");
    random_raw(&small, 2);
    let out = t.path().join("out");
    let mut child = spawn(&[
        "migrate",
        s(&src),
        "--out",
        s(&out),
        "--compress",
        "zlib",
        "--threads",
        "1",
        "--quiet",
    ]);
    let staging: PathBuf = out.join(format!(".staging-{}", child.id()));
    let converting = || {
        std::fs::read_dir(&staging).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        })
    };
    wait_while_running(&mut child, "the conversion started", converting);
    // A run into the same folder meanwhile keeps the live run's staging.
    let o = dry_run(&small, &out, true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(staging.exists(), "a live run's staging folder was removed");
    kill(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(15), "{}", stderr(&o));
    assert!(staging_dirs(&out).is_empty(), "left {:?}", names(&out));
    assert!(
        stderr(&o).contains(&format!("removed {}", s(&staging))),
        "{}",
        stderr(&o)
    );

    // kill -9 cannot be caught: a staging folder of a process that has
    // gone stays, and makes the folder non-empty; the next run removes it
    // and may write there without --force.
    let out2 = t.path().join("out2");
    let stale = out2.join(format!(".staging-{}", dead_pid()));
    std::fs::create_dir_all(stale.join("scratch")).unwrap();
    std::fs::write(stale.join("disk0.qcow2"), b"partial").unwrap();
    let o = dry_run(&small, &out2, false);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!stale.exists());
    assert!(err.contains(&format!("removed {}", s(&stale))), "{err}");
    assert!(staging_dirs(&out2).is_empty());
    assert!(out2.join("plan.json").exists());
}

/// The QEMU processes whose command line names `dir`.
fn qemus_in(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("qemu-system") && cmd.contains(&needle)).then_some(pid)
        })
        .collect()
}

/// SIGTERM while `validate` boots a guest that never finishes: the QEMU
/// it started is killed with it (it used to run on, orphaned, until its
/// own timeout or forever), and the process dies by SIGTERM.
#[test]
fn sigterm_during_a_boot_stops_its_qemu() {
    testkit::need("qemu-system-x86_64");
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // A boot sector that prints nothing and halts: no verdict for 600 s.
    let sector = hyper2kvm::validate::bootsector::BootSector::serial(
        "",
        hyper2kvm::validate::bootsector::Action::Halt,
    )
    .assemble()
    .unwrap();
    let mut img = vec![0u8; 1 << 20];
    img[..512].copy_from_slice(&sector);
    std::fs::write(d.join("hang.raw"), img).unwrap();
    let argv = [
        "qemu-system-x86_64",
        "-machine",
        "pc",
        "-m",
        "64",
        "-drive",
        "file=hang.raw,format=raw,if=ide",
        "-nic",
        "none",
    ];
    std::fs::write(
        d.join("vm1-final.argv.json"),
        serde_json::to_string(&argv).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("validate.json"), r#"{"timeout_seconds": 600}"#).unwrap();
    let mut child = spawn(&["validate", "--accel", "tcg", "--phase", "final", s(d)]);
    wait_while_running(&mut child, "QEMU started", || !qemus_in(d).is_empty());
    let qemu = qemus_in(d);
    kill(&child, "TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.signal(), Some(15), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("stopped QEMU (process {})", qemu[0])),
        "{err}"
    );
    // SIGKILL is delivered asynchronously: give the kernel a moment.
    let start = Instant::now();
    while !qemus_in(d).is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(qemus_in(d), Vec::<u32>::new(), "QEMU left running");
}
