//! Blob downloads as a blocking [`Read`], so a layer is hashed, decompressed and unpacked
//! on a blocking thread while an async task fetches it. The task resumes an interrupted
//! transfer with a Range request from the byte the reader has reached (or, when the
//! registry ignores the range, skips the bytes already delivered), up to a few times.
//!
//! Between the two sides sits a queue bounded by bytes, not chunks: the HTTP stack hands
//! over chunks of very different sizes (a few KiB to a few hundred), so a queue of N chunks
//! could hold anything from a few hundred KiB to N times 400 KiB while the unpacker lags
//! behind the network. [`BUFFER_BYTES`] per download keeps the connection busy when the
//! unpacker is descheduled for a moment, and the pull's peak memory flat.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};
use tracing::warn;

use super::Registry;
use crate::digest::Digest;

const ATTEMPTS: u32 = 5;

/// Bytes a download may have fetched ahead of its reader.
pub const BUFFER_BYTES: usize = 4 << 20;

/// The queue's permits a chunk of `len` bytes holds (a chunk larger than the whole budget
/// holds all of it, so it can still pass).
fn permits(len: usize) -> u32 {
    len.min(BUFFER_BYTES) as u32
}

/// The reading end of a download.
pub struct BlobReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    /// Bytes of budget left for the fetching task; the reader gives back a chunk's share
    /// when it takes the chunk off the queue.
    budget: Arc<Semaphore>,
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
                Some(Ok(chunk)) => {
                    self.budget.add_permits(permits(chunk.len()) as usize);
                    self.current = chunk;
                }
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

/// The sending side of the queue: the channel and the byte budget it draws on.
struct Queue {
    tx: mpsc::Sender<io::Result<Bytes>>,
    budget: Arc<Semaphore>,
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
    // The byte budget bounds the queue; the channel's own depth only has to exceed the
    // number of chunks that fit in it.
    let (tx, rx) = mpsc::channel(1024);
    let budget = Arc::new(Semaphore::new(BUFFER_BYTES));
    let queue = Queue { tx, budget: budget.clone() };
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
                &queue,
                progress.as_deref(),
            )
            .await;
            match result {
                Ok(()) => return,
                Err(e) if attempt + 1 < ATTEMPTS && position < size && !queue.tx.is_closed() => {
                    attempt += 1;
                    warn!(%digest, position, error = %e, "blob download interrupted; resuming");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    let _ = queue.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    BlobReader { rx, budget, current: Bytes::new(), task }
}

async fn fetch(
    registry: &Registry,
    repository: &str,
    digest: &Digest,
    size: u64,
    position: &mut u64,
    queue: &Queue,
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
        // Wait for room; the semaphore is never closed, so this only fails if it were.
        match queue.budget.acquire_many(permits(chunk.len())).await {
            Ok(permit) => permit.forget(),
            Err(_) => return Ok(()),
        }
        if queue.tx.send(Ok(chunk)).await.is_err() {
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
