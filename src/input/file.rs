//! The container log tailer's building blocks. [`format`] parses CRI and
//! docker json-file lines and reassembles partial lines.

pub mod format;
