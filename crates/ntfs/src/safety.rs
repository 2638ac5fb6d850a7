//! Safety checks before any write: dirty flag, unclean $LogFile,
//! hibernation / Fast Startup, BitLocker (refused at open, see
//! [`crate::boot::is_bitlocker`]).

use crate::error::Result;
use crate::record::{apply_fixups, ty};
use crate::util::{u16le, u32le, u64le};
use crate::volume::{sys, Volume};
use serde::Serialize;
use vdisk::Disk;

/// Options for writing.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Write even when a safety check fails (the caller takes the risk).
    pub force: bool,
}

/// State of the $LogFile journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogState {
    /// All 0xFF: emptied by a clean unmount (ntfs-3g, or us).
    Empty,
    /// Restart area says no client has the log open, or "volume clean".
    Clean,
    /// The journal holds work that Windows would replay.
    Unclean(String),
}

/// Result of the safety checks.
#[derive(Debug, Clone, Serialize)]
pub struct Safety {
    /// $Volume dirty flag set.
    pub dirty: bool,
    /// Journal state.
    pub logfile: LogState,
    /// `hiberfil.sys` header magic when it marks an active hibernation
    /// image (Fast Startup or hibernate), e.g. "hibr".
    pub hibernated: Option<String>,
    /// Human-readable reasons writing is refused (empty = safe).
    pub problems: Vec<String>,
}

impl Safety {
    /// True when nothing blocks writing.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Advice printed with every refusal.
pub const ADVICE: &str = "boot the source VM once and shut it down fully (disable Fast Startup: \
     `powercfg /h off`, or `shutdown /s /f /t 0`), or pass --force to take the risk";

impl<D: Disk> Volume<D> {
    /// Run the safety checks.
    pub fn safety(&self) -> Result<Safety> {
        let dirty = self.info.dirty();
        let logfile = self.logfile_state()?;
        let hibernated = self.hiberfil_magic()?;
        let mut problems = Vec::new();
        if dirty {
            problems.push(
                "the volume is marked dirty (not cleanly unmounted, or chkdsk is scheduled)"
                    .to_string(),
            );
        }
        if let LogState::Unclean(why) = &logfile {
            problems.push(format!(
                "$LogFile shows an unclean shutdown ({why}): Windows would replay it"
            ));
        }
        if let Some(m) = &hibernated {
            problems.push(format!(
                "Windows is hibernated or was shut down with Fast Startup (hiberfil.sys starts with {m:?})"
            ));
        }
        Ok(Safety {
            dirty,
            logfile,
            hibernated,
            problems,
        })
    }

    fn hiberfil_magic(&self) -> Result<Option<String>> {
        let Ok(no) = self.lookup("/hiberfil.sys") else {
            return Ok(None);
        };
        let Ok(s) = self.data_stream(no, "", "hiberfil.sys") else {
            return Ok(None);
        };
        let mut b = [0u8; 4];
        if self.read_stream(&s, 0, &mut b)? < 4 {
            return Ok(None);
        }
        let m = String::from_utf8_lossy(&b).to_ascii_lowercase();
        Ok((m == "hibr" || m == "wake").then(|| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Inspect the restart areas of $LogFile (like ntfs-3g's
    /// `ntfs_check_logfile` + `ntfs_is_logfile_clean`).
    pub fn logfile_state(&self) -> Result<LogState> {
        let ino = self.inode(sys::LOGFILE)?;
        let Some(s) = self.stream(&ino, ty::DATA, &[])? else {
            return Ok(LogState::Unclean("$LogFile has no $DATA".into()));
        };
        let mut best: Option<(u64, u16, u16)> = None;
        let mut empty = true;
        let mut pos = 0u64;
        while pos < s.size.min(1 << 16) {
            let mut b = vec![0u8; 512];
            self.read_stream(&s, pos, &mut b)?;
            let magic = &b[0..4];
            if magic != [0xff; 4] {
                empty = false;
            }
            if magic == b"RCRD" {
                break;
            }
            if magic == b"RSTR" || magic == b"CHKD" {
                let psize = u32le(&b, 0x10) as usize;
                if (512..=65536).contains(&psize) && psize.is_power_of_two() {
                    let mut page = vec![0u8; psize];
                    self.read_stream(&s, pos, &mut page)?;
                    if apply_fixups(&mut page, pos, "$LogFile restart page").is_ok() {
                        let ra = usize::from(u16le(&page, 0x18));
                        if ra + 0x10 <= page.len() {
                            let lsn = u64le(&page, ra);
                            let in_use = u16le(&page, ra + 0x0c);
                            let flags = u16le(&page, ra + 0x0e);
                            if best.is_none_or(|(l, _, _)| lsn > l) {
                                best = Some((lsn, in_use, flags));
                            }
                        }
                    }
                }
            }
            pos = if pos == 0 { 512 } else { pos << 1 };
        }
        if empty {
            return Ok(LogState::Empty);
        }
        match best {
            None => Ok(LogState::Unclean(
                "no valid restart page and not empty".into(),
            )),
            Some((_, in_use, flags)) if in_use != 0xffff && flags & 0x0002 == 0 => {
                Ok(LogState::Unclean(
                    "a log client is still active and the clean flag is not set".into(),
                ))
            }
            Some(_) => Ok(LogState::Clean),
        }
    }
}
