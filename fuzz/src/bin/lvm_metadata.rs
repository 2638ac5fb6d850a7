#![no_main]
//! Fuzz the LVM2 readers: the input is both a PV (label sector, PV header
//! and metadata area, padded to 1 MiB; `LABELONE`/`LVM2 001` forced in
//! sector 1 so inputs reach the PV header) and, as text, VG metadata;
//! every LV of parsed metadata is opened over the input and read.
use hyper2kvm_fuzz::Mem;
use libfuzzer_sys::fuzz_target;
use linuxfs::lvm::{parse_metadata, read_label};
use std::sync::Arc;
use vdisk::Disk;

fn exercise_vg(text: &str, uuid: &str, pv: &Arc<dyn Disk>) {
    let Ok(vg) = parse_metadata(text) else { return };
    let pvs = [(uuid.to_string(), pv.clone())];
    for lv in vg.lvs.iter().take(16) {
        if let Ok(d) = vg.open_lv(&lv.name, &pvs) {
            let mut b = vec![0u8; d.size().min(4096) as usize];
            let _ = d.read_at(&mut b, 0);
            let _ = linuxfs::open(Box::new(d));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut img = data[..data.len().min(1 << 20)].to_vec();
    img.resize(1 << 20, 0);
    img[512..520].copy_from_slice(b"LABELONE");
    img[520..528].copy_from_slice(&1u64.to_le_bytes());
    img[536..544].copy_from_slice(b"LVM2 001");
    let pv: Arc<dyn Disk> = Arc::new(Mem(img));
    exercise_vg(&text, "u", &pv);
    if let Ok(Some(label)) = read_label(&*pv) {
        if let Some(t) = label.metadata {
            exercise_vg(&t, &label.uuid, &pv);
        }
    }
});
