//! The accept loop: bind, serve HTTP/1 and HTTP/2 connections with any
//! hyper service (like `axum::serve`), and on shutdown stop accepting and
//! drain what is in flight.
//!
//! One worker thread per core, each with a current-thread tokio runtime;
//! the caller's runtime accepts and deals connections out to them in turn.
//! A connection, its requests and their guests stay on one thread, with no
//! work stealing between threads (measured faster than one multi-thread
//! runtime: see `just bench`).
//!
//! Every connection must make progress: its first bytes (of either
//! protocol) and its request headers within `header_read_timeout`; HTTP/2
//! connections answer keep-alive pings or are closed; a connection of
//! either protocol with no request open for `idle_timeout` is closed
//! ([`connection`]). Past `max_connections` open at once, new connections
//! are refused.
//!
//! With [`Tls`], connections are HTTPS (ALPN `h2` and `http/1.1`): the
//! handshake is part of the first bytes' deadline, and the certificate is
//! swapped when its files change, without a restart.
//!
//! Each request carries the listener's address ([`ServedOn`]), so that the
//! app it reaches knows its own addresses (the `self` grant).

mod connection;
mod deadline;
mod slots;
mod tls;

pub use tls::Tls;

pub(crate) use deadline::ReadDeadline;

use crate::config::Config;
use crate::metrics::Metrics;
use deadline::WriteDeadline;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use slots::{Slot, Slots};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use wasmtime::error::Context;
use wasmtime::{Result, format_err};

use crate::body::BoxError;

/// How long, once shutdown begins, a connection already open but silent
/// still has to send its request.
const DRAIN_WINDOW: Duration = Duration::from_millis(500);

/// The first bytes of an HTTP/2 connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The address of the listener a request came through, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedOn(pub SocketAddr);

/// In a request's extensions when it came over TLS: the app sees `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Https;

/// The scheme `request` came with: `https` over TLS, else `http`.
pub fn scheme_of<B>(request: &Request<B>) -> http::uri::Scheme {
    match request.extensions().get::<Https>() {
        Some(Https) => http::uri::Scheme::HTTPS,
        None => http::uri::Scheme::HTTP,
    }
}

/// How the server treats its connections; [`ServerSettings::from_config`]
/// reads them from `[server]` and `[limits]`, and the `with_` methods
/// change one each:
///
/// ```
/// # use std::time::Duration;
/// let settings = switchyard::server::ServerSettings::default()
///     .with_workers(1)
///     .with_shutdown_timeout(Duration::from_secs(5));
/// assert_eq!(settings.workers, 1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerSettings {
    /// How long a client may take to send its first bytes, and then its
    /// request headers; slower clients are cut off.
    pub header_read_timeout: Duration,
    /// How long a connection with no request open stays open.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers); larger: 431.
    pub max_header_size: u64,
    /// How long in-flight requests get to finish once shutdown begins.
    pub shutdown_timeout: Duration,
    /// Connections open at once; more are refused.
    pub max_connections: usize,
    /// Connections one client address may have open at once; more are
    /// refused (`None`: only `max_connections`).
    pub max_connections_per_ip: Option<usize>,
    /// How long a write may wait for the client to read; then the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Worker threads, each with its own runtime (default: one per core).
    pub workers: usize,
    /// Where to count connections open and refused (`App::server_settings`
    /// sets the app's).
    pub metrics: Option<Arc<Metrics>>,
    /// HTTPS with this certificate, reloaded while serving; `None`: HTTP.
    pub tls: Option<Arc<Tls>>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl ServerSettings {
    /// The settings `[server]` and `[limits]` of `config` give.
    pub fn from_config(config: &Config) -> Self {
        let server = &config.server;
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout.unwrap_or(server.header_read_timeout),
            max_header_size: config.limits.max_header_size,
            shutdown_timeout: server.shutdown_timeout,
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
            write_timeout: server.write_timeout,
            max_concurrent_streams: config.limits.max_concurrent_requests.clamp(1, 256),
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            metrics: None,
            tls: None,
        }
    }
}

macro_rules! with {
    ($($(#[$doc:meta])* $method:ident: $field:ident: $type:ty;)*) => {
        impl ServerSettings {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $method(mut self, $field: $type) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}

with! {
    /// Set [`header_read_timeout`](Self::header_read_timeout).
    with_header_read_timeout: header_read_timeout: Duration;
    /// Set [`idle_timeout`](Self::idle_timeout).
    with_idle_timeout: idle_timeout: Duration;
    /// Set [`max_header_size`](Self::max_header_size).
    with_max_header_size: max_header_size: u64;
    /// Set [`shutdown_timeout`](Self::shutdown_timeout).
    with_shutdown_timeout: shutdown_timeout: Duration;
    /// Set [`max_connections`](Self::max_connections).
    with_max_connections: max_connections: usize;
    /// Set [`max_connections_per_ip`](Self::max_connections_per_ip).
    with_max_connections_per_ip: max_connections_per_ip: Option<usize>;
    /// Set [`write_timeout`](Self::write_timeout).
    with_write_timeout: write_timeout: Duration;
    /// Set [`max_concurrent_streams`](Self::max_concurrent_streams).
    with_max_concurrent_streams: max_concurrent_streams: u32;
    /// Set [`workers`](Self::workers).
    with_workers: workers: usize;
    /// Set [`metrics`](Self::metrics).
    with_metrics: metrics: Option<Arc<Metrics>>;
    /// Set [`tls`](Self::tls).
    with_tls: tls: Option<Arc<Tls>>;
}

/// Listen on `hostname:port` (the first address it resolves to). An address
/// in use is one clear error naming it.
pub async fn bind(hostname: &str, port: u16) -> Result<TcpListener> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((hostname, port))
        .await
        .with_context(|| format!("failed to resolve `{hostname}`"))?
        .collect();
    let address = addresses
        .first()
        .ok_or_else(|| format_err!("`{hostname}` resolves to no address"))?;
    TcpListener::bind(address).await.map_err(|error| {
        let reason = match error.kind() {
            std::io::ErrorKind::AddrInUse => "address already in use".to_string(),
            _ => error.to_string(),
        };
        format_err!(
            "failed to listen on {}: {reason}",
            display_address(hostname, port)
        )
    })
}

fn display_address(hostname: &str, port: u16) -> String {
    if hostname.contains(':') {
        format!("[{hostname}]:{port}")
    } else {
        format!("{hostname}:{port}")
    }
}

/// Serve `listener` with `service` until `shutdown` resolves, then stop
/// accepting and wait (up to `settings.shutdown_timeout`) for open
/// requests to finish; a second SIGINT or SIGTERM meanwhile ends the wait
/// at once with an error.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let served_on = ServedOn(
        listener
            .local_addr()
            .context("failed to read the listening address")?,
    );
    let workers = settings.workers.max(1);
    let _reloading = settings
        .tls
        .clone()
        .map(|tls| AbortOnDrop(tokio::spawn(tls.watch())));
    let settings = Arc::new(settings);
    let slots = Slots::new(
        settings.max_connections,
        settings.max_connections_per_ip,
        settings.metrics.clone(),
    );
    let mut senders = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (sender, accepted) = mpsc::unbounded_channel();
        let (service, settings) = (service.clone(), settings.clone());
        let thread = std::thread::Builder::new()
            .name(format!("switchyard-worker-{worker}"))
            .spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(serve_connections(accepted, service, served_on, settings));
                Ok(())
            })
            .context("failed to start a worker thread")?;
        senders.push(sender);
        threads.push(thread);
    }
    // Accept here and deal the connections out in turn: each worker gets
    // its share, whichever thread the kernel would have woken.
    tokio::pin!(shutdown);
    for next in (0..workers).cycle() {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("failed to accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.take(peer.ip()) else {
            // Full: refuse at once rather than queue.
            drop(stream);
            continue;
        };
        match stream.into_std() {
            Ok(stream) => {
                let _ = senders[next].send((stream, permit));
            }
            Err(error) => tracing::warn!("failed to hand a connection over: {error}"),
        }
    }
    // New connections are refused from here on; the workers drain theirs.
    drop(listener);
    drop(senders);
    let drained = tokio::task::spawn_blocking(move || {
        for thread in threads {
            match thread.join() {
                Ok(result) => result?,
                Err(_) => return Err(format_err!("a worker thread panicked")),
            }
        }
        Ok(())
    });
    tokio::select! {
        joined = drained => joined.context("failed to wait for the worker threads")?,
        () = shutdown_signal() => {
            Err(format_err!("interrupted again: stopped without finishing the requests in flight"))
        }
    }
}

/// One worker: serve each connection it is handed until the acceptor hangs
/// up, then drain.
async fn serve_connections<S, B>(
    mut accepted: mpsc::UnboundedReceiver<(std::net::TcpStream, Slot)>,
    service: S,
    served_on: ServedOn,
    settings: Arc<ServerSettings>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(usize::try_from(settings.max_header_size).unwrap_or(usize::MAX));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(settings.header_read_timeout)
        .keep_alive_timeout(settings.header_read_timeout);
    // Turned true to drain: every connection closes gracefully.
    let (drain, draining) = tokio::sync::watch::channel(false);
    let connections = tokio_util::task::TaskTracker::new();
    // Connections are served (and watched for the drain) once their first
    // bytes have come; until then they are `opening`, and each of those
    // tasks ends with its connection if the bytes came in time.
    let mut opening = tokio::task::JoinSet::new();
    let serve = |stream: Either<TcpStream, TlsStream<TcpStream>>, permit: Slot| {
        let activity = connection::Activity::new();
        let https = matches!(stream, Either::Right(_));
        let service = {
            let (service, activity) = (service.clone(), activity.clone());
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(served_on);
                if https {
                    request.extensions_mut().insert(Https);
                }
                let open = activity.begin();
                let answer = service.call(request);
                async move {
                    let response = answer.await?;
                    Ok::<_, S::Error>(response.map(|body| connection::Tracked::new(body, open)))
                }
            })
        };
        let served = builder
            .serve_connection_with_upgrades(
                TokioIo::new(WriteDeadline::new(stream, settings.write_timeout)),
                service,
            )
            .into_owned();
        connections.spawn(connection::run(
            served,
            activity,
            settings.idle_timeout,
            settings.write_timeout,
            draining.clone(),
            permit,
        ));
    };
    loop {
        tokio::select! {
            next = accepted.recv() => {
                let Some((stream, permit)) = next else { break };
                let stream = match TcpStream::from_std(stream) {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!("failed to take a connection: {error}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let timeout = settings.header_read_timeout;
                let tls = settings.tls.as_ref().map(|tls| tls.acceptor());
                opening.spawn(async move {
                    // A client that sends nothing, half an HTTP/2 preface
                    // or half a TLS handshake is cut off like a slow
                    // HTTP/1 client.
                    let opened = async {
                        match tls {
                            Some(acceptor) => acceptor.accept(stream).await.ok().map(Either::Right),
                            None => {
                                first_bytes(&stream).await.ok()?;
                                Some(Either::Left(stream))
                            }
                        }
                    };
                    let opened = tokio::time::timeout(timeout, opened).await.ok().flatten();
                    opened.map(|stream| (stream, permit))
                });
            }
            Some(opened) = opening.join_next() => {
                if let Ok(Some((stream, permit))) = opened {
                    serve(stream, permit);
                }
            }
        }
    }
    // Shutdown: connections opened just before it may still send their
    // request, for a moment; nothing waits when there are none.
    let window = tokio::time::sleep(DRAIN_WINDOW.min(settings.shutdown_timeout));
    tokio::pin!(window);
    while !opening.is_empty() {
        tokio::select! {
            Some(opened) = opening.join_next() => {
                if let Ok(Some((stream, permit))) = opened {
                    serve(stream, permit);
                }
            }
            () = &mut window => break,
        }
    }
    opening.abort_all();
    // Let the connections just handed over read their request first.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    let _ = drain.send(true);
    connections.close();
    let grace = settings.shutdown_timeout;
    tokio::select! {
        () = connections.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("requests still open after {grace:?}; closing them");
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wait until the connection has sent enough to tell its protocol: any
/// first byte of an HTTP/1 request, or the whole HTTP/2 preface.
async fn first_bytes(stream: &TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; H2_PREFACE.len()];
    loop {
        let seen = stream.peek(&mut buffer).await?;
        if seen == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if !H2_PREFACE.starts_with(&buffer[..seen]) || seen == H2_PREFACE.len() {
            return Ok(());
        }
        // Part of a preface: wait for more.
        stream.readable().await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. If the signal handlers cannot
/// be installed, that is logged and this never resolves.
pub async fn shutdown_signal() {
    if let Err(error) = signal().await {
        tracing::error!("{error:#}; stop the server some other way");
        std::future::pending::<()>().await;
    }
}

async fn signal() -> Result<()> {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("failed to listen for SIGTERM")?;
        tokio::select! {
            interrupted = interrupt => interrupted.context("failed to listen for SIGINT")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.context("failed to listen for Ctrl-C")?;
    Ok(())
}
