//! The Next.js custom server (`server.js`), line for line, in Rust.
//!
//! ```js
//! const app = next({ dev })
//! const handle = app.getRequestHandler()
//! app.prepare().then(() => {
//!   createServer(async (req, res) => {
//!     try {
//!       const { pathname, query } = parse(req.url, true)
//!       if (pathname === '/a') await app.render(req, res, '/a', query)
//!       else if (pathname === '/b') await app.render(req, res, '/b', query)
//!       else await handle(req, res, parsedUrl)
//!     } catch (err) {
//!       console.error('Error occurred handling', req.url, err)
//!       res.statusCode = 500
//!       res.end('internal server error')
//!     }
//!   }).listen(port, () => console.log(`> Ready on http://${hostname}:${port}`))
//! })
//! ```
//!
//! Run it from a directory with `build/app.wasm` (or a `switchyard.toml`):
//! `cargo run --example custom_server`. `PORT`, `HOSTNAME` and `NODE_ENV`
//! work as they do for `server.js`. `switchyard::server::serve` gives it
//! what `switchyard serve` has: header timeout and size limit, connection
//! cap, per-core workers, graceful drain on SIGINT/SIGTERM.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use std::convert::Infallible;
use switchyard::server::{bind, serve, shutdown_signal};
use switchyard::{App, Body, body::full};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Where the server's own `Error occurred handling ...` lines go (a page
    // that fails, a guest past its deadline): stderr, as `console.error`.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "3000".into())
        .parse()?;
    let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let dev = std::env::var("NODE_ENV").as_deref() != Ok("production");
    let app = App::builder()
        .dev(dev)
        .hostname(&hostname)
        .port(port)
        .build();
    let handle = app.request_handler();

    app.prepare().await?;
    let settings = app.server_settings().unwrap_or_default();
    let listener = bind(&hostname, port).await?;
    println!(
        "> Ready on http://{hostname}:{}",
        listener.local_addr()?.port()
    );
    let server = service_fn(move |req: Request<Incoming>| {
        let (app, handle) = (app.clone(), handle.clone());
        async move {
            let url = req.uri().to_string();
            let result = async {
                let pathname = req.uri().path().to_string();
                let query = switchyard::parse_query(req.uri().query().unwrap_or(""));
                if pathname == "/a" {
                    app.render(&req, "/a", query).await
                } else if pathname == "/b" {
                    app.render(&req, "/b", query).await
                } else {
                    Ok(handle.handle(req).await)
                }
            };
            // `render` answers a failed page itself (the app's error page,
            // or the server's 500/504, logged); `Err` is a misuse: an app
            // not prepared, or one without a renderer.
            Ok::<_, Infallible>(result.await.unwrap_or_else(|err| {
                eprintln!("Error occurred handling {url} {err}");
                internal_server_error()
            }))
        }
    });
    serve(listener, server, settings, shutdown_signal()).await?;
    Ok(())
}

fn internal_server_error() -> Response<Body> {
    let mut res = Response::new(full("internal server error"));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}
