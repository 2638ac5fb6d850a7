//! Edits checked in both directions against hivex, reglookup and regipy.
mod support;

use std::process::Command;

use rand::{Rng, SeedableRng};
use regf::{Hive, ReplayPolicy, Value};
use support::*;

const SCSI_GUID: &str = "{4D36E97B-E325-11CE-BFC1-08002BE10318}";

fn add_viostor(h: &mut Hive, ccs: &str) {
    let svc = format!("{ccs}\\Services\\viostor");
    h.create_key(&svc).unwrap();
    h.set_value(&svc, "Start", &Value::Dword(0)).unwrap();
    h.set_value(&svc, "Type", &Value::Dword(1)).unwrap();
    h.set_value(&svc, "ErrorControl", &Value::Dword(1)).unwrap();
    h.set_value(&svc, "Group", &Value::String("SCSI miniport".into()))
        .unwrap();
    h.set_value(
        &svc,
        "ImagePath",
        &Value::ExpandString("system32\\drivers\\viostor.sys".into()),
    )
    .unwrap();
    h.create_key(&format!("{svc}\\Parameters\\PnpInterface"))
        .unwrap();
    h.set_value(
        &format!("{svc}\\Parameters\\PnpInterface"),
        "5",
        &Value::Dword(1),
    )
    .unwrap();
    assert_clean(h, "after viostor service");
}

#[test]
fn win7_viostor_and_cdd_read_back_by_hivex_reglookup() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win7");
    let mut h = Hive::from_file(&p).unwrap();
    let ccs = h.current_control_set().unwrap().unwrap();
    add_viostor(&mut h, &ccs);
    for dev in [
        "pci#ven_1af4&dev_1001&subsys_00021af4",
        "pci#ven_1af4&dev_1042&subsys_11001af4",
    ] {
        let k = format!("{ccs}\\Control\\CriticalDeviceDatabase\\{dev}");
        h.create_key(&k).unwrap();
        h.set_value(&k, "Service", &Value::String("viostor".into()))
            .unwrap();
        h.set_value(&k, "ClassGUID", &Value::String(SCSI_GUID.into()))
            .unwrap();
        assert_clean(&h, "after CDD entry");
    }
    // Replace an existing value with a bigger one, delete one, default value.
    h.set_value(
        &format!("{ccs}\\Services\\viostor"),
        "Group",
        &Value::String("SCSI miniport".repeat(3)),
    )
    .unwrap();
    h.set_value(
        &format!("{ccs}\\Services\\viostor"),
        "Group",
        &Value::String("SCSI miniport".into()),
    )
    .unwrap();
    h.set_value(
        &format!("{ccs}\\Services\\viostor"),
        "",
        &Value::String("default".into()),
    )
    .unwrap();
    h.delete_value(&format!("{ccs}\\Services\\viostor"), "")
        .unwrap();
    assert_clean(&h, "after value edits");
    let out = d.path().join("SYSTEM.out");
    h.write_to(&out).unwrap();
    assert!(regf::check_bytes(&std::fs::read(&out).unwrap()).is_empty());
    // Whole tree through hivex equals what we hold.
    assert_same(
        &listing(&Hive::from_file(&out).unwrap()),
        &hivex_listing(&out),
        "edited win7 vs hivexregedit",
    );
    // Point reads through hivexget and reglookup.
    require("hivexget");
    let g = |name: &str| {
        run(Command::new("hivexget")
            .arg(&out)
            .arg("\\ControlSet001\\Services\\viostor")
            .arg(name))
    };
    assert_eq!(g("Group").trim(), "SCSI miniport");
    assert_eq!(g("Start").trim(), "0");
    assert_eq!(g("ImagePath").trim(), "system32\\drivers\\viostor.sys");
    require("reglookup");
    let r = run(Command::new("reglookup")
        .arg("-p")
        .arg("/ControlSet001/Control/CriticalDeviceDatabase/pci#ven_1af4&dev_1001&subsys_00021af4")
        .arg(&out));
    assert!(r.contains("Service,SZ,viostor"), "{r}");
    assert!(r.contains(&format!("ClassGUID,SZ,{SCSI_GUID}")), "{r}");
}

#[test]
fn win10_driver_database_entries_read_back_by_hivex() {
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "SYSTEM-win10-1709");
    let (mut h, _) = regf::open_file_with_logs(&p, ReplayPolicy::IgnoreLogs).unwrap();
    add_viostor(&mut h, "ControlSet001");
    let pkg = "DriverDatabase\\DriverPackages\\viostor.inf_amd64_0123456789abcdef";
    h.create_key(&format!("{pkg}\\Descriptors\\PCI\\VEN_1AF4&DEV_1001"))
        .unwrap();
    h.set_value(
        &format!("{pkg}\\Descriptors\\PCI\\VEN_1AF4&DEV_1001"),
        "Configuration",
        &Value::String("rhelscsi_inst".into()),
    )
    .unwrap();
    h.set_value(pkg, "", &Value::String("oem1.inf".into()))
        .unwrap();
    h.set_value(pkg, "Version", &Value::Binary(vec![0xff; 92]))
        .unwrap();
    h.create_key("DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1001")
        .unwrap();
    h.set_value_raw(
        "DriverDatabase\\DeviceIds\\PCI\\VEN_1AF4&DEV_1001",
        "viostor.inf",
        3,
        &[1, 0xff, 0, 0],
    )
    .unwrap();
    assert_clean(&h, "after DriverDatabase entries");
    let out = d.path().join("SYSTEM.out");
    h.write_to(&out).unwrap();
    assert_same(
        &listing(&Hive::from_file(&out).unwrap()),
        &hivex_listing(&out),
        "edited win10 vs hivexregedit",
    );
}

fn random_value(rng: &mut rand::rngs::StdRng) -> (u32, Vec<u8>) {
    let kind = [0u32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x1234_5678][rng.gen_range(0..13)];
    let len = match rng.gen_range(0..10) {
        0 => 0,
        1..=3 => rng.gen_range(1..=4),
        4..=7 => rng.gen_range(5..200),
        8 => rng.gen_range(200..16344),
        _ => rng.gen_range(16345..60000),
    };
    let data = (0..len).map(|_| rng.gen()).collect();
    (kind, data)
}

#[test]
fn thousands_of_random_edits_read_back_by_hivex_and_regipy() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut h = Hive::new_empty("ROOT").unwrap();
    let mut keys: Vec<String> = vec![String::new()];
    for i in 0..3000 {
        let parent = keys[rng.gen_range(0..keys.len())].clone();
        if rng.gen_bool(0.4) && parent.matches('\\').count() < 6 {
            let name = format!("k{}_{}", rng.gen_range(0..100_000), i);
            let p = if parent.is_empty() {
                name
            } else {
                format!("{parent}\\{name}")
            };
            h.create_key(&p).unwrap();
            keys.push(p);
        } else {
            let (kind, data) = random_value(&mut rng);
            let name = if rng.gen_bool(0.05) {
                String::new()
            } else {
                format!("v{}", rng.gen_range(0..40))
            };
            h.set_value_raw(&parent, &name, kind, &data).unwrap();
        }
        if i % 500 == 0 {
            assert_clean(&h, "during random edits");
        }
    }
    // Many siblings force an index root (ri) list.
    for i in 0..1100 {
        h.create_key(&format!("wide\\S{i:05}")).unwrap();
    }
    // Deletions: random values and subtrees.
    for _ in 0..200 {
        let k = &keys[rng.gen_range(0..keys.len())];
        let _ = h.delete_value(k, &format!("v{}", rng.gen_range(0..40)));
    }
    for _ in 0..30 {
        let i = rng.gen_range(1..keys.len());
        let k = keys[i].clone();
        match h.delete_key(&k, true) {
            Ok(()) => keys.retain(|x| !(x == &k || x.starts_with(&format!("{k}\\")))),
            Err(e) => assert_eq!(e.kind, regf::ErrorKind::NotFound),
        }
    }
    for i in (0..1100).step_by(3) {
        h.delete_key(&format!("wide\\s{i:05}"), false).unwrap();
    }
    assert_clean(&h, "after deletions");
    let ours = listing(&h);
    let out = d.path().join("random.hive");
    if let Ok(keep) = std::env::var("REGF_KEEP") {
        h.clone().write_to(&keep).unwrap();
    }
    h.write_to(&out).unwrap();
    assert!(regf::check_bytes(&std::fs::read(&out).unwrap()).is_empty());
    assert_same(&ours, &hivex_listing(&out), "random edits vs hivexregedit");
    let back = Hive::from_file(&out).unwrap();
    assert_same_as_regipy(&back, &out, "random edits vs regipy");
    // Our own .reg export re-imported into a fresh hive gives the same tree.
    let text = back.export_reg("", "").unwrap();
    let mut again = Hive::new_empty("ROOT").unwrap();
    again.import_reg(&text, None).unwrap();
    assert_same(&listing(&again), &ours, ".reg export/import round trip");
}

#[test]
fn hivex_merge_is_read_back_by_us() {
    require("hivexregedit");
    let d = tempfile::tempdir().unwrap();
    let p = unxz(d.path(), "BCD");
    let reg = d.path().join("m.reg");
    let big: String = (0..20000)
        .map(|i| format!("{:02x}", i % 251))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        &reg,
        format!(
            "Windows Registry Editor Version 5.00\n\n[\\Objects\\NewKey]\n\n[\\Objects\\NewKey\\Sub]\n\"s\"=str(1):\"hello\"\n\"d\"=dword:12345678\n\"big\"=hex(3):{big}\n@=hex(7):61,00,00,00,00,00\n\n[-\\Description]\n"
        ),
    )
    .unwrap();
    run(Command::new("hivexregedit")
        .arg("--merge")
        .arg("--prefix")
        .arg("\\")
        .arg(&p)
        .arg(&reg));
    let h = Hive::from_file(&p).unwrap();
    let k = h.key("objects\\newkey\\sub").unwrap();
    assert_eq!(
        k.value("s").unwrap().unwrap().data().unwrap(),
        Value::String("hello".into())
    );
    assert_eq!(
        k.value("D").unwrap().unwrap().data().unwrap(),
        Value::Dword(0x12345678)
    );
    assert_eq!(k.value("big").unwrap().unwrap().raw().unwrap().len(), 20000);
    assert_eq!(
        k.value("").unwrap().unwrap().data().unwrap(),
        Value::MultiString(vec!["a".into()])
    );
    assert!(h.get_key("Description").unwrap().is_none());
    assert_same(&listing(&h), &hivex_listing(&p), "hivex-merged BCD");
    let errs = h.check_errors();
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn new_plus_import_equals_hivex_merge_on_minimal_hive() {
    require("hivexregedit");
    let d = tempfile::tempdir().unwrap();
    for (reg, prefix) in [
        ("windows-system.reg", "HKEY_LOCAL_MACHINE\\SYSTEM"),
        ("windows-software.reg", "HKEY_LOCAL_MACHINE\\SOFTWARE"),
    ] {
        let theirs = d.path().join(format!("{reg}.hivex"));
        std::fs::copy(phony_dir().join("minimal-hive"), &theirs).unwrap();
        run(Command::new("hivexregedit")
            .arg("--merge")
            .arg("--prefix")
            .arg(prefix)
            .arg(&theirs)
            .arg(phony_dir().join(reg)));
        let mut ours = Hive::new_empty("ROOT").unwrap();
        let text = std::fs::read_to_string(phony_dir().join(reg)).unwrap();
        ours.import_reg(&text, Some(prefix)).unwrap();
        assert_clean(&ours, reg);
        let out = d.path().join(format!("{reg}.ours"));
        ours.write_to(&out).unwrap();
        assert_same(&hivex_listing(&out), &hivex_listing(&theirs), reg);
    }
}

#[test]
fn freed_cells_are_coalesced_and_reused() {
    let mut h = Hive::new_empty("ROOT").unwrap();
    let fill = |h: &mut Hive| {
        for i in 0..300 {
            let k = format!("T\\K{i}");
            h.create_key(&k).unwrap();
            h.set_value(&k, "s", &Value::String("y".repeat(i % 50)))
                .unwrap();
            h.set_value(&k, "b", &Value::Binary(vec![i as u8; (i * 37) % 3000]))
                .unwrap();
        }
        h.set_value("T", "big", &Value::Binary(vec![1; 50000]))
            .unwrap();
    };
    fill(&mut h);
    let size1 = h.commit().len();
    h.delete_key("T", true).unwrap();
    assert_clean(&h, "after deleting everything");
    let bins = (size1 - 4096).div_ceil(4096);
    let bytes = h.commit();
    let reopened = Hive::open(bytes).unwrap();
    assert!(reopened.check().is_empty());
    // Everything freed merged back: at most a handful of free cells per bin.
    assert!(
        reopened.free_cell_count() <= bins * 2,
        "{} free cells in {bins} bins",
        reopened.free_cell_count()
    );
    fill(&mut h);
    let size2 = h.commit().len();
    assert!(
        size2 <= size1 + 4096 * 2,
        "space not reused: {size1} -> {size2} ({bins} bins)"
    );
    assert_clean(&h, "after refilling");
}
