//! Encoders shared by every drain: RFC 5424 lines and the framings that carry them.
//!
//! Encoders append to a caller's buffer and never allocate on their own, so a
//! drain can reuse one buffer for a whole batch.

pub mod framing;
pub mod go_json;
pub mod json;
pub mod kubernetes;
pub mod rfc5424;

/// Appends `v` in decimal, without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}
