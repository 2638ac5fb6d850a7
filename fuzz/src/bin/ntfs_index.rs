//! Fuzz index parsing: INDX blocks with fixups, node entries and
//! $INDEX_ROOT values; parsed nodes must re-serialize and parse again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut blk = data.to_vec();
    blk.resize(4096, 0);
    if ntfs::record::apply_fixups(&mut blk, 0, "fuzz").is_ok() {
        let vcn = u64::from_le_bytes(blk[0x10..0x18].try_into().unwrap());
        if let Ok(e) = ntfs::index::parse_indx(&blk, vcn, 0) {
            if let Some(b) = ntfs::index::build_indx(4096, vcn, &e) {
                assert!(ntfs::index::parse_indx(&b, vcn, 0).is_ok());
            }
        }
    }
    if let Ok((h, e, _)) = ntfs::index::parse_root(data, 0) {
        let v = ntfs::index::build_root(&h, &e);
        let (_, e2, _) = ntfs::index::parse_root(&v, 0).expect("rebuilt root parses");
        assert_eq!(e, e2);
        for x in &e {
            let _ = x.file_name();
        }
    }
});
