//! Block devices as raw sources (issue: `info /dev/loop0` said 0 bytes and
//! a conversion of an LVM volume "succeeded" with an empty disk): a device
//! has its real size, reads back the bytes of its backing file, converts
//! to a qcow2 that qemu-img finds identical, and a device without a size is
//! refused. Loop devices need root and the kernel's loop driver; without
//! `/dev/loop-control` these tests say so and do nothing.

use std::os::unix::fs::FileExt;
use std::path::Path;
use testkit::{qemu_check, qemu_compare, run, tool};
use vdisk::convert::{convert, ConvertOptions};
use vdisk::writer::{Qcow2Options, Qcow2Writer};

const MIB: u64 = 1 << 20;

/// Loop devices are a machine-wide resource: the tests here take turns.
static LOOPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn loop_support() -> bool {
    let ok = Path::new("/dev/loop-control").exists();
    if !ok {
        eprintln!("SKIPPED: no loop device support here (/dev/loop-control is missing)");
    }
    ok
}

/// A loop device, detached when dropped.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = tool("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn a_loop_device_has_its_real_size_and_contents() {
    if !loop_support() {
        return;
    }
    let _turn = LOOPS.lock().unwrap_or_else(|p| p.into_inner());
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("backing.raw");
    let size = 48 * MIB;
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(size).unwrap();
    for (i, off) in [0, 5 * MIB + 512, 17 * MIB, size - 4096]
        .into_iter()
        .enumerate()
    {
        let fill: Vec<u8> = (0..12_345u32).map(|k| (k as u8) ^ (i as u8 + 1)).collect();
        let n = fill.len().min((size - off) as usize);
        f.write_all_at(&fill[..n], off).unwrap();
    }
    drop(f);
    let dev = Loop(
        run(tool("losetup").args(["-f", "--show", "-r"]).arg(&file))
            .trim()
            .to_string(),
    );
    let dev_path = Path::new(&dev.0);
    let d = vdisk::open(dev_path).unwrap();
    assert_eq!(d.size(), size, "size of {}", dev.0);
    assert_eq!(d.layer().virtual_size, size);
    assert_eq!(d.layer().format, "raw");
    let mut got = vec![0u8; size as usize];
    d.read_at(&mut got, 0).unwrap();
    assert!(
        got == std::fs::read(&file).unwrap(),
        "{} reads differently",
        dev.0
    );

    let out = t.path().join("out.qcow2");
    let w = Qcow2Writer::create(&out, size, Qcow2Options::default(), false).unwrap();
    let (_, stats) = convert(&*d, Box::new(w), &ConvertOptions::default(), &|_| {}).unwrap();
    assert!(stats.data_clusters >= 4, "{stats:?}");
    qemu_check(&out);
    let (code, text) = qemu_compare(&out, "qcow2", &file, "raw");
    assert_eq!(code, 0, "conversion of {} differs: {text}", dev.0);
}

#[test]
fn a_block_device_without_a_size_is_refused() {
    if !loop_support() {
        return;
    }
    let _turn = LOOPS.lock().unwrap_or_else(|p| p.into_inner());
    // A loop device with nothing attached: a block device of 0 bytes.
    let free = run(tool("losetup").arg("-f")).trim().to_string();
    let err = vdisk::open(Path::new(&free)).unwrap_err();
    assert!(
        err.to_string().contains("size of 0 bytes"),
        "opening unattached {free}: {err}"
    );
}

#[test]
fn character_devices_are_refused() {
    let err = vdisk::open(Path::new("/dev/null")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/dev/null") && text.contains("not a regular file or a block device"),
        "{text}"
    );
}
