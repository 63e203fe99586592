//! Switchyard: serve server-rendered pages from WebAssembly components.
//!
//! The Next.js custom server, rebuilt on the component model: pages render
//! in a guest component (`switchyard:server/app`), and this crate is the
//! server. Like `next(options)`, you build an [`App`], `prepare` it, then
//! route requests yourself: render a page by name with [`App::render`], or
//! hand the request to [`App::request_handler`].
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let app = switchyard::App::builder().dev(false).dir(".").build();
//! let handle = app.request_handler();
//! app.prepare().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! switchyard::server::serve(listener, handle, switchyard::server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod admission;
mod app;
mod bindings;
pub mod body;
pub mod compose;
pub mod config;
mod default_handler;
mod engine;
mod error;
mod handler;
mod instance;
mod kind;
mod limited_body;
mod p3;
mod prepared;
mod reload;
mod render;
mod reuse;
pub mod routes;
pub mod server;
mod static_files;

pub use app::{App, AppBuilder};
pub use body::Body;
pub use config::Config;
pub use engine::read_component;
pub use error::Error;
pub use handler::RequestHandler;
pub use kind::AppKind;
pub use routes::parse_query;
