fn main() {
    let p = std::env::args().nth(1).unwrap();
    let (h, _) = regf::open_file_with_logs(p.as_ref(), regf::ReplayPolicy::IgnoreLogs).unwrap();
    for pr in h.check().iter().take(10) {
        println!("{pr}");
    }
}
