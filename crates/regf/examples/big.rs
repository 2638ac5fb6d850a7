fn main() {
    let mut h = regf::Hive::new_empty("ROOT").unwrap();
    h.create_key("k").unwrap();
    let data: Vec<u8> = (0..40000u32).map(|i| (i % 251) as u8).collect();
    h.set_value_raw("k", "big", 3, &data).unwrap();
    h.write_to("/tmp/regf/big.hive").unwrap();
}
