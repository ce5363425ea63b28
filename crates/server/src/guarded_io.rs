//! Limits on the bytes of one connection, below HTTP and WebSocket alike:
//!
//! - a write that makes no progress for `write_timeout` fails, so a client
//!   that asks and then stops reading cannot pin an answer (or a socket's
//!   queue) in memory for as long as its TCP connection lives;
//! - a read budget that a WebSocket spends before it has authenticated, so
//!   an anonymous socket cannot make the server buffer a large frame.
//!
//! Both are steered through a shared [`Guard`]: the gateway sets the read
//! budget at the upgrade, lifts it after `auth`, and takes over the write
//! timeout (it closes a socket that does not read with 1013 itself).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The limits of one connection, shared between its I/O and whoever
/// serves it. Reads are unlimited until a WebSocket upgrade sets a budget
/// (lifted again once the socket authenticates); writes time out until
/// the WebSocket takes over.
#[derive(Debug)]
pub struct Guard {
    read: AtomicU64,
    read_limit: AtomicU64,
    write_timeout_on: AtomicBool,
}

impl Default for Guard {
    fn default() -> Self {
        Guard { read: AtomicU64::new(0), read_limit: AtomicU64::new(u64::MAX), write_timeout_on: AtomicBool::new(true) }
    }
}

impl Guard {
    /// From now on, at most `bytes` more may be read.
    pub fn allow_reads(&self, bytes: u64) {
        self.read_limit.store(self.read.load(Relaxed).saturating_add(bytes), Relaxed);
    }

    /// No read limit any more.
    pub fn lift_read_limit(&self) {
        self.read_limit.store(u64::MAX, Relaxed);
    }

    /// The caller enforces its own write deadline from now on (with a
    /// close code the peer can read), so the I/O no longer does.
    pub fn hand_over_write_timeout(&self) {
        self.write_timeout_on.store(false, Relaxed);
    }
}

/// The read error of a connection that spent its read budget.
#[derive(Debug, thiserror::Error)]
#[error("too many bytes before authentication")]
pub struct ReadBudgetSpent;

/// An accepted connection with a write-stall timeout and a read budget.
pub struct GuardedIo<T> {
    inner: T,
    write_timeout: Duration,
    /// Armed while a write waits for the peer; `None` otherwise, so an
    /// idle connection carries no timer.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    guard: Arc<Guard>,
}

impl<T> GuardedIo<T> {
    pub fn new(inner: T, write_timeout: Duration, guard: Arc<Guard>) -> Self {
        GuardedIo { inner, write_timeout, stalled: None, guard }
    }

    /// Called when the inner write is pending: fails once it has been
    /// pending for `write_timeout` without progress.
    fn stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if !self.guard.write_timeout_on.load(Relaxed) {
            self.stalled = None;
            return Poll::Pending;
        }
        let timeout = self.write_timeout;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "peer is not reading"))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(&mut self, result: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let n = (buf.filled().len() - before) as u64;
            let read = this.guard.read.fetch_add(n, Relaxed) + n;
            if read > this.guard.read_limit.load(Relaxed) {
                return Poll::Ready(Err(io::Error::other(ReadBudgetSpent)));
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_peer_never_reads_times_out() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(ours, Duration::from_millis(50), Arc::default());
        let error = io.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn writes_wait_without_a_deadline_once_handed_over() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let guard = Arc::new(Guard::default());
        guard.hand_over_write_timeout();
        let mut io = GuardedIo::new(ours, Duration::from_millis(20), guard);
        let write = tokio::time::timeout(Duration::from_millis(200), io.write_all(&[0u8; 4096])).await;
        assert!(write.is_err(), "the write should still be waiting");
    }

    #[tokio::test]
    async fn reads_stop_when_the_budget_is_spent() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let budget = Arc::new(Guard::default());
        let mut io = GuardedIo::new(ours, Duration::from_secs(1), budget.clone());
        budget.allow_reads(10);
        theirs.write_all(&[1u8; 8]).await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(io.read(&mut buf).await.unwrap(), 8);
        theirs.write_all(&[1u8; 8]).await.unwrap();
        let error = io.read(&mut buf).await.unwrap_err();
        assert!(crate::error::caused_by::<ReadBudgetSpent>(&error));
        budget.lift_read_limit();
        theirs.write_all(&[1u8; 8]).await.unwrap();
        assert!(io.read(&mut buf).await.is_ok());
    }
}
