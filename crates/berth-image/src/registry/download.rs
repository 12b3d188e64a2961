//! Blob downloads as a blocking [`Read`], so a layer is hashed, decompressed and unpacked
//! on a blocking thread while an async task fetches it. The task resumes an interrupted
//! transfer with a Range request from the byte the reader has reached (or, when the
//! registry ignores the range, skips the bytes already delivered), up to a few times.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::warn;

use super::Registry;
use crate::digest::Digest;

const ATTEMPTS: u32 = 5;

/// The reading end of a download.
pub struct BlobReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlobReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Starts downloading `digest` (of `size` bytes) from byte `offset` on `runtime`.
pub fn start(
    runtime: &tokio::runtime::Handle,
    registry: Arc<Registry>,
    repository: String,
    digest: Digest,
    size: u64,
    offset: u64,
    progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
) -> BlobReader {
    // Deep enough (a few MiB of chunks) that a descheduled unpacker does not stall the
    // connection on a busy machine.
    let (tx, rx) = mpsc::channel(512);
    let task = runtime.spawn(async move {
        let mut position = offset;
        let mut attempt = 0;
        loop {
            let result = fetch(
                &registry,
                &repository,
                &digest,
                size,
                &mut position,
                &tx,
                progress.as_deref(),
            )
            .await;
            match result {
                Ok(()) => return,
                Err(e) if attempt + 1 < ATTEMPTS && position < size && !tx.is_closed() => {
                    attempt += 1;
                    warn!(%digest, position, error = %e, "blob download interrupted; resuming");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    BlobReader { rx, current: Bytes::new(), task }
}

async fn fetch(
    registry: &Registry,
    repository: &str,
    digest: &Digest,
    size: u64,
    position: &mut u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> io::Result<()> {
    let (response, ranged) =
        registry.blob(repository, digest, *position).await.map_err(io::Error::other)?;
    let mut skip = if ranged { 0 } else { *position };
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(io::Error::other)?;
        if skip > 0 {
            let drop = skip.min(chunk.len() as u64) as usize;
            let _ = chunk.split_to(drop);
            skip -= drop as u64;
        }
        if chunk.is_empty() {
            continue;
        }
        *position += chunk.len() as u64;
        if let Some(progress) = progress {
            progress(chunk.len() as u64);
        }
        if tx.send(Ok(chunk)).await.is_err() {
            // The reader is gone (it failed or finished): nothing more to do.
            return Ok(());
        }
    }
    if *position < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("blob {digest} ended at byte {position} of {size}"),
        ));
    }
    Ok(())
}
