//! The executor's registry core: carry out the registry actions of a plan
//! on one open hive. The volume/file side of the executor (open each
//! volume for writing once, each hive replayed and committed once) builds
//! on this.

use crate::plan::{Action, RegData};
use regf::{ErrorKind, Hive, Value};

impl RegData {
    /// As a regf value.
    pub fn to_value(&self) -> Value {
        match self {
            RegData::Sz(s) => Value::String(s.clone()),
            RegData::ExpandSz(s) => Value::ExpandString(s.clone()),
            RegData::MultiSz(v) => Value::MultiString(v.clone()),
            RegData::Dword(d) => Value::Dword(*d),
            RegData::Qword(q) => Value::Qword(*q),
            RegData::Binary(b) => Value::Binary(b.clone()),
            RegData::None(b) => Value::None(b.clone()),
            RegData::Raw { kind, bytes } => Value::Raw {
                kind: *kind,
                data: bytes.clone(),
            },
        }
    }
}

/// Apply one registry action to `hive`. Returns a line saying what changed,
/// or `None` when the hive already was in the wanted state (so applying a
/// plan twice changes nothing the second time). Non-registry actions are
/// ignored (`None`).
pub fn apply_registry(hive: &mut Hive, action: &Action) -> regf::Result<Option<String>> {
    match action {
        Action::CreateKey { key, .. } => {
            if hive.key(key).is_ok() {
                return Ok(None);
            }
            hive.create_key(key)?;
            Ok(Some(format!("created key {key}")))
        }
        Action::DeleteKey { key, .. } => match hive.delete_key(key, true) {
            Ok(()) => Ok(Some(format!("deleted key {key}"))),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        },
        Action::SetValue {
            key, name, data, ..
        } => {
            let v = data.to_value();
            if let Ok(k) = hive.key(key) {
                if let Some(cur) = k.value(name)? {
                    if cur.kind()? == v.kind() && cur.raw()? == v.to_bytes() {
                        return Ok(None);
                    }
                }
            } else {
                hive.create_key(key)?;
            }
            hive.set_value(key, name, &v)?;
            Ok(Some(format!("set {key}\\{name}")))
        }
        Action::DeleteValue { key, name, .. } => {
            let present = match hive.key(key) {
                Ok(k) => k.value(name)?.is_some(),
                Err(_) => false,
            };
            if !present {
                return Ok(None);
            }
            hive.delete_value(key, name)?;
            Ok(Some(format!("deleted value {key}\\{name}")))
        }
        _ => Ok(None),
    }
}
