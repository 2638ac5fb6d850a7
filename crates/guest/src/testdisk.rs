//! Test disks that reproduce the geometry boot failures, and a harness
//! that boots them under QEMU + SeaBIOS (always built: std only; the tools run only when called).
//!
//! Each disk has a real MBR boot program (syslinux's `mbr.bin`, which
//! loads the active partition's first sector) and, as partition 1's boot
//! sector, the test VBR `tests/boot/vbr.asm` (NTFS-style BPB + code that
//! reads a target sector of its own volume through INT 13h AH=02 with CHS
//! computed from the BPB, like NT-era boot code). The VBR prints
//! `GEOM c/h/s` (raw INT 13h AH=08 maxima), `CHS c/h/s`, then `BOOT OK` or
//! `A disk read error occurred` on COM1 and exits QEMU through
//! isa-debug-exit.
//!
//! Other crates use them from their tests (`guest` as a dev-dependency):
//!
//! ```no_run
//! use guest::testdisk::{BootDisk, QemuBoot, boot};
//! use guest::geometry::Bus;
//! let dir = std::env::temp_dir();
//! let img = dir.join("seed1.img");
//! BootDisk::vmware_255_heads().write_raw(&img).unwrap();
//! let out = boot(&QemuBoot::new(&img, "raw", Bus::Ide)).unwrap();
//! assert!(out.disk_error()); // SeaBIOS presents 16 heads
//! ```
//!
//! Tools needed: `nasm`, `qemu-system-x86_64` (SeaBIOS), and
//! `/usr/lib/syslinux/mbr/mbr.bin` (syslinux-common). Missing tools give an
//! error naming them.

use crate::geometry::{Bus, Chs};
use crate::partition::RawChs;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The syslinux MBR boot program.
pub const SYSLINUX_MBR: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// NASM source of the test volume boot record.
pub const VBR_ASM: &str = include_str!("../tests/boot/vbr.asm");
/// Marker at the start of the sector the VBR reads.
pub const MARKER: &[u8; 8] = b"H2KVMTGT";
/// Offset of the target-sector dword in the VBR.
pub const OFF_TARGET: usize = 0x1F4;

fn tool_error(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{what}: {e}"))
}

fn scratch_dir() -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "h2k-testdisk-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Assemble [`VBR_ASM`] with `nasm -f bin` (512 bytes).
pub fn assemble_vbr() -> io::Result<Vec<u8>> {
    let d = scratch_dir()?;
    let (src, bin) = (d.join("vbr.asm"), d.join("vbr.bin"));
    std::fs::write(&src, VBR_ASM)?;
    let out = Command::new("nasm")
        .args(["-f", "bin", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| tool_error("nasm is required (apt-get install nasm)", e))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "nasm failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let b = std::fs::read(&bin)?;
    let _ = std::fs::remove_dir_all(&d);
    if b.len() != 512 {
        return Err(io::Error::other(format!(
            "VBR is {} bytes, expected 512",
            b.len()
        )));
    }
    Ok(b)
}

/// How the MBR partition entry's CHS fields are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbrChs {
    /// All zero (QEMU cannot guess from them).
    Zeroed,
    /// Exact start/end addresses under this heads/sectors geometry (what
    /// partitioning tools write).
    Exact {
        /// Heads.
        heads: u32,
        /// Sectors per track.
        sectors: u32,
    },
}

/// A bootable test disk: syslinux MBR, one active partition whose boot
/// sector is the test VBR, a marker sector at `start + target`.
#[derive(Debug, Clone)]
pub struct BootDisk {
    /// Disk size in bytes.
    pub size: u64,
    /// Partition start (LBA).
    pub part_start: u64,
    /// Partition type byte.
    pub part_type: u8,
    /// BPB heads (0x1A).
    pub bpb_heads: u16,
    /// BPB sectors per track (0x18).
    pub bpb_spt: u16,
    /// BPB hidden sectors (0x1C).
    pub bpb_hidden: u32,
    /// MBR CHS fields.
    pub mbr_chs: MbrChs,
    /// Sector of the volume the VBR reads (relative to the volume).
    pub target: u32,
}

impl BootDisk {
    /// Seed LP 586175: 200 MiB, partition at 63, BPB and MBR CHS written
    /// for 255 heads / 63 sectors (as VMware does); SeaBIOS presents 16
    /// heads, so the VBR's CHS read fails.
    pub fn vmware_255_heads() -> Self {
        BootDisk {
            size: 200 << 20,
            part_start: 63,
            part_type: 0x07,
            bpb_heads: 255,
            bpb_spt: 63,
            bpb_hidden: 63,
            mbr_chs: MbrChs::Exact {
                heads: 255,
                sectors: 63,
            },
            target: 2000,
        }
    }
    /// Seed QEMU 1745312: 750 MiB (1536000 sectors, VMware physical
    /// geometry 1523/16/63, VirtualBox BIOS geometry 761/32/63), BPB
    /// 16 heads / 63 sectors, MBR CHS fields zeroed. QEMU's default
    /// presents 761/32/63, so the read fails unless 1523/16/63 is pinned.
    /// Wrap with [`write_flat_vmdk`] to carry the geometry.
    pub fn nt4_750m() -> Self {
        BootDisk {
            size: 750 << 20,
            part_start: 63,
            part_type: 0x07,
            bpb_heads: 16,
            bpb_spt: 63,
            bpb_hidden: 63,
            mbr_chs: MbrChs::Zeroed,
            target: 2000,
        }
    }
    /// LP 586175's 0x1C workaround: 200 MiB, partition at 2048 but BPB
    /// hidden sectors 63 (a volume moved by a partition tool); geometry
    /// consistent (16 heads / 63 sectors, partition ending on a cylinder).
    pub fn hidden_mismatch() -> Self {
        BootDisk {
            size: 200 << 20,
            part_start: 2048,
            part_type: 0x07,
            bpb_heads: 16,
            bpb_spt: 63,
            bpb_hidden: 63,
            mbr_chs: MbrChs::Exact {
                heads: 16,
                sectors: 63,
            },
            target: 2000,
        }
    }
    /// Sectors of the partition: to the last full 16x63 cylinder for
    /// `Exact { heads: 16 }` layouts (so QEMU's MBR guess is sane), else
    /// to the end of the disk.
    pub fn part_sectors(&self) -> u64 {
        let disk = self.size / 512;
        match self.mbr_chs {
            MbrChs::Exact { heads, sectors } if heads <= 16 => {
                let cyl = heads as u64 * sectors as u64;
                (disk / cyl) * cyl - self.part_start
            }
            _ => disk - self.part_start,
        }
    }
    /// Write the disk as a sparse raw file.
    pub fn write_raw(&self, path: &Path) -> io::Result<()> {
        let mbr_code = std::fs::read(SYSLINUX_MBR).map_err(|e| {
            tool_error(
                &format!("{SYSLINUX_MBR} is required (apt-get install syslinux-common)"),
                e,
            )
        })?;
        let vbr = assemble_vbr()?;
        let psects = self.part_sectors();
        let mut mbr = [0u8; 512];
        let n = mbr_code.len().min(440);
        mbr[..n].copy_from_slice(&mbr_code[..n]);
        mbr[0x1B8..0x1BC].copy_from_slice(&0x4832_4B31u32.to_le_bytes());
        let e = &mut mbr[0x1BE..0x1CE];
        e[0] = 0x80;
        e[4] = self.part_type;
        if let MbrChs::Exact { heads, sectors } = self.mbr_chs {
            e[1..4].copy_from_slice(&RawChs::from_lba(self.part_start, heads, sectors).to_bytes());
            let end = self.part_start + psects - 1;
            e[5..8].copy_from_slice(&RawChs::from_lba(end, heads, sectors).to_bytes());
        }
        e[8..12].copy_from_slice(&(self.part_start as u32).to_le_bytes());
        e[12..16].copy_from_slice(&(psects as u32).to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        let mut v = vbr;
        v[0x18..0x1A].copy_from_slice(&self.bpb_spt.to_le_bytes());
        v[0x1A..0x1C].copy_from_slice(&self.bpb_heads.to_le_bytes());
        v[0x1C..0x20].copy_from_slice(&self.bpb_hidden.to_le_bytes());
        // NTFS counts the volume without its backup boot sector.
        v[0x28..0x30].copy_from_slice(&(psects - 1).to_le_bytes());
        v[OFF_TARGET..OFF_TARGET + 4].copy_from_slice(&self.target.to_le_bytes());
        let mut f = std::fs::File::create(path)?;
        f.set_len(self.size)?;
        let mut put = |lba: u64, data: &[u8]| -> io::Result<()> {
            f.seek(SeekFrom::Start(lba * 512))?;
            f.write_all(data)
        };
        put(0, &mbr)?;
        put(self.part_start, &v)?;
        put(self.part_start + psects - 1, &v)?;
        let mut t = [0u8; 512];
        t[..8].copy_from_slice(MARKER);
        t[8..16].copy_from_slice(&(self.part_start + self.target as u64).to_le_bytes());
        put(self.part_start + self.target as u64, &t)?;
        Ok(())
    }
}

/// Write a monolithicFlat VMDK descriptor at `desc` for the raw file
/// `flat` (referenced by file name, same directory) of `sectors` sectors,
/// carrying `ddb.geometry.*` = `physical` and `ddb.geometry.bios*` = `bios`.
pub fn write_flat_vmdk(
    desc: &Path,
    flat: &Path,
    sectors: u64,
    physical: Chs,
    bios: Chs,
) -> io::Result<()> {
    let name = flat
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("flat extent needs a UTF-8 file name"))?;
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=4832cb31\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n\
         # Extent description\nRW {sectors} FLAT \"{name}\" 0\n\n# The Disk Data Base\n#DDB\n\n\
         ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n\
         ddb.geometry.cylinders = \"{}\"\nddb.geometry.heads = \"{}\"\nddb.geometry.sectors = \"{}\"\n\
         ddb.geometry.biosCylinders = \"{}\"\nddb.geometry.biosHeads = \"{}\"\nddb.geometry.biosSectors = \"{}\"\n",
        physical.cylinders, physical.heads, physical.sectors, bios.cylinders, bios.heads, bios.sectors
    );
    std::fs::write(desc, text)
}

/// One boot of a disk under QEMU + SeaBIOS.
#[derive(Debug, Clone)]
pub struct QemuBoot {
    /// Image path.
    pub image: PathBuf,
    /// QEMU format name (raw, qcow2, vmdk).
    pub format: String,
    /// Bus to attach the disk to.
    pub bus: Bus,
    /// Logical geometry to pin (lcyls/lheads/lsecs).
    pub lchs: Option<Chs>,
    /// Hard limit for the boot.
    pub timeout: Duration,
}

impl QemuBoot {
    /// A boot of `image` in `format` on `bus`, no pin, 20 s limit.
    pub fn new(image: &Path, format: &str, bus: Bus) -> Self {
        QemuBoot {
            image: image.to_path_buf(),
            format: format.into(),
            bus,
            lchs: None,
            timeout: Duration::from_secs(20),
        }
    }
    /// Pin the logical geometry.
    pub fn pinned(mut self, c: Chs) -> Self {
        self.lchs = Some(c);
        self
    }
    /// QEMU arguments attaching the disk (machine type included).
    pub fn disk_args(&self) -> Vec<String> {
        let mut a = vec![];
        if self.bus == Bus::Sata {
            a.extend(["-M".into(), "q35".into()]);
        }
        a.push("-drive".into());
        a.push(format!(
            "file={},format={},if=none,id=d0,snapshot=on",
            self.image.display(),
            self.format
        ));
        let pin = self
            .lchs
            .map(|c| {
                format!(
                    ",lcyls={},lheads={},lsecs={}",
                    c.cylinders, c.heads, c.sectors
                )
            })
            .unwrap_or_default();
        match self.bus {
            Bus::Ide | Bus::Sata => {
                a.extend(["-device".into(), format!("ide-hd,drive=d0,bus=ide.0{pin}")])
            }
            Bus::VirtioBlk => a.extend(["-device".into(), format!("virtio-blk-pci,drive=d0{pin}")]),
            Bus::VirtioScsi => a.extend([
                "-device".into(),
                "virtio-scsi-pci,id=scsi0".into(),
                "-device".into(),
                format!("scsi-hd,drive=d0,bus=scsi0.0{pin}"),
            ]),
        }
        a
    }
}

/// What a boot printed.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// COM1 output.
    pub serial: String,
    /// SeaBIOS debug log (port 0x402).
    pub bios_log: String,
    /// True when the time limit killed QEMU.
    pub timed_out: bool,
}

impl BootOutcome {
    /// The VBR printed `BOOT OK`.
    pub fn booted(&self) -> bool {
        self.serial.contains("BOOT OK")
    }
    /// The VBR printed the NT-style read error.
    pub fn disk_error(&self) -> bool {
        self.serial.contains("A disk read error occurred")
    }
    /// INT 13h AH=08 maxima the VBR printed (max cyl, max head, spt).
    pub fn int13_geometry(&self) -> Option<(u32, u32, u32)> {
        // The first `a/b/c` after "GEOM", before the `CHS` line: under a
        // loaded TCG host stray bytes or line breaks have been seen on COM1
        // between the two, and once inside the marker itself (then the
        // first triple before `CHS` is taken).
        let s = &self.serial;
        let from = s.find("GEOM").map_or(0, |i| i + 4);
        let rest = &s[from..];
        let rest = &rest[..rest.find("CHS ").unwrap_or(rest.len())];
        rest.split(|c: char| !c.is_ascii_digit() && c != '/')
            .find_map(|tok| {
                let v: Vec<u32> = tok
                    .split('/')
                    .map(|x| x.parse().ok())
                    .collect::<Option<_>>()?;
                (v.len() == 3).then(|| (v[0], v[1], v[2]))
            })
    }
    /// SeaBIOS's `LCHS=c/h/s` for the first hard disk.
    pub fn seabios_lchs(&self) -> Option<Chs> {
        let l = self.bios_log.lines().find(|l| l.contains("LCHS="))?;
        let v: Vec<u32> = l
            .split("LCHS=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .split('/')
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 3).then(|| Chs {
            cylinders: v[0],
            heads: v[1],
            sectors: v[2],
        })
    }
}

/// Boot under `qemu-system-x86_64 -accel tcg` with SeaBIOS, COM1 to a
/// file, and a hard time limit.
pub fn boot(q: &QemuBoot) -> io::Result<BootOutcome> {
    let d = scratch_dir()?;
    let (serial, dbg) = (d.join("com1.txt"), d.join("seabios.txt"));
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg",
        "-nographic",
        "-no-reboot",
        "-m",
        "32",
        "-nodefaults",
    ])
    .args(["-net", "none", "-display", "none"])
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .arg("-chardev")
    .arg(format!("file,id=dbg,path={}", dbg.display()))
    .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .args(q.disk_args())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        tool_error(
            "qemu-system-x86_64 is required (apt-get install qemu-system-x86)",
            e,
        )
    })?;
    let start = Instant::now();
    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > q.timeout {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let out = BootOutcome {
        serial: read(&serial),
        bios_log: read(&dbg),
        timed_out,
    };
    let _ = std::fs::remove_dir_all(&d);
    if out.serial.is_empty() && out.bios_log.is_empty() {
        return Err(io::Error::other(format!("qemu produced no output: {err}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::BootOutcome;

    fn out(serial: &str) -> BootOutcome {
        BootOutcome {
            serial: serial.into(),
            bios_log: String::new(),
            timed_out: false,
        }
    }

    #[test]
    fn int13_geometry_parses_clean_and_noisy_serial() {
        assert_eq!(
            out("GEOM 518/127/63\r\nCHS 0/1/1\r\n").int13_geometry(),
            Some((518, 127, 63))
        );
        assert_eq!(
            out("GEOM .\n518/127/63\r\nBOOT OK").int13_geometry(),
            Some((518, 127, 63))
        );
        assert_eq!(
            out("GE\u{1}OM 518/127/63\r\nCHS 0/1/1\r\n").int13_geometry(),
            Some((518, 127, 63))
        );
        assert_eq!(out("GEOM 518/127\r\n").int13_geometry(), None);
        assert_eq!(out("GEOM 518/127\r\nCHS 0/1/1\r\n").int13_geometry(), None);
        assert_eq!(out("no geometry").int13_geometry(), None);
    }
}
