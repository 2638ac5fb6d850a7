//! `qemu-img` and `qemu-io` as oracles for disk images.

use crate::{output_of, run, s, tool};
use std::path::{Path, PathBuf};

/// `qemu-img` with `args` (must succeed); its stdout.
pub fn qemu_img(args: &[&str]) -> String {
    run(tool("qemu-img").args(args))
}

/// `qemu-img create -q -f fmt path size`.
pub fn qemu_img_create(path: &Path, fmt: &str, size: &str) {
    qemu_img(&["create", "-q", "-f", fmt, s(path), size]);
}

/// `qemu-img convert -f src_fmt -O dst_fmt [extra...] src dst`.
pub fn qemu_convert(src: &Path, src_fmt: &str, dst_fmt: &str, extra: &[&str], dst: &Path) {
    let mut args = vec!["convert", "-f", src_fmt, "-O", dst_fmt];
    args.extend_from_slice(extra);
    args.extend([s(src), s(dst)]);
    qemu_img(&args);
}

/// `qemu-img convert -f raw -O vmdk -o subformat=<subformat> raw dst`.
pub fn vmdk_from_raw(raw: &Path, subformat: &str, dst: &Path) {
    let opt = format!("subformat={subformat}");
    qemu_convert(raw, "raw", "vmdk", &["-o", &opt], dst);
}

/// The image flattened by `qemu-img convert -O raw` into `dir` (format
/// given explicitly when `fmt` is set, probed otherwise); returns the bytes
/// and removes the temporary raw file.
pub fn qemu_raw(img: &Path, fmt: Option<&str>, dir: &Path) -> Vec<u8> {
    let out = qemu_raw_file(img, fmt, dir);
    let v = std::fs::read(&out).unwrap_or_else(|e| panic!("read {}: {e}", out.display()));
    std::fs::remove_file(&out).unwrap();
    v
}

/// Like [`qemu_raw`] but keeps the flattened file (`<img name>.qemu.raw`
/// in `dir`) and returns its path.
pub fn qemu_raw_file(img: &Path, fmt: Option<&str>, dir: &Path) -> PathBuf {
    let name = img.file_name().unwrap().to_string_lossy();
    let out = dir.join(format!("{name}.qemu.raw"));
    let mut args = vec!["convert"];
    if let Some(f) = fmt {
        args.extend(["-f", f]);
    }
    args.extend(["-O", "raw", s(img), s(&out)]);
    qemu_img(&args);
    out
}

/// One entry of `qemu-img map --output=json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// Guest offset of the run.
    pub start: u64,
    /// Length of the run in bytes.
    pub length: u64,
    /// The run is backed by data.
    pub data: bool,
    /// The run reads as zeros.
    pub zero: bool,
    /// The run is allocated somewhere in the chain (`present`; true when
    /// qemu-img omits the field).
    pub present: bool,
}

/// `qemu-img map --output=json [-f fmt] img`.
pub fn qemu_map(img: &Path, fmt: Option<&str>) -> Vec<MapEntry> {
    let mut args = vec!["map", "--output=json"];
    if let Some(f) = fmt {
        args.extend(["-f", f]);
    }
    args.push(s(img));
    let out = qemu_img(&args);
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("qemu-img map output is not JSON ({e}): {out}"));
    let field = |e: &serde_json::Value, k: &str| {
        e[k].as_bool()
            .unwrap_or_else(|| panic!("qemu-img map entry without `{k}`: {e}"))
    };
    v.as_array()
        .unwrap_or_else(|| panic!("qemu-img map output is not a list: {out}"))
        .iter()
        .map(|e| MapEntry {
            start: e["start"].as_u64().unwrap(),
            length: e["length"].as_u64().unwrap(),
            data: field(e, "data"),
            zero: field(e, "zero"),
            present: e["present"].as_bool().unwrap_or(true),
        })
        .collect()
}

/// `qemu-img info --output=json img`.
pub fn qemu_info(img: &Path) -> serde_json::Value {
    let out = qemu_img(&["info", "--output=json", s(img)]);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("qemu-img info output is not JSON ({e}): {out}"))
}

/// `qemu-img check --output=json img` must report no corruptions, leaks or
/// check errors; returns the report.
pub fn qemu_check(img: &Path) -> serde_json::Value {
    let out = output_of(tool("qemu-img").args(["check", "--output=json", s(img)]));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "qemu-img check output not JSON ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for k in ["corruptions", "leaks", "check-errors"] {
        assert_eq!(v[k].as_u64().unwrap_or(0), 0, "qemu-img check {k}: {text}");
    }
    v
}

/// `qemu-img compare -f a_fmt -F b_fmt a b`: exit status (0 identical,
/// 1 different) and stdout.
pub fn qemu_compare(a: &Path, a_fmt: &str, b: &Path, b_fmt: &str) -> (i32, String) {
    let out = output_of(tool("qemu-img").args(["compare", "-f", a_fmt, "-F", b_fmt, s(a), s(b)]));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `qemu-io -f fmt -c cmd... img` (run in `dir` when given, for relative
/// names); fails when qemu-io fails or prints an error.
pub fn qemu_io(dir: Option<&Path>, fmt: &str, img: &str, cmds: &[&str]) {
    let mut c = tool("qemu-io");
    c.args(["-f", fmt]);
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    c.arg(img);
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = run(&mut c);
    assert!(
        !out.to_lowercase().contains("error") && !out.contains("failed"),
        "qemu-io {cmds:?} reported: {out}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_convert_map_check_compare_round_trip() {
        let d = std::env::temp_dir().join(format!("testkit-qemu-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let raw = d.join("a.raw");
        let mut data = vec![0u8; 1 << 20];
        data[..4096].fill(0xab);
        std::fs::write(&raw, &data).unwrap();
        let q = d.join("a.qcow2");
        qemu_convert(&raw, "raw", "qcow2", &[], &q);
        assert_eq!(qemu_raw(&q, Some("qcow2"), &d), data);
        let map = qemu_map(&q, None);
        assert!(map[0].data && map[0].start == 0, "{map:?}");
        assert!(map.iter().skip(1).all(|m| !m.data), "{map:?}");
        assert_eq!(qemu_check(&q)["format"], "qcow2");
        assert_eq!(qemu_info(&q)["virtual-size"], 1 << 20);
        assert_eq!(qemu_compare(&raw, "raw", &q, "qcow2").0, 0);
        qemu_io(None, "qcow2", s(&q), &["write -P 0x11 0 512"]);
        assert_eq!(qemu_compare(&raw, "raw", &q, "qcow2").0, 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
