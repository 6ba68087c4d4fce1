//! What a drain URL may show of itself: [`mask_credentials`] (at most
//! `scheme://host:port`, even for a URL that does not parse) and the digest
//! that tells URLs apart in ids. Never returns user info, path, query or
//! fragment. Pure functions only.

/// What an error shows of a drain URL in which not even a scheme can be found.
pub const UNPARSEABLE: &str = "<unparseable>";

/// What may be shown of a drain URL, even one that does not parse:
/// `scheme://host[:port]` as written, never user info, path, query or
/// fragment. When the host cannot be told apart from a password (an `@`
/// after the first `/`, `?` or `#`) or is not a plain host name or address,
/// only `scheme://`; without a scheme, [`UNPARSEABLE`].
pub fn mask_credentials(raw: &str) -> String {
    let raw = raw.trim();
    let Some((scheme, rest)) = raw.split_once("://") else {
        return UNPARSEABLE.into();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return UNPARSEABLE.into();
    }
    let host = host_part(rest).filter(|h| is_host_port(h)).unwrap_or_default();
    format!("{}://{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase())
}

/// The `host[:port]` of what follows `scheme://`, when it is unambiguous.
fn host_part(rest: &str) -> Option<&str> {
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    match rest.rfind('@') {
        None => Some(&rest[..end]),
        Some(at) if at < end => Some(&rest[at + 1..end]),
        // A password holding '/', '?' or '#', or an '@' in a path or query:
        // the text alone cannot tell, so nothing is shown.
        Some(_) => None,
    }
}

/// Whether an `@` follows the first `/`, `?` or `#` after `scheme://` (see
/// [`host_part`]): URL parsers then take part of a password for the host.
pub(super) fn host_is_ambiguous(raw: &str) -> bool {
    raw.split_once("://").is_some_and(|(_, rest)| host_part(rest).is_none())
}

/// A plain host name, IPv4 address or bracketed IPv6 address, with an optional port.
fn is_host_port(s: &str) -> bool {
    let v6 = s.starts_with('[');
    let (host, port) = match s.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, after)) => match after.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return false,
            },
            None => return false,
        },
        None => match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        },
    };
    let host_byte = |b: u8| {
        if v6 {
            b.is_ascii_hexdigit() || matches!(b, b':' | b'.')
        } else {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
        }
    };
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    !host.is_empty() && host.bytes().all(host_byte) && port_ok
}

/// The first 8 hex digits of SHA-256 of `text`: tells URLs apart, reveals none.
pub(super) fn digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
