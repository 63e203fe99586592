//! The outermost layer: what an operator watches of each request. Once its
//! response has been sent (or abandoned), the request is counted in the
//! app's metrics (`http_server_request_duration_seconds` by method, status
//! and route; `http_server_active_requests` while it runs) and, with
//! `[server] access_log`, logged in one line: method, path, status, body
//! bytes sent (as sent, compressed or not) and duration. The path is the
//! one the app sees (its canonical form), escaped like every other log
//! line; the route is a pattern the config or the app declared, never the
//! path itself. A client that leaves before the response head is counted
//! and logged with status 499, as nginx does. With traces on, the
//! request's server span starts here and ends with its body (see
//! [`crate::telemetry`]).

use super::RenderTarget;
use crate::body::{Body, BodyError, ResponseFuture};
use crate::build::Build;
use crate::layer::layer;
use crate::log_text::escape_into;
use crate::metrics::ActiveRequest;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

layer! {
    /// Counts (and, when the build says so, logs) each request of a service.
    pub(super) struct ObserveLayer(());
    /// `S`, observed.
    struct Observe;
    fn call(this, request) {
        let Some(build) = Build::carried_by(&request).cloned() else {
            return Box::pin(this.inner.call(request));
        };
        let route = match request.extensions().get::<RenderTarget>() {
            Some(target) => build.route_labels.page(&target.page),
            None => build.route_labels.route(request.uri().path()),
        };
        let span = crate::telemetry::server_span(&request, &route);
        let entry = Entry {
            method: request.method().clone(),
            path: build
                .settings
                .access_log
                .then(|| request.uri().path().to_string()),
            route,
            started: Instant::now(),
            _active: build.metrics.request_started(request.method()),
            build,
            span: span.clone(),
            finished: false,
        };
        // The inner layers' spans are children of the request's.
        let answer: ResponseFuture = Box::pin(this.inner.call(request));
        let answer = crate::telemetry::within(span, answer);
        Box::pin(async move { Ok(observe(entry, answer.await?)) })
    }
}

/// What is known of the request before its response.
struct Entry {
    method: Method,
    /// For the access log line, when there is one.
    path: Option<String>,
    route: Arc<str>,
    started: Instant,
    /// Held for its drop: the request counts as active until the log line is written.
    _active: ActiveRequest,
    build: Arc<Build>,
    /// The request's server span, when traces are on.
    span: Option<opentelemetry::Context>,
    /// Whether it was counted, ended and logged.
    finished: bool,
}

/// The status a request is counted and logged with when its client left
/// before the response head (as nginx logs it).
const CLIENT_CLOSED: u16 = 499;

impl Entry {
    /// Count the request, end its span and write its log line, once.
    fn finish(&mut self, status: u16, sent: u64, complete: bool) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        (self.build.metrics).request_ended(&self.method, status, self.route.clone(), elapsed);
        if let Some(span) = &self.span {
            crate::telemetry::end_server_span(span, status, complete);
        }
        let Some(raw_path) = &self.path else {
            return;
        };
        let mut path = String::with_capacity(raw_path.len());
        escape_into(&mut path, raw_path);
        let milliseconds = elapsed.as_secs_f64() * 1000.0;
        tracing::info!(
            target: "access",
            method = %self.method,
            path = %path,
            route = %self.route,
            status = status,
            bytes = sent,
            duration_ms = milliseconds,
            complete = complete,
            "{} {path} {status} {sent}{} {milliseconds:.1}ms",
            self.method,
            if complete { "" } else { " (incomplete)" },
        );
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Dropped before a response: the client left (or the server stopped).
        self.finish(CLIENT_CLOSED, 0, false);
    }
}

/// `response`, observed once its body is done.
fn observe(entry: Entry, response: Response<Body>) -> Response<Body> {
    let status = response.status();
    let announced = crate::body::announced_length(response.headers());
    response.map(|inner| {
        Observed {
            length: inner.size_hint().exact().or(announced),
            inner,
            entry,
            status,
            sent: 0,
            complete: false,
        }
        .boxed_unsync()
    })
}

struct Observed {
    inner: Body,
    entry: Entry,
    status: StatusCode,
    /// The body's length, when it was known before it was sent.
    length: Option<u64>,
    sent: u64,
    /// Whether the body's end was read.
    complete: bool,
}

impl http_body::Body for Observed {
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

impl Drop for Observed {
    fn drop(&mut self) {
        // A server that sent all of a known length may drop the body
        // without reading its end: that is complete too.
        let complete = self.complete
            || self.inner.is_end_stream()
            || self.length.is_some_and(|length| self.sent == length);
        (self.entry).finish(self.status.as_u16(), self.sent, complete);
    }
}
