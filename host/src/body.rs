//! The body types of the request pipeline (what every layer takes and
//! returns), and the wrapper that makes a guest's failure mid-body visible
//! to the client.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use std::collections::VecDeque;
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

/// `bytes`, then the frames of `rest`: a body read in part, handed on.
pub(crate) fn prefixed(bytes: Vec<u8>, rest: Body) -> Body {
    let frames = if bytes.is_empty() {
        VecDeque::new()
    } else {
        VecDeque::from([Frame::data(Bytes::from(bytes))])
    };
    ReadAhead {
        frames,
        rest: Some(rest),
    }
    .boxed_unsync()
}

/// A body of `bytes` that then fails, as the one it stands for did.
pub(crate) fn failed_after(bytes: Vec<u8>) -> Body {
    let failure = BodyError::InternalError(Some("the response body failed".to_string()));
    prefixed(bytes, FailWith(Some(failure)).boxed_unsync())
}

/// A body whose only frame is this error.
struct FailWith(Option<BodyError>);

impl http_body::Body for FailWith {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

/// The frames of a guest's response that were ready before its head went
/// out (read ahead to see whether it failed first: see
/// [`read_ahead`]), then the rest of it.
struct ReadAhead {
    frames: VecDeque<Frame<Bytes>>,
    /// `None` once it ended.
    rest: Option<Body>,
}

impl http_body::Body for ReadAhead {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = self
            .frames
            .iter()
            .filter_map(|frame| frame.data_ref().map(|data| data.len() as u64))
            .sum();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |rest| rest.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + ahead);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

/// The most of a guest's response read ahead of its head.
const READ_AHEAD: usize = 64 << 10;

/// Read what `body` has ready (up to [`READ_AHEAD`] bytes, or until the
/// guest is still at work), to see whether it failed before anything went
/// out: `Err` is its failure, which the client should get as the server's
/// error page rather than a connection closed with no answer. Else the
/// body, the frames read replayed first.
///
/// Nothing runs between this and the server's first poll of the body (a
/// connection, its guests and their bodies share one thread), so a body
/// that is still at work here is still at work when its head goes out.
pub(crate) async fn read_ahead(mut body: Body) -> Result<Body, BodyError> {
    let mut frames = VecDeque::new();
    let mut read = 0;
    let ended = loop {
        let next =
            std::future::poll_fn(
                |cx| match http_body::Body::poll_frame(Pin::new(&mut body), cx) {
                    Poll::Pending => Poll::Ready(None),
                    Poll::Ready(frame) => Poll::Ready(Some(frame)),
                },
            )
            .await;
        match next {
            None => break false,
            Some(None) => break true,
            // A body longer or shorter than its head says is framing, the
            // host's: the head goes out with what the guest wrote (as
            // `wasmtime serve` sends it), and the error after it.
            Some(Some(Err(
                error @ (BodyError::HttpResponseBodySize(_) | BodyError::HttpProtocolError),
            ))) => {
                return Ok(ReadAhead {
                    frames,
                    rest: Some(FailWith(Some(error)).boxed_unsync()),
                }
                .boxed_unsync());
            }
            Some(Some(Err(error))) => return Err(error),
            Some(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, Bytes::len);
                frames.push_back(frame);
                if read >= READ_AHEAD {
                    break false;
                }
            }
        }
    };
    if frames.is_empty() && !ended {
        return Ok(body);
    }
    Ok(ReadAhead {
        frames,
        rest: (!ended).then_some(body),
    }
    .boxed_unsync())
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
