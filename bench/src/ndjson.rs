//! `http-recv`: an HTTP/1.1 receiver for logtrain's `http://` drain. Accepts
//! any number of keep-alive connections, reads each POST body
//! (`Content-Length` or chunked), gunzips it when `Content-Encoding: gzip`,
//! and counts its NDJSON lines and their bytes (uncompressed) exactly; the
//! compressed bytes on the wire are counted too. Every request is answered
//! `200` with an empty body. Prints the same JSON line as `recv`, plus
//! `wire_bytes`, `requests` and `gzip_requests`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::GzDecoder;

use crate::Args;
use crate::recv::{Totals, ports, wait_and_report};

/// Request-level counters beside the line counts.
#[derive(Default)]
struct Wire {
    bytes: AtomicU64,
    requests: AtomicU64,
    gzip: AtomicU64,
}

/// One request: its body as sent and whether it is gzipped; `None` at end of stream.
fn request(r: &mut impl BufRead) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = String::new();
    let (mut len, mut chunked, mut gzip) = (0usize, false, false);
    let mut first = true;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.trim_end();
        if first {
            first = false;
            if l.is_empty() {
                first = true; // stray CRLF between requests
            }
            continue;
        }
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => len = v.parse().unwrap_or(0),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "content-encoding" => gzip = v.eq_ignore_ascii_case("gzip"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            r.read_exact(&mut body[at..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some((body, gzip)))
}

/// NDJSON lines and their bytes in a body (gunzipped into `plain` first when
/// `gzip`); `None` when it does not gunzip.
fn count(body: &[u8], gzip: bool, plain: &mut Vec<u8>) -> Option<(u64, u64)> {
    let text: &[u8] = if gzip {
        plain.clear();
        GzDecoder::new(body).read_to_end(plain).ok()?;
        plain
    } else {
        body
    };
    let (mut m, mut b) = (0u64, 0u64);
    for l in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        m += 1;
        b += l.len() as u64;
    }
    Some((m, b))
}

fn serve(s: TcpStream, totals: Arc<Totals>, wire: Arc<Wire>) {
    totals.connections.fetch_add(1, Ordering::Relaxed);
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut plain = Vec::new();
    while let Ok(Some((body, gzip))) = request(&mut r) {
        wire.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        wire.requests.fetch_add(1, Ordering::Relaxed);
        if gzip {
            wire.gzip.fetch_add(1, Ordering::Relaxed);
        }
        let Some((m, b)) = count(&body, gzip, &mut plain) else {
            let _ = w.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        totals.add(m, b);
        if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

pub fn run(a: &Args) -> Result<(), String> {
    let totals = Arc::new(Totals::default());
    let wire = Arc::new(Wire::default());
    for p in ports(a)? {
        let l = TcpListener::bind(("127.0.0.1", p)).map_err(|e| format!("bind 127.0.0.1:{p}: {e}"))?;
        let (t, w) = (totals.clone(), wire.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let _ = s.set_nodelay(true);
                let (t, w) = (t.clone(), w.clone());
                std::thread::spawn(move || serve(s, t, w));
            }
        });
    }
    wait_and_report(a, &totals, &|| {
        format!(
            ",\"wire_bytes\":{},\"requests\":{},\"gzip_requests\":{}",
            wire.bytes.load(Ordering::Acquire),
            wire.requests.load(Ordering::Acquire),
            wire.gzip.load(Ordering::Acquire)
        )
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    #[test]
    fn gzipped_and_chunked_requests_on_one_connection() {
        let ndjson = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(ndjson).unwrap();
        let gz = gz.finish().unwrap();
        let mut wire = format!(
            "POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        wire.extend_from_slice(&gz);
        wire.extend_from_slice(
            b"POST /ingest HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}\n{\r\n3\r\n}\n\n\r\n0\r\n\r\n",
        );
        let mut r = Cursor::new(wire);
        let mut plain = Vec::new();
        let (body, gzip) = request(&mut r).unwrap().unwrap();
        assert!(gzip);
        assert_eq!(count(&body, gzip, &mut plain), Some((3, 21)));
        let (body, gzip) = request(&mut r).unwrap().unwrap();
        assert!(!gzip);
        assert_eq!(body, b"{}\n{}\n\n");
        assert_eq!(count(&body, gzip, &mut plain), Some((2, 4)));
        assert!(request(&mut r).unwrap().is_none());
        assert_eq!(count(b"not gzip", true, &mut plain), None);
    }
}
