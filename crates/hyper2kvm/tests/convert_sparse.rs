//! `hyper2kvm convert` of thin disks and block devices, through the CLI:
//! a 2 TiB sparse raw holding 3 MiB reads those 3 MiB (not 2 TiB) and its
//! outputs stay sparse and qemu-img-identical; `info` and `convert` of a
//! loop device see its real size and contents, and a device without a
//! size fails without leaving an output behind.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

mod support;

use support::{bin, run, tool};

const MIB: u64 = 1 << 20;

/// Writes 1 MiB runs of non-zero bytes at `offsets` into a sparse file of
/// `size` bytes.
fn sparse_pattern(path: &Path, size: u64, offsets: &[u64]) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (i, &off) in offsets.iter().enumerate() {
        let run: Vec<u8> = (0..MIB).map(|k| (k % 251) as u8 ^ (i as u8 + 1)).collect();
        f.write_all_at(&run, off).unwrap();
    }
}

fn compare(a: &Path, a_fmt: &str, b: &Path, b_fmt: &str) -> String {
    run(tool("qemu-img")
        .args(["compare", "-f", a_fmt, "-F", b_fmt])
        .arg(a)
        .arg(b))
}

fn convert_json(src: &Path, dst: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run(Command::new(bin())
        .arg("convert")
        .arg(src)
        .arg(dst)
        .args(extra)
        .arg("--json"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("convert --json: {e}: {out}"))
}

#[test]
fn a_2_tib_sparse_raw_costs_its_data() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("thin.raw");
    let size = 2u64 << 40;
    sparse_pattern(&src, size, &[0, 700 << 30, size - MIB]);
    for (fmt, name) in [("qcow2", "out.qcow2"), ("raw", "out.raw")] {
        let dst = t.path().join(name);
        let v = convert_json(&src, &dst, &["-O", fmt]);
        assert_eq!(v["stats"]["virtual_size"], size, "{v}");
        // Only the allocated 3 MiB are read: the holes are skipped as ranges.
        assert_eq!(v["stats"]["bytes_read"], 3 * MIB, "{fmt}: {v}");
        assert_eq!(v["stats"]["data_clusters"], 3 * MIB / (64 << 10), "{v}");
        let cmp = compare(&src, "raw", &dst, fmt);
        assert!(cmp.contains("Images are identical"), "{fmt}: {cmp}");
        let meta = std::fs::metadata(&dst).unwrap();
        assert!(
            meta.blocks() * 512 <= 4 * MIB,
            "{fmt} output allocates {} bytes for 3 MiB of data",
            meta.blocks() * 512
        );
        if fmt == "qcow2" {
            let chk = run(tool("qemu-img").arg("check").arg(&dst));
            assert!(chk.contains("No errors were found"), "{chk}");
        } else {
            assert_eq!(meta.len(), size);
        }
    }
}

/// A loop device, detached when dropped.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = tool("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn loop_devices_convert_with_their_real_size_or_fail_cleanly() {
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("SKIPPED: no loop device support here (/dev/loop-control is missing)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("lv.raw");
    let size = 40 * MIB;
    sparse_pattern(&file, size, &[0, 9 * MIB, size - MIB]);
    let dev = Loop(
        run(tool("losetup").args(["-f", "--show", "-r"]).arg(&file))
            .trim()
            .to_string(),
    );
    let info: serde_json::Value =
        serde_json::from_str(&run(Command::new(bin()).args(["info", "--json", &dev.0]))).unwrap();
    assert_eq!(info["virtual_size"], size, "info {}: {info}", dev.0);

    let out = t.path().join("lv.qcow2");
    let v = convert_json(Path::new(&dev.0), &out, &[]);
    assert_eq!(v["stats"]["virtual_size"], size, "{v}");
    let cmp = compare(&file, "raw", &out, "qcow2");
    assert!(cmp.contains("Images are identical"), "{}: {cmp}", dev.0);
    drop(dev);

    // An unattached loop device is a block device of 0 bytes: refused, and
    // no output (not even an empty one) is left behind.
    let free = run(tool("losetup").arg("-f")).trim().to_string();
    let empty = t.path().join("empty.qcow2");
    let o = Command::new(bin())
        .arg("convert")
        .arg(&free)
        .arg(&empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "convert of unattached {free} succeeded"
    );
    assert!(err.contains("size of 0 bytes"), "{err}");
    assert!(!empty.exists());
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("empty"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
