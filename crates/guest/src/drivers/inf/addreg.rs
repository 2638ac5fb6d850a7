//! AddReg sections: `reg-root, [subkey], [value-entry-name], [flags], [value]...`

use super::{parse_number, Inf, InfError, Line};
use serde::Serialize;

/// `FLG_ADDREG_BINVALUETYPE`: the value is binary (or a custom type).
const FLG_BINVALUETYPE: u32 = 0x0000_0001;
/// `FLG_ADDREG_KEYONLY`: create the key, no value.
const FLG_KEYONLY: u32 = 0x0000_0010;
/// Mask of the bits that give the value type.
const TYPE_MASK: u32 = 0xFFFF_0001;
const TYPE_SZ: u32 = 0x0000_0000;
const TYPE_MULTI_SZ: u32 = 0x0001_0000;
const TYPE_EXPAND_SZ: u32 = 0x0002_0000;
const TYPE_DWORD: u32 = 0x0001_0001;
const TYPE_NONE: u32 = 0x0002_0001;

/// Typed registry data of an AddReg line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data")]
pub enum RegData {
    /// `REG_SZ`.
    Sz(String),
    /// `REG_EXPAND_SZ`.
    ExpandSz(String),
    /// `REG_MULTI_SZ` (with `FLG_ADDREG_APPEND`, items to append).
    MultiSz(Vec<String>),
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_BINARY` (`kind` 3) or another type given in the high word of
    /// the flags, with its bytes.
    Binary {
        /// Registry value type number.
        kind: u32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// `REG_NONE` with its bytes.
    None(Vec<u8>),
    /// `FLG_ADDREG_KEYONLY`: only the key is created.
    KeyOnly,
}

/// One parsed AddReg line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddRegLine {
    /// Root: `HKR`, `HKLM`, `HKCR`, `HKCU` or `HKU` (as written).
    pub root: String,
    /// Subkey path under the root (`\`-separated, may be empty).
    pub subkey: String,
    /// Value name; `None` for the key's default value.
    pub value_name: Option<String>,
    /// The flags field (0 when empty).
    pub flags: u32,
    /// The value fields as written (after string substitution).
    pub values: Vec<String>,
    /// The typed data the line writes.
    pub data: RegData,
    /// 1-based line number in the INF.
    pub line: usize,
}

impl AddRegLine {
    /// The `FLG_ADDREG_NOCLOBBER` bit: keep an existing value.
    pub fn no_clobber(&self) -> bool {
        self.flags & 0x2 != 0
    }

    /// The `FLG_ADDREG_APPEND` bit (REG_MULTI_SZ append).
    pub fn append(&self) -> bool {
        self.flags & 0x8 != 0
    }
}

impl Inf {
    /// The lines of AddReg section `name`. Unknown section: error.
    pub fn add_reg(&self, name: &str) -> Result<Vec<AddRegLine>, InfError> {
        let sec = self
            .section(name)
            .ok_or_else(|| self.error(None, format!("AddReg section [{name}] is missing")))?;
        sec.lines.iter().map(|l| self.add_reg_line(l)).collect()
    }

    fn add_reg_line(&self, l: &Line) -> Result<AddRegLine, InfError> {
        // A key on an AddReg line is not meaningful; treat `a=b` as one field.
        let mut fields: Vec<String> = Vec::with_capacity(l.values.len() + 1);
        match &l.key {
            Some(k) => {
                let mut first = k.clone();
                first.push('=');
                first.push_str(l.value(0));
                fields.push(first);
                fields.extend(l.values.iter().skip(1).cloned());
            }
            None => fields.extend(l.values.iter().cloned()),
        }
        let root = fields.first().cloned().unwrap_or_default();
        let known = ["HKR", "HKLM", "HKCR", "HKCU", "HKU"];
        if !known.iter().any(|r| r.eq_ignore_ascii_case(&root)) {
            return Err(self.error(
                Some(l.line),
                format!("AddReg root '{root}' is not one of HKR, HKLM, HKCR, HKCU, HKU"),
            ));
        }
        let subkey = fields.get(1).cloned().unwrap_or_default();
        let value_name = fields.get(2).filter(|v| !v.is_empty()).cloned();
        let flags_s = fields.get(3).map(String::as_str).unwrap_or("");
        let flags = if flags_s.trim().is_empty() {
            0
        } else {
            parse_number(flags_s).ok_or_else(|| {
                self.error(
                    Some(l.line),
                    format!("AddReg flags '{flags_s}' is not a number"),
                )
            })?
        };
        let values: Vec<String> = fields.iter().skip(4).cloned().collect();
        let data = self.reg_data(flags, &values, l.line)?;
        Ok(AddRegLine {
            root,
            subkey,
            value_name,
            flags,
            values,
            data,
            line: l.line,
        })
    }

    fn reg_data(&self, flags: u32, values: &[String], line: usize) -> Result<RegData, InfError> {
        if flags & FLG_KEYONLY != 0 {
            return Ok(RegData::KeyOnly);
        }
        let first = values.first().cloned().unwrap_or_default();
        Ok(match flags & TYPE_MASK {
            TYPE_SZ => RegData::Sz(first),
            TYPE_EXPAND_SZ => RegData::ExpandSz(first),
            TYPE_MULTI_SZ => RegData::MultiSz(values.to_vec()),
            TYPE_DWORD => {
                if values.len() >= 2 && values.len() <= 4 {
                    // Legacy form: the DWORD as little-endian bytes.
                    let b = self.hex_bytes(values, line)?;
                    let mut a = [0u8; 4];
                    a[..b.len()].copy_from_slice(&b);
                    RegData::Dword(u32::from_le_bytes(a))
                } else if first.trim().is_empty() {
                    RegData::Dword(0)
                } else {
                    RegData::Dword(parse_number(&first).ok_or_else(|| {
                        self.error(
                            Some(line),
                            format!("REG_DWORD value '{first}' is not a number"),
                        )
                    })?)
                }
            }
            TYPE_NONE => RegData::None(self.hex_bytes(values, line)?),
            t if t & FLG_BINVALUETYPE != 0 => {
                let hi = t >> 16;
                RegData::Binary {
                    kind: if hi == 0 { 3 } else { hi },
                    bytes: self.hex_bytes(values, line)?,
                }
            }
            t => {
                return Err(self.error(
                    Some(line),
                    format!("AddReg flags 0x{flags:08x} give an unknown value type 0x{t:08x}"),
                ))
            }
        })
    }

    fn hex_bytes(&self, values: &[String], line: usize) -> Result<Vec<u8>, InfError> {
        values
            .iter()
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                let t = v.trim();
                let t = t
                    .strip_prefix("0x")
                    .or_else(|| t.strip_prefix("0X"))
                    .unwrap_or(t);
                u8::from_str_radix(t, 16).map_err(|_| {
                    self.error(
                        Some(line),
                        format!("binary registry byte '{v}' is not a hex byte"),
                    )
                })
            })
            .collect()
    }
}
