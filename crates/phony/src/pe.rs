//! Minimal valid PE images (DOS stub, COFF header, optional header, one
//! `.text` section) with the machine type and subsystem of the real file,
//! so `file`, libguestfs and our own inspection read their architecture.

use guest::drivers::Arch;

/// PE subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    /// Kernel-mode image (`ntoskrnl.exe`, drivers).
    Native = 1,
    /// Windows GUI (`explorer.exe`, `regedit.exe`).
    Gui = 2,
    /// Console (`cmd.exe`).
    Console = 3,
    /// EFI application (`bootmgfw.efi`).
    EfiApplication = 10,
}

/// IMAGE_FILE_MACHINE_I386.
pub const MACHINE_I386: u16 = 0x14c;
/// IMAGE_FILE_MACHINE_AMD64.
pub const MACHINE_AMD64: u16 = 0x8664;

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// A PE image for `arch` and `subsystem`; `os` is the (major, minor) OS
/// and subsystem version written in the optional header; `note` is text
/// placed in the section (e.g. the file's name).
pub fn image(arch: Arch, subsystem: Subsystem, os: (u16, u16), note: &str) -> Vec<u8> {
    let pe32plus = arch == Arch::Amd64;
    let mut b = vec![0u8; 0x400];
    // DOS header and stub
    b[0..2].copy_from_slice(b"MZ");
    put16(&mut b, 0x02, 0x90);
    put16(&mut b, 0x04, 3);
    put16(&mut b, 0x08, 4);
    put16(&mut b, 0x0c, 0xffff);
    put16(&mut b, 0x10, 0xb8);
    put16(&mut b, 0x18, 0x40);
    put32(&mut b, 0x3c, 0x80);
    let stub: &[u8] = &[
        0x0e, 0x1f, 0xba, 0x0e, 0x00, 0xb4, 0x09, 0xcd, 0x21, 0xb8, 0x01, 0x4c, 0xcd, 0x21,
    ];
    b[0x40..0x40 + stub.len()].copy_from_slice(stub);
    let msg = b"This program cannot be run in DOS mode.\r\r\n$";
    b[0x4e..0x4e + msg.len()].copy_from_slice(msg);
    // PE signature + COFF header
    let pe = 0x80;
    b[pe..pe + 4].copy_from_slice(b"PE\0\0");
    let coff = pe + 4;
    let opt_size: u16 = if pe32plus { 0xf0 } else { 0xe0 };
    put16(
        &mut b,
        coff,
        if pe32plus {
            MACHINE_AMD64
        } else {
            MACHINE_I386
        },
    );
    put16(&mut b, coff + 2, 1);
    put32(&mut b, coff + 4, 0x5e0b_e100); // 2020-01-01
    put16(&mut b, coff + 16, opt_size);
    let mut chars: u16 = 0x0002; // EXECUTABLE_IMAGE
    chars |= if pe32plus { 0x0020 } else { 0x0100 }; // LARGE_ADDRESS_AWARE / 32BIT_MACHINE
    put16(&mut b, coff + 18, chars);
    // optional header
    let o = coff + 20;
    put16(&mut b, o, if pe32plus { 0x20b } else { 0x10b });
    b[o + 2] = 14; // linker version
    put32(&mut b, o + 4, 0x200); // SizeOfCode
    put32(&mut b, o + 16, 0x1000); // AddressOfEntryPoint
    put32(&mut b, o + 20, 0x1000); // BaseOfCode
    let w = if pe32plus {
        put64(&mut b, o + 24, 0x1_4000_0000);
        o + 32
    } else {
        put32(&mut b, o + 24, 0x1000); // BaseOfData
        put32(&mut b, o + 28, 0x40_0000);
        o + 32
    };
    put32(&mut b, w, 0x1000); // SectionAlignment
    put32(&mut b, w + 4, 0x200); // FileAlignment
    put16(&mut b, w + 8, os.0); // OS version
    put16(&mut b, w + 10, os.1);
    put16(&mut b, w + 12, os.0); // image version
    put16(&mut b, w + 14, os.1);
    put16(&mut b, w + 16, os.0); // subsystem version
    put16(&mut b, w + 18, os.1);
    put32(&mut b, w + 24, 0x2000); // SizeOfImage
    put32(&mut b, w + 28, 0x200); // SizeOfHeaders
    put16(&mut b, w + 36, subsystem as u16);
    put16(&mut b, w + 38, 0x8140); // NX, dynamic base, TS aware
    let rest = if pe32plus {
        put64(&mut b, w + 40, 0x10_0000);
        put64(&mut b, w + 48, 0x1000);
        put64(&mut b, w + 56, 0x10_0000);
        put64(&mut b, w + 64, 0x1000);
        w + 72
    } else {
        put32(&mut b, w + 40, 0x10_0000);
        put32(&mut b, w + 44, 0x1000);
        put32(&mut b, w + 48, 0x10_0000);
        put32(&mut b, w + 52, 0x1000);
        w + 56
    };
    put32(&mut b, rest + 4, 16); // NumberOfRvaAndSizes
    let sec = o + usize::from(opt_size);
    debug_assert_eq!(rest + 8 + 16 * 8, sec);
    b[sec..sec + 8].copy_from_slice(b".text\0\0\0");
    put32(&mut b, sec + 8, 0x200);
    put32(&mut b, sec + 12, 0x1000);
    put32(&mut b, sec + 16, 0x200);
    put32(&mut b, sec + 20, 0x200);
    put32(&mut b, sec + 36, 0x6000_0020); // code, execute, read
                                          // section: `ret` then the note
    b[0x200] = 0xc3;
    let n = note.as_bytes();
    let n = &n[..n.len().min(0x1f0)];
    b[0x210..0x210 + n.len()].copy_from_slice(n);
    b
}
