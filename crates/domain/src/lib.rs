//! VM metadata in (VMX, OVF/OVA, .vbox, libvirt XML) and domains out (libvirt XML, QEMU command line).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
