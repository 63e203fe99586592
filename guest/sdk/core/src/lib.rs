//! What every Switchyard guest shares: the [`Request`] a page reads, the
//! [`Response`] it answers with (or anything [`IntoResponse`]), forms,
//! cookies, [`fetch`] for outgoing HTTP, key-value stores ([`kv`]),
//! variables ([`config`]) and on-demand revalidation
//! ([`revalidate_path`], [`revalidate_tag`]).
//!
//! Write apps with `switchyard-app` and routers with `switchyard-router`:
//! both re-export this crate, and both build in one cargo run.

pub mod bindings;
pub mod config;
mod fetch;
#[doc(hidden)]
pub mod http;
mod into_response;
pub mod kv;
mod query;
mod request;
mod response;
mod revalidate;

pub use anyhow::{Context, Error, Result, anyhow, bail};
pub use cookie::{self, Cookie, SameSite};
pub use fetch::{Fetch, Fetched, fetch};
pub use into_response::{Html, IntoResponse, Json, Redirect, via};
pub use query::{decode_path, parse_query};
pub use request::Request;
pub use response::Response;
pub use revalidate::{revalidate_path, revalidate_tag};

/// The error of a page that names nothing: the app answers with its `/404`
/// page and status 404, as Next.js's `notFound()` does.
///
/// ```
/// use switchyard_guest::{NotFound, Request, Response, Result};
///
/// fn post(req: &Request) -> Result<Response> {
///     match req.param("id") {
///         Some("1") => Ok(Response::text("the first post")),
///         _ => Err(NotFound.into()),
///     }
/// }
/// let error = post(&Request::new("GET", "/posts/2", Vec::new())).unwrap_err();
/// assert!(error.is::<NotFound>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFound;

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not found")
    }
}

impl std::error::Error for NotFound {}
