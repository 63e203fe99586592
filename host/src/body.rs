//! The body types of the request pipeline (what every layer takes and
//! returns), and the wrapper that makes a guest's failure mid-body visible
//! to the client.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

/// A response body: the guest's stream, or bytes the host made.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// Any error, as the bodies of the requests the host takes give them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as it goes down the request pipeline.
pub(crate) type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// What each layer of the request pipeline answers with.
pub(crate) type ResponseFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<http::Response<Body>, std::convert::Infallible>> + Send>,
>;

/// An error while streaming a body (the guest failed mid-response).
pub type BodyError = wasmtime_wasi_http::Error;

/// The length a message's `Content-Length` announces, if it is a number.
pub(crate) fn announced_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A guest's response body. wasmtime-wasi-http ends a body cleanly when
/// its instance is dropped mid-body (a trap, a deadline), so a truncated
/// page would look whole; this one ends in an error instead when the
/// guest's runner reported a failure before dropping the instance, and the
/// server then aborts the transfer (HTTP/1: no last chunk; HTTP/2: a
/// reset). It holds `guard` (the request's admission) until it is dropped,
/// and a body dropped before its end (the client went away) stops the
/// guest's task at once.
pub(crate) struct GuestBody<G> {
    inner: Body,
    /// Gets a reason if the guest's runner failed.
    failure: Option<oneshot::Receiver<String>>,
    /// Set if the request body went over its limit.
    too_large: Option<Arc<AtomicBool>>,
    _guard: G,
    /// The guest's task, while the body has not ended.
    task: Option<AbortHandle>,
    /// When the request's time is up: the body fails then.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<G> GuestBody<G> {
    /// `inner`, holding `guard` until it is dropped.
    pub(crate) fn new(inner: Body, guard: G) -> Self {
        Self {
            inner,
            failure: None,
            too_large: None,
            _guard: guard,
            task: None,
            deadline: None,
        }
    }

    /// Fail at `deadline` if `inner` has not ended by then: a request's
    /// time is its own, whatever else its instance is doing.
    pub(crate) fn cut_at(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
        self
    }

    /// Fail if `failure` gets a reason before `inner` ends.
    pub(crate) fn failed_by(mut self, failure: oneshot::Receiver<String>) -> Self {
        self.failure = Some(failure);
        self
    }

    /// Fail if the request body was cut off at its limit before `inner`
    /// ends (the guest may have taken the cut for the end).
    pub(crate) fn failed_if_too_large(mut self, too_large: Arc<AtomicBool>) -> Self {
        self.too_large = Some(too_large);
        self
    }

    /// Abort `task` if the body is dropped before its end.
    pub(crate) fn abort_when_abandoned(mut self, task: AbortHandle) -> Self {
        self.task = Some(task);
        self
    }
}

impl<G> Drop for GuestBody<G> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl<G: Unpin> http_body::Body for GuestBody<G> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.deadline = None;
            this.task = None;
            // What the guest sends from now on goes nowhere.
            this.inner = crate::body::full(Bytes::new());
            return Poll::Ready(Some(Err(BodyError::InternalError(Some(
                "the app ran past the request timeout mid-response".to_string(),
            )))));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => {
                // The body ended: its task may finish on its own.
                this.task = None;
                if let Some(Ok(reason)) = this.failure.as_mut().map(|failure| failure.try_recv()) {
                    return Poll::Ready(Some(Err(BodyError::InternalError(Some(format!(
                        "the app failed mid-response: {reason}"
                    ))))));
                }
                if this
                    .too_large
                    .as_ref()
                    .is_some_and(|flag| flag.load(Ordering::Relaxed))
                {
                    return Poll::Ready(Some(Err(BodyError::HttpRequestBodySize(None))));
                }
                Poll::Ready(None)
            }
            Some(Err(error)) => {
                this.task = None;
                Poll::Ready(Some(Err(error)))
            }
            frame => Poll::Ready(frame),
        }
    }

    fn is_end_stream(&self) -> bool {
        // Always poll to the end, so that a failure is seen.
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
