//! A guest's stdout and stderr, as the server's log lines: whole lines,
//! each prefixed with the instance and the request it is serving, control
//! characters escaped, so that a guest (or a request path it echoes)
//! cannot forge or garble a line of the server's log. With structured
//! logs ([`log_as_events`]), each line is a `tracing` event instead.

use crate::log_text::escape_into;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line kept whole; a longer one is cut into pieces this long.
const MAX_LINE: usize = 16 << 10;

/// Numbers instances in log lines.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// Whether lines go out as `tracing` events rather than as text.
static AS_EVENTS: AtomicBool = AtomicBool::new(false);

/// From now on, guests' output lines are `tracing` events (target `guest`,
/// with `stream`, `instance` and `request` fields) rather than text written
/// to the server's stdout and stderr: for structured (JSON) logs, where a
/// line of text would break the format.
pub fn log_as_events() {
    AS_EVENTS.store(true, Ordering::Relaxed);
}

/// Which of the server's streams a guest stream goes to.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
}

/// What a line of one instance's output is prefixed with: the instance,
/// and the request it serves (set by the host as each request starts).
#[derive(Debug, Clone)]
pub(crate) struct OutputLabel(Arc<Mutex<String>>);

impl OutputLabel {
    /// A label for a new instance.
    fn new() -> (Self, u64) {
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        (Self(Arc::new(Mutex::new(String::new()))), instance)
    }

    /// From now on, lines are about `method path` (escaped here).
    pub(crate) fn set_request(&self, method: &str, path: &str) {
        let mut label = self.0.lock().unwrap_or_else(|e| e.into_inner());
        label.clear();
        label.push(' ');
        escape_into(&mut label, method);
        label.push(' ');
        escape_into(&mut label, path);
    }
}

/// The stdout and stderr of one instance, and the label they share.
pub(crate) fn streams() -> (GuestOutput, GuestOutput, OutputLabel) {
    let (label, instance) = OutputLabel::new();
    let stream = |sink| GuestOutput {
        sink,
        instance,
        label: label.clone(),
        pending: Arc::new(Mutex::new(Vec::new())),
    };
    (stream(Sink::Stdout), stream(Sink::Stderr), label)
}

/// One guest output stream; clones share the line being written.
#[derive(Debug, Clone)]
pub(crate) struct GuestOutput {
    sink: Sink,
    instance: u64,
    label: OutputLabel,
    /// The start of a line not yet ended.
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while !bytes.is_empty() {
            let room = MAX_LINE - pending.len();
            match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(end) => {
                    pending.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    self.emit(&pending);
                    pending.clear();
                }
                None if bytes.len() >= room => {
                    pending.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    self.emit(&pending);
                    pending.clear();
                }
                None => {
                    pending.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
        }
    }

    /// Write one line, prefixed and escaped, in one write.
    fn emit(&self, line: &[u8]) {
        let stream = match self.sink {
            Sink::Stdout => "stdout",
            Sink::Stderr => "stderr",
        };
        let label = self
            .label
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if AS_EVENTS.load(Ordering::Relaxed) {
            let mut text = String::with_capacity(line.len());
            escape_into(&mut text, &String::from_utf8_lossy(line));
            tracing::info!(
                target: "guest",
                stream,
                instance = self.instance,
                request = label.trim_start(),
                "{text}"
            );
            return;
        }
        let mut text = format!("{stream} [{}{label}] :: ", self.instance);
        escape_into(&mut text, &String::from_utf8_lossy(line));
        text.push('\n');
        // A log line that cannot be written is lost, not the request.
        let _ = match self.sink {
            Sink::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Sink::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        // The last clone ends a line left unterminated.
        if Arc::strong_count(&self.pending) == 1 {
            let pending =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
            if !pending.is_empty() {
                self.emit(&pending);
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        escape_into(&mut out, "a\r\nforged line\x1b[31m\tok");
        assert_eq!(out, "a\\r\\nforged line\\u{1b}[31m\tok");
    }

    #[test]
    fn lines_are_cut_at_the_limit_and_kept_whole_otherwise() {
        let (out, _err, label) = streams();
        label.set_request("GET", "/x\ny");
        out.write_bytes(b"par");
        out.write_bytes(b"tial\nnext");
        assert_eq!(&*out.pending.lock().unwrap(), b"next");
        out.write_bytes(&vec![b'a'; MAX_LINE + 10]);
        assert_eq!(out.pending.lock().unwrap().len(), 14);
        assert_eq!(label.0.lock().unwrap().as_str(), " GET /x\\ny");
    }
}
