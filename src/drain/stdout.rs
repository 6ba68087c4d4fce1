//! The `stdout://` drain: one RFC 5424 line per record on standard output.

use tokio::io::{AsyncWriteExt, Stdout};

use super::driver::{Delivery, DriverConfig, Sink, SinkError};
use crate::encode::framing::newline_delimited;
use crate::record::SharedRecord;
use crate::time::Timestamp;

/// Writes newline-delimited RFC 5424 to the process's standard output.
pub struct StdoutSink;

impl Sink for StdoutSink {
    type Conn = (Stdout, Vec<u8>);

    async fn connect(&self) -> Result<Self::Conn, SinkError> {
        Ok((tokio::io::stdout(), Vec::with_capacity(64 << 10)))
    }

    async fn send(&self, conn: &mut Self::Conn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let (out, buf) = conn;
        buf.clear();
        let now = Timestamp::now();
        for r in batch {
            newline_delimited(r, now, buf);
        }
        out.write_all(buf).await?;
        out.flush().await?;
        Ok(Delivery {
            bytes: buf.len() as u64,
            ..Delivery::default()
        })
    }

    fn tune(&self, cfg: &mut DriverConfig) {
        cfg.max_connections = 1;
    }
}
