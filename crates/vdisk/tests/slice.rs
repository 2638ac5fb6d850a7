//! An image stored inside another file (a disk inside an OVA tar) is read in
//! place through `ImageFile::open_slice`, equal to qemu-img's reading of the
//! same image as a file of its own.

use vdisk::file::ImageFile;
use vdisk::{Disk, OpenOptions};

#[test]
fn stream_optimized_vmdk_inside_a_container_reads_in_place() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let raw = d.join("p.raw");
    let mut data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    data[1 << 20..2 << 20].fill(0);
    std::fs::write(&raw, &data).unwrap();
    let vmdk = d.join("disk1.vmdk");
    testkit::vmdk_from_raw(&raw, "streamOptimized", &vmdk);
    let inner = std::fs::read(&vmdk).unwrap();
    let mut container = vec![0x55u8; 1536];
    container.extend_from_slice(&inner);
    container.extend_from_slice(&[0xaa; 4096]);
    let ova = d.join("vm.ova");
    std::fs::write(&ova, &container).unwrap();

    let f = ImageFile::open_slice(&ova, 1536, inner.len() as u64, &d.join("vm.ova/disk1.vmdk"))
        .unwrap();
    let disk = vdisk::probe::open_file(f, OpenOptions::default()).unwrap();
    assert_eq!(disk.layer().format, "vmdk");
    let mut got = vec![0u8; data.len()];
    disk.read_at(&mut got, 0).unwrap();
    assert!(got == data);

    // A slice past the end of the container is refused, naming the file.
    let e = ImageFile::open_slice(&ova, 1536, container.len() as u64, &d.join("x")).unwrap_err();
    assert!(e.to_string().contains("vm.ova"), "{e}");
}
