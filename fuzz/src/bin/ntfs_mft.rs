//! Fuzz MFT record parsing: fixups, attribute headers, resident values
//! ($FILE_NAME) and the mapping pairs of non-resident attributes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for size in [1024usize, 4096] {
        let mut buf = data.to_vec();
        buf.resize(size, 0);
        let Ok(rec) = ntfs::record::Record::parse(7, buf, 0) else {
            continue;
        };
        let Ok(attrs) = rec.attrs() else { continue };
        for a in &attrs {
            if a.ty == ntfs::record::ty::FILE_NAME {
                let _ = ntfs::index::FileName::parse(rec.value(a), 0);
            }
            if let ntfs::record::Body::NonResident { start_vcn, .. } = a.body {
                let _ = ntfs::runlist::decode(rec.runs_bytes(a), start_vcn, 1 << 20, 0);
            }
            if a.ty == ntfs::record::ty::INDEX_ROOT {
                let _ = ntfs::index::parse_root(rec.value(a), 0);
            }
        }
    }
});
