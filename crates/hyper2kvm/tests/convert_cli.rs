//! `hyper2kvm convert` / `info` against qemu-img, for every source format
//! qemu-img can write: qemu-img makes the source from a pattern, we convert
//! it, and qemu-img checks and compares our output; the source's checksum
//! must not change.

use rand::{RngCore, SeedableRng};
use std::path::Path;
use std::process::Command;

mod support;

use support::{bin, dir_sums, run, sha, tool};

/// 9 MiB + 3 sectors: random blocks, text, written zeros, holes, and a tail
/// that is sector- but not cluster-aligned.
fn pattern(path: &Path) {
    let size = 9 * 1024 * 1024 + 3 * 512;
    let mut data = vec![0u8; size];
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for (off, len) in [
        (0usize, 70_000usize),
        (196_708, 300_000),
        (3 << 20, 1 << 20),
    ] {
        rng.fill_bytes(&mut data[off..off + len]);
    }
    let text = b"C:\\Windows\\System32\\drivers\\viostor.sys 0123456789 ";
    for (i, b) in data[(6 << 20)..(7 << 20)].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    rng.fill_bytes(&mut data[size - 700..]);
    std::fs::write(path, &data).unwrap();
}

struct Case {
    name: &'static str,
    args: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "raw",
        args: &["-O", "raw"],
    },
    Case {
        name: "qcow2-v2",
        args: &["-O", "qcow2", "-o", "compat=0.10"],
    },
    Case {
        name: "qcow2-v3",
        args: &["-O", "qcow2"],
    },
    Case {
        name: "qcow2-zlib",
        args: &["-O", "qcow2", "-c", "-o", "compression_type=zlib"],
    },
    Case {
        name: "qcow2-zstd",
        args: &["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
    },
    Case {
        name: "vmdk-monolithicSparse",
        args: &["-O", "vmdk", "-o", "subformat=monolithicSparse"],
    },
    Case {
        name: "vmdk-monolithicFlat",
        args: &["-O", "vmdk", "-o", "subformat=monolithicFlat"],
    },
    Case {
        name: "vmdk-twoGbMaxExtentSparse",
        args: &["-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"],
    },
    Case {
        name: "vmdk-twoGbMaxExtentFlat",
        args: &["-O", "vmdk", "-o", "subformat=twoGbMaxExtentFlat"],
    },
    Case {
        name: "vmdk-streamOptimized",
        args: &["-O", "vmdk", "-o", "subformat=streamOptimized"],
    },
    Case {
        name: "vpc-fixed",
        args: &["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
    },
    Case {
        name: "vpc-dynamic",
        args: &["-O", "vpc", "-o", "subformat=dynamic,force_size=on"],
    },
    Case {
        name: "vhdx-dynamic",
        args: &["-O", "vhdx", "-o", "subformat=dynamic"],
    },
    Case {
        name: "vhdx-fixed",
        args: &["-O", "vhdx", "-o", "subformat=fixed"],
    },
    Case {
        name: "vdi-dynamic",
        args: &["-O", "vdi", "-o", "static=off"],
    },
    Case {
        name: "vdi-static",
        args: &["-O", "vdi", "-o", "static=on"],
    },
];

fn check_case(c: &Case, compress: Option<&str>) {
    let work = tempfile::tempdir().unwrap();
    let srcdir = work.path().join("src");
    std::fs::create_dir(&srcdir).unwrap();
    let pat = work.path().join("pattern.raw");
    pattern(&pat);
    let src = srcdir.join(format!("{}.img", c.name));
    run(tool("qemu-img")
        .arg("convert")
        .args(["-f", "raw"])
        .args(c.args)
        .arg(&pat)
        .arg(&src));
    let before = dir_sums(&srcdir);

    // info agrees with qemu-img on the virtual size.
    let info: serde_json::Value = serde_json::from_str(&run(Command::new(bin())
        .arg("info")
        .arg("--json")
        .arg(&src)))
    .unwrap();
    let qinfo: serde_json::Value = serde_json::from_str(&run(tool("qemu-img")
        .args(["info", "--output=json"])
        .arg(&src)))
    .unwrap();
    if c.name == "vpc-fixed" {
        // QEMU counts the 512-byte footer of a fixed VHD as disk data; the
        // footer's current size (and libvhdi) do not. We follow the spec.
        let q = qinfo["virtual-size"].as_u64().unwrap();
        assert_eq!(
            info["virtual_size"].as_u64().unwrap(),
            q - 512,
            "{}: virtual size",
            c.name
        );
        let v = run(tool("vhdiinfo").arg(&src));
        assert!(v.contains(&format!("({} bytes)", q - 512)), "vhdiinfo: {v}");
    } else {
        assert_eq!(
            info["virtual_size"], qinfo["virtual-size"],
            "{}: virtual size",
            c.name
        );
    }

    // qcow2 output: qemu-img check finds nothing, compare finds it identical.
    let out = work.path().join("out.qcow2");
    let mut cmd = Command::new(bin());
    cmd.arg("convert").arg(&src).arg(&out).arg("--quiet");
    if let Some(z) = compress {
        cmd.args(["--compress", z]);
    }
    run(&mut cmd);
    let chk = run(tool("qemu-img").arg("check").arg(&out));
    assert!(chk.contains("No errors were found"), "{}: {chk}", c.name);
    let cmp = run(tool("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&pat)
        .arg(&out));
    assert!(cmp.contains("Images are identical"), "{}: {cmp}", c.name);
    if let Some(z) = compress {
        let q = run(tool("qemu-img").arg("info").arg(&out));
        assert!(q.contains(&format!("compression type: {z}")), "{q}");
    }

    // raw output: byte-identical to the pattern.
    let raw = work.path().join("out.raw");
    run(Command::new(bin())
        .arg("convert")
        .arg(&src)
        .arg(&raw)
        .args(["-O", "raw", "-q"]));
    assert!(
        std::fs::read(&raw).unwrap() == std::fs::read(&pat).unwrap(),
        "{}: raw output differs",
        c.name
    );

    // No temporary files left; the source untouched.
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(before, dir_sums(&srcdir), "{}: source changed", c.name);
}

#[test]
fn every_format_converts_like_qemu_img() {
    let mut failed = vec![];
    for c in CASES {
        if let Err(e) = std::panic::catch_unwind(|| check_case(c, None)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {msg}", c.name));
        }
    }
    assert!(failed.is_empty(), "failing formats:\n{}", failed.join("\n"));
}

#[test]
fn compressed_outputs_are_readable_by_qemu() {
    let c = &CASES[9]; // streamOptimized source: the usual OVA disk
    check_case(c, Some("zlib"));
    check_case(c, Some("zstd"));
}

#[test]
fn backing_chains_flatten() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let pat = d.join("pattern.raw");
    pattern(&pat);
    for (fmt, base, top) in [
        ("qcow2", "base.qcow2", "top.qcow2"),
        ("vmdk", "base.vmdk", "top.vmdk"),
    ] {
        run(tool("qemu-img")
            .args(["convert", "-f", "raw", "-O", fmt])
            .arg(&pat)
            .arg(d.join(base)));
        run(tool("qemu-img")
            .args(["create", "-q", "-f", fmt, "-F", fmt, "-b", base])
            .arg(d.join(top)));
        run(tool("qemu-io")
            .args([
                "-f",
                fmt,
                "-c",
                "write -P 0x5a 1M 64k",
                "-c",
                "write -z 3M 64k",
            ])
            .arg(d.join(top)));
        let expect = d.join(format!("{fmt}-expect.raw"));
        run(tool("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(d.join(top))
            .arg(&expect));
        let before = sha(&d.join(base));
        let out = d.join(format!("{fmt}-out.qcow2"));
        run(Command::new(bin())
            .arg("convert")
            .arg(d.join(top))
            .arg(&out)
            .arg("-q"));
        let cmp = run(tool("qemu-img")
            .args(["compare", "-f", "raw"])
            .arg(&expect)
            .arg(&out));
        assert!(cmp.contains("Images are identical"), "{fmt}: {cmp}");
        assert_eq!(before, sha(&d.join(base)));
        let info: serde_json::Value = serde_json::from_str(&run(Command::new(bin())
            .args(["info", "--json"])
            .arg(d.join(top))))
        .unwrap();
        assert_eq!(info["chain"].as_array().unwrap().len(), 2, "{fmt}: {info}");
    }
}

#[test]
fn existing_destination_is_refused_and_failures_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let pat = d.join("pattern.raw");
    pattern(&pat);
    let out = d.join("out.qcow2");
    std::fs::write(&out, b"keep me").unwrap();
    let o = Command::new(bin())
        .arg("convert")
        .arg(&pat)
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    // A qcow2 whose data clusters were cut off: conversion fails half way,
    // and neither the output nor a temporary file remains.
    let q = d.join("cut.qcow2");
    run(tool("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&pat)
        .arg(&q));
    let len = std::fs::metadata(&q).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    f.set_len(len / 2).unwrap();
    let out2 = d.join("out2.qcow2");
    let o = Command::new(bin())
        .arg("convert")
        .arg(&q)
        .arg(&out2)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.qcow2") && err.contains("offset"), "{err}");
    let names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("out2")), "{names:?}");
}

/// Chunk buffers are reused: a chunk full of data followed by chunks whose
/// data and holes alternate at 512-byte granularity (a qcow2 with 512-byte
/// clusters) must not carry the earlier bytes into the holes. One thread,
/// so every later chunk gets a dirty buffer.
#[test]
fn reused_buffers_never_leak_into_holes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src.qcow2");
    run(tool("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-o", "cluster_size=512"])
        .arg(&src)
        .arg("12M"));
    let mut cmds = vec!["write -P 0xaa 0 4M".to_string()];
    let mut off = 4u64 << 20;
    while off + 512 <= 12 << 20 {
        cmds.push(format!("write -P 0x55 {off} 512"));
        off += 7 * 512;
    }
    let mut io = tool("qemu-io");
    io.args(["-f", "qcow2"]);
    for c in &cmds {
        io.args(["-c", c]);
    }
    run(io.arg(&src));
    for fmt in ["qcow2", "raw"] {
        let out = t.path().join(format!("out.{fmt}"));
        run(Command::new(bin())
            .args(["convert", "--quiet", "--threads", "1", "-O", fmt])
            .arg(&src)
            .arg(&out));
        let cmp = run(tool("qemu-img")
            .args(["compare", "-f", "qcow2", "-F", fmt])
            .arg(&src)
            .arg(&out));
        assert!(cmp.contains("Images are identical"), "{fmt}: {cmp}");
    }
}
