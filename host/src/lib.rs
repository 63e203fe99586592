//! Switchyard: serve server-rendered pages from WebAssembly components.
//!
//! The Next.js custom server, rebuilt on the component model: pages render
//! in a guest component, and this crate is the server. Like
//! `next(options)`, you build an [`App`], `prepare` it, then route requests
//! yourself: render a page by name with [`App::render`], or hand the
//! request to [`App::request_handler`]. [`server::serve`] runs any hyper
//! service with the protections `switchyard serve` has (timeouts, limits,
//! per-core workers, graceful drain).
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let app = switchyard::App::builder().dev(false).dir(".").build();
//! let handle = app.request_handler();
//! app.prepare().await?;
//! let settings = app.server_settings().unwrap_or_default();
//! let listener = switchyard::server::bind("127.0.0.1", 3000).await?;
//! switchyard::server::serve(listener, handle, settings, switchyard::server::shutdown_signal())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The crate, top to bottom (each floor uses only the ones below it):
//! - [`App`] (`app`): the `next()` API;
//! - `pipeline`: one request's path, as one stack of tower layers (access
//!   log, compression, dev mode's script, the response cache, routing,
//!   static files or the guest, and the one place a failure becomes a
//!   response);
//! - `dev`: dev mode (build command, reload, file watching, what the
//!   browser sees), above the build it swaps;
//! - `build`: the prepared build that `prepare` makes and each request
//!   carries, and the one place that holds the build in use;
//! - the floors they stand on: `response_cache` (RFC 9111), `encoding`
//!   (content codings), `static_files`, [`server`] (the accept loop),
//!   [`wasm`] (engines, components, stores, pools, bindings, compositions),
//!   [`config`], [`routing`], [`body`].

#![deny(missing_docs)]

pub mod admin;
mod app;
pub mod body;
mod build;
pub mod config;
mod data;
mod dev;
mod encoding;
mod layer;
mod log_text;
pub mod metrics;
mod pipeline;
mod response_cache;
pub mod routing;
pub mod server;
mod shared_redis;
mod static_files;
pub mod telemetry;
pub mod wasm;

pub use app::{App, AppBuilder};
pub use body::Body;
pub use config::Config;
pub use pipeline::RequestHandler;
pub use pipeline::error::Error;
pub use routing::parse_query;
pub use wasm::component::read as read_component;
pub use wasm::kind::{AppKind, RouterKind};
