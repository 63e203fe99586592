//! The reference for `just bench`: a native hyper server that answers every
//! request with the same small HTML page, as fast as hyper can. Listens on
//! `127.0.0.1:$PORT` (default 0) and prints `> Ready on http://ADDR`.
//!
//! `BUSY_NS` adds that many nanoseconds of busy work to every request (default
//! 0): what a given cost per request does to throughput on this machine.

use bytes::Bytes;
use http::{Response, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// The example app's `/a?name=bench` page, byte for byte (as rendered when
/// the benchmark last changed; `bench/native_site.rs` renders it live).
const PAGE: &str = include_str!("hello_page.html");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "0".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let busy = Duration::from_nanos(
        std::env::var("BUSY_NS")
            .unwrap_or_else(|_| "0".into())
            .parse()?,
    );
    println!("> Ready on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |_request| async move {
                if !busy.is_zero() {
                    spin(busy);
                }
                let response = Response::builder()
                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(Full::new(Bytes::from_static(PAGE.as_bytes())))
                    .expect("a static response is valid");
                Ok::<_, Infallible>(response)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Keep the CPU busy for `duration`.
fn spin(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}
