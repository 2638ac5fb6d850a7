//! Opening the parent of a differencing VHD/VHDX from the Windows paths
//! recorded in the image, always through the open gate.

use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use crate::gate::OpenCtx;
use std::path::{Path, PathBuf};

/// Convert a Windows path found in an image into a host path string, or
/// `None` when it can only be meaningful on Windows (drive letters, UNC and
/// volume GUID paths).
pub(crate) fn host_path(win: &str) -> Option<String> {
    let s = win.trim_end_matches('\0');
    let s = s.strip_prefix(r"\\?\").unwrap_or(s);
    if s.is_empty() || s.starts_with(r"\\") || s.starts_with("Volume{") {
        return None;
    }
    let b = s.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return None;
    }
    Some(s.replace('\\', "/"))
}

/// Try the candidate parent paths in order (label, path as stored); the
/// first one that resolves under the gate and exists is opened. Paths the
/// gate refuses are reported as a refusal if nothing else works.
pub(crate) fn open_parent(
    image: &Path,
    candidates: &[(&str, String)],
    ctx: &OpenCtx,
) -> Result<(Box<dyn Disk>, PathBuf)> {
    let mut tried = Vec::new();
    let mut refusal: Option<Error> = None;
    for (label, raw) in candidates {
        let Some(host) = host_path(raw) else {
            tried.push(format!("{label} {raw:?} (a Windows-only path)"));
            continue;
        };
        match ctx.resolve(image, &host) {
            Ok(p) => {
                if p.is_file() {
                    let d = crate::probe::open_with(&p, ctx)?;
                    return Ok((d, p));
                }
                tried.push(format!("{label} {raw:?} -> {} (not found)", p.display()));
            }
            Err(e) => {
                tried.push(format!("{label} {raw:?} ({})", e.message));
                if e.kind == ErrorKind::Refused && refusal.is_none() {
                    refusal = Some(e);
                }
            }
        }
    }
    let list = if tried.is_empty() {
        "no parent locator present".to_string()
    } else {
        tried.join("; ")
    };
    if let Some(mut e) = refusal {
        e.message = format!("parent of differencing image refused: {list}");
        return Err(e);
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("parent of differencing image not found; tried: {list}"),
    )
    .with_path(image))
}

#[cfg(test)]
mod tests {
    use super::host_path;

    #[test]
    fn windows_paths() {
        assert_eq!(host_path(r".\base.vhd").as_deref(), Some("./base.vhd"));
        assert_eq!(
            host_path(r"..\x\base.vhd").as_deref(),
            Some("../x/base.vhd")
        );
        assert_eq!(host_path(r"C:\vms\base.vhd"), None);
        assert_eq!(host_path(r"\\?\d:\vms\base.vhdx"), None);
        assert_eq!(host_path(r"\\server\share\b.vhd"), None);
        assert_eq!(host_path("/srv/base.vhd").as_deref(), Some("/srv/base.vhd"));
    }
}
