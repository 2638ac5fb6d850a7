//! The partition parser against sfdisk and sgdisk: tables they create are
//! read back identically to `sfdisk --json` / `sgdisk -p`; a corrupted
//! primary GPT falls back to the backup (as sgdisk does); hostile tables
//! give warnings or errors, never panics.

use guest::partition::{read_table, PartitionRole, TableKind};
use std::path::Path;
use testkit::{output as run, tool};

use testkit::sfdisk as sfdisk_script;

fn sfdisk_json(img: &Path) -> serde_json::Value {
    let out = tool("sfdisk").arg("--json").arg(img).output().unwrap();
    serde_json::from_slice(&out.stdout).expect("sfdisk --json output")
}

fn node_index(node: &str) -> u32 {
    let digits: String = node
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

fn image(dir: &Path, name: &str, size: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    p
}

#[test]
fn mbr_with_logicals_matches_sfdisk_json() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "mbr.img", 64 << 20);
    sfdisk_script(
        &img,
        "label: dos\nlabel-id: 0x1234abcd\n\
         start=2048, size=4096, type=83, bootable\n\
         start=6144, size=2048, type=7\n\
         start=8192, size=100000, type=5\n\
         start=10240, size=2048, type=83\n\
         start=14336, size=4096, type=82\n\
         start=20480, size=8192, type=c\n\
         start=30720, size=1000, type=8e\n",
    );
    let want = sfdisk_json(&img);
    let disk = vdisk::open(&img).unwrap();
    let t = read_table(&*disk).unwrap();
    assert_eq!(t.kind, TableKind::Mbr);
    assert_eq!(t.mbr.as_ref().unwrap().disk_signature, 0x1234_abcd);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let parts = want["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), t.partitions().len());
    for w in parts {
        let idx = node_index(w["node"].as_str().unwrap());
        let p = t
            .get(idx)
            .unwrap_or_else(|| panic!("partition {idx} missing"));
        assert_eq!(p.start_lba, w["start"].as_u64().unwrap(), "start of {idx}");
        assert_eq!(p.sectors, w["size"].as_u64().unwrap(), "size of {idx}");
        let ty = u8::from_str_radix(w["type"].as_str().unwrap(), 16).unwrap();
        assert_eq!(p.mbr_type, Some(ty), "type of {idx}");
        assert_eq!(p.bootable, w["bootable"].as_bool().unwrap_or(false));
    }
    assert_eq!(t.get(3).unwrap().role, PartitionRole::Extended);
    assert_eq!(t.get(7).unwrap().role, PartitionRole::Logical);
    // CHS fields as sfdisk wrote them decode to the LBA under 255/63.
    let p1 = t.get(1).unwrap().mbr_entry.unwrap();
    assert_eq!(p1.start_chs.to_lba(255, 63), Some(2048));
    // Partition windows read the right bytes.
    let w = guest::partition::open_partition(&*disk, t.get(5).unwrap()).unwrap();
    assert_eq!(vdisk::Disk::size(&w), 2048 * 512);
}

#[test]
fn gpt_with_many_entries_matches_sfdisk_and_sgdisk() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "gpt.img", 64 << 20);
    let mut args = vec!["-o".to_string()];
    for i in 1..=40u32 {
        let ty = ["ef00", "0700", "8300", "8200", "0c01"][(i % 5) as usize];
        args.push(format!("-n{i}:0:+256K"));
        args.push(format!("-t{i}:{ty}"));
        args.push(format!("-c{i}:part {i} été"));
    }
    let o = run(tool("sgdisk").args(&args).arg(&img));
    assert!(o.contains("operation has completed successfully"), "{o}");
    let want = sfdisk_json(&img);
    let disk = vdisk::open(&img).unwrap();
    let t = read_table(&*disk).unwrap();
    assert_eq!(t.kind, TableKind::Gpt);
    let g = t.gpt.as_ref().unwrap();
    assert!(g.primary_ok && g.backup_ok && !g.hybrid_mbr);
    assert_eq!(
        g.header.disk_guid,
        want["partitiontable"]["id"]
            .as_str()
            .unwrap()
            .to_uppercase()
    );
    let parts = want["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 40);
    assert_eq!(t.partitions().len(), 40);
    for w in parts {
        let idx = node_index(w["node"].as_str().unwrap());
        let p = t.get(idx).unwrap();
        assert_eq!(p.start_lba, w["start"].as_u64().unwrap());
        assert_eq!(p.sectors, w["size"].as_u64().unwrap());
        assert_eq!(p.type_guid.as_deref(), w["type"].as_str());
        assert_eq!(p.guid.as_deref(), w["uuid"].as_str());
        assert_eq!(p.name.as_deref(), w["name"].as_str());
    }
    // sgdisk -p: "  N  start  end  size  code  name".
    let listing = run(tool("sgdisk").arg("-p").arg(&img));
    let mut seen = 0;
    for l in listing.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 7 && f[0].parse::<u32>().is_ok() && f[1].parse::<u64>().is_ok() {
            let p = t.get(f[0].parse().unwrap()).unwrap();
            assert_eq!(p.start_lba, f[1].parse::<u64>().unwrap());
            assert_eq!(p.start_lba + p.sectors - 1, f[2].parse::<u64>().unwrap());
            assert_eq!(p.name.as_deref(), Some(f[6..].join(" ").as_str()));
            seen += 1;
        }
    }
    assert_eq!(seen, 40, "{listing}");
}

#[test]
fn corrupted_primary_gpt_falls_back_to_backup_like_sgdisk() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "gpt.img", 16 << 20);
    let o = run(tool("sgdisk")
        .args([
            "-o",
            "-n1:2048:+1M",
            "-t1:ef00",
            "-c1:EFI",
            "-n2:0:0",
            "-t2:0700",
        ])
        .arg(&img));
    assert!(o.contains("successfully"), "{o}");
    let before = read_table(&*vdisk::open(&img).unwrap()).unwrap();
    // Corrupt one byte of the primary header (its CRC no longer matches).
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.write_all_at(&[0xFF], 512 + 40).unwrap();
    }
    let after = read_table(&*vdisk::open(&img).unwrap()).unwrap();
    let g = after.gpt.as_ref().unwrap();
    assert!(!g.primary_ok && g.backup_ok);
    assert_eq!(g.used, "backup");
    assert!(after
        .warnings
        .iter()
        .any(|w| w.contains("primary GPT header")));
    assert_eq!(before.partitions, after.partitions);
    // sgdisk agrees: it reports the damage and lists the same partitions.
    let listing = run(tool("sgdisk").arg("-p").arg(&img));
    assert!(listing.to_lowercase().contains("backup"), "{listing}");
    assert!(listing.contains("EFI"), "{listing}");
}

fn put(img: &Path, off: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(data, off).unwrap();
}

fn entry(status: u8, ty: u8, start: u32, len: u32) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = status;
    e[4] = ty;
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&len.to_le_bytes());
    e
}

#[test]
fn hostile_mbr_tables_warn_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "h.img", 1 << 20);
    // Overlap, beyond the end, and an extended partition whose EBR links to itself.
    put(&img, 0x1BE, &entry(0x80, 0x83, 100, 500));
    put(&img, 0x1CE, &entry(0, 0x07, 300, 500));
    put(&img, 0x1DE, &entry(0, 0x83, 1500, 100000));
    put(&img, 0x1EE, &entry(0, 0x05, 1000, 400));
    put(&img, 510, &[0x55, 0xAA]);
    let ebr = 1000 * 512;
    put(&img, ebr + 0x1BE, &entry(0, 0x83, 10, 20));
    put(&img, ebr + 0x1CE, &entry(0, 0x05, 0, 400)); // next EBR = itself
    put(&img, ebr + 510, &[0x55, 0xAA]);
    let t = read_table(&*vdisk::open(&img).unwrap()).unwrap();
    let w = t.warnings.join("\n");
    assert!(w.contains("overlap"), "{w}");
    assert!(w.contains("beyond the end of the disk"), "{w}");
    assert!(w.contains("loops back"), "{w}");
    assert_eq!(t.partitions().iter().filter(|p| p.index >= 5).count(), 1);
    let p3 = t.get(3).unwrap();
    assert!(p3.beyond_end);
    let err = guest::partition::open_partition(&*vdisk::open(&img).unwrap(), p3).unwrap_err();
    assert!(err.to_string().contains("beyond"), "{err}");
}

#[test]
fn gpt_with_absurd_entry_count_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "g.img", 4 << 20);
    let o = run(tool("sgdisk").args(["-o", "-n1:0:0"]).arg(&img));
    assert!(o.contains("successfully"), "{o}");
    // Rewrite both headers with 10 million entries and a correct header CRC.
    let sectors = (4u64 << 20) / 512;
    for lba in [1, sectors - 1] {
        let mut h = vec![0u8; 512];
        {
            use std::os::unix::fs::FileExt;
            std::fs::File::open(&img)
                .unwrap()
                .read_exact_at(&mut h, lba * 512)
                .unwrap();
        }
        h[80..84].copy_from_slice(&10_000_000u32.to_le_bytes());
        h[16..20].fill(0);
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        put(&img, lba * 512, &h);
    }
    let err = read_table(&*vdisk::open(&img).unwrap()).unwrap_err();
    let m = err.to_string();
    assert!(m.contains("10000000 entries"), "{m}");
    assert!(m.contains("backup header"), "{m}");
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn hybrid_mbr_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "hy.img", 16 << 20);
    let o = run(tool("sgdisk")
        .args(["-o", "-n1:2048:+1M", "-t1:0700", "-n2:0:0", "-h1"])
        .arg(&img));
    assert!(o.contains("successfully"), "{o}");
    let t = read_table(&*vdisk::open(&img).unwrap()).unwrap();
    assert!(t.gpt.as_ref().unwrap().hybrid_mbr, "{:?}", t.mbr);
    assert!(t.warnings.iter().any(|w| w.contains("hybrid MBR")));
}
