//! Fuzz the VM-wide inspection (`guest::inspect::inspect_vm`): the input
//! split into two in-memory disks (partition tables, filesystem
//! signatures, and whatever the guest-install inspection reads from
//! them). It must never panic, whatever the bytes.
#![no_main]
use hyper2kvm_fuzz::Mem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(4 << 20)];
    let half = data.len() / 2;
    let disk = |b: &[u8]| {
        let mut v = b.to_vec();
        v.resize(v.len().max(4096).next_multiple_of(512), 0);
        Mem(v)
    };
    let (a, b) = (disk(&data[..half]), disk(&data[half..]));
    let disks: [&dyn vdisk::Disk; 2] = [&a, &b];
    let _ = guest::inspect::inspect_vm(&disks);
});
