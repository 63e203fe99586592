//! Write Switchyard page apps: a table of pages, exported as a component.
//!
//! An app lists its pages once; [`export!`] turns that table into both
//! exports of the `switchyard:server/app` world: the default handler
//! (`wasi:http/incoming-handler`, file-system-style routing like Next.js) and
//! the `renderer` (render one page by name, like `app.render`).
//!
//! ```no_run
//! use switchyard_guest::{App, Pages, Request, Response};
//!
//! struct Site;
//!
//! impl App for Site {
//!     fn pages() -> Pages {
//!         Pages::new()
//!             .page("/", |_req| Ok(Response::html("<h1>Home</h1>")))
//!             .page("/posts/[id]", |req: &Request| {
//!                 Ok(Response::text(format!("post {}", req.query("id").unwrap_or(""))))
//!             })
//!     }
//! }
//!
//! switchyard_guest::export!(Site);
//! ```
//!
//! Pages named `/404` and `/_error` replace the default not-found and error
//! responses, as in Next.js.
//!
//! With the `router` feature (and without the default `app` feature), the
//! crate writes router components instead: see [`router`].

pub mod bindings;
#[cfg(not(feature = "router"))]
mod exports;
mod http;
#[cfg(not(feature = "router"))]
mod pages;
mod query;
mod request;
mod response;
#[cfg(feature = "router")]
pub mod router;

pub use anyhow::{Error, Result, anyhow, bail};
#[cfg(not(feature = "router"))]
#[doc(hidden)]
pub use exports::Exports;
#[cfg(not(feature = "router"))]
pub use pages::{PageFn, Pages};
pub use query::{decode_path, parse_query};
pub use request::Request;
pub use response::Response;

/// A page app: the table of its pages.
#[cfg(not(feature = "router"))]
pub trait App: 'static {
    /// The app's pages. Called once per request: keep it cheap (no I/O).
    fn pages() -> Pages;
}

/// Export an [`App`] as the component's default handler and renderer.
#[cfg(not(feature = "router"))]
#[macro_export]
macro_rules! export {
    ($app:ty) => {
        type __SwitchyardExports = $crate::Exports<$app>;
        $crate::bindings::export_app!(__SwitchyardExports);
    };
}
