//! How a failed command reports its error: one line naming each path once
//! and the OS error once, or a JSON object on stdout for `--json`.
//!
//! Layer errors carry their cause both in their text and as their
//! `source()` (so each reads well alone), and callers add context that
//! often repeats the path; [`chain_text`] joins a cause chain without
//! those repetitions.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `head` (the text before the first `": "` of a cause) is a path.
fn looks_like_path(head: &str) -> bool {
    head.contains('/') && !head.contains(' ')
}

/// The cause chain of `e` on one line, `": "`-separated, leaving out a
/// cause whose text is already there and a leading `PATH: ` already named.
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let mut s = text.as_str();
        if let Some((head, rest)) = s.split_once(": ") {
            if looks_like_path(head) && out.contains(head) {
                s = rest;
            }
        }
        if s.is_empty() || out.contains(s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(s);
    }
    out
}

/// Whether the failure is a write to a closed pipe (`… | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(|io| io.kind()) == broken
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                == broken
    })
}

/// The error object printed on stdout by a failing command run with
/// `--json`: `{"success": false, "error": "<one line>", "causes": [...]}`.
pub fn json_object(e: &anyhow::Error) -> serde_json::Value {
    serde_json::json!({
        "success": false,
        "error": chain_text(e),
        "causes": e.chain().map(|c| c.to_string()).collect::<Vec<_>>(),
    })
}

static JSON_ERROR_PRINTED: AtomicBool = AtomicBool::new(false);

/// A command that printed its own JSON description of a failure (e.g.
/// `migrate`'s report) calls this so no second object follows it.
pub fn mark_json_error_printed() {
    JSON_ERROR_PRINTED.store(true, Ordering::Relaxed);
}

/// Whether [`mark_json_error_printed`] was called.
pub fn json_error_printed() -> bool {
    JSON_ERROR_PRINTED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error() -> std::io::Error {
        std::io::Error::from_raw_os_error(2)
    }

    #[derive(Debug)]
    struct Layer(std::io::Error);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "/vm/disk.vmdk: cannot open: {}", self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn path_and_os_error_appear_once() {
        let e = anyhow::Error::new(Layer(os_error())).context("cannot open /vm/disk.vmdk");
        let t = chain_text(&e);
        assert_eq!(
            t,
            format!("cannot open /vm/disk.vmdk: cannot open: {}", os_error())
        );
        assert_eq!(t.matches("/vm/disk.vmdk").count(), 1);
        assert_eq!(t.matches("os error 2").count(), 1);
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("bad magic").context("reading header of /a b/x");
        assert_eq!(chain_text(&e), "reading header of /a b/x: bad magic");
        let v = json_object(&e);
        assert_eq!(v["success"], false);
        assert_eq!(v["causes"][1], "bad magic");
    }

    #[test]
    fn broken_pipe_is_found_in_the_chain() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("x")));
    }
}
