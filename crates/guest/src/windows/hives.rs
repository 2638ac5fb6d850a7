//! Opening the hives of an install: the primary file with its transaction
//! logs (`.LOG1`, `.LOG2`, `.LOG`) replayed in memory. A dirty hive whose
//! logs cannot be used is read as it is and reported.

use super::volume::Vol;
use crate::inspect::Blocker;
use regf::{Hive, LogFile, ReplayPolicy};

/// An opened hive and what opening it found.
#[derive(Debug)]
pub struct Opened {
    /// The hive, logs replayed where they could be.
    pub hive: Hive,
    /// A `dirty-hive` blocker when the primary was dirty.
    pub blocker: Option<Blocker>,
}

/// Errors opening a hive.
#[derive(Debug, thiserror::Error)]
pub enum HiveError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// Path on the volume.
        path: String,
        /// Cause.
        source: super::volume::VolError,
    },
    /// Not a hive we can read even without its logs.
    #[error("{path}: {source}")]
    Parse {
        /// Path on the volume.
        path: String,
        /// Cause.
        source: regf::Error,
    },
}

/// Open the hive at `path` on `vol` with its logs.
pub fn open(vol: &Vol<'_>, path: &str) -> Result<Opened, HiveError> {
    let primary = vol.read(path).map_err(|source| HiveError::Read {
        path: path.into(),
        source,
    })?;
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let mut logs = Vec::new();
    for ext in ["LOG1", "LOG2", "LOG"] {
        let name = format!("{file}.{ext}");
        let Some(real) = vol.real_name(dir, &name) else {
            continue;
        };
        let p = format!("{dir}/{real}");
        if let Ok(bytes) = vol.read(&p) {
            logs.push(LogFile { name: real, bytes });
        }
    }
    open_bytes(primary, &logs, path)
}

/// Open hive bytes with logs; `path` names it in messages.
pub fn open_bytes(primary: Vec<u8>, logs: &[LogFile], path: &str) -> Result<Opened, HiveError> {
    let clean =
        regf::BaseBlock::parse(&primary, 0).is_ok_and(|b| b.checksum_ok && b.seq1 == b.seq2);
    if clean && logs.is_empty() {
        // nothing to replay: no second copy of a large hive
        let hive = Hive::open(primary).map_err(|source| HiveError::Parse {
            path: path.into(),
            source,
        })?;
        return Ok(Opened {
            hive,
            blocker: None,
        });
    }
    match Hive::open_with_logs(primary.clone(), logs, ReplayPolicy::Strict) {
        Ok((hive, rep)) => {
            let blocker = rep.was_dirty.then(|| Blocker {
                id: "dirty-hive".into(),
                refuse: false,
                message: format!(
                    "{path} was not cleanly written (Windows was not shut down cleanly); its transaction logs were replayed for inspection and will be replayed before any change"
                ),
            });
            Ok(Opened { hive, blocker })
        }
        Err(strict) => {
            let (hive, _) =
                Hive::open_with_logs(primary, &[], ReplayPolicy::IgnoreLogs).map_err(|source| {
                    HiveError::Parse {
                        path: path.into(),
                        source,
                    }
                })?;
            Ok(Opened {
                hive,
                blocker: Some(Blocker {
                    id: "dirty-hive".into(),
                    refuse: true,
                    message: format!(
                        "{path} is dirty and its transaction logs cannot be replayed ({strict}); inspected as it is. Boot the source VM and shut it down cleanly before migrating"
                    ),
                }),
            })
        }
    }
}
