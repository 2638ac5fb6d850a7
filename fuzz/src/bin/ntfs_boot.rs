//! Fuzz the NTFS boot sector parser and, through a raw temp file, the
//! whole volume open path (MFT bootstrap, $UpCase, $Volume) plus a root
//! listing and the checker. Only a private tempdir is touched.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ntfs::BootSector::parse(data);
    if data.len() < 512 || data.len() > 4 << 20 {
        return;
    }
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("vol.img");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(disk) = vdisk::probe::open(&path) else {
        return;
    };
    if let Ok(v) = ntfs::Volume::open(disk) {
        let _ = v.list("/");
        let _ = v.read("/a");
        let _ = v.safety();
        let _ = v.check();
    }
});
