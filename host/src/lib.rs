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
//! - [`http`]: the server and one request's path (handler, admission,
//!   render, the guest's handler, errors);
//! - `prepared`: what `prepare` makes, shared by the app, its handler and
//!   dev-mode reload;
//! - [`wasm`]: engines, components, stores, pools, bindings, compositions;
//!   [`config`]: `switchyard.toml`;
//! - [`routing`]: `[[routes]]` and `[[redirects]]`; `static_files`; [`body`].

#![deny(missing_docs)]

mod app;
pub mod body;
pub mod config;
pub mod http;
mod prepared;
mod response;
pub mod routing;
mod static_files;
pub mod wasm;

pub use app::{App, AppBuilder};
pub use body::Body;
pub use config::Config;
pub use http::error::Error;
pub use http::handler::RequestHandler;
pub use http::server;
pub use routing::parse_query;
pub use wasm::component::read as read_component;
pub use wasm::kind::AppKind;
