//! `[server] access_log`, the outermost layer: one line per request,
//! written when its response has been sent (or abandoned): method, path,
//! status, body bytes sent (as sent, compressed or not) and duration. The
//! path is the one the app sees (its canonical form), escaped like every
//! other log line.

use crate::body::{Body, BodyError, ResponseFuture};
use crate::build::Build;
use crate::layer::layer;
use crate::log_text::escape_into;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

layer! {
    /// Logs each request of a service, when its build says so.
    pub(super) struct AccessLogLayer(());
    /// `S`, with an access log line per request.
    struct AccessLog;
    fn call(this, request) {
        let logged = Build::carried_by(&request).is_some_and(|build| build.settings.access_log);
        if !logged {
            return Box::pin(this.inner.call(request));
        }
        let entry = Entry {
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            started: Instant::now(),
        };
        let answer: ResponseFuture = Box::pin(this.inner.call(request));
        Box::pin(async move { Ok(log(entry, answer.await?)) })
    }
}

/// What the line will say, but for the bytes and the end.
struct Entry {
    method: Method,
    path: String,
    started: Instant,
}

/// `response`, logged once its body is done.
fn log(entry: Entry, response: Response<Body>) -> Response<Body> {
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
