//! `[server] access_log`: one line per request, written when its response
//! has been sent (or abandoned): method, path, status, body bytes sent and
//! duration. The path is escaped like every other log line.

use crate::body::{Body, BodyError};
use crate::wasm::output::escape_into;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

/// What the line will say, but for the bytes and the end.
pub(crate) struct Entry {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) started: Instant,
}

/// `response`, logged once its body is done.
pub(crate) fn log(entry: Entry, response: Response<Body>) -> Response<Body> {
    let status = response.status();
    response.map(|inner| {
        Logged {
            inner,
            entry,
            status,
            sent: 0,
            complete: false,
        }
        .boxed_unsync()
    })
}

struct Logged {
    inner: Body,
    entry: Entry,
    status: StatusCode,
    sent: u64,
    complete: bool,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            None => self.complete = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let complete = self.complete || self.inner.is_end_stream();
        let mut path = String::with_capacity(self.entry.path.len());
        escape_into(&mut path, &self.entry.path);
        tracing::info!(
            target: "access",
            "{} {path} {} {}{} {:.1}ms",
            self.entry.method,
            self.status.as_u16(),
            self.sent,
            if complete { "" } else { " (incomplete)" },
            self.entry.started.elapsed().as_secs_f64() * 1000.0
        );
    }
}
