//! LVM2 linear volumes against the real lvm2 tools (on loop devices,
//! needs root): a VG over two PVs made by `pvcreate`/`vgcreate`/`lvcreate`
//! /`lvextend`, an LV whose segments lie on both PVs; our label, metadata
//! and LV readers must agree with `pvs`/`lvs --segments` (UUIDs, extent
//! size, segment layout) and read exactly the bytes at the extents lvm2
//! reports. Striped LVs and missing PVs give typed errors; hostile label,
//! metadata-area and metadata-text bytes give errors, never panics.

use linuxfs::lvm::{self, parse_metadata, read_label, VolumeGroup};
use linuxfs::Error;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use testkit::lvm::{lv_map, lvm, pvs, segments, Loop};
use vdisk::Disk;

/// Deterministic noise.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A disk in memory (hostile variants of a real PV).
#[derive(Debug)]
struct Mem(Vec<u8>);

impl Disk for Mem {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], off: u64) -> vdisk::Result<()> {
        vdisk::disk::check_range(self.size(), off, buf.len() as u64)?;
        buf.copy_from_slice(&self.0[off as usize..off as usize + buf.len()]);
        Ok(())
    }
    fn layer(&self) -> vdisk::LayerInfo {
        vdisk::LayerInfo {
            path: "mem".into(),
            format: "raw".into(),
            subformat: None,
            virtual_size: self.size(),
            file_size: self.size(),
            extra_files: vec![],
            warnings: vec![],
            geometry: Default::default(),
        }
    }
}

struct Vg {
    _dir: tempfile::TempDir,
    a: Loop,
    b: Loop,
    name: String,
}

/// Two 40 MiB PVs (the second with two metadata copies), 4 MiB extents;
/// `root` = 3 extents on A, then `swap` 2 on A, then `root` extended by 4
/// on B and 1 more on A; `striped` over both.
fn build() -> Vg {
    let dir = tempfile::tempdir().unwrap();
    let mk = |n: &str, seed| {
        let p = dir.path().join(n);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(40 << 20).unwrap();
        f.write_all_at(&noise(40 << 20, seed), 0).unwrap();
        p
    };
    let (fa, fb) = (mk("a.img", 7), mk("b.img", 8));
    let (a, b) = (Loop::attach(&fa), Loop::attach(&fb));
    let name = format!("h2kt{}", std::process::id());
    let l = [&a, &b];
    lvm(&l, "pvcreate", &["-ff", "-y", &a.dev]);
    lvm(
        &l,
        "pvcreate",
        &["-ff", "-y", "--pvmetadatacopies", "2", &b.dev],
    );
    lvm(&l, "vgcreate", &["-s", "4m", &name, &a.dev, &b.dev]);
    let lvc = |args: &[&str]| {
        let mut v = vec!["-an", "--zero", "n", "-y"];
        v.extend_from_slice(args);
        lvm(&l, "lvcreate", &v);
    };
    lvc(&["-l", "3", "-n", "root", &name, &a.dev]);
    lvc(&["-l", "2", "-n", "swap", &name, &a.dev]);
    lvm(
        &l,
        "lvextend",
        &["-l", "+4", &format!("{name}/root"), &b.dev],
    );
    lvm(
        &l,
        "lvextend",
        &["-l", "+1", &format!("{name}/root"), &a.dev],
    );
    lvc(&["-i", "2", "-I", "64k", "-l", "2", "-n", "striped", &name]);
    Vg {
        _dir: dir,
        a,
        b,
        name,
    }
}

fn raw(p: &Path) -> Arc<dyn Disk> {
    Arc::from(vdisk::open(p).unwrap())
}

fn metadata_of(d: &dyn Disk) -> VolumeGroup {
    let label = read_label(d).unwrap().expect("a PV label");
    parse_metadata(label.metadata.as_deref().expect("metadata text")).unwrap()
}

#[test]
fn lvm_linear_volumes_match_lvs() {
    testkit::need("lvcreate");
    let vg = build();
    let l = [&vg.a, &vg.b];
    let (da, db) = (raw(&vg.a.file), raw(&vg.b.file));
    // Labels: UUIDs as pvs reports them.
    let reported = pvs(&l);
    for (d, lp) in [(&da, &vg.a), (&db, &vg.b)] {
        let label = read_label(&**d).unwrap().unwrap();
        let (_, uuid, pe_start) = reported.iter().find(|p| p.0 == lp.dev).unwrap();
        assert_eq!(label.uuid, uuid.replace('-', ""));
        assert_eq!(label.data_start, Some(*pe_start));
    }
    // Metadata: the newest (both PVs agree), same segments as lvs.
    let (ma, mb) = (metadata_of(&*da), metadata_of(&*db));
    assert_eq!(ma, mb);
    assert_eq!(ma.name, vg.name);
    assert_eq!(ma.extent_size * 512, 4 << 20);
    let segs = segments(&l, &vg.name);
    for lv in ["root", "swap"] {
        let ours = &ma.lvs.iter().find(|x| x.name == lv).unwrap().segments;
        let theirs: Vec<_> = segs.iter().filter(|s| s.lv == lv).collect();
        assert_eq!(ours.len(), theirs.len(), "{lv}");
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!((o.start_extent, o.extent_count), (t.start_pe, t.size_pe));
            assert_eq!(o.stripes[0].1, t.pv_pe);
        }
    }
    assert_eq!(segs.iter().filter(|s| s.lv == "root").count(), 3);
    // LV bytes = the bytes at lvm2's extents, whole and across boundaries.
    let pv_list: Vec<(String, Arc<dyn Disk>)> = vec![
        (read_label(&*da).unwrap().unwrap().uuid, da.clone()),
        (read_label(&*db).unwrap().unwrap().uuid, db.clone()),
    ];
    for lv in ["root", "swap"] {
        let disk = ma.open_lv(lv, &pv_list).unwrap();
        let mut want = Vec::new();
        for (file, off, len) in lv_map(&l, &vg.name, lv) {
            let f = std::fs::File::open(file).unwrap();
            let mut b = vec![0u8; len as usize];
            f.read_exact_at(&mut b, off).unwrap();
            want.extend(b);
        }
        assert_eq!(disk.size(), want.len() as u64, "{lv}");
        let mut got = vec![0u8; want.len()];
        disk.read_at(&mut got, 0).unwrap();
        assert!(got == want, "{lv}: contents differ from lvm2's extents");
        let mut piece = vec![0u8; 5000];
        let at = (3 << 22) - 1234;
        if at + 5000 < want.len() {
            disk.read_at(&mut piece, at as u64).unwrap();
            assert_eq!(piece, want[at..at + 5000]);
        }
        assert!(disk.read_at(&mut piece, disk.size() - 10).is_err());
    }
    // Striped: a typed error naming the LV and the layout.
    match ma.open_lv("striped", &pv_list) {
        Err(Error::LvmUnsupported { lv, feature }) => {
            assert_eq!(lv, format!("{}/striped", vg.name));
            assert!(feature.contains("striped segment over 2 PVs"), "{feature}");
        }
        other => panic!("striped LV: {other:?}"),
    }
    // Missing PV: root without B names B's UUID.
    match ma.open_lv("root", &pv_list[..1]) {
        Err(Error::LvmMissingPv { lv, id, .. }) => {
            assert_eq!(lv, format!("{}/root", vg.name));
            let b_uuid = &reported.iter().find(|p| p.0 == vg.b.dev).unwrap().1;
            assert_eq!(&id, b_uuid);
        }
        other => panic!("missing PV: {other:?}"),
    }
    assert!(matches!(
        ma.open_lv("nope", &pv_list),
        Err(Error::LvmNoVolume { .. })
    ));
    hostile_labels(&std::fs::read(&vg.a.file).unwrap()[..2 << 20]);
}

/// Seeded byte changes in the label sector, the mda header and the
/// metadata text of a real PV (two metadata areas): each ends in Ok or an
/// error.
fn hostile_labels(pv: &[u8]) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let text_at = pv
        .windows(10)
        .position(|w| w == b" {\nid = \"")
        .unwrap_or(4096 + 512);
    let (mut errors, mut parsed) = (0, 0);
    for case in 0..400 {
        let mut img = pv.to_vec();
        let region = match case % 3 {
            0 => 512..1024,
            1 => 4096..4096 + 64,
            _ => text_at..text_at + 600,
        };
        for _ in 0..1 + rnd() % 6 {
            let at = region.start + (rnd() as usize) % region.len();
            img[at] = rnd() as u8;
        }
        let mem = Mem(img);
        match read_label(&mem) {
            Ok(Some(l)) => {
                if let Some(t) = l.metadata {
                    match parse_metadata(&t) {
                        Ok(vg) => {
                            parsed += 1;
                            for lv in &vg.lvs {
                                let _ = vg.open_lv(
                                    &lv.name,
                                    &[(
                                        l.uuid.clone(),
                                        Arc::new(Mem(pv.to_vec())) as Arc<dyn Disk>,
                                    )],
                                );
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
            }
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(
        errors > 20 && parsed > 20,
        "errors {errors}, parsed {parsed}"
    );
}

#[test]
fn lvm_metadata_text_errors() {
    for (text, want) in [
        ("vg { extent_size = 8192\n", "not closed"),
        ("vg { id = \"abc }", "unterminated string"),
        ("vg { = 3 }", "expected a name"),
        ("vg { a = [1, 2 }", "expected a value"),
        ("x = 1\n", "no volume group section"),
        ("vg { extent_size = 0 }", "extent_size is 0"),
        ("vg { id = \"x\" }", "missing or negative extent_size"),
    ] {
        let e = parse_metadata(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let deep = format!("vg {{ a = {}1{} }}", "[".repeat(100), "]".repeat(100));
    assert!(parse_metadata(&deep)
        .unwrap_err()
        .to_string()
        .contains("deeper"));
    let text = "vg {\nextent_size = 8\nphysical_volumes {\npv0 {\nid = \"a\"\npe_start = 8\npe_count = 4\n}\n}\nlogical_volumes {\nt {\nstatus = [\"VISIBLE\"]\nsegment1 {\nstart_extent = 0\nextent_count = 2\ntype = \"thin\"\n}\n}\nbig {\nsegment1 {\nstart_extent = 0\nextent_count = 9\ntype = \"striped\"\nstripes = [\"pv0\", 0]\n}\n}\n}\n}\n";
    let vg = parse_metadata(text).unwrap();
    let pv: Arc<dyn Disk> = Arc::new(Mem(vec![0u8; 1 << 20]));
    let pvs = [("a".to_string(), pv)];
    match vg.open_lv("t", &pvs) {
        Err(Error::LvmUnsupported { lv, feature }) => {
            assert_eq!(lv, "vg/t");
            assert_eq!(feature, "a \"thin\" segment");
        }
        other => panic!("{other:?}"),
    }
    let e = vg.open_lv("big", &pvs).unwrap_err().to_string();
    assert!(e.contains("outside PV pv0"), "{e}");
    let _ = lvm::MAX_METADATA;
}
