//! LVM2 volume groups built by the real lvm2 tools on loop devices (needs
//! root), without device-mapper: `--config global{activation=0}` keeps
//! LVM from touching the kernel, `--devices` limits every command to the
//! test's loop devices, and LV contents are written into the PV backing
//! files at the extents `lvs --segments` reports (lvm2 is the oracle of
//! the mapping).

use crate::{run, tool};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A loop device over a file, detached on drop.
#[derive(Debug)]
pub struct Loop {
    /// `/dev/loopN`.
    pub dev: String,
    /// The backing file.
    pub file: PathBuf,
}

impl Loop {
    /// `losetup -f --show FILE`.
    pub fn attach(file: &Path) -> Loop {
        let dev = run(tool("losetup").args(["-f", "--show"]).arg(file))
            .trim()
            .to_string();
        Loop {
            dev,
            file: file.to_path_buf(),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.dev])
            .status();
    }
}

/// Run an lvm2 command (`pvcreate`, `lvcreate`, …) restricted to `loops`,
/// without activation; returns stdout.
pub fn lvm(loops: &[&Loop], cmd: &str, args: &[&str]) -> String {
    let devices: Vec<&str> = loops.iter().map(|l| l.dev.as_str()).collect();
    run(tool(cmd)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .args(["--devicesfile", "", "--devices", &devices.join(",")])
        .args(["--config", "global{activation=0}"])
        .args(args))
}

/// One segment as `lvs --segments` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    /// LV name.
    pub lv: String,
    /// First logical extent.
    pub start_pe: u64,
    /// Extents.
    pub size_pe: u64,
    /// PV device (`/dev/loopN`).
    pub pv: String,
    /// First physical extent on that PV.
    pub pv_pe: u64,
}

fn json(out: &str, what: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(out).expect("lvm JSON report");
    v["report"][0][what].as_array().cloned().unwrap_or_default()
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Segments of the linear LVs of `vg`, per `lvs --segments`.
pub fn segments(loops: &[&Loop], vg: &str) -> Vec<Seg> {
    let out = lvm(
        loops,
        "lvs",
        &[
            "--segments",
            "--reportformat",
            "json",
            "-o",
            "lv_name,seg_start_pe,seg_size_pe,seg_pe_ranges",
            vg,
        ],
    );
    json(&out, "seg")
        .iter()
        .map(|s| {
            let range = s["seg_pe_ranges"].as_str().unwrap();
            let (pv, pes) = range.rsplit_once(':').unwrap();
            Seg {
                lv: s["lv_name"].as_str().unwrap().into(),
                start_pe: num(&s["seg_start_pe"]),
                size_pe: num(&s["seg_size_pe"]),
                pv: pv.into(),
                pv_pe: pes.split('-').next().unwrap().parse().unwrap(),
            }
        })
        .collect()
}

/// Per PV: (device, UUID with dashes, first extent's byte offset).
pub fn pvs(loops: &[&Loop]) -> Vec<(String, String, u64)> {
    let out = lvm(
        loops,
        "pvs",
        &[
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pv_name,pv_uuid,pe_start",
        ],
    );
    json(&out, "pv")
        .iter()
        .map(|p| {
            (
                p["pv_name"].as_str().unwrap().into(),
                p["pv_uuid"].as_str().unwrap().into(),
                num(&p["pe_start"]),
            )
        })
        .collect()
}

/// Extent size of `vg` in bytes.
pub fn extent_bytes(loops: &[&Loop], vg: &str) -> u64 {
    let out = lvm(
        loops,
        "vgs",
        &[
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "vg_extent_size",
            vg,
        ],
    );
    num(&json(&out, "vg")[0]["vg_extent_size"])
}

/// Where the bytes of LV `lv` live, in LV order: (backing file, byte
/// offset in it, length), from lvm2's own reports.
pub fn lv_map(loops: &[&Loop], vg: &str, lv: &str) -> Vec<(PathBuf, u64, u64)> {
    let ext = extent_bytes(loops, vg);
    let pvs = pvs(loops);
    let mut segs: Vec<Seg> = segments(loops, vg)
        .into_iter()
        .filter(|s| s.lv == lv)
        .collect();
    segs.sort_by_key(|s| s.start_pe);
    segs.iter()
        .map(|s| {
            let (_, _, pe_start) = pvs.iter().find(|p| p.0 == s.pv).unwrap();
            let file = loops.iter().find(|l| l.dev == s.pv).unwrap().file.clone();
            (file, pe_start + s.pv_pe * ext, s.size_pe * ext)
        })
        .collect()
}

/// Write `data` (at most the LV's size) into LV `lv` through its PV
/// backing files, at the extents lvm2 reports.
pub fn write_lv(loops: &[&Loop], vg: &str, lv: &str, data: &[u8]) {
    let mut at = 0usize;
    for (file, off, len) in lv_map(loops, vg, lv) {
        if at >= data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - at);
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&data[at..at + n], off).unwrap();
        at += n;
    }
    assert_eq!(at, data.len(), "{vg}/{lv} is smaller than the data");
}
