//! INF parser against the real virtio-win INF templates (shared testdata),
//! filled per architecture as the virtio-win build does; UTF-16 re-encoding
//! done by iconv; hostile inputs.

use guest::drivers::fixture::fill_template;
use guest::drivers::inf::{Inf, OsVersion, RegData};
use guest::drivers::Arch;
use std::path::PathBuf;
use std::process::Command;

fn inx_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/virtio-win-inx"
    ))
}

fn filled(name: &str, arch: Arch) -> String {
    let p = inx_dir().join(name);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    fill_template(&String::from_utf8_lossy(&raw), arch)
}

fn parse(name: &str, arch: Arch) -> Inf {
    Inf::parse(filled(name, arch).as_bytes(), name).unwrap_or_else(|e| panic!("{e}"))
}

use testkit::need as require;

const ARCHS: [Arch; 2] = [Arch::Amd64, Arch::X86];

#[test]
fn every_template_parses_for_both_archs() {
    let mut names: Vec<String> = std::fs::read_dir(inx_dir())
        .expect("shared testdata virtio-win-inx")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 14, "{names:?}");
    for n in &names {
        for arch in ARCHS {
            let text = filled(n, arch);
            assert!(
                !text.contains("INX_") && !text.contains("$ARCH$"),
                "{n}: placeholder left"
            );
            let inf = Inf::parse(text.as_bytes(), n).unwrap_or_else(|e| panic!("{e}"));
            let s = inf
                .summary(arch, None)
                .unwrap_or_else(|e| panic!("{n} {arch}: {e}"));
            let guid = s.version.class_guid.clone().unwrap_or_default();
            assert!(
                guid.starts_with('{') && guid.ends_with('}') && guid.len() == 38,
                "{n}: {guid}"
            );
            assert!(!s.hardware_ids.is_empty(), "{n} {arch}");
            for id in &s.hardware_ids {
                assert!(!id.contains('%') && !id.contains('"'), "{n}: {id}");
            }
            let smbus_x86 = n.contains("SMBus") && arch == Arch::X86;
            let want = if smbus_x86 {
                vec![]
            } else {
                vec![format!("nt{}", arch.inf_name())]
            };
            let got: Vec<String> = s
                .decorations
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect();
            assert_eq!(got, want, "{n} {arch}");
        }
    }
}

#[test]
fn viostor_facts() {
    for arch in ARCHS {
        let inf = parse("viostor_viostor.inx", arch);
        let s = inf.summary(arch, None).unwrap();
        assert_eq!(s.version.class.as_deref(), Some("SCSIAdapter"));
        assert_eq!(
            s.version.class_guid.as_deref(),
            Some("{4D36E97B-E325-11CE-BFC1-08002BE10318}")
        );
        assert_eq!(s.version.provider.as_deref(), Some("Red Hat, Inc."));
        assert_eq!(s.version.driver_date.as_deref(), Some("01/01/2008"));
        assert_eq!(s.version.driver_version.as_deref(), Some("0.0.0.1"));
        assert_eq!(s.catalog_file.as_deref(), Some("viostor.cat"));
        assert_eq!(s.decorations, vec![format!("NT{}", arch.inf_name())]);
        assert_eq!(
            s.models[0].section,
            format!("VioStor.NT{}", arch.inf_name())
        );
        assert_eq!(
            s.hardware_ids,
            [
                r"PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00",
                r"PCI\VEN_1AF4&DEV_1001",
                r"PCI\VEN_1AF4&DEV_1042&SUBSYS_11001AF4&REV_01",
                r"PCI\VEN_1AF4&DEV_1042",
            ]
        );
        assert_eq!(
            s.models[0].models[0].description,
            "Red Hat VirtIO SCSI controller"
        );
        assert_eq!(s.models[0].models[0].install_section, "scsi_inst");
        assert_eq!(s.files, ["viostor.sys"]);
        let is = &s.install_sections[0];
        assert_eq!(is.name, "scsi_inst");
        assert_eq!(is.hw_add_reg, ["pnpsafe_pci_addreg_msix"]);
        let svc = s.main_service().unwrap();
        assert_eq!(svc.add_service.name, "viostor");
        assert_eq!(svc.add_service.flags, 2);
        assert_eq!(
            svc.add_service.event_log_section.as_deref(),
            Some("scsi_EventLog_Inst")
        );
        let i = svc.install.as_ref().unwrap();
        assert_eq!(i.section, "scsi_Service_Inst");
        assert_eq!(i.service_type, Some(1));
        assert_eq!(i.start_type, Some(0));
        assert_eq!(i.error_control, Some(1));
        assert_eq!(i.load_order_group.as_deref(), Some("SCSI miniport"));
        assert_eq!(i.service_binary.as_deref(), Some(r"%12%\viostor.sys"));
        assert_eq!(i.add_reg, ["pnpsafe_pci_addreg"]);
        let regs: Vec<(&str, &str, Option<&str>, u32, &RegData)> = svc
            .add_reg
            .iter()
            .map(|r| {
                (
                    r.root.as_str(),
                    r.subkey.as_str(),
                    r.value_name.as_deref(),
                    r.flags,
                    &r.data,
                )
            })
            .collect();
        assert_eq!(
            regs,
            vec![
                (
                    "HKR",
                    r"Parameters\PnpInterface",
                    Some("5"),
                    0x00010001,
                    &RegData::Dword(1)
                ),
                (
                    "HKR",
                    "Parameters",
                    Some("BusType"),
                    0x00010001,
                    &RegData::Dword(1)
                ),
                (
                    "HKR",
                    "Parameters",
                    Some("DmaRemappingCompatible"),
                    0x00010001,
                    &RegData::Dword(0)
                ),
            ]
        );
        let ev = inf.add_reg("scsi_EventLog_AddReg").unwrap();
        assert_eq!(
            ev[0].data,
            RegData::ExpandSz(r"%SystemRoot%\System32\IoLogMsg.dll".into())
        );
        assert_eq!(ev[1].data, RegData::Dword(7));
        let msix = inf.add_reg("pnpsafe_pci_addreg_msix").unwrap();
        assert_eq!(msix.len(), 7);
        assert_eq!(msix[0].data, RegData::KeyOnly);
        assert_eq!(msix[0].subkey, "Interrupt Management");
        assert_eq!(msix[3].value_name.as_deref(), Some("MessageNumberLimit"));
        assert_eq!(msix[3].data, RegData::Dword(257));
        let dd = inf.destination_dirs();
        assert_eq!(dd[0].section, "viostor_Files_Driver");
        assert_eq!(dd[0].dirid, Some(12));
        let cf = inf.copy_files("viostor_Files_Driver").unwrap();
        assert_eq!(
            (cf[0].dest.as_str(), cf[0].source.as_str(), cf[0].flags),
            ("viostor.sys", "viostor.sys", 2)
        );
    }
}

#[test]
fn viostor_xp_era_inf() {
    let inf = parse("viostor_WinXP.inx", Arch::X86);
    let xp = OsVersion {
        major: 5,
        minor: 1,
        build: None,
        server: Some(false),
    };
    let s = inf.summary(Arch::X86, Some(&xp)).unwrap();
    assert_eq!(s.version.provider.as_deref(), Some("Red Hat, Inc."));
    assert_eq!(s.version.driver_date.as_deref(), Some("05/03/2010"));
    assert_eq!(s.version.driver_version.as_deref(), Some("6.0.6001.16640"));
    assert_eq!(
        s.hardware_ids,
        [r"PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00"]
    );
    let i = s.main_service().unwrap().install.as_ref().unwrap();
    assert_eq!(i.section, "rhelscsi_Service_Inst");
    assert_eq!(
        (i.service_type, i.start_type, i.error_control),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(i.service_binary.as_deref(), Some(r"%12%\viostor.sys"));
    assert_eq!(s.main_service().unwrap().add_reg.len(), 2);
    assert!(
        inf.summary(Arch::Amd64, None).is_err(),
        "x86-filled INF has no amd64 models"
    );
}

#[test]
fn vioscsi_facts() {
    let inf = parse("vioscsi_vioscsi.inx", Arch::Amd64);
    let s = inf.summary(Arch::Amd64, None).unwrap();
    assert_eq!(
        s.hardware_ids,
        [
            r"PCI\VEN_1AF4&DEV_1004&SUBSYS_00081AF4&REV_00",
            r"PCI\VEN_1AF4&DEV_1004",
            r"PCI\VEN_1AF4&DEV_1048&SUBSYS_11001AF4&REV_01",
            r"PCI\VEN_1AF4&DEV_1048",
        ]
    );
    let svc = s.main_service().unwrap();
    assert_eq!(svc.add_service.name, "vioscsi");
    let i = svc.install.as_ref().unwrap();
    assert_eq!(
        i.display_name.as_deref(),
        Some("Red Hat VirtIO SCSI pass-through Service")
    );
    assert_eq!(
        (i.start_type, i.load_order_group.as_deref()),
        (Some(0), Some("SCSI miniport"))
    );
    assert_eq!(svc.add_reg[1].data, RegData::Dword(0xA));
    assert_eq!(s.catalog_file.as_deref(), Some("vioscsi.cat"));
}

#[test]
fn netkvm_facts() {
    let inf = parse("NetKVM_netkvm.inx", Arch::X86);
    let s = inf.summary(Arch::X86, None).unwrap();
    assert_eq!(s.version.class.as_deref(), Some("Net"));
    assert_eq!(
        s.version.class_guid.as_deref(),
        Some("{4d36e972-e325-11ce-bfc1-08002be10318}")
    );
    assert_eq!(s.catalog_file.as_deref(), Some("netkvm.cat"));
    assert_eq!(
        s.hardware_ids[0],
        r"PCI\VEN_1AF4&DEV_1000&SUBSYS_00011AF4&REV_00"
    );
    assert_eq!(
        s.hardware_ids[2],
        r"PCI\VEN_1AF4&DEV_1041&SUBSYS_11001AF4&REV_01"
    );
    let svc = s.main_service().unwrap();
    assert_eq!(svc.add_service.name, "netkvm");
    let i = svc.install.as_ref().unwrap();
    assert_eq!(
        (i.service_type, i.start_type, i.error_control),
        (Some(1), Some(3), Some(1))
    );
    assert_eq!(i.load_order_group.as_deref(), Some("NDIS"));
    assert_eq!(
        i.display_name.as_deref(),
        Some("Red Hat VirtIO Ethernet Adapter Service")
    );
    assert_eq!(svc.add_reg[0].data, RegData::Dword(1));
    assert_eq!(svc.add_reg[1].value_name.as_deref(), Some("DisableMSI"));
    assert_eq!(svc.add_reg[1].data, RegData::Sz("0".into()));
    let is = &s.install_sections[0];
    assert_eq!(is.name, "kvmnet6.ndi");
    assert_eq!(is.add_reg, ["kvmnet6.Reg", "Parameters"]);
    assert_eq!(is.hw_add_reg, ["kvmnet6.EnableMSI"]);
    let reg = inf.add_reg("kvmnet6.Reg").unwrap();
    assert_eq!(
        (reg[0].subkey.as_str(), reg[0].value_name.as_deref()),
        ("", Some("BusNumber"))
    );
    assert_eq!(reg[1].data, RegData::Sz("netkvm".into()));
    assert_eq!(reg[9].subkey, r"Ndi\params\*RSS\enum");
    assert_eq!(reg[9].data, RegData::Sz("Enabled".into()));
    let params = inf.add_reg("Parameters").unwrap();
    assert_eq!(params[0].data, RegData::Sz("Init.Do802.1PQ".into()));
    assert_eq!(params[3].data, RegData::Sz("Enabled".into()));
    assert_eq!(inf.string("TxRx"), Some("Rx & Tx Enabled"));
    assert_eq!(s.files, ["netkvm.sys"]);
}

#[test]
fn other_drivers() {
    let b = parse("Balloon_sys_balloon.inx", Arch::Amd64);
    let s = b.summary(Arch::Amd64, None).unwrap();
    assert_eq!(s.install_sections[0].name, "BALLOON_Device.NT");
    assert_eq!(s.install_sections[0].hw_add_reg, ["BALLOON_SD"]);
    let svc = s.main_service().unwrap();
    assert_eq!(
        (svc.add_service.name.as_str(), svc.add_service.flags),
        ("BALLOON", 2)
    );
    assert_eq!(svc.install.as_ref().unwrap().start_type, Some(3));

    let r = parse("viorng_viorng_viorng.inf", Arch::Amd64);
    let s = r.summary(Arch::Amd64, None).unwrap();
    assert_eq!(s.files, ["viorng.sys", "viorngum.dll"]);
    assert_eq!(
        s.main_service()
            .unwrap()
            .install
            .as_ref()
            .unwrap()
            .load_order_group
            .as_deref(),
        Some("Extended Base")
    );
    let prov = r.add_reg("VirtRng_Provider_AddReg").unwrap();
    assert_eq!(prov[0].root, "HKLM");
    assert_eq!(
        prov[0].subkey,
        r"SYSTEM\CurrentControlSet\Control\Cryptography\Providers\QEMU VirtIO RNG Provider\UM"
    );
    assert_eq!(prov[2].data, RegData::MultiSz(vec!["RNG".into()]));
    assert!(prov[3].append());
    assert_eq!(
        prov[3].data,
        RegData::MultiSz(vec!["QEMU VirtIO RNG Provider".into()])
    );

    let i = parse("vioinput_sys_vioinput.inx", Arch::X86);
    let s = i.summary(Arch::X86, None).unwrap();
    assert_eq!(s.files, ["vioinput.sys", "viohidkmdf.sys"]);
    let names: Vec<&str> = s
        .services
        .iter()
        .map(|x| x.add_service.name.as_str())
        .collect();
    assert_eq!(names, ["VirtioInput", "viohidkmdf"]);
    assert!(s.hardware_ids.contains(&r"VIOINPUT\REV_01".to_string()));

    let q = parse("fwcfg_qemufwcfg.inf", Arch::Amd64);
    let s = q.summary(Arch::Amd64, None).unwrap();
    assert_eq!(s.decorations, ["NTAMD64"]);
    assert_eq!(s.services[0].add_service.name, "");
    assert!(s.main_service().is_none());

    let sm = parse("Q35_SMBus_smbus.inf", Arch::X86);
    assert_eq!(
        sm.summary(Arch::X86, None).unwrap().models[0].section,
        "Models"
    );
    assert_eq!(
        sm.summary(Arch::Amd64, None).unwrap().models[0].section,
        "Models.NTamd64"
    );

    let ps = parse("pciserial_qemupciserial.inf", Arch::Amd64);
    let s = ps.summary(Arch::Amd64, None).unwrap();
    assert_eq!(s.install_sections[0].include, ["mf.inf"]);
    let bin = ps.add_reg("ComPort_inst2.RegHW").unwrap();
    assert_eq!(
        bin[1].data,
        RegData::Binary {
            kind: 3,
            bytes: vec![0, 0, 0, 0, 0, 8, 0, 0, 0]
        }
    );
}

#[test]
fn utf16_reencoding_parses_identically() {
    require("iconv");
    let dir = tempfile::tempdir().unwrap();
    for n in [
        "viostor_viostor.inx",
        "NetKVM_netkvm.inx",
        "viorng_viorng_viorng.inf",
    ] {
        let text = filled(n, Arch::Amd64);
        let src = dir.path().join("utf8.inf");
        std::fs::write(&src, &text).unwrap();
        let utf8 = Inf::parse(text.as_bytes(), n).unwrap();
        for (enc, bom) in [("UTF-16LE", true), ("UTF-16LE", false), ("UTF-16BE", false)] {
            let out = Command::new("iconv")
                .args(["-f", "UTF-8", "-t", enc])
                .arg(&src)
                .output()
                .unwrap();
            assert!(out.status.success(), "iconv failed");
            assert_eq!(
                out.stdout.len(),
                text.encode_utf16().count() * 2,
                "iconv output size"
            );
            let mut bytes = Vec::new();
            if bom {
                bytes.extend_from_slice(&[0xff, 0xfe]);
            }
            bytes.extend_from_slice(&out.stdout);
            let u16 = Inf::parse(&bytes, n).unwrap();
            assert_eq!(u16.sections(), utf8.sections(), "{n} {enc} bom={bom}");
            assert_eq!(
                u16.summary(Arch::Amd64, None).unwrap(),
                utf8.summary(Arch::Amd64, None).unwrap()
            );
        }
    }
}

#[test]
fn syntax_rules() {
    let text = "junk before sections = 1\r\n\
        [Version]\r\n\
        Signature = \"$Windows NT$\" ; comment\r\n\
        CatalogFile = plain.cat\r\n\
        CatalogFile.NTamd64 = a64.cat\r\n\
        [strings.0407]\r\n\
        Only = \"de\"\r\n\
        Both = \"de\"\r\n\
        [S]\r\n\
        k = \"a;b,c\", %Both%, %Only%, %missing%, 100%%, \\\r\n\
            continued , \"say \"\"hi\"\"\"\r\n\
        [Strings]\r\n\
        Both = \"en\"\r\n\
        [s]\r\n\
        second = 2\r\n";
    let inf = Inf::parse(text.as_bytes(), "t.inf").unwrap();
    let s = inf.section("S").unwrap();
    assert_eq!(s.lines.len(), 2, "duplicate sections merge");
    assert_eq!(s.lines[0].line, 10);
    assert_eq!(
        s.lines[0].values,
        [
            "a;b,c",
            "en",
            "de",
            "%missing%",
            "100%",
            "continued",
            "say \"hi\""
        ]
    );
    assert_eq!(s.value("SECOND"), Some("2"));
    let v = inf.version().unwrap();
    assert_eq!(v.signature.as_deref(), Some("$Windows NT$"));
    assert_eq!(v.catalog_file(Arch::Amd64), Some("a64.cat"));
    assert_eq!(v.catalog_file(Arch::X86), Some("plain.cat"));
    assert!(inf.section("junk").is_none());
}

#[test]
fn decoration_choice_follows_target_os_rules() {
    let text = "[Version]\nSignature=\"$Windows NT$\"\n\
        [Manufacturer]\nM = Mod, NTamd64, NTamd64.6.1, NTamd64.10.0...17763, NTamd64.6.2.3, NTx86.6.0, NT.5.1\n\
        [Mod]\nd = i, X\\BASE\n\
        [Mod.NTamd64]\nd = i, X\\A64\n\
        [Mod.NTamd64.6.1]\nd = i, X\\A64_61\n\
        [Mod.NTamd64.10.0...17763]\nd = i, X\\A64_17763\n\
        [Mod.NTamd64.6.2.3]\nd = i, X\\A64_62_SERVER\n\
        [Mod.NTx86.6.0]\nd = i, X\\X86_60\n\
        [Mod.NT.5.1]\nd = i, X\\NT_51\n\
        [i]\n";
    let inf = Inf::parse(text.as_bytes(), "d.inf").unwrap();
    let os = |major, minor, build, server| OsVersion {
        major,
        minor,
        build,
        server: Some(server),
    };
    let pick = |arch, v: Option<OsVersion>| {
        inf.models(arch, v.as_ref()).unwrap()[0].models[0].hardware_ids[0].clone()
    };
    assert_eq!(pick(Arch::Amd64, Some(os(5, 2, None, true))), r"X\A64");
    assert_eq!(pick(Arch::Amd64, Some(os(6, 1, None, false))), r"X\A64_61");
    assert_eq!(pick(Arch::Amd64, Some(os(6, 2, None, false))), r"X\A64_61");
    assert_eq!(
        pick(Arch::Amd64, Some(os(6, 2, None, true))),
        r"X\A64_62_SERVER"
    );
    assert_eq!(
        pick(Arch::Amd64, Some(os(10, 0, Some(10240), false))),
        r"X\A64_61"
    );
    assert_eq!(
        pick(Arch::Amd64, Some(os(10, 0, Some(17763), true))),
        r"X\A64_17763"
    );
    assert_eq!(pick(Arch::Amd64, None), r"X\A64_17763");
    assert_eq!(pick(Arch::X86, Some(os(5, 0, None, false))), r"X\BASE");
    assert_eq!(pick(Arch::X86, Some(os(5, 1, None, false))), r"X\NT_51");
    assert_eq!(pick(Arch::X86, Some(os(6, 1, None, false))), r"X\X86_60");
}

#[test]
fn content_errors_name_file_and_line() {
    let e = Inf::parse(b"[Version]\nClass=\"open\n", "bad.inf").unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("bad.inf", Some(2)));
    assert!(e.to_string().starts_with("bad.inf:2: unterminated"), "{e}");
    let e = Inf::parse(b"[Version\n", "h.inf").unwrap_err();
    assert_eq!(e.line, Some(1));
    let inf = Inf::parse(b"[Version]\n[Manufacturer]\nM = Gone, NTamd64\n", "m.inf").unwrap();
    let e = inf.models(Arch::Amd64, None).unwrap_err().to_string();
    assert!(e.contains("m.inf:3") && e.contains("Gone.NTamd64"), "{e}");
    let inf = Inf::parse(b"[svc]\nServiceType=1\nStartType = boot\n", "s.inf").unwrap();
    let e = inf.service_install("svc").unwrap_err().to_string();
    assert!(e.starts_with("s.inf:3:") && e.contains("StartType"), "{e}");
    let inf = Inf::parse(b"[r]\nHKX,a,b,0,c\nHKR,a,b,zz,c\nHKR,a,b,1,0g\n", "r.inf").unwrap();
    assert!(inf
        .add_reg("r")
        .unwrap_err()
        .to_string()
        .starts_with("r.inf:2:"));
    assert!(inf
        .version()
        .unwrap_err()
        .to_string()
        .contains("no [Version]"));
}

#[test]
fn hostile_inputs_error_or_degrade() {
    // Self- and mutually-recursive string keys expand once, no loop.
    let inf = Inf::parse(
        b"[Strings]\na=\"%b%\"\nb=\"%a%\"\nc=\"%c%%c%\"\n[x]\nk=%a%,%c%\n",
        "r.inf",
    )
    .unwrap();
    assert_eq!(inf.section("x").unwrap().lines[0].values, ["%b%", "%c%%c%"]);
    // Expansion bomb: every value expands a long string many times.
    let mut t = String::from("[Strings]\nbig=\"");
    t.push_str(&"x".repeat(60_000));
    t.push_str("\"\n[x]\n");
    for _ in 0..2000 {
        t.push_str("k=%big%%big%\n");
    }
    let e = Inf::parse(t.as_bytes(), "bomb.inf").unwrap_err();
    assert!(e.msg.contains("limit"), "{e}");
    // A huge line.
    let mut t = String::from("[x]\nk=");
    t.push_str(&"a".repeat(70_000));
    let e = Inf::parse(t.as_bytes(), "long.inf").unwrap_err();
    assert_eq!(e.line, Some(2));
    // Continuations cannot build a huge line either.
    let t = "[x]\n".to_string() + &"aaaaaaaaaa\\\n".repeat(8000);
    assert!(Inf::parse(t.as_bytes(), "cont.inf").is_err());
    // Too big a file.
    let big = vec![b' '; guest::drivers::inf::MAX_INF_SIZE + 1];
    assert!(Inf::parse(&big, "huge.inf")
        .unwrap_err()
        .to_string()
        .contains("huge.inf"));
    // A non-ASCII decoration (found by fuzzing) is ignored.
    let inf = Inf::parse(
        "[Version]\n[Manufacturer]\nM = Mod, N\u{84}T\n".as_bytes(),
        "u.inf",
    )
    .unwrap();
    assert!(inf.models(Arch::Amd64, None).unwrap().is_empty());
    // Arbitrary bytes never panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..300 {
        let n = (round * 37) % 3000;
        let mut b = Vec::with_capacity(n);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(b"[]=,;\"%\\\r\nab0x1 NTamd64."[(x % 24) as usize]);
        }
        if let Ok(inf) = Inf::parse(&b, "fuzz.inf") {
            let _ = inf.summary(Arch::Amd64, None);
            let _ = inf.summary(Arch::X86, None);
        }
    }
}

#[test]
fn source_files_decorations_and_direct_copy() {
    let text = "[Version]\nSignature=\"$Windows NT$\"\nCatalogFile.NTx86 = x.cat\n\
        [Manufacturer]\nM = Mod, NTamd64, NTx86, N\u{84}T\n\
        [Mod.NTamd64]\nd = inst, HW\\A\n[Mod.NTx86]\nd = inst, HW\\A\n\
        [inst.NTamd64]\nCopyFiles = @direct.sys, List\n\
        [inst]\nCopyFiles = List\n\
        [inst.NTamd64.Services]\nAddService = svc, 0x2, svc_inst\n\
        [svc_inst]\nServiceType = 1\nStartType = 3\nErrorControl = 1\nServiceBinary = %12%\\drv.sys\n\
        [List]\ndest.sys, src.sys,,0x4\nplain.dll\n\
        [SourceDisksNames]\n1 = \"Disk\",,,\\drivers\n2 = \"Other\",,,\n\
        [SourceDisksFiles]\nsrc.sys = 1\nplain.dll = 2, sub\\dir\ndirect.sys = 1\n\
        [SourceDisksFiles.amd64]\nsrc.sys = 2, amd64\n\
        [DestinationDirs]\nDefaultDestDir = 12\nList = 10, System32\\extra\n";
    let inf = Inf::parse(text.as_bytes(), "f.inf").unwrap();
    let a = inf.summary(Arch::Amd64, None).unwrap();
    assert_eq!(a.install_sections[0].name, "inst.NTamd64");
    assert_eq!(a.catalog_file, None);
    assert_eq!(
        a.files,
        ["amd64/src.sys", "sub/dir/plain.dll", "drivers/direct.sys"]
    );
    assert_eq!(a.main_service().unwrap().add_service.name, "svc");
    let x = inf.summary(Arch::X86, None).unwrap();
    assert_eq!(x.install_sections[0].name, "inst");
    assert!(x.services.is_empty());
    assert_eq!(x.catalog_file.as_deref(), Some("x.cat"));
    assert_eq!(
        x.files,
        ["drivers/src.sys", "sub/dir/plain.dll", "drivers/direct.sys"]
    );
    let list = inf.copy_files("List").unwrap();
    assert_eq!(
        (
            list[0].dest.as_str(),
            list[0].source.as_str(),
            list[0].flags
        ),
        ("dest.sys", "src.sys", 4)
    );
    assert_eq!(list[1].source, "plain.dll");
    let dd = inf.destination_dirs();
    assert_eq!(
        (dd[1].section.as_str(), dd[1].dirid, dd[1].subdir.as_str()),
        ("List", Some(10), r"System32\extra")
    );
}
