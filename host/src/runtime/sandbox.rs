//! The sandbox a plugin runs in: the WASI context it is given and where its
//! standard output goes.
//!
//! Language runtimes (Rust's std, CPython, SpiderMonkey) import WASI clocks,
//! random and stdio just to start, so refusing those imports would refuse
//! every non-trivial plugin. Instead the host links all of WASI 0.2 and makes
//! it inert and deterministic: clocks frozen at the Unix epoch, random sources
//! seeded with constants, no preopened directories, no environment, no
//! arguments, no sockets and no name lookups. A replay therefore sees exactly
//! what the first run saw, and a plugin can touch nothing outside itself.
//! Time is the events' `timestamp`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::SeedableRng;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// A clock that always reads zero: the Unix epoch for the wall clock, the
/// start for the monotonic clock.
#[derive(Debug, Clone, Copy)]
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Builds the WASI context of one plugin instance, sending its stdout and
/// stderr to `output`.
pub fn wasi_ctx(output: &CapturedOutput) -> WasiCtx {
    WasiCtxBuilder::new()
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(rand::rngs::StdRng::seed_from_u64(0x006b_6170_7061))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(0x006b_6170_7062))
        .insecure_random_seed(0x006b_6170_7063)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .allow_blocking_current_thread(true)
        .stdout(output.clone())
        .stderr(output.clone())
        .build()
}

/// What a plugin printed, keeping only the last `capacity` bytes: enough to
/// quote a panic message in a failure report without letting a chatty guest
/// grow host memory.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    buf: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl CapturedOutput {
    /// An empty capture keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        CapturedOutput {
            buf: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    /// Takes what was printed since the last call, as lossy UTF-8.
    pub fn take(&self) -> String {
        let mut buf = self.buf.lock();
        let bytes: Vec<u8> = buf.drain(..).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock();
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (buf.len() + bytes.len()).saturating_sub(self.capacity);
        buf.drain(..overflow);
        buf.extend(bytes);
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: old output is dropped instead of blocking the guest.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_only_the_tail() {
        let out = CapturedOutput::new(8);
        out.push(b"hello ");
        out.push(b"world!");
        assert_eq!(out.take(), "o world!");
        assert_eq!(out.take(), "");
        out.push(b"0123456789abc");
        assert_eq!(out.take(), "56789abc");
    }
}
