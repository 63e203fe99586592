//! The accept loop: bind, serve HTTP/1 and HTTP/2 connections with a
//! [`RequestHandler`], and on shutdown stop accepting and drain what is in
//! flight.
//!
//! One worker thread per core, each with a current-thread tokio runtime;
//! the caller's runtime accepts and deals connections out to them in turn.
//! A connection, its requests and their guests stay on one thread, with no
//! work stealing between threads (measured faster than one multi-thread
//! runtime: see `just bench`).

use crate::handler::RequestHandler;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wasmtime::error::Context;
use wasmtime::{Result, format_err};

/// How long connections already open may still start requests once
/// shutdown begins.
const DRAIN_WINDOW: Duration = Duration::from_millis(500);

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

/// Serve `listener` with `handler` until `shutdown` resolves, then stop
/// accepting and wait (up to `server.shutdown_timeout`) for open requests
/// to finish. Clients get `server.header_read_timeout` to send their
/// headers, and headers over `limits.max_header_size` answer 431.
pub async fn serve(
    listener: TcpListener,
    handler: RequestHandler,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut senders = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (sender, connections) = mpsc::unbounded_channel();
        let handler = handler.clone();
        let thread = std::thread::Builder::new()
            .name(format!("switchyard-worker-{worker}"))
            .spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(serve_connections(connections, handler));
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
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("failed to accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match stream.into_std() {
            Ok(stream) => {
                let _ = senders[next].send(stream);
            }
            Err(error) => tracing::warn!("failed to hand a connection over: {error}"),
        }
    }
    // New connections are refused from here on; the workers drain theirs.
    drop(listener);
    drop(senders);
    tokio::task::spawn_blocking(move || {
        for thread in threads {
            match thread.join() {
                Ok(result) => result?,
                Err(_) => return Err(format_err!("a worker thread panicked")),
            }
        }
        Ok(())
    })
    .await
    .context("failed to wait for the worker threads")?
}

/// One worker: serve each connection it is handed until the acceptor hangs
/// up, then drain.
async fn serve_connections(
    mut connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    handler: RequestHandler,
) {
    let config = handler.config();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .max_buf_size(usize::try_from(config.limits.max_header_size).unwrap_or(usize::MAX));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.limits.max_header_size).unwrap_or(u32::MAX));
    let grace = config.server.shutdown_timeout;
    let graceful = GracefulShutdown::new();
    while let Some(stream) = connections.recv().await {
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!("failed to take a connection: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), handler.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection closed with an error: {error}");
            }
        });
    }
    // Requests that raced the signal on connections already open still get
    // a moment to arrive.
    tokio::time::sleep(DRAIN_WINDOW.min(grace)).await;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("requests still open after {grace:?}; closing them");
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("failed to listen for SIGTERM");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
