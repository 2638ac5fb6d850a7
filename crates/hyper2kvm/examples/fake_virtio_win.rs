//! Build a fake virtio-win tree (every path of a real listing; INF files
//! from the virtio-win INF templates, other files a few bytes naming their
//! path) for trying `driver-disk` and `migrate --virtio-win` without the
//! real ISO:
//!
//! `cargo run --example fake_virtio_win -- LIST INX_DIR OUT_DIR [EXTRA_PATH...]`
//! (LIST and INX_DIR: `../shared/testdata/virtio-win-layout/iso-list.txt`,
//! `../shared/testdata/virtio-win-inx`).

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        anyhow::bail!("usage: fake_virtio_win LIST INX_DIR OUT_DIR [EXTRA_PATH...]");
    }
    let extra: Vec<&str> = a[4..].iter().map(String::as_str).collect();
    let written = guest::drivers::fixture::build_fake_virtio_win(
        a[1].as_ref(),
        a[2].as_ref(),
        a[3].as_ref(),
        &extra,
    )?;
    println!("{} files under {}", written.len(), a[3]);
    Ok(())
}
