//! The machine type of a PE image (`ntoskrnl.exe`), from its first bytes.

use crate::drivers::Arch;

/// How many bytes of a file [`machine`] needs at most to find the PE
/// header of any normal image (`e_lfanew` is below this in practice).
pub const HEAD: usize = 4096;

/// What the header of a PE file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeMachine {
    /// A machine we know.
    Known(Arch),
    /// Another machine type (ARM64 0xaa64, IA-64 0x200, …).
    Other(u16),
}

/// Read the COFF machine field of the PE image whose first bytes are
/// `head`. Errors say what was expected where.
pub fn machine(head: &[u8]) -> Result<PeMachine, String> {
    if head.len() < 0x40 || &head[..2] != b"MZ" {
        return Err("no MZ header at offset 0".into());
    }
    let lfanew = u32::from_le_bytes([head[0x3c], head[0x3d], head[0x3e], head[0x3f]]) as usize;
    let sig = lfanew
        .checked_add(6)
        .and_then(|end| head.get(lfanew..end))
        .ok_or_else(|| {
            format!(
                "e_lfanew {lfanew:#x} points beyond the first {} bytes read",
                head.len()
            )
        })?;
    if &sig[..4] != b"PE\0\0" {
        return Err(format!("no PE\\0\\0 signature at e_lfanew {lfanew:#x}"));
    }
    Ok(match u16::from_le_bytes([sig[4], sig[5]]) {
        0x14c => PeMachine::Known(Arch::X86),
        0x8664 => PeMachine::Known(Arch::Amd64),
        m => PeMachine::Other(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_types_and_bad_headers() {
        let mut b = vec![0u8; 0x100];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c] = 0x80;
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
        assert_eq!(machine(&b), Ok(PeMachine::Known(Arch::Amd64)));
        b[0x84..0x86].copy_from_slice(&0x14cu16.to_le_bytes());
        assert_eq!(machine(&b), Ok(PeMachine::Known(Arch::X86)));
        b[0x84..0x86].copy_from_slice(&0xaa64u16.to_le_bytes());
        assert_eq!(machine(&b), Ok(PeMachine::Other(0xaa64)));
        b[0x3c] = 0xff;
        assert!(machine(&b).unwrap_err().contains("beyond"));
        b[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(machine(&b).unwrap_err().contains("beyond"));
        assert!(machine(b"MZ").is_err());
    }
}
