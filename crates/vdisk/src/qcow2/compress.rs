//! Decompression of qcow2 compressed clusters (raw deflate or zstd) into a
//! buffer of exactly one cluster; output beyond the cluster is an error.

use super::header::Compression;
use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

thread_local! {
    /// One inflate state per reader thread, reset for each cluster: a
    /// fresh state per cluster cost an allocation (and its page faults)
    /// 16 thousand times per GiB.
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    /// One zstd decoder per reader thread (its window buffer is reused).
    static ZSTD: RefCell<Option<Decoder<'static>>> = const { RefCell::new(None) };
}

/// Largest zstd window accepted (8 MiB; qcow2 clusters are at most 2 MiB),
/// so a hostile frame header cannot make the decoder allocate more.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Inflate `input` into `out`, which must be filled exactly.
pub fn decompress(kind: Compression, input: &[u8], out: &mut [u8]) -> Result<(), String> {
    match kind {
        Compression::Zlib => inflate(input, out),
        Compression::Zstd => unzstd(input, out),
    }
}

fn inflate(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    INFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = slot.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        inflate_with(d, input, out)
    })
}

fn inflate_with(d: &mut Decompress, input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut ended = false;
    loop {
        let in_pos = d.total_in() as usize;
        let out_pos = d.total_out() as usize;
        if out_pos == out.len() {
            break;
        }
        let st = d
            .decompress(&input[in_pos..], &mut out[out_pos..], FlushDecompress::None)
            .map_err(|e| format!("deflate data is invalid: {e}"))?;
        if st == Status::StreamEnd {
            ended = true;
            break;
        }
        if d.total_in() as usize == in_pos && d.total_out() as usize == out_pos {
            break;
        }
    }
    let got = d.total_out() as usize;
    if got < out.len() {
        return Err(format!(
            "compressed cluster inflates to only {got} bytes, expected {}",
            out.len()
        ));
    }
    if !ended {
        let mut extra = [0u8; 1];
        let in_pos = d.total_in() as usize;
        // Errors here concern bytes beyond the cluster: only growth matters.
        let _ = d.decompress(&input[in_pos..], &mut extra, FlushDecompress::None);
        if d.total_out() as usize > got {
            return Err(format!(
                "compressed cluster inflates beyond the cluster size of {} bytes",
                out.len()
            ));
        }
    }
    Ok(())
}

fn unzstd(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let zerr = |e: std::io::Error| format!("zstd data is invalid: {e}");
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        // A decoder left mid-frame by an earlier error starts a new session;
        // one that cannot is replaced.
        if let Some(d) = slot.as_mut() {
            if d.reinit().is_err() {
                *slot = None;
            }
        }
        if slot.is_none() {
            let mut d = Decoder::new().map_err(zerr)?;
            // Session resets keep parameters: the window cap stays.
            d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
                .map_err(zerr)?;
            *slot = Some(d);
        }
        unzstd_with(slot.as_mut().expect("set above"), input, out)
    })
}

fn unzstd_with(dec: &mut Decoder<'static>, input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let zerr = |e: std::io::Error| format!("zstd data is invalid: {e}");
    let total = out.len();
    let mut inb = InBuffer::around(input);
    let mut hint = 1;
    let mut got = 0;
    {
        let mut outb = OutBuffer::around(&mut out[..]);
        while outb.pos() < total {
            let (ip, op) = (inb.pos(), outb.pos());
            hint = dec.run(&mut inb, &mut outb).map_err(zerr)?;
            if inb.pos() == ip && outb.pos() == op {
                break;
            }
        }
        got += outb.pos();
    }
    if got < total {
        return Err(format!(
            "compressed cluster decompresses to only {got} bytes, expected {total}"
        ));
    }
    if hint != 0 {
        // The frame is not finished: it must not produce more output.
        let mut extra = [0u8; 1];
        let mut outb = OutBuffer::around(&mut extra[..]);
        let _ = dec.run(&mut inb, &mut outb);
        if outb.pos() > 0 {
            return Err(format!(
                "compressed cluster decompresses beyond the cluster size of {total} bytes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn zlib_exact_short_and_long() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let c = deflate(&data);
        let mut out = vec![0u8; 4096];
        decompress(Compression::Zlib, &c, &mut out).unwrap();
        assert_eq!(out, data);
        let mut big = vec![0u8; 8192];
        let e = decompress(Compression::Zlib, &c, &mut big).unwrap_err();
        assert!(e.contains("only 4096"), "{e}");
        let mut small = vec![0u8; 2048];
        let e = decompress(Compression::Zlib, &c, &mut small).unwrap_err();
        assert!(e.contains("beyond"), "{e}");
    }

    #[test]
    fn zstd_exact_with_padding_and_long() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 253) as u8).collect();
        let mut c = zstd::bulk::compress(&data, 3).unwrap();
        c.extend_from_slice(&[0u8; 300]); // sector padding as in qcow2
        let mut out = vec![0u8; 4096];
        decompress(Compression::Zstd, &c, &mut out).unwrap();
        assert_eq!(out, data);
        let mut small = vec![0u8; 1000];
        let e = decompress(Compression::Zstd, &c, &mut small).unwrap_err();
        assert!(e.contains("beyond"), "{e}");
        let mut garbage = vec![0x55u8; 600];
        assert!(decompress(Compression::Zstd, &garbage, &mut out).is_err());
        garbage.clear();
        assert!(decompress(Compression::Zlib, &garbage, &mut out).is_err());
    }
}
