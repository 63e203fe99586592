//! One connection's life once it is served: it ends when its client or
//! hyper ends it, and it is closed gracefully (HTTP/2: `GOAWAY`, then the
//! open streams finish; HTTP/1: after the request in flight) when the
//! server drains, or when it has had no request open for `idle_timeout`
//! (an HTTP/2 client that answers pings and sends nothing keeps no slot).
//! A request is open from its head until its response body is done or
//! dropped.

use super::slots::Slot;
use http_body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The requests a connection has open, and when the last one closed.
pub(super) struct Activity {
    open: AtomicUsize,
    /// When the connection last began or ended a request, in milliseconds
    /// since `born`.
    last: AtomicU64,
    born: Instant,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// A request begins; it is open until the [`Open`] is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Open {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Open(self.clone())
    }

    fn touch(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Release);
    }

    /// Resolves once no request has been open for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let last = self.born + Duration::from_millis(self.last.load(Ordering::Acquire));
            let busy = self.open.load(Ordering::Acquire) > 0;
            let until = if busy {
                Instant::now() + timeout
            } else {
                last + timeout
            };
            if !busy && Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }
}

/// An open request: dropping it closes it.
pub(super) struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// A response body that keeps its request open until it is done.
    pub(super) struct Tracked<B> {
        #[pin]
        body: B,
        open: Option<Open>,
    }
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, open: Open) -> Self {
        Self {
            body,
            open: Some(open),
        }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(None) = frame {
            // Done: the request closes now, not when hyper drops it.
            this.open.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serve `connection` to its end, closing it gracefully when `draining`
/// turns true or it has been idle for `idle_timeout`; `permit` (its slot
/// of `max_connections`) is given back then.
pub(super) async fn run<C>(
    connection: C,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    mut draining: watch::Receiver<bool>,
    permit: Slot,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(connection);
    let idle = activity.idle(idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!("connection closed with an error: {error}");
                }
                break;
            }
            _ = draining.wait_for(|draining| *draining), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut idle, if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
    drop(permit);
}
