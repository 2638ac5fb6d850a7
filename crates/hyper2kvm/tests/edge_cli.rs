//! Everyday command-line edges: a destination that is the source,
//! printing into a closed pipe, error messages (each path and OS error
//! once; a JSON error object with `--json`), shell completions and the man
//! page (checked by bash and groff).

use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use testkit::qemu::{qemu_img, qemu_img_create};
use testkit::s;

mod support;

use support::{bin, sha};

fn hyper2kvm(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 4 MiB qcow2 with some data, made by qemu-io.
fn small_qcow2(path: &Path) {
    qemu_img_create(path, "qcow2", "4M");
    testkit::qemu::qemu_io(None, "qcow2", s(path), &["write -P 0x5a 0 1M"]);
}

// ---- convert SRC SRC --force ------------------------------------------

fn assert_refused_and_intact(src: &Path, dst: &Path, protected: &Path) {
    let before = sha(protected);
    for force in [false, true] {
        let mut args = vec!["convert", s(src), s(dst), "--quiet"];
        if force {
            args.push("--force");
        }
        let o = hyper2kvm(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} overwrote a source file");
        assert!(err.contains("never written"), "{args:?}: {err}");
        assert!(err.contains(s(protected)), "{args:?}: {err}");
        assert_eq!(sha(protected), before, "{args:?} changed the source");
    }
    // qemu-img still reads the source chain as it was.
    let info = testkit::qemu::qemu_info(src);
    assert_eq!(info["virtual-size"], 4 << 20);
}

#[test]
fn convert_refuses_a_destination_that_is_part_of_the_source() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.qcow2");
    small_qcow2(&base);
    // The source itself, a hard link and a symbolic link to it.
    assert_refused_and_intact(&base, &base, &base);
    let hard = t.path().join("hard.qcow2");
    std::fs::hard_link(&base, &hard).unwrap();
    assert_refused_and_intact(&base, &hard, &base);
    let soft = t.path().join("soft.qcow2");
    std::os::unix::fs::symlink(&base, &soft).unwrap();
    assert_refused_and_intact(&base, &soft, &base);
    // A backing layer of the source.
    let top = t.path().join("top.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        s(&top),
    ]);
    assert_refused_and_intact(&top, &base, &base);
    // An extent file of a split VMDK.
    let raw = t.path().join("flat.raw");
    testkit::sparse_file(&raw, 4 << 20);
    let vmdk = t.path().join("split.vmdk");
    testkit::qemu::vmdk_from_raw(&raw, "monolithicFlat", &vmdk);
    let extent = t.path().join("split-flat.vmdk");
    let before = sha(&extent);
    let o = hyper2kvm(&["convert", s(&vmdk), s(&extent), "--force", "--quiet"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("extent file"), "{}", stderr(&o));
    assert_eq!(sha(&extent), before);
    // A different destination still works with --force.
    let other = t.path().join("other.qcow2");
    std::fs::write(&other, b"old").unwrap();
    let o = hyper2kvm(&["convert", s(&top), s(&other), "--force", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(testkit::qemu::qemu_info(&other)["format"], "qcow2");
}

// ---- broken pipes -------------------------------------------------------

/// Run with stdout connected to a socket whose reader is already gone:
/// every write fails with EPIPE, deterministically.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(ours);
    let child = Command::new(bin())
        .args(args)
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

fn assert_quiet(args: &[&str], o: &Output) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        o.status.success() || o.status.signal() == Some(13),
        "{args:?}: {:?} {err}",
        o.status
    );
    assert!(err.is_empty(), "{args:?} wrote to stderr: {err}");
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("d.qcow2");
    small_qcow2(&img);
    let raw = t.path().join("d.raw");
    testkit::sparse_file(&raw, 8 << 20);
    testkit::sfdisk(&raw, "label: dos\nstart=2048, type=83\n");
    for args in [
        &["info", s(&img)][..],
        &["info", s(&img), "--json"][..],
        &["inspect", s(&raw)][..],
        &["inspect", s(&raw), "--json"][..],
        &["fix-geometry", s(&raw), "--json"][..],
        &["completions", "bash"][..],
        &["man"][..],
    ] {
        assert_quiet(args, &with_closed_stdout(args));
    }
    // The real thing: `info X | head -1` prints its first line.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' info '{}' | head -1", bin(), s(&img)))
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("image:          {}", s(&img))
    );
}

// ---- error messages -----------------------------------------------------

#[test]
fn errors_name_the_path_once_and_the_os_error_once() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.vmdk");
    let file = t.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("disk.qcow2");
    let cases: Vec<(Vec<&str>, &Path, &str)> = vec![
        (vec!["info", s(&missing)], &missing, "(os error 2)"),
        (
            vec!["convert", s(&missing), "x.qcow2"],
            &missing,
            "(os error 2)",
        ),
        (vec!["info", s(&under_file)], &under_file, "(os error 20)"),
        (vec!["inspect", s(&missing)], &missing, "(os error 2)"),
        (vec!["validate", s(&missing)], &missing, "(os error 2)"),
        (
            vec!["migrate", s(&missing), "--out", s(&file)],
            &file,
            "Not a directory (os error 20)",
        ),
    ];
    for (args, path, os) in cases {
        let o = hyper2kvm(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?}");
        let line = err
            .lines()
            .find(|l| l.starts_with("hyper2kvm: error: "))
            .unwrap_or_else(|| panic!("{args:?}: {err}"));
        // (Where migrate's report is, is another matter.)
        let line = match line.split_once(" (see ") {
            Some((a, b)) => format!("{a}{}", b.split_once(')').map_or("", |x| x.1)),
            None => line.to_string(),
        };
        assert_eq!(line.matches(os).count(), 1, "{args:?}: {line}");
        assert_eq!(line.matches(s(path)).count(), 1, "{args:?}: {line}");
    }
}

#[test]
fn failing_commands_with_json_print_an_error_object() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("missing.qcow2");
    let file = t.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let dst = t.path().join("o.qcow2");
    for args in [
        vec!["info", s(&missing), "--json"],
        vec!["convert", s(&missing), s(&dst), "--json"],
        vec!["inspect", s(&missing), "--json"],
        vec!["fix-geometry", s(&missing), "--json"],
        vec!["validate", s(&missing), "--json"],
        vec!["migrate", s(&missing), "--out", s(&file), "--json"],
        vec!["info", "--json", "--no-such-flag"],
    ] {
        let o = hyper2kvm(&args);
        assert!(!o.status.success(), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON object ({e}): {:?}",
                String::from_utf8_lossy(&o.stdout)
            )
        });
        assert_eq!(v["success"], false, "{args:?}: {v}");
        let msg = v["error"].as_str().unwrap();
        let named = if args.contains(&"--no-such-flag") {
            "--no-such-flag"
        } else if args[0] == "migrate" {
            s(&file)
        } else {
            s(&missing)
        };
        assert!(msg.contains(named), "{args:?}: {msg}");
    }
}

// ---- completions and man page -------------------------------------------

const SUBCOMMANDS: &[&str] = &[
    "info",
    "convert",
    "inspect",
    "fix-geometry",
    "migrate",
    "validate",
    "driver-disk",
    "completions",
];

#[test]
fn completions_cover_every_subcommand_and_bash_accepts_them() {
    let t = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let o = hyper2kvm(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(text.contains("allow-outside-paths"), "{shell}");
        if shell == "bash" {
            // bash parses the script, and completing `hyper2kvm mi` offers
            // migrate.
            let script = t.path().join("h2k.bash");
            std::fs::write(&script, &text).unwrap();
            let o = Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "source '{}'; COMP_WORDS=(hyper2kvm mi); COMP_CWORD=1; \
                     COMP_LINE='hyper2kvm mi'; COMP_POINT=12; _hyper2kvm hyper2kvm mi hyper2kvm; \
                     printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    s(&script)
                ))
                .output()
                .unwrap();
            assert!(o.status.success(), "bash: {}", stderr(&o));
            let offered = String::from_utf8_lossy(&o.stdout);
            assert_eq!(offered.trim(), "migrate", "{}", stderr(&o));
        }
    }
}

fn groff(page: &Path) -> String {
    let o = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(page)
        .env("GROFF_NO_SGR", "1")
        .output()
        .expect("groff (groff-base; run scripts/install-deps.sh)");
    assert!(o.status.success(), "groff: {}", stderr(&o));
    assert!(
        o.stderr.is_empty(),
        "groff warns about {}: {}",
        page.display(),
        stderr(&o)
    );
    // Drop overstriking (bold/underline) so words can be searched.
    let text = String::from_utf8_lossy(&o.stdout);
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn man_page_renders_with_groff_and_lists_the_subcommands() {
    let t = tempfile::tempdir().unwrap();
    let o = hyper2kvm(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = t.path().join("hyper2kvm.1");
    std::fs::write(&page, &o.stdout).unwrap();
    let text = groff(&page);
    assert!(text.contains("NAME"), "{text}");
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(&format!("hyper2kvm-{sub}(1)")),
            "man page lacks {sub}: {text}"
        );
    }
    // One page per subcommand, each rendering with its own options.
    let dir = t.path().join("man1");
    let o = hyper2kvm(&["man", "--dir", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let convert = groff(&dir.join("hyper2kvm-convert.1"));
    assert!(convert.contains("--compress"), "{convert}");
    assert!(convert.contains("--allow-outside-paths"), "{convert}");
    let validate = groff(&dir.join("hyper2kvm-validate.1"));
    assert!(validate.contains("--success-marker"), "{validate}");
}
