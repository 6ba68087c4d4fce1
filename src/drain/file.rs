//! The `file://` drain: appends one RFC 5424 line per record to a local file,
//! and reopens it after SIGHUP so external log rotation works.
//!
//! An open failure (missing folder, permissions) is a connect error: the driver
//! logs it once, counts it, and retries with backoff while other drains go on.

use std::path::PathBuf;

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::driver::{Delivery, DriverConfig, Sink, SinkError};
use crate::encode::framing::newline_delimited;
use crate::record::SharedRecord;
use crate::time::Timestamp;

pub struct FileSink {
    path: PathBuf,
    reopen: watch::Receiver<u64>,
}

impl FileSink {
    pub fn new(path: PathBuf, reopen: watch::Receiver<u64>) -> Self {
        FileSink { path, reopen }
    }

    async fn open(&self) -> Result<File, SinkError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| SinkError::connect("cannot open the file", e))
    }
}

/// An open file, the reopen generation it was opened at, and a reused buffer.
pub struct FileConn {
    file: File,
    generation: u64,
    buf: Vec<u8>,
}

impl Sink for FileSink {
    type Conn = FileConn;

    async fn connect(&self) -> Result<FileConn, SinkError> {
        let generation = *self.reopen.borrow();
        Ok(FileConn {
            file: self.open().await?,
            generation,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    async fn send(&self, conn: &mut FileConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let generation = *self.reopen.borrow();
        if generation != conn.generation {
            conn.file.flush().await?;
            conn.file = self.open().await?;
            conn.generation = generation;
        }
        conn.buf.clear();
        let now = Timestamp::now();
        for r in batch {
            newline_delimited(r, now, &mut conn.buf);
        }
        conn.file.write_all(&conn.buf).await?;
        conn.file.flush().await?;
        Ok(Delivery {
            bytes: conn.buf.len() as u64,
            ..Delivery::default()
        })
    }

    async fn close(&self, mut conn: FileConn) {
        let _ = conn.file.flush().await;
        let _ = conn.file.sync_data().await;
    }

    fn tune(&self, cfg: &mut DriverConfig) {
        cfg.max_connections = 1;
    }
}
