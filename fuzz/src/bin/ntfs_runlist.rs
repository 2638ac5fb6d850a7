//! Fuzz mapping-pairs decoding; whatever decodes must re-encode to runs
//! that decode identically.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(runs) = ntfs::runlist::decode(data, 0, 1 << 40, 0) {
        let enc = ntfs::runlist::encode(&runs);
        let again = ntfs::runlist::decode(&enc, 0, 1 << 40, 0).expect("re-encoded runlist decodes");
        assert_eq!(runs, again);
    }
});
