//! One connection's life once it is served: it ends when its client or
//! hyper ends it, and it is closed gracefully (HTTP/2: `GOAWAY`, then the
//! open streams finish; HTTP/1: after the request in flight) when the
//! server drains, or when it has had no request open for `idle_timeout`
//! (an HTTP/2 client that answers pings and sends nothing keeps no slot).
//! A request is open from its head until its response body is done or
//! dropped.
//!
//! A response whose client takes none of it for `write_timeout` (hyper
//! took a frame and never came back for the next: an HTTP/2 stream whose
//! window stays at zero, which the connection's other traffic keeps from
//! looking stalled) is cut: its body is dropped at once, which frees its
//! guest, its file or buffer and its admission slot, and its stream is
//! reset if hyper polls it again. A connection closed for being idle that
//! a stream still holds open is dropped `idle_timeout` later.

use super::slots::Slot;
use crate::body::BoxError;
use http_body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The requests a connection has open, and when the last one closed.
pub(super) struct Activity {
    open: AtomicUsize,
    /// The response bodies it is sending, for the stall watchdog.
    streams: Mutex<Vec<Weak<dyn Stall>>>,
    /// When the connection last began or ended a request, in milliseconds
    /// since `born`.
    last: AtomicU64,
    born: Instant,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            streams: Mutex::new(Vec::new()),
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

    /// Watch `stream` for stalls while it lives.
    fn watch(&self, stream: Weak<dyn Stall>) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|stream| stream.strong_count() > 0);
        streams.push(stream);
    }

    /// Cut every stream its client has taken nothing of for `timeout`.
    fn cut_stalled(&self, timeout: Duration) {
        let streams: Vec<Arc<dyn Stall>> = {
            let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            streams.retain(|stream| stream.strong_count() > 0);
            streams.iter().filter_map(Weak::upgrade).collect()
        };
        for stream in streams {
            if stream
                .stalled_since()
                .is_some_and(|since| since.elapsed() >= timeout)
            {
                tracing::debug!("a response stalled for {timeout:?}: cut");
                stream.cut();
            }
        }
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

/// A response body whose data hyper took and has not asked again for: a
/// stream held up by its client (an HTTP/2 window left at zero).
trait Stall: Send + Sync {
    /// Since when hyper has not come back for more, if it owes a poll.
    fn stalled_since(&self) -> Option<Instant>;
    /// Give up on it: its body (the guest, the file, the buffer, the
    /// admission slot it holds) is dropped now, and its request closed.
    fn cut(&self);
}

/// What a [`Tracked`] body shares with its connection's watchdog.
struct Shared<B> {
    state: Mutex<State<B>>,
}

struct State<B> {
    /// `None` once the body ended or was cut.
    body: Option<Pin<Box<B>>>,
    open: Option<Open>,
    /// When hyper took the latest frame, until it polls again.
    owed: Option<Instant>,
    /// Whether the watchdog cut it.
    cut: bool,
}

impl<B> Shared<B> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<B>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<B: Send> Stall for Shared<B> {
    fn stalled_since(&self) -> Option<Instant> {
        self.state().owed
    }

    fn cut(&self) {
        let (body, open) = {
            let mut state = self.state();
            state.cut = true;
            (state.body.take(), state.open.take())
        };
        drop((body, open));
    }
}

/// A response body that keeps its request open until it is done, and that
/// its connection can cut when its client stops taking it.
pub(super) struct Tracked<B> {
    shared: Arc<Shared<B>>,
}

impl<B: Body + Send + 'static> Tracked<B> {
    pub(super) fn new(body: B, open: Open) -> Self {
        let activity = open.0.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                body: Some(Box::pin(body)),
                open: Some(open),
                // Hyper owes it a first poll (which a zero window delays).
                owed: Some(Instant::now()),
                cut: false,
            }),
        });
        let stall: Arc<dyn Stall> = shared.clone();
        activity.watch(Arc::downgrade(&stall));
        Self { shared }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut state = self.shared.state();
        state.owed = None;
        let Some(body) = state.body.as_mut() else {
            if state.cut {
                return Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client took none of the response for the write timeout",
                )))));
            }
            return Poll::Ready(None);
        };
        match body.as_mut().poll_frame(cx) {
            Poll::Ready(None) => {
                // Done: the request closes now, not when hyper drops it.
                let (body, open) = (state.body.take(), state.open.take());
                drop(state);
                drop((body, open));
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => {
                state.owed = Some(Instant::now());
                Poll::Ready(Some(frame.map_err(Into::into)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = self.shared.state();
        state.body.as_ref().is_some_and(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let state = self.shared.state();
        state
            .body
            .as_ref()
            .map(|body| body.size_hint())
            .unwrap_or_default()
    }
}

/// Serve `connection` to its end, closing it gracefully when `draining`
/// turns true or it has been idle for `idle_timeout` (and at once if that
/// has not ended it `idle_timeout` later: a stalled stream would hold it);
/// a response its client takes nothing of for `write_timeout` is cut.
/// `permit` (its slot of `max_connections`) is given back at the end.
pub(super) async fn run<C>(
    connection: C,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    write_timeout: Duration,
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
    let give_up = tokio::time::sleep(Duration::MAX);
    tokio::pin!(give_up);
    let mut watchdog = tokio::time::interval(write_timeout / 2);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = watchdog.tick() => activity.cut_stalled(write_timeout),
            () = &mut give_up, if closing => break,
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
                give_up.as_mut().reset(Instant::now() + idle_timeout);
            }
        }
    }
    drop(permit);
}
