//! The NTFS formatter's volumes as ntfs-3g, sleuthkit and our own NTFS
//! checker see them, before and after files are written into them.

use phony::ntfsfmt;
use std::path::Path;
use testkit::{need, run, run_bytes, tool};

fn make(path: &Path, mib: u64) {
    testkit::sparse_file(path, mib << 20);
    let d = vdisk::raw::RawDiskMut::open(path).unwrap();
    ntfsfmt::format(&d, "Phony", 0, 0x1234_5678_9abc_def0).unwrap();
}

#[test]
fn fresh_volume_reads_in_ntfs3g_and_sleuthkit() {
    need("ntfsls");
    need("fls");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("v.img");
    make(&img, 64);
    let info = run(tool("ntfsinfo").args(["-m", "-f"]).arg(&img));
    assert!(info.contains("Volume Name: Phony"), "{info}");
    let ls = run(tool("ntfsls").args(["-a", "-s"]).arg(&img));
    for n in ["$MFT", "$UpCase", "$Secure", "$Extend", "$LogFile"] {
        assert!(
            ls.lines().any(|l| l.trim() == n),
            "{n} missing in ntfsls: {ls}"
        );
    }
    let fls = run(tool("fls").arg(&img));
    assert!(fls.contains("$AttrDef"), "{fls}");
    // write through our engine, read back with ntfs-3g
    {
        let d = vdisk::raw::RawDiskMut::open(&img).unwrap();
        let mut v = ntfs::Volume::open_rw(d, ntfs::WriteOptions::default()).unwrap();
        v.mkdir("/Windows").unwrap();
        v.mkdir("/Windows/System32").unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        v.write_file("/Windows/System32/big.bin", &data).unwrap();
        for i in 0..60 {
            v.write_file(&format!("/Windows/f{i:02}.txt"), b"hello")
                .unwrap();
        }
        let r = v.check().unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }
    let got = run_bytes(tool("ntfscat").arg(&img).arg("/Windows/System32/big.bin"));
    assert_eq!(got.len(), 300_000);
    assert_eq!(got[299_999], (299_999u32 * 7) as u8);
    let ls = run(tool("ntfsls").arg(&img).arg("-p").arg("/Windows"));
    assert_eq!(
        ls.lines().filter(|l| l.ends_with(".txt")).count(),
        60,
        "{ls}"
    );
    let fls = run(tool("fls").args(["-r", "-p"]).arg(&img));
    assert!(fls.contains("Windows/System32/big.bin"), "{fls}");
}
