//! OVF (VMware and VirtualBox flavours) and OVA: fields, manifest, tar
//! escapes, streaming extraction checked against qemu-img.

mod common;

use common::*;
use domain::ova::Ova;
use domain::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::sha256_hex;

fn vmware_ovf(disk_href: &str, gzip: bool) -> String {
    let comp = if gzip {
        r#" ovf:compression="gzip""#
    } else {
        ""
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-123" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{disk_href}" ovf:id="file1" ovf:size="123456"{comp}/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network"><Description>The VM Network network</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="web01">
    <Info>A virtual machine</Info>
    <Name>web01 &amp; friends</Name>
    <OperatingSystemSection ovf:id="112" vmw:osType="windows2019srv_64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>web01</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>4 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>4</rasd:VirtualQuantity>
        <vmw:CoresPerSocket ovf:required="false">4</vmw:CoresPerSocket>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>4096MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>4096</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogicsas</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>1</rasd:Address>
        <rasd:ElementName>IDE 1</rasd:ElementName>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>CD/DVD drive 1</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:Parent>4</rasd:Parent>
        <rasd:ResourceSubType>vmware.cdrom.atapi</rasd:ResourceSubType>
        <rasd:ResourceType>15</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:Address>00:50:56:9a:bc:de</rasd:Address>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>7</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="true"/>
      <vmw:ExtraConfig ovf:required="false" vmw:key="uuid.bios" vmw:value="56 4d 01 02 03 04 05 06-07 08 09 0a 0b 0c 0d 0e"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

const VBOX_OVF: &str = r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="ubuntu-disk001.vmdk"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="10737418240" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="0c1c4a47-1d0c-4b4e-9f55-2b1b31e0d4f6"/>
  </DiskSection>
  <VirtualSystem ovf:id="ubuntu">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="94">
      <Info>The kind of installed guest operating system</Info>
      <Description>Ubuntu_64</Description>
      <vbox:OSType ovf:required="false">Ubuntu_64</vbox:OSType>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>ubuntu</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item><rasd:Caption>2 virtual CPU</rasd:Caption><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>PIIX4</rasd:ResourceSubType><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>AHCI</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>NAT</rasd:Connection><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>8</rasd:InstanceID><rasd:Parent>5</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:InstanceID>9</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b}" name="ubuntu" OSType="Ubuntu_64">
      <ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info>
      <Hardware>
        <CPU count="2"/>
        <Memory RAMSize="2048"/>
        <Firmware type="EFI"/>
        <Network>
          <Adapter slot="0" enabled="true" MACAddress="080027A1B2C3" type="82540EM"><NAT/></Adapter>
          <Adapter slot="1" enabled="false" MACAddress="080027000000" type="82540EM"/>
        </Network>
      </Hardware>
    </vbox:Machine>
  </VirtualSystem>
</Envelope>
"#;

#[test]
fn vmware_ovf_every_field() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("web01.ovf");
    std::fs::write(&p, vmware_ovf("web01-disk1.vmdk", false)).unwrap();
    let m = ovf::parse_file(&p, &ParseOptions::default()).unwrap();
    assert_eq!(m.name, "web01 & friends");
    assert_eq!(m.source, SourceKind::Ovf);
    assert_eq!(m.memory_mib, 4096);
    assert_eq!(
        m.cpu,
        CpuTopology {
            vcpus: 4,
            sockets: 1,
            cores: 4,
            threads: 1
        }
    );
    assert_eq!(
        m.firmware,
        Firmware {
            kind: FirmwareKind::Uefi,
            secure_boot: true
        }
    );
    assert_eq!(
        m.uuid.unwrap().to_string(),
        "02014d56-0403-0605-0708-090a0b0c0d0e"
    );
    assert_eq!(m.guest_os.windows, Some(WinVersion::Win2019));
    assert_eq!(m.guest_os.raw, "windows2019srv_64Guest");
    assert_eq!(m.disks.len(), 1);
    let d = &m.disks[0];
    assert_eq!(
        d.source,
        DiskSource::File {
            path: t.path().join("web01-disk1.vmdk")
        }
    );
    assert_eq!(d.capacity_bytes, Some(16 << 20));
    assert_eq!(
        d.controller,
        Controller {
            bus: BusKind::Scsi,
            index: 0,
            model: "lsilogicsas".into()
        }
    );
    assert_eq!(d.unit, 0);
    assert!(d.boot);
    assert!(d
        .format_hint
        .as_deref()
        .unwrap()
        .ends_with("#streamOptimized"));
    assert_eq!(m.cdroms.len(), 1);
    assert_eq!(m.cdroms[0].controller.bus, BusKind::Ide);
    assert_eq!(m.cdroms[0].unit, 2, "IDE 1 master");
    assert_eq!(m.nics.len(), 1);
    assert_eq!(m.nics[0].model, NicModel::Vmxnet3);
    assert_eq!(m.nics[0].mac, "00:50:56:9a:bc:de");
    assert_eq!(m.nics[0].network.as_deref(), Some("VM Network"));
}

#[test]
fn virtualbox_ovf_every_field() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("ubuntu.ovf");
    std::fs::write(&p, VBOX_OVF).unwrap();
    let m = ovf::parse_file(&p, &ParseOptions::default()).unwrap();
    assert_eq!(m.name, "ubuntu");
    assert_eq!(m.memory_mib, 2048);
    assert_eq!(
        m.cpu,
        CpuTopology {
            vcpus: 2,
            sockets: 1,
            cores: 2,
            threads: 1
        }
    );
    assert_eq!(m.firmware, Firmware::UEFI);
    assert_eq!(m.guest_os.family, OsFamily::Linux);
    assert_eq!(m.guest_os.distro.as_deref(), Some("ubuntu"));
    assert_eq!(
        m.instance_uuid.unwrap().to_string(),
        "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
    );
    assert_eq!(
        m.disks[0].controller,
        Controller {
            bus: BusKind::Sata,
            index: 0,
            model: "ahci".into()
        }
    );
    assert_eq!(m.disks[0].capacity_bytes, Some(10 << 30));
    assert_eq!(m.cdroms[0].controller.bus, BusKind::Ide);
    assert_eq!(m.nics.len(), 1);
    assert_eq!(m.nics[0].model, NicModel::E1000);
    assert_eq!(
        m.nics[0].mac, "08:00:27:a1:b2:c3",
        "MAC taken from vbox:Machine"
    );
    assert_eq!(m.nics[0].network.as_deref(), Some("NAT"));
}

#[test]
fn plain_ovf_manifest_mismatch_names_file_and_digests() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("ubuntu.ovf");
    std::fs::write(&p, VBOX_OVF).unwrap();
    let good = sha256_hex(VBOX_OVF.as_bytes());
    let bad = "0".repeat(64);
    std::fs::write(
        t.path().join("ubuntu.mf"),
        format!("SHA256(ubuntu.ovf)= {bad}\n"),
    )
    .unwrap();
    let e = ovf::parse_file(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ubuntu.ovf") && e.contains(&bad) && e.contains(&good),
        "{e}"
    );
    std::fs::write(
        t.path().join("ubuntu.mf"),
        format!("SHA256(ubuntu.ovf)= {good}\n"),
    )
    .unwrap();
    ovf::parse_file(&p, &ParseOptions::default()).unwrap();
}

fn stream_vmdk(dir: &Path) -> (PathBuf, Vec<u8>) {
    need("qemu-img");
    let raw = dir.join("src.raw");
    let mut data = vec![0u8; 16 << 20];
    for (i, b) in data.iter_mut().enumerate().step_by(4093) {
        *b = (i / 4093) as u8 | 1;
    }
    std::fs::write(&raw, &data).unwrap();
    let vmdk = dir.join("web01-disk1.vmdk");
    testkit::vmdk_from_raw(&raw, "streamOptimized", &vmdk);
    (vmdk, data)
}

/// Build an OVA with the tar crate; `names` overrides entry names.
fn build_ova(path: &Path, files: &[(&str, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Write the name bytes directly so hostile names get through.
        let n = name.as_bytes();
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn ova_listing_manifest_and_streaming_extract() {
    let t = tempfile::tempdir().unwrap();
    let (vmdk, data) = stream_vmdk(t.path());
    let vmdk_bytes = std::fs::read(&vmdk).unwrap();
    let ovf_text = vmware_ovf("web01-disk1.vmdk", false);
    let mf = format!(
        "SHA256(web01.ovf)= {}\nSHA256(web01-disk1.vmdk)= {}\n",
        sha256_hex(ovf_text.as_bytes()),
        sha256_hex(&vmdk_bytes)
    );
    let ova_path = t.path().join("web01.ova");
    build_ova(
        &ova_path,
        &[
            ("web01.ovf", ovf_text.into_bytes()),
            ("web01.mf", mf.into_bytes()),
            ("web01-disk1.vmdk", vmdk_bytes.clone()),
        ],
    );
    let ova = Ova::open(&ova_path, &ParseOptions::default()).unwrap();
    assert_eq!(ova.entries.len(), 3);
    assert_eq!(ova.model.source, SourceKind::Ova);
    assert_eq!(ova.model.name, "web01 & friends");
    let d = &ova.model.disks[0];
    let DiskSource::OvaEntry {
        entry,
        offset,
        length,
        gzip,
        ..
    } = &d.source
    else {
        panic!("{:?}", d.source)
    };
    assert_eq!(entry, "web01-disk1.vmdk");
    assert!(!gzip);
    assert_eq!(*length, vmdk_bytes.len() as u64);
    // The (offset, length) window holds exactly the VMDK bytes.
    let whole = std::fs::read(&ova_path).unwrap();
    assert_eq!(
        &whole[*offset as usize..(*offset + *length) as usize],
        &vmdk_bytes[..]
    );
    // Extract and let qemu-img read it: same guest data as the source.
    let out = tempfile::tempdir().unwrap();
    let x = ova.extract_disk(d, out.path()).unwrap();
    assert_eq!(std::fs::read(&x).unwrap(), vmdk_bytes);
    let raw = out.path().join("back.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-q", "-O", "raw"])
        .arg(&x)
        .arg(&raw));
    assert_eq!(std::fs::read(&raw).unwrap(), data);
    ova.verify_entry("web01-disk1.vmdk").unwrap();
}

#[test]
fn ova_gzip_entry_is_decompressed_and_checked() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let (vmdk, _) = stream_vmdk(t.path());
    let vmdk_bytes = std::fs::read(&vmdk).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vmdk_bytes).unwrap();
    let gz = gz.finish().unwrap();
    let ovf_text = vmware_ovf("web01-disk1.vmdk.gz", true);
    let mf = format!("SHA1(web01-disk1.vmdk.gz)= {}\n", {
        use sha1::Digest as _;
        sha1::Sha1::digest(&gz)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    });
    let ova_path = t.path().join("gz.ova");
    build_ova(
        &ova_path,
        &[
            ("web01.ovf", ovf_text.into_bytes()),
            ("web01.mf", mf.into_bytes()),
            ("web01-disk1.vmdk.gz", gz),
        ],
    );
    let ova = Ova::open(&ova_path, &ParseOptions::default()).unwrap();
    assert!(ova
        .model
        .warnings
        .iter()
        .any(|w| w.contains("no digest for the descriptor")));
    let out = tempfile::tempdir().unwrap();
    let x = ova.extract_disk(&ova.model.disks[0], out.path()).unwrap();
    assert_eq!(x.file_name().unwrap(), "web01-disk1.vmdk");
    assert_eq!(std::fs::read(&x).unwrap(), vmdk_bytes);
}

#[test]
fn ova_disk_digest_mismatch_fails_extract_and_removes_partial_file() {
    let t = tempfile::tempdir().unwrap();
    let ovf_text = vmware_ovf("web01-disk1.vmdk", false);
    let disk = vec![7u8; 4096];
    let bad = "ab".repeat(32);
    let mf = format!(
        "SHA256(web01.ovf)= {}\nSHA256(web01-disk1.vmdk)= {bad}\n",
        sha256_hex(ovf_text.as_bytes())
    );
    let ova_path = t.path().join("bad.ova");
    build_ova(
        &ova_path,
        &[
            ("web01.ovf", ovf_text.into_bytes()),
            ("web01.mf", mf.into_bytes()),
            ("web01-disk1.vmdk", disk.clone()),
        ],
    );
    let ova = Ova::open(&ova_path, &ParseOptions::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = ova
        .extract_disk(&ova.model.disks[0], out.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("web01-disk1.vmdk") && e.contains(&bad) && e.contains(&sha256_hex(&disk)),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "partial file left behind"
    );
}

#[test]
fn ova_descriptor_digest_mismatch_is_refused_at_open() {
    let t = tempfile::tempdir().unwrap();
    let ovf_text = vmware_ovf("web01-disk1.vmdk", false);
    let mf = format!("SHA256(web01.ovf)= {}\n", "1".repeat(64));
    let ova_path = t.path().join("m.ova");
    build_ova(
        &ova_path,
        &[
            ("web01.ovf", ovf_text.into_bytes()),
            ("web01.mf", mf.into_bytes()),
            ("web01-disk1.vmdk", vec![0; 512]),
        ],
    );
    let e = Ova::open(&ova_path, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mismatch") && e.contains("web01.ovf"), "{e}");
}

#[test]
fn ova_escaping_entries_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let ovf_text = vmware_ovf("web01-disk1.vmdk", false);
    for evil in ["../evil", "/etc/evil", "a/../../evil"] {
        let p = t.path().join("evil.ova");
        build_ova(
            &p,
            &[
                ("web01.ovf", ovf_text.clone().into_bytes()),
                (evil, b"x".to_vec()),
            ],
        );
        let e = Ova::open(&p, &ParseOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused") && e.contains(evil), "{evil}: {e}");
    }
    // An href that climbs out is refused too.
    let p = t.path().join("href.ova");
    build_ova(
        &p,
        &[(
            "web01.ovf",
            vmware_ovf("../web01-disk1.vmdk", false).into_bytes(),
        )],
    );
    let e = Ova::open(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused"), "{e}");
}

#[test]
fn garbage_ova_and_ovf_give_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("g.ova");
    std::fs::write(&p, vec![0x5au8; 10000]).unwrap();
    let e = Ova::open(&p, &ParseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tar") || e.contains("OVA"), "{e}");
    // Truncated: the data of the last entry runs past the end.
    let ovf_text = vmware_ovf("web01-disk1.vmdk", false);
    build_ova(
        &p,
        &[
            ("web01.ovf", ovf_text.into_bytes()),
            ("web01-disk1.vmdk", vec![1; 100_000]),
        ],
    );
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 60_000).unwrap();
    assert!(Ova::open(&p, &ParseOptions::default()).is_err());
    let o = t.path().join("g.ovf");
    for bad in [
        "<Envelope><VirtualSystem>",
        "not xml at all",
        "<other/>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><Envelope/>",
    ] {
        std::fs::write(&o, bad).unwrap();
        let e = ovf::parse_file(&o, &ParseOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("g.ovf"), "{bad}: {e}");
    }
}
