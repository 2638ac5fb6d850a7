#![no_main]
//! Fuzz the boot loader config parsers (grub.cfg with grubenv, BLS
//! entries) and the fstab/crypttab rewrite: never panic.
use guest::linux::bootcfg::{default_boot, parse_grubenv};
use guest::linux::fstab::{rewrite, TabKind};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // First line doubles as grubenv, the rest as grub.cfg / BLS entry.
    let (env, cfg) = text.split_once('\n').unwrap_or(("", &text));
    let _ = parse_grubenv(env);
    let _ = default_boot(Some(cfg), Some(env), &[]);
    let bls = vec![("a-1.conf".to_string(), cfg.to_string())];
    let _ = default_boot(Some(cfg), Some(env), &bls);
    let _ = default_boot(None, Some(env), &bls);
    let map = BTreeMap::from([("/dev/sda1".to_string(), "u".to_string())]);
    let _ = rewrite(&text, TabKind::Fstab, &map);
    let _ = rewrite(&text, TabKind::Crypttab, &map);
});
