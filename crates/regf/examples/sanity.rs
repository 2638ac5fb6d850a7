fn main() {
    for p in std::env::args().skip(1) {
        let t = std::time::Instant::now();
        let (h, rep) = match regf::open_file_with_logs(p.as_ref(), regf::ReplayPolicy::Strict) {
            Ok(x) => x,
            Err(e) => {
                println!("{p}: {e}");
                regf::open_file_with_logs(p.as_ref(), regf::ReplayPolicy::IgnoreLogs).unwrap()
            }
        };
        let t1 = t.elapsed();
        let probs = h.check();
        println!(
            "{p}: open {:?} check {:?} problems {} report {:?}",
            t1,
            t.elapsed(),
            probs.len(),
            rep
        );
        for pr in probs.iter().take(10) {
            println!("  {pr}");
        }
        println!("ccs {:?}", h.current_control_set());
    }
}
