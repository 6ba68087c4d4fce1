//! `gen`: container logs in CRI format under kubelet's file names, the same
//! bytes on every run (a fixed seed).
//!
//! Each line is 200–250 bytes with its newline: a CRI header (RFC 3339 time
//! with nanoseconds, `stdout`/`stderr`, `F`) and a message that starts with its
//! sequence number. Pod `APP-7d9f8c6b5-xxxxx` in `NAMESPACE`, so logtrain's
//! fallback hostname is `APP.NAMESPACE`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Args, Rng, filler};

/// The log file name of container `i` of pod `app` in `namespace`.
pub fn file_name(app: &str, namespace: &str, i: u64) -> String {
    format!("{app}-7d9f8c6b5-x{i:04}_{namespace}_main-{i:064x}.log")
}

/// Appends one CRI line (with its newline) of 200–250 bytes.
pub fn cri_line(rng: &mut Rng, seq: u64, out: &mut Vec<u8>) {
    let total = 200 + rng.below(51) as usize;
    let start = out.len();
    let secs = seq / 100_000;
    let nanos = (seq % 100_000) * 10_000 + rng.below(10_000);
    let stream = if seq % 10 == 9 { "stderr" } else { "stdout" };
    write!(
        out,
        "2026-11-22T{:02}:{:02}:{:02}.{nanos:09}Z {stream} F seq={seq} ",
        1 + secs / 3600 % 23,
        secs / 60 % 60,
        secs % 60
    )
    .expect("write to a Vec");
    let used = out.len() - start;
    filler(rng, total.saturating_sub(used + 1).max(1), out);
    out.push(b'\n');
}

pub fn run(a: &Args) -> Result<(), String> {
    let dir = PathBuf::from(a.str("dir", ""));
    if dir.as_os_str().is_empty() {
        return Err("gen needs --dir".into());
    }
    let lines = a.num("lines", 2_000_000)?;
    let files = a.num("files", 1)?.max(1);
    let app = a.str("app", "bench");
    let ns = a.str("namespace", "default");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut total_bytes = 0u64;
    for f in 0..files {
        let path = dir.join(file_name(&app, &ns, f));
        total_bytes += write_file(&path, lines, f)?;
    }
    println!(
        "{{\"files\":{files},\"lines_per_file\":{lines},\"bytes\":{total_bytes},\"dir\":\"{}\"}}",
        dir.display()
    );
    Ok(())
}

fn write_file(path: &Path, lines: u64, seed: u64) -> Result<u64, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).map_err(err)?);
    let mut rng = Rng::new(0x5EED + seed);
    let mut line = Vec::with_capacity(256);
    let mut bytes = 0u64;
    for seq in 0..lines {
        line.clear();
        cri_line(&mut rng, seq, &mut line);
        bytes += line.len() as u64;
        w.write_all(&line).map_err(err)?;
    }
    w.flush().map_err(err)?;
    Ok(bytes)
}
