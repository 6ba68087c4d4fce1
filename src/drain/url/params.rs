//! Query parameters of drain URLs: each of logtrain's own parameters parsed
//! by one function into a typed value, credentials turned into an [`Auth`].
//! Errors quote a value only when it is short and plain ([`quoted`]): a value
//! may be a token written in the wrong place. Pure functions only.

use std::time::Duration;

use base64::Engine as _;

use super::kind::{Auth, TlsOptions};
use super::{BATCH_BYTES_RANGE, LINGER_MS_RANGE};
use crate::encode::framing::Framing;

/// What is wrong with a drain URL and what would be valid: a
/// [`DrainUrlError`](super::DrainUrlError) without the URL.
pub(super) struct Problem {
    pub problem: String,
    pub valid: String,
}

impl Problem {
    pub fn new(problem: impl Into<String>, valid: impl Into<String>) -> Self {
        Problem {
            problem: problem.into(),
            valid: valid.into(),
        }
    }
}

/// The parameters of one URL, each taken by the kind that uses it.
#[derive(Default)]
pub(super) struct Params {
    pub ca: Vec<Vec<u8>>,
    pub insecure: bool,
    /// `auth=`, lower case.
    pub auth: Option<String>,
    pub index: Option<String>,
    pub framing: Option<Framing>,
    pub max_datagram: Option<usize>,
    pub batch_bytes: Option<usize>,
    pub linger: Option<Duration>,
    /// `body=go`: the Go logtrain's one-POST-per-record JSON body.
    pub go_body: bool,
    /// Parameters not logtrain's, passed on to the target (`http(s)://`).
    pub passthrough: Vec<(String, String)>,
}

impl Params {
    /// The TLS options `ca=` and `insecure=` gave.
    pub fn tls(&mut self) -> TlsOptions {
        TlsOptions {
            ca: std::mem::take(&mut self.ca),
            insecure: self.insecure,
        }
    }

    /// Parses parameter `k` (one the scheme accepts) with value `v`.
    pub fn set(&mut self, k: &str, v: &str) -> Result<(), Problem> {
        match k {
            "ca" => {
                self.ca = decode_ca(v).map_err(|p| {
                    Problem::new(
                        format!("parameter ca: {p}"),
                        "ca= takes base64 of one or more PEM certificates",
                    )
                })?;
            }
            "insecure" => {
                self.insecure = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(Problem::new(
                            format!("parameter insecure={}", quoted(other)),
                            "insecure= takes true or false",
                        ));
                    }
                }
            }
            "auth" => self.auth = Some(v.to_ascii_lowercase()),
            "body" => {
                self.go_body = match v.to_ascii_lowercase().as_str() {
                    "go" => true,
                    "ndjson" => false,
                    other => {
                        return Err(Problem::new(
                            format!("parameter body={}", quoted(other)),
                            "body= takes ndjson (batches, the default) or go (one JSON POST per record, as the Go logtrain)",
                        ));
                    }
                }
            }
            "index" => {
                if v.is_empty() {
                    return Err(Problem::new(
                        "parameter index is empty",
                        "index= takes an index name, optionally with %Y %m %d",
                    ));
                }
                self.index = Some(v.to_string());
            }
            "framing" => {
                self.framing = Some(match v.to_ascii_lowercase().as_str() {
                    "octet" | "octet-counting" | "octet_counting" => Framing::OctetCounting,
                    "newline" | "lf" => Framing::Newline,
                    other => {
                        return Err(Problem::new(
                            format!("parameter framing={}", quoted(other)),
                            "framing= takes octet or newline",
                        ));
                    }
                })
            }
            "max_size" => {
                let n = v.parse::<usize>().ok().filter(|n| (480..=65_507).contains(n));
                self.max_datagram = Some(n.ok_or_else(|| {
                    Problem::new(
                        format!("parameter max_size={}", quoted(v)),
                        "max_size= takes a datagram size from 480 to 65507 bytes",
                    )
                })?);
            }
            "batch_bytes" => {
                let n = v.parse::<usize>().ok().filter(|n| BATCH_BYTES_RANGE.contains(n));
                self.batch_bytes = Some(n.ok_or_else(|| {
                    Problem::new(
                        format!("parameter batch_bytes={}", quoted(v)),
                        format!(
                            "batch_bytes= takes a byte count from {} to {} (100 MiB)",
                            BATCH_BYTES_RANGE.start(),
                            BATCH_BYTES_RANGE.end()
                        ),
                    )
                })?);
            }
            "linger_ms" => {
                let ms = v.parse::<u64>().ok().filter(|n| LINGER_MS_RANGE.contains(n));
                let ms = ms.ok_or_else(|| {
                    Problem::new(
                        format!("parameter linger_ms={}", quoted(v)),
                        format!(
                            "linger_ms= takes milliseconds from {} to {}",
                            LINGER_MS_RANGE.start(),
                            LINGER_MS_RANGE.end()
                        ),
                    )
                })?;
                self.linger = Some(Duration::from_millis(ms));
            }
            _ => unreachable!("every parameter a scheme accepts is parsed here"),
        }
        Ok(())
    }

    /// The [`Auth`] of `auth=` and the URL's credentials.
    pub fn auth(&self, user: String, password: Option<String>) -> Result<Auth, Problem> {
        Ok(match (self.auth.as_deref(), password) {
            (None, None) => Auth::None,
            (Some(k), None) => {
                return Err(Problem::new(
                    format!("auth={} needs credentials in the URL", quoted(k)),
                    "give user:password@host (the password is the token for bearer)",
                ));
            }
            (None | Some("basic"), Some(p)) => Auth::Basic { user, password: p },
            (Some("bearer"), Some(p)) => Auth::Bearer { token: p },
            (Some("apikey"), Some(p)) => Auth::ApiKey { id: user, key: p },
            (Some(other), Some(_)) => {
                return Err(Problem::new(
                    format!("parameter auth={}", quoted(other)),
                    "auth= takes basic, bearer or apikey",
                ));
            }
        })
    }
}

pub(super) fn decode_component(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Decodes `ca=`: base64 (standard or URL-safe, padding optional) of PEM text
/// holding at least one certificate.
fn decode_ca(v: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use rustls_pki_types::pem::PemObject;
    // `+` in a query string may have been decoded as a space.
    let v = v.trim().replace(' ', "+");
    let pem = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(v.as_bytes()).ok())
        .ok_or("not valid base64")?;
    let mut out = Vec::new();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("bad PEM ({e})"))?;
        out.push(cert.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err("no PEM certificate inside".into());
    }
    Ok(out)
}

/// A parameter's value as an error may quote it: a word (`maybe`, `json`) or
/// a number with at most a short unit (`5MiB`, `-1`, `0.5`). Anything else
/// may be a token written in the wrong place and is not shown.
pub(super) fn quoted(v: &str) -> String {
    let word = v.bytes().all(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_'));
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number = v.len() - digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-'));
    if v.len() <= 16 && (word || number) {
        format!("\"{v}\"")
    } else {
        "(value not shown)".into()
    }
}

/// A parameter's name as an error may quote it: lower-case words only.
pub(super) fn quoted_name(k: &str) -> String {
    if k.len() <= 24 && !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || matches!(b, b'-' | b'_')) {
        format!("\"{k}\"")
    } else {
        "(name not shown)".into()
    }
}
