//! Relative paths on the command line, and `validate --success-marker`:
//! `migrate SRC --out out` run from the sources' folder writes libvirt XML
//! that virt-xml-validate accepts with absolute disk paths that exist;
//! `validate out` from there boots the result under QEMU (TCG) and, with
//! `--success-marker`, classifies the demo probe's "BOOT OK" as a success.

use hyper2kvm::fixtures::{make_demo_vm, Seed};
use std::path::Path;
use std::process::{Command, Output};

mod support;

use support::{bin, json, need};

fn in_dir(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every `<disk><source file=…>` of a libvirt XML.
fn disk_files(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("disk"))
        .filter_map(|d| d.children().find(|c| c.has_tag_name("source")))
        .filter_map(|s| s.attribute("file").map(str::to_string))
        .collect()
}

#[test]
fn relative_out_and_sources_give_absolute_valid_domains() {
    need("virt-xml-validate");
    let t = tempfile::tempdir().unwrap();
    testkit::sparse_file(&t.path().join("data.raw"), 4 << 20);
    let o = in_dir(
        t.path(),
        &["migrate", "data.raw", "--out", "out", "--quiet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = t.path().join("out");
    for phase in ["bootstrap", "final"] {
        let xml_path = out.join(format!("data-{phase}.xml"));
        let xml = std::fs::read_to_string(&xml_path).unwrap();
        let files = disk_files(&xml);
        assert!(!files.is_empty(), "{phase}: no disk in {xml}");
        for f in &files {
            assert!(Path::new(f).is_absolute(), "{phase}: relative disk {f}");
            assert!(Path::new(f).starts_with(&out), "{phase}: {f}");
            assert!(Path::new(f).exists(), "{phase}: {f} missing");
        }
        let v = Command::new("virt-xml-validate")
            .arg(&xml_path)
            .arg("domain")
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{phase}: virt-xml-validate: {}{}",
            String::from_utf8_lossy(&v.stdout),
            stderr(&v)
        );
    }
}

fn validate(cwd: &Path, dir: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "validate",
        dir,
        "--phase",
        "bootstrap",
        "--accel",
        "tcg",
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let o = in_dir(cwd, &args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let rep = json(&cwd.join(dir).join("validation-bootstrap.json"));
    assert_eq!(rep["ok"], true, "{rep}");
    let hits = rep["hits"].as_array().unwrap();
    assert!(
        hits.iter()
            .any(|h| h["id"] == "marker" && h["line"].as_str().unwrap().contains("BOOT OK")),
        "the marker did not decide: {rep}"
    );
    rep
}

#[test]
fn validate_takes_success_markers_and_a_relative_dir() {
    need("qemu-system-x86_64");
    let t = tempfile::tempdir().unwrap();
    let vmx = make_demo_vm(&t.path().join("src"), Seed::Heads255).expect("demo VM");
    // No marker at migrate time: validate.json holds none.
    let out = t.path().join("out");
    let o = Command::new(bin())
        .arg("migrate")
        .arg(&vmx)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join("validate.json").exists());
    // The marker from the command line.
    validate(
        Path::new("/"),
        out.to_str().unwrap(),
        &["--success-marker", "BOOT OK"],
    );
    // The marker from validate.json, the folder named relative to the
    // current directory.
    std::fs::write(
        out.join("validate.json"),
        r#"{"success_markers": ["BOOT OK"]}"#,
    )
    .unwrap();
    let rep = validate(t.path(), "out", &[]);
    let log = rep["firmware_log"].as_str().unwrap();
    assert!(Path::new(log).is_absolute(), "{log}");
}
