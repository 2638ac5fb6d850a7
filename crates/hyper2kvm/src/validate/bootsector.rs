//! Tiny 512-byte BIOS boot sectors, assembled here from fixed machine-code
//! bytes (no assembler needed at run time). They optionally write
//! themselves to LBA 1 (to prove a boot cannot change the disk), print a
//! message on COM1 or on the screen, and then do one action. Used by the KVM
//! probe and by the tests, which check the bytes against nasm.
//!
//! The code (16-bit real mode, loaded at 0x7C00) is, in nasm syntax:
//!
//! ```text
//!         bits 16
//!         org 0x7c00
//!         cld
//!         xor ax, ax
//!         mov ds, ax
//!         ; if write_self: copy this sector to LBA 1 (CHS 0/0/2)
//!         mov es, ax
//!         mov bx, 0x7c00
//!         mov ax, 0x0301
//!         mov cx, 0x0002
//!         mov dx, 0x0080
//!         int 0x13
//!         ; print
//!         mov si, msg
//!         mov dx, 0x3f8        ; serial only
//! next:   lodsb
//!         test al, al
//!         jz done
//!         out dx, al           ; serial, or for the screen:
//!                              ;   mov ah, 0x0e / mov bx, 7 / int 0x10
//!         jmp next
//! done:   ; action:
//!         ;   Halt:        (nothing)
//!         ;   DebugExit:   mov al, CODE / out 0xf4, al     (isa-debug-exit)
//!         ;   Pvpanic:     mov dx, 0x505 / mov al, 1 / out dx, al
//!         ;   TripleFault: lidt [idt0] / int3
//!         ;   ChainReboot: xor ax, ax / mov es, ax
//!         ;                mov ax, 0x0201 / mov bx, 0x8000 / mov cx, 0x0002
//!         ;                mov dx, 0x0080 / int 0x13      (read LBA 1)
//!         ;                mov ax, 0x0301 / mov bx, 0x8000 / mov cx, 0x0001
//!         ;                mov dx, 0x0080 / int 0x13      (write LBA 0)
//!         ;                mov al, 0xfe / out 0x64, al    (reset)
//! hang:   hlt
//!         jmp hang
//! idt0:   times 6 db 0     ; TripleFault only
//! msg:    db "...", 0
//!         times 510-($-$$) db 0
//!         dw 0xaa55
//! ```

/// What the boot sector does after printing its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Halt forever.
    Halt,
    /// Write this code to the `isa-debug-exit` device at port 0xF4: QEMU
    /// exits with status `(code << 1) | 1`.
    DebugExit(u8),
    /// Write 1 (PVPANIC_PANICKED) to the ISA pvpanic device at port 0x505:
    /// QEMU emits `GUEST_PANICKED`.
    Pvpanic,
    /// Load an empty IDT and raise `int3`: #GP, double fault, triple
    /// fault, i.e. a CPU reset (what a guest whose early boot code crashes
    /// does).
    TripleFault,
    /// Copy LBA 1 over LBA 0 (through `int 0x13`), then reset the machine
    /// through the keyboard controller (port 0x64, command 0xFE): a guest
    /// that changes its disk and reboots; the next boot runs the sector
    /// that was at LBA 1.
    ChainReboot,
}

/// Where the message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// COM1 (port 0x3F8), byte by byte.
    Serial,
    /// The screen, through BIOS teletype output (`int 0x10`, AH=0x0E), as
    /// real MBR and boot-sector code does.
    Screen,
}

/// A boot sector to assemble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSector {
    /// Text to print (NUL bytes are dropped).
    pub message: String,
    /// Where to print it.
    pub output: Output,
    /// First copy the sector to LBA 1 through `int 0x13` (a disk write).
    pub write_self: bool,
    /// What to do afterwards.
    pub action: Action,
}

/// Error: the message does not fit into the sector.
#[derive(Debug, thiserror::Error)]
#[error("boot sector message is {len} bytes, at most {max} fit")]
pub struct TooLong {
    /// Message length.
    pub len: usize,
    /// Room left in the sector.
    pub max: usize,
}

impl BootSector {
    /// Print `message` on COM1, then `action`.
    pub fn serial(message: &str, action: Action) -> BootSector {
        BootSector {
            message: message.to_string(),
            output: Output::Serial,
            write_self: false,
            action,
        }
    }

    /// Assemble the sector.
    pub fn assemble(&self) -> Result<[u8; 512], TooLong> {
        let mut code: Vec<u8> = Vec::new();
        code.extend_from_slice(&[0xFC, 0x31, 0xC0, 0x8E, 0xD8]); // cld; xor ax,ax; mov ds,ax
        if self.write_self {
            code.extend_from_slice(&[
                0x8E, 0xC0, // mov es, ax
                0xBB, 0x00, 0x7C, // mov bx, 0x7c00
                0xB8, 0x01, 0x03, // mov ax, 0x0301
                0xB9, 0x02, 0x00, // mov cx, 0x0002
                0xBA, 0x80, 0x00, // mov dx, 0x0080
                0xCD, 0x13, // int 0x13
            ]);
        }
        let si_at = code.len() + 1;
        code.extend_from_slice(&[0xBE, 0x00, 0x00]); // mov si, msg (patched)
        let body: &[u8] = match self.output {
            Output::Serial => {
                code.extend_from_slice(&[0xBA, 0xF8, 0x03]); // mov dx, 0x3f8
                &[0xEE] // out dx, al
            }
            // mov ah, 0x0e; mov bx, 7; int 0x10
            Output::Screen => &[0xB4, 0x0E, 0xBB, 0x07, 0x00, 0xCD, 0x10],
        };
        let next = code.len();
        // lodsb; test al, al; jz done (over body + jmp short)
        code.extend_from_slice(&[0xAC, 0x84, 0xC0, 0x74, (body.len() + 2) as u8]);
        code.extend_from_slice(body);
        let after_jmp = code.len() + 2;
        code.extend_from_slice(&[0xEB, (next as i64 - after_jmp as i64) as i8 as u8]); // jmp next
        match self.action {
            Action::Halt => {}
            Action::DebugExit(c) => code.extend_from_slice(&[0xB0, c, 0xE6, 0xF4]),
            Action::Pvpanic => code.extend_from_slice(&[0xBA, 0x05, 0x05, 0xB0, 0x01, 0xEE]),
            Action::TripleFault => {
                // lidt [idt0]; int3 -- idt0 is the 6 zero bytes after hang.
                let idt0 = 0x7C00u16 + (code.len() + 6 + 3) as u16;
                let [lo, hi] = idt0.to_le_bytes();
                code.extend_from_slice(&[0x0F, 0x01, 0x1E, lo, hi, 0xCC]);
            }
            Action::ChainReboot => code.extend_from_slice(&[
                0x31, 0xC0, 0x8E, 0xC0, // xor ax, ax; mov es, ax
                0xB8, 0x01, 0x02, 0xBB, 0x00, 0x80, // mov ax, 0x0201; mov bx, 0x8000
                0xB9, 0x02, 0x00, 0xBA, 0x80, 0x00, 0xCD, 0x13, // cx=2, dx=0x80, int 0x13
                0xB8, 0x01, 0x03, 0xBB, 0x00, 0x80, // mov ax, 0x0301; mov bx, 0x8000
                0xB9, 0x01, 0x00, 0xBA, 0x80, 0x00, 0xCD, 0x13, // cx=1, dx=0x80, int 0x13
                0xB0, 0xFE, 0xE6, 0x64, // mov al, 0xfe; out 0x64, al
            ]),
        }
        code.extend_from_slice(&[0xF4, 0xEB, 0xFD]); // hang: hlt; jmp hang
        if self.action == Action::TripleFault {
            code.extend_from_slice(&[0; 6]); // idt0: limit 0, base 0
        }
        let msg_off = code.len();
        let addr = 0x7C00u16 + msg_off as u16;
        code[si_at..si_at + 2].copy_from_slice(&addr.to_le_bytes());
        let bytes: Vec<u8> = self.message.bytes().filter(|b| *b != 0).collect();
        let max = 510 - msg_off - 1;
        if bytes.len() > max {
            return Err(TooLong {
                len: bytes.len(),
                max,
            });
        }
        let mut sector = [0u8; 512];
        sector[..msg_off].copy_from_slice(&code);
        sector[msg_off..msg_off + bytes.len()].copy_from_slice(&bytes);
        sector[510] = 0x55;
        sector[511] = 0xAA;
        Ok(sector)
    }
}

/// Shorthand: a sector that prints `message` on COM1 then does `action`.
pub fn serial_boot_sector(message: &str, action: Action) -> Result<[u8; 512], TooLong> {
    BootSector::serial(message, action).assemble()
}
