//! A small NTFS formatter (what `mkntfs` does, for fresh fixture volumes):
//! boot sector and its backup, $MFT with the sixteen system files, the
//! root directory index, $Bitmap, $UpCase, $AttrDef, an empty (0xFF)
//! $LogFile, $Secure with empty $SDH/$SII indexes and $Extend.
//!
//! NTFS 3.1, 512-byte sectors, 4 KiB clusters, 1 KiB records, 4 KiB index
//! blocks. The volume is clean and can be opened for writing by
//! [`ntfs::Volume`] right away; files are added through it.

use crate::{Error, Result};
use ntfs::index::{build_indx, build_root, ns, FileName, IEntry, RootHeader, FN_DIRECTORY};
use ntfs::record::{build_nonresident, build_resident, protect, ty};
use ntfs::runlist::{encode, Run};
use ntfs::upcase::UpCase;
use vdisk::DiskWrite;

const SECTOR: u64 = 512;
const CLUSTER: u64 = 4096;
const RECORD: u64 = 1024;
const INDEX_BLOCK: u64 = 4096;
/// Records formatted in the initial $MFT (the ntfs crate hands out user
/// records from 64 on and grows $MFT when needed).
const MFT_RECORDS: u64 = 256;
/// Fixed "now" so that images are reproducible (2020-01-01 00:00:00 UTC).
pub(crate) const FIXED_TIME: u64 = 132_223_104_000_000_000;

const FILE_ATTR_HIDDEN: u32 = 0x02;
const FILE_ATTR_SYSTEM: u32 = 0x04;
const FILE_ATTR_VIEW_INDEX: u32 = 0x2000_0000;
const REC_IN_USE: u16 = 1;
const REC_DIRECTORY: u16 = 2;
const REC_VIEW_INDEX: u16 = 8;
const COLLATION_FILE_NAME: u32 = 1;
const COLLATION_ULONG: u32 = 0x10;
const COLLATION_SECURITY_HASH: u32 = 0x12;

/// One system file to lay out.
struct SysFile {
    no: u64,
    name: &'static str,
    flags: u16,
    attrs: Vec<Vec<u8>>,
    size: u64,
    fattr: u32,
}

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
fn units(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// Sequence number of system record `no` (as Windows formats them).
fn seq_of(no: u64) -> u16 {
    if no < 16 {
        no.max(1) as u16
    } else {
        1
    }
}

fn fileref(no: u64) -> u64 {
    no | u64::from(seq_of(no)) << 48
}

/// The 128 KiB $UpCase table: Unicode simple upper-case mappings of the
/// Basic Multilingual Plane.
pub fn upcase_table() -> Vec<u8> {
    let mut out = Vec::with_capacity(131_072);
    for c in 0..=0xffffu32 {
        let up = char::from_u32(c)
            .and_then(|ch| {
                let mut it = ch.to_uppercase();
                match (it.next(), it.next()) {
                    (Some(u), None) if (u as u32) <= 0xffff => Some(u as u32 as u16),
                    _ => None,
                }
            })
            .unwrap_or(c as u16);
        out.extend_from_slice(&up.to_le_bytes());
    }
    out
}

/// The NTFS 3.1 $AttrDef table (2560 bytes, as mkntfs writes it).
fn attrdef() -> Vec<u8> {
    // name, type, display rule, collation, flags, min, max
    const RESIDENT: u32 = 0x40;
    const INDEXABLE: u32 = 0x02;
    const LOG_NONRES: u32 = 0x80;
    let rows: &[(&str, u32, u32, u32, u64, u64)] = &[
        ("$STANDARD_INFORMATION", 0x10, 0, RESIDENT, 0x30, 0x48),
        ("$ATTRIBUTE_LIST", 0x20, 0, LOG_NONRES, 0, u64::MAX),
        ("$FILE_NAME", 0x30, 0, RESIDENT | INDEXABLE, 0x44, 0x242),
        ("$OBJECT_ID", 0x40, 0, RESIDENT, 0, 0x100),
        ("$SECURITY_DESCRIPTOR", 0x50, 0, LOG_NONRES, 0, u64::MAX),
        ("$VOLUME_NAME", 0x60, 0, RESIDENT, 2, 0x100),
        ("$VOLUME_INFORMATION", 0x70, 0, RESIDENT, 0xc, 0xc),
        ("$DATA", 0x80, 0, 0, 0, u64::MAX),
        ("$INDEX_ROOT", 0x90, 0, RESIDENT, 0, u64::MAX),
        ("$INDEX_ALLOCATION", 0xa0, 0, LOG_NONRES, 0, u64::MAX),
        ("$BITMAP", 0xb0, 0, LOG_NONRES, 0, u64::MAX),
        ("$REPARSE_POINT", 0xc0, 0, LOG_NONRES, 0, 0x4000),
        ("$EA_INFORMATION", 0xd0, 0, RESIDENT, 8, 8),
        ("$EA", 0xe0, 0, 0, 0, 0x10000),
        ("$LOGGED_UTILITY_STREAM", 0x100, 0, LOG_NONRES, 0, 0x10000),
    ];
    let mut b = vec![0u8; 2560];
    for (i, (name, t, coll, flags, min, max)) in rows.iter().enumerate() {
        let o = i * 0xa0;
        for (k, u) in units(name).iter().enumerate() {
            put16(&mut b, o + 2 * k, *u);
        }
        put32(&mut b, o + 0x80, *t);
        put32(&mut b, o + 0x88, *coll);
        put32(&mut b, o + 0x8c, *flags);
        put64(&mut b, o + 0x90, *min);
        put64(&mut b, o + 0x98, *max);
    }
    b
}

fn std_info(fattr: u32) -> Vec<u8> {
    let mut si = vec![0u8; 0x48];
    for o in [0, 8, 0x10, 0x18] {
        put64(&mut si, o, FIXED_TIME);
    }
    put32(&mut si, 0x20, fattr);
    si
}

fn file_name(name: &str, parent: u64, size: u64, flags: u32) -> FileName {
    FileName {
        parent,
        ctime: FIXED_TIME,
        mtime: FIXED_TIME,
        mft_time: FIXED_TIME,
        atime: FIXED_TIME,
        alloc: size.div_ceil(CLUSTER) * CLUSTER,
        size,
        flags,
        reparse: 0,
        namespace: ns::WIN32_DOS,
        name: units(name),
    }
}

/// An MFT record holding `attrs` (attribute ids assigned in order).
fn record(no: u64, flags: u16, links: u16, attrs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut b = vec![0u8; RECORD as usize];
    b[0..4].copy_from_slice(b"FILE");
    put16(&mut b, 4, 0x30);
    put16(&mut b, 6, (RECORD / SECTOR + 1) as u16);
    put16(
        &mut b,
        0x10,
        if flags & REC_IN_USE != 0 {
            seq_of(no)
        } else {
            0
        },
    );
    put16(&mut b, 0x12, links);
    put16(&mut b, 0x14, 0x38);
    put16(&mut b, 0x16, flags);
    put32(&mut b, 0x1c, RECORD as u32);
    put32(&mut b, 0x2c, no as u32);
    let mut o = 0x38usize;
    for (id, a) in attrs.iter().enumerate() {
        if o + a.len() + 8 > b.len() {
            return Err(Error::Layout(format!(
                "system file record {no}: attributes do not fit in {RECORD} bytes"
            )));
        }
        b[o..o + a.len()].copy_from_slice(a);
        put16(&mut b, o + 0x0e, id as u16);
        o += a.len();
    }
    put32(&mut b, o, 0xffff_ffff);
    put32(&mut b, 0x18, (o + 8) as u32);
    put16(&mut b, 0x28, attrs.len() as u16);
    Ok(protect(&mut b))
}

/// Simple sequential cluster allocator for the format.
struct Alloc {
    next: u64,
    used: Vec<(u64, u64)>,
}

impl Alloc {
    fn take(&mut self, clusters: u64) -> u64 {
        let l = self.next;
        self.used.push((l, clusters));
        self.next += clusters;
        l
    }
}

fn nonres(t: u32, name: &str, lcn: u64, size: u64) -> Vec<u8> {
    let clusters = size.div_ceil(CLUSTER).max(1);
    let runs = encode(&[Run {
        vcn: 0,
        lcn: Some(lcn),
        len: clusters,
    }]);
    build_nonresident(
        t,
        &units(name),
        &runs,
        clusters - 1,
        clusters * CLUSTER,
        size,
        size,
    )
}

fn empty_view_index(collation: u32) -> Vec<u8> {
    let h = RootHeader {
        indexed_type: 0,
        collation,
        block_size: INDEX_BLOCK as u32,
        clusters_per_block: 1,
    };
    build_root(&h, &[IEntry::end(None)])
}

fn empty_dir_index() -> Vec<u8> {
    let h = RootHeader {
        indexed_type: ty::FILE_NAME,
        collation: COLLATION_FILE_NAME,
        block_size: INDEX_BLOCK as u32,
        clusters_per_block: 1,
    };
    build_root(&h, &[IEntry::end(None)])
}

/// The NTFS boot sector for a volume of `sectors` sectors starting at
/// disk sector `hidden`.
fn boot_sector(sectors: u64, hidden: u64, mft: u64, mirr: u64, serial: u64) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[0..3].copy_from_slice(&[0xeb, 0x52, 0x90]);
    b[3..11].copy_from_slice(b"NTFS    ");
    put16(&mut b, 0x0b, SECTOR as u16);
    b[0x0d] = (CLUSTER / SECTOR) as u8;
    b[0x15] = 0xf8;
    put16(&mut b, 0x18, 63);
    put16(&mut b, 0x1a, 255);
    put32(&mut b, 0x1c, hidden as u32);
    put32(&mut b, 0x24, 0x0080_0080);
    put64(&mut b, 0x28, sectors - 1);
    put64(&mut b, 0x30, mft);
    put64(&mut b, 0x38, mirr);
    b[0x40] = 0xf6; // 2^10 = 1024-byte records
    b[0x44] = 1; // one cluster per index block
    put64(&mut b, 0x48, serial);
    // boot code: print a message and halt (int 10h teletype loop)
    let msg = b"Phony Windows volume: not bootable\r\n";
    let code: &[u8] = &[
        0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x00,
        0x00, // cli; xor ax,ax; mov ds,ax; mov si,msg
        0xac, 0x08, 0xc0, 0x74, 0x06, 0xb4, 0x0e, 0xcd, 0x10, 0xeb, 0xf5, // lodsb loop
        0xf4, 0xeb, 0xfd, // hlt; jmp $-1
    ];
    b[0x54..0x54 + code.len()].copy_from_slice(code);
    let msg_off = 0x54 + code.len();
    put16(&mut b, 0x54 + 6, (0x7c00 + msg_off) as u16);
    b[msg_off..msg_off + msg.len()].copy_from_slice(msg);
    b[510] = 0x55;
    b[511] = 0xaa;
    b
}

/// Where the format puts each system file (cluster numbers).
struct Layout {
    sectors: u64,
    total: u64,
    log_size: u64,
    bitmap_size: u64,
    mft: u64,
    mft_bitmap: u64,
    mirr: u64,
    log: u64,
    attrdef: u64,
    bitmap: u64,
    upcase: u64,
    root_indx: u64,
    used: Vec<(u64, u64)>,
}

fn layout(bytes: u64) -> Result<Layout> {
    let sectors = bytes / SECTOR;
    let total = sectors.saturating_sub(1) * SECTOR / CLUSTER;
    if total < 2048 {
        return Err(Error::Layout(format!(
            "NTFS volume of {bytes} bytes is too small (at least 8 MiB)"
        )));
    }
    let log_size = (bytes / 64).clamp(1 << 20, 4 << 20) / CLUSTER * CLUSTER;
    let bitmap_size = total.div_ceil(8).div_ceil(8) * 8;
    let mut al = Alloc {
        next: 0,
        used: vec![],
    };
    let boot = al.take(2);
    debug_assert_eq!(boot, 0);
    Ok(Layout {
        sectors,
        total,
        log_size,
        bitmap_size,
        mft: al.take(MFT_RECORDS * RECORD / CLUSTER),
        mft_bitmap: al.take(1),
        mirr: al.take(1),
        log: al.take(log_size / CLUSTER),
        attrdef: al.take(1),
        bitmap: al.take(bitmap_size.div_ceil(CLUSTER)),
        upcase: al.take(32),
        root_indx: al.take(1),
        used: al.used,
    })
}

fn sys_file(no: u64, name: &'static str, flags: u16, size: u64, attrs: Vec<Vec<u8>>) -> SysFile {
    let hs = FILE_ATTR_HIDDEN | FILE_ATTR_SYSTEM;
    SysFile {
        no,
        name,
        flags,
        attrs,
        size,
        fattr: if flags & REC_VIEW_INDEX != 0 {
            hs | FILE_ATTR_VIEW_INDEX
        } else {
            hs
        },
    }
}

/// The system files other than the root directory.
fn system_files(l: &Layout, label: &str) -> Vec<SysFile> {
    let data = |lcn, size| nonres(ty::DATA, "", lcn, size);
    let mft_bitmap_bytes = MFT_RECORDS.div_ceil(8).div_ceil(8) * 8;
    let mut vinfo = vec![0u8; 12];
    vinfo[8] = 3;
    vinfo[9] = 1;
    let label_bytes: Vec<u8> = units(label).iter().flat_map(|u| u.to_le_bytes()).collect();
    let total = l.total;
    let bad = build_nonresident(
        ty::DATA,
        &units("$Bad"),
        &encode(&[Run {
            vcn: 0,
            lcn: None,
            len: total,
        }]),
        total - 1,
        total * CLUSTER,
        total * CLUSTER,
        total * CLUSTER,
    );
    let mft_size = MFT_RECORDS * RECORD;
    vec![
        sys_file(
            0,
            "$MFT",
            REC_IN_USE,
            mft_size,
            vec![
                data(l.mft, mft_size),
                nonres(ty::BITMAP, "", l.mft_bitmap, mft_bitmap_bytes),
            ],
        ),
        sys_file(
            1,
            "$MFTMirr",
            REC_IN_USE,
            4 * RECORD,
            vec![data(l.mirr, 4 * RECORD)],
        ),
        sys_file(
            2,
            "$LogFile",
            REC_IN_USE,
            l.log_size,
            vec![data(l.log, l.log_size)],
        ),
        sys_file(
            3,
            "$Volume",
            REC_IN_USE,
            0,
            vec![
                build_resident(ty::VOLUME_NAME, &[], &label_bytes, false),
                build_resident(ty::VOLUME_INFORMATION, &[], &vinfo, false),
                build_resident(ty::DATA, &[], &[], false),
            ],
        ),
        sys_file(4, "$AttrDef", REC_IN_USE, 2560, vec![data(l.attrdef, 2560)]),
        sys_file(
            6,
            "$Bitmap",
            REC_IN_USE,
            l.bitmap_size,
            vec![data(l.bitmap, l.bitmap_size)],
        ),
        sys_file(
            7,
            "$Boot",
            REC_IN_USE,
            2 * CLUSTER,
            vec![data(0, 2 * CLUSTER)],
        ),
        sys_file(
            8,
            "$BadClus",
            REC_IN_USE,
            0,
            vec![build_resident(ty::DATA, &[], &[], false), bad],
        ),
        sys_file(
            9,
            "$Secure",
            REC_IN_USE | REC_VIEW_INDEX,
            0,
            vec![
                build_resident(ty::DATA, &units("$SDS"), &[], false),
                build_resident(
                    ty::INDEX_ROOT,
                    &units("$SDH"),
                    &empty_view_index(COLLATION_SECURITY_HASH),
                    false,
                ),
                build_resident(
                    ty::INDEX_ROOT,
                    &units("$SII"),
                    &empty_view_index(COLLATION_ULONG),
                    false,
                ),
            ],
        ),
        sys_file(
            10,
            "$UpCase",
            REC_IN_USE,
            131_072,
            vec![data(l.upcase, 131_072)],
        ),
        sys_file(
            11,
            "$Extend",
            REC_IN_USE | REC_DIRECTORY,
            0,
            vec![build_resident(
                ty::INDEX_ROOT,
                &units("$I30"),
                &empty_dir_index(),
                false,
            )],
        ),
    ]
}

fn dir_flag(f: &SysFile) -> u32 {
    if f.flags & REC_DIRECTORY != 0 {
        FN_DIRECTORY
    } else {
        0
    }
}

/// The root directory (record 5) and its one INDX block (protected),
/// naming every system file and itself.
fn root_directory(files: &[SysFile], upc: &UpCase, indx_lcn: u64) -> Result<(SysFile, Vec<u8>)> {
    let root_ref = fileref(5);
    let hs = FILE_ATTR_HIDDEN | FILE_ATTR_SYSTEM;
    let mut entries: Vec<(Vec<u16>, IEntry)> = files
        .iter()
        .map(|f| {
            let fname = file_name(f.name, root_ref, f.size, f.fattr | dir_flag(f));
            (
                units(f.name),
                IEntry {
                    fileref: fileref(f.no),
                    key: fname.to_bytes(),
                    child: None,
                    end: false,
                },
            )
        })
        .collect();
    entries.push((
        units("."),
        IEntry {
            fileref: root_ref,
            key: file_name(".", root_ref, 0, hs | FN_DIRECTORY).to_bytes(),
            child: None,
            end: false,
        },
    ));
    entries.sort_by(|a, b| upc.collate(&a.0, &b.0));
    let mut ents: Vec<IEntry> = entries.into_iter().map(|(_, e)| e).collect();
    ents.push(IEntry::end(None));
    let mut indx = build_indx(INDEX_BLOCK as usize, 0, &ents)
        .ok_or_else(|| Error::Layout("root directory entries exceed one index block".into()))?;
    let indx = protect(&mut indx);
    let root_hdr = RootHeader {
        indexed_type: ty::FILE_NAME,
        collation: COLLATION_FILE_NAME,
        block_size: INDEX_BLOCK as u32,
        clusters_per_block: 1,
    };
    let mut ibm = vec![0u8; 8];
    ibm[0] = 1;
    let root = SysFile {
        no: 5,
        name: ".",
        flags: REC_IN_USE | REC_DIRECTORY,
        size: 0,
        fattr: hs,
        attrs: vec![
            build_resident(
                ty::INDEX_ROOT,
                &units("$I30"),
                &build_root(&root_hdr, &[IEntry::end(Some(0))]),
                false,
            ),
            nonres(ty::INDEX_ALLOCATION, "$I30", indx_lcn, INDEX_BLOCK),
            build_resident(ty::BITMAP, &units("$I30"), &ibm, false),
        ],
    };
    Ok((root, indx))
}

/// Every record of the initial $MFT (protected).
fn mft_image(files: &[SysFile]) -> Result<Vec<u8>> {
    let root_ref = fileref(5);
    let mut mft = vec![0u8; (MFT_RECORDS * RECORD) as usize];
    for no in 0..MFT_RECORDS {
        let img = match files.iter().find(|f| f.no == no) {
            Some(f) => {
                let mut attrs = vec![
                    build_resident(ty::STANDARD_INFORMATION, &[], &std_info(f.fattr), false),
                    build_resident(
                        ty::FILE_NAME,
                        &[],
                        &file_name(f.name, root_ref, f.size, f.fattr | dir_flag(f)).to_bytes(),
                        true,
                    ),
                ];
                attrs.extend(f.attrs.iter().cloned());
                record(no, f.flags, 1, &attrs)?
            }
            None => record(no, 0, 0, &[])?,
        };
        let o = (no * RECORD) as usize;
        mft[o..o + RECORD as usize].copy_from_slice(&img);
    }
    Ok(mft)
}

/// Format `disk` (the whole partition) as NTFS with `label`. `hidden` is
/// the partition's first sector on its disk (the BPB's hidden sectors).
pub fn format<D: DiskWrite>(disk: &D, label: &str, hidden: u64, serial: u64) -> Result<()> {
    let l = layout(disk.size())?;
    let up = upcase_table();
    let upc = UpCase::from_bytes(&up);
    let mut files = system_files(&l, label);
    let (root, indx) = root_directory(&files, &upc, l.root_indx)?;
    files.push(root);
    let mft = mft_image(&files)?;

    let w = |lcn: u64, data: &[u8]| disk.write_at(data, lcn * CLUSTER);
    let bs = boot_sector(l.sectors, hidden, l.mft, l.mirr, serial);
    let mut boot = vec![0u8; 2 * CLUSTER as usize];
    boot[..512].copy_from_slice(&bs);
    w(0, &boot)?;
    disk.write_at(&bs, (l.sectors - 1) * SECTOR)?;
    w(l.mft, &mft)?;
    w(l.mirr, &mft[..(4 * RECORD) as usize])?;
    let mut mbm = vec![0u8; CLUSTER as usize];
    mbm[0] = 0xff;
    mbm[1] = 0xff;
    w(l.mft_bitmap, &mbm)?;
    w(l.log, &vec![0xffu8; l.log_size as usize])?;
    let mut ad = attrdef();
    ad.resize(CLUSTER as usize, 0);
    w(l.attrdef, &ad)?;
    let mut bm = vec![0u8; (l.bitmap_size.div_ceil(CLUSTER) * CLUSTER) as usize];
    for (start, n) in &l.used {
        for c in *start..start + n {
            bm[(c / 8) as usize] |= 1 << (c % 8);
        }
    }
    w(l.bitmap, &bm)?;
    w(l.upcase, &up)?;
    w(l.root_indx, &indx)?;
    Ok(())
}
