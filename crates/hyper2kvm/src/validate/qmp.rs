//! A minimal QMP (QEMU Machine Protocol) client over a Unix socket:
//! greeting, `qmp_capabilities`, commands with ids, and asynchronous events
//! collected on the side. Every read is bounded in time and size.

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest QMP message accepted (QEMU's replies here are small).
const MAX_LINE: usize = 1 << 20;

/// QMP failure.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Socket I/O failed.
    #[error("QMP socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// QEMU sent something that is not QMP.
    #[error("QMP socket {path}: {what}")]
    Protocol {
        /// Socket path.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// No answer in time.
    #[error("QMP socket {path}: no answer to {command} within {secs:.1} s")]
    Timeout {
        /// Socket path.
        path: String,
        /// The command.
        command: String,
        /// Seconds waited.
        secs: f64,
    },
    /// QEMU answered with an error.
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// Error class.
        class: String,
        /// Error description.
        desc: String,
    },
}

/// One asynchronous QMP event.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Event {
    /// Event name (`GUEST_PANICKED`, `SHUTDOWN`, ...).
    pub name: String,
    /// Seconds since the boot started, when we received it.
    pub seconds: f64,
    /// The event's `data` member (`null` if absent).
    pub data: Value,
}

/// A connected QMP session.
pub struct Qmp {
    stream: UnixStream,
    path: String,
    buf: Vec<u8>,
    events: Vec<Value>,
    next_id: u64,
}

impl Qmp {
    /// Connect to `path`, read the greeting and negotiate capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let p = path.display().to_string();
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Io {
            path: p.clone(),
            source,
        })?;
        let mut q = Qmp {
            stream,
            path: p,
            buf: Vec::new(),
            events: Vec::new(),
            next_id: 1,
        };
        match q.read_message(timeout)? {
            Some(v) if v.get("QMP").is_some() => {}
            Some(v) => {
                return Err(QmpError::Protocol {
                    path: q.path.clone(),
                    what: format!("expected the QMP greeting, got {v}"),
                })
            }
            None => {
                return Err(QmpError::Timeout {
                    path: q.path.clone(),
                    command: "greeting".into(),
                    secs: timeout.as_secs_f64(),
                })
            }
        }
        q.execute("qmp_capabilities", json!({}), timeout)?;
        Ok(q)
    }

    /// Run a command and wait for its answer; events that arrive meanwhile
    /// are kept for [`Qmp::take_events`].
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"execute": command, "arguments": arguments, "id": id});
        let mut line = msg.to_string();
        line.push('\n');
        self.stream
            .write_all(line.as_bytes())
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(v) = self.read_message(left)? else {
                return Err(QmpError::Timeout {
                    path: self.path.clone(),
                    command: command.into(),
                    secs: timeout.as_secs_f64(),
                });
            };
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if v.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Command {
                    command: command.into(),
                    class: e.get("class").and_then(Value::as_str).unwrap_or("?").into(),
                    desc: e.get("desc").and_then(Value::as_str).unwrap_or("?").into(),
                });
            }
        }
    }

    /// Read whatever events arrive within `wait` and return all collected
    /// so far (raw QMP messages with `event`, `data`, `timestamp`).
    pub fn poll_events(&mut self, wait: Duration) -> Result<Vec<Value>, QmpError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_message(left)? {
                Some(v) if v.get("event").is_some() => self.events.push(v),
                Some(_) => {}
                None => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Ok(self.take_events())
    }

    /// Events collected so far.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// One JSON message, or None when nothing complete arrived in `wait`.
    fn read_message(&mut self, wait: Duration) -> Result<Option<Value>, QmpError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| QmpError::Protocol {
                        path: self.path.clone(),
                        what: format!(
                            "bad JSON ({e}): {}",
                            text.chars().take(200).collect::<String>()
                        ),
                    });
            }
            if self.buf.len() > MAX_LINE {
                return Err(QmpError::Protocol {
                    path: self.path.clone(),
                    what: format!("message longer than {MAX_LINE} bytes"),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|source| QmpError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(QmpError::Io {
                        path: self.path.clone(),
                        source: std::io::Error::new(ErrorKind::UnexpectedEof, "QEMU closed QMP"),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(QmpError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
    }
}
