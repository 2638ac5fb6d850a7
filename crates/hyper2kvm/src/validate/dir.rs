//! The migration-output directory contract (see the module documentation
//! of [`crate::validate`]): find `<vm>-<phase>.argv.json`, boot each
//! phase, write `validation-<phase>.json`.

use super::markers::{CustomMarker, MarkerKind};
use super::{boot, Accel, BootReport, BootSpec, ValidateError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest argv / config file read.
const MAX_JSON: u64 = 1 << 20;

/// One `<vm>-<phase>.argv.json` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseFile {
    /// VM name (everything before the last `-`).
    pub vm: String,
    /// Phase name (after the last `-`).
    pub phase: String,
    /// The file.
    pub path: PathBuf,
}

/// `DIR/validate.json`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    /// Substrings that mean success.
    #[serde(default)]
    pub success_markers: Vec<String>,
    /// Substrings that mean failure.
    #[serde(default)]
    pub failure_markers: Vec<String>,
    /// Default time limit.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// What [`validate_dir`] should do.
#[derive(Clone, Debug)]
pub struct DirOptions {
    /// Phases to boot, in order (e.g. `["bootstrap", "final"]`). A phase
    /// without an argv file is an error.
    pub phases: Vec<String>,
    /// Time limit per boot (overrides `validate.json`); 300 s if neither.
    pub timeout: Option<Duration>,
    /// Accelerator.
    pub accel: Accel,
    /// VM to validate when the directory holds several.
    pub vm: Option<String>,
    /// Serial/screen strings that mean the guest booted, in addition to
    /// `validate.json`'s (the CLI's `--success-marker`).
    pub success_markers: Vec<String>,
}

/// One phase's result.
#[derive(Clone, Debug)]
pub struct DirResult {
    /// The argv file booted.
    pub file: PhaseFile,
    /// The report (also written to `report_path`).
    pub report: BootReport,
    /// `DIR/validation-<phase>.json`.
    pub report_path: PathBuf,
}

fn read_json_capped(path: &Path) -> Result<String, ValidateError> {
    let meta = std::fs::metadata(path).map_err(|e| ValidateError::io(path, e))?;
    if meta.len() > MAX_JSON {
        return Err(ValidateError::Spec(format!(
            "{}: {} bytes, expected a small JSON file (at most {MAX_JSON})",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| ValidateError::io(path, e))
}

/// All `<vm>-<phase>.argv.json` files in `dir`, sorted.
pub fn find_phases(dir: &Path) -> Result<Vec<PhaseFile>, ValidateError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ValidateError::io(dir, e))? {
        let entry = entry.map_err(|e| ValidateError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".argv.json") else {
            continue;
        };
        let Some((vm, phase)) = stem.rsplit_once('-') else {
            continue;
        };
        if vm.is_empty() || phase.is_empty() {
            continue;
        }
        out.push(PhaseFile {
            vm: vm.to_string(),
            phase: phase.to_string(),
            path: entry.path(),
        });
    }
    out.sort_by(|a, b| (&a.vm, &a.phase).cmp(&(&b.vm, &b.phase)));
    Ok(out)
}

/// Read an argv file: a non-empty JSON array of strings.
pub fn read_argv(path: &Path) -> Result<Vec<String>, ValidateError> {
    let text = read_json_capped(path)?;
    let argv: Vec<String> = serde_json::from_str(&text).map_err(|e| {
        ValidateError::Spec(format!(
            "{}: expected a JSON array of strings (the QEMU argv): {e}",
            path.display()
        ))
    })?;
    if argv.is_empty() {
        return Err(ValidateError::Spec(format!(
            "{}: the QEMU argv is empty",
            path.display()
        )));
    }
    Ok(argv)
}

/// Read `DIR/validate.json` if present.
pub fn read_config(dir: &Path) -> Result<ValidateConfig, ValidateError> {
    let path = dir.join("validate.json");
    if !path.exists() {
        return Ok(ValidateConfig::default());
    }
    let text = read_json_capped(&path)?;
    serde_json::from_str(&text).map_err(|e| {
        ValidateError::Spec(format!(
            "{}: expected {{\"success_markers\": [...], \"failure_markers\": [...], \
             \"timeout_seconds\": N}}: {e}",
            path.display()
        ))
    })
}

/// Boot every requested phase of the VM in `dir`, write
/// `dir/validation-<phase>.json` for each, and return the results. Stops
/// only on errors that prevent booting; failed boots are results.
pub fn validate_dir(dir: &Path, opts: &DirOptions) -> Result<Vec<DirResult>, ValidateError> {
    let all = find_phases(dir)?;
    if all.is_empty() {
        return Err(ValidateError::Spec(format!(
            "{}: no <vmname>-<phase>.argv.json file (is this a migration output directory?)",
            dir.display()
        )));
    }
    let mut vms: Vec<&str> = all.iter().map(|p| p.vm.as_str()).collect();
    vms.dedup();
    let vm = match &opts.vm {
        Some(v) if vms.contains(&v.as_str()) => v.clone(),
        Some(v) => {
            return Err(ValidateError::Spec(format!(
                "{}: no VM named {v:?} (found: {})",
                dir.display(),
                vms.join(", ")
            )))
        }
        None if vms.len() == 1 => vms[0].to_string(),
        None => {
            return Err(ValidateError::Spec(format!(
                "{}: several VMs ({}); choose one with --vm",
                dir.display(),
                vms.join(", ")
            )))
        }
    };
    let config = read_config(dir)?;
    let mut markers: Vec<CustomMarker> = config
        .success_markers
        .iter()
        .chain(&opts.success_markers)
        .map(|t| CustomMarker {
            kind: MarkerKind::Success,
            text: t.clone(),
        })
        .collect();
    markers.extend(config.failure_markers.iter().map(|t| CustomMarker {
        kind: MarkerKind::Failure,
        text: t.clone(),
    }));
    let timeout = opts
        .timeout
        .or(config.timeout_seconds.map(Duration::from_secs))
        .unwrap_or(Duration::from_secs(300));

    let mut todo = Vec::new();
    for phase in &opts.phases {
        match all.iter().find(|p| p.vm == vm && &p.phase == phase) {
            Some(p) => todo.push(p.clone()),
            None => {
                return Err(ValidateError::Spec(format!(
                    "{}: no {vm}-{phase}.argv.json",
                    dir.display()
                )))
            }
        }
    }
    let out_dir = dir.join("validation");
    let mut results = Vec::new();
    for file in todo {
        let argv = read_argv(&file.path)?;
        let mut spec = BootSpec::new(argv, &file.phase, &out_dir);
        spec.timeout = timeout;
        spec.accel = opts.accel;
        spec.cwd = Some(dir.to_path_buf());
        spec.markers = markers.clone();
        let report = boot(&spec)?;
        let report_path = dir.join(format!("validation-{}.json", file.phase));
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| ValidateError::Spec(format!("serialising the report: {e}")))?;
        let tmp = report_path.with_extension("json.tmp");
        std::fs::write(&tmp, json + "\n").map_err(|e| ValidateError::io(&tmp, e))?;
        std::fs::rename(&tmp, &report_path).map_err(|e| ValidateError::io(&report_path, e))?;
        results.push(DirResult {
            file,
            report,
            report_path,
        });
    }
    Ok(results)
}
