//! Encoders shared by every drain: RFC 5424 lines and the framings that carry them.
//!
//! Encoders append to a caller's buffer and never allocate on their own, so a
//! drain can reuse one buffer for a whole batch.

pub mod framing;
pub mod json;
pub mod rfc5424;
