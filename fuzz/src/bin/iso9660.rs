//! Fuzz the ISO 9660 reader: the input is the image from sector 16 on
//! (after a zero system area); every name source is listed, every file
//! read with a size cap and looked up again by path.
#![no_main]
use iso9660::Iso;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut img = vec![0u8; 16 * 2048];
    img.extend_from_slice(&data[..data.len().min(4 << 20)]);
    let Ok(iso) = Iso::from_reader(img.as_slice(), img.len() as u64) else {
        return;
    };
    for source in iso.available_name_sources() {
        let Ok(mut iso) = Iso::from_reader(img.as_slice(), img.len() as u64) else {
            continue;
        };
        if iso.set_name_source(source).is_err() {
            continue;
        }
        let Ok(entries) = iso.entries() else { continue };
        for e in entries.iter().take(1000) {
            let _ = iso.find(&e.path);
            if e.is_dir {
                let _ = iso.read_dir(e);
            } else {
                let _ = iso.read(e, 1 << 20);
            }
        }
    }
});
