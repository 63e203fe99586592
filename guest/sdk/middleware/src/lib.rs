//! Write middleware: components of the standard `wasi:http/middleware@0.3`
//! world, which take each request before the handler behind them (the next
//! middleware, or the app) and may answer it themselves, change it and pass
//! it on, or change the response on its way out. `switchyard serve --router
//! mw.wasm` links a middleware in front of any kind of app (p2 or p3);
//! `switchyard compose --router mw.wasm app.wasm` makes one component of a
//! middleware and a p3 app, for any wasi:http host.
//!
//! The seed's `server.js` as middleware, with a rewrite, an auth check and
//! a header on the way out:
//!
//! ```no_run
//! use switchyard_middleware::{ErrorCode, Middleware, Request, Response, next};
//!
//! struct Site;
//!
//! impl Middleware for Site {
//!     async fn handle(mut request: Request) -> Result<Response, ErrorCode> {
//!         if let Some(rest) = request.path().strip_prefix("/old/") {
//!             let rewritten = format!("/{rest}");
//!             request.set_path(&rewritten)?;
//!         }
//!         if request.path().starts_with("/private/") && request.header("authorization").is_none() {
//!             return Ok(Response::text(401, "sign in first").with_header("www-authenticate", "Bearer"));
//!         }
//!         let response = next(request).await?;
//!         Ok(response.with_header("x-powered-by", "switchyard-middleware"))
//!     }
//! }
//!
//! switchyard_middleware::export!(Site);
//! ```
//!
//! Requests and responses are `wasip3`'s, wrapped: bodies stream through
//! untouched (a header added to a response does not read its body).

pub mod bindings;

use std::future::Future;
use std::marker::PhantomData;
use wasip3::http::types::{Fields, Method, Request as RawRequest, Response as RawResponse};
use wasip3::{wit_future, wit_stream};

pub use wasip3::http::types::ErrorCode;

/// A middleware: what it does with each request.
pub trait Middleware: 'static {
    /// Answer `request`: with a response of its own, or with what
    /// [`next`] answers for it (changed or not).
    fn handle(request: Request) -> impl Future<Output = Result<Response, ErrorCode>>;
}

/// Pass `request` to the handler behind this middleware, and await its
/// response.
pub async fn next(request: Request) -> Result<Response, ErrorCode> {
    let request = request.into_raw();
    bindings::wasi::http::handler::handle(request)
        .await
        .map(Response::from_raw)
}

/// A request on its way through the middleware.
pub struct Request {
    raw: RawRequest,
    /// Headers to add before it is passed on (the incoming request's own
    /// are immutable).
    added: Vec<(String, Vec<u8>)>,
    /// The path and query, as the request has them.
    target: String,
}

impl Request {
    /// The request as `wasip3` has it.
    pub fn from_raw(raw: RawRequest) -> Self {
        let target = raw.get_path_with_query().unwrap_or_else(|| "/".to_string());
        Self {
            raw,
            added: Vec::new(),
            target,
        }
    }

    /// The method: `GET`, `POST`, ...
    pub fn method(&self) -> String {
        match self.raw.get_method() {
            Method::Get => "GET".into(),
            Method::Head => "HEAD".into(),
            Method::Post => "POST".into(),
            Method::Put => "PUT".into(),
            Method::Delete => "DELETE".into(),
            Method::Connect => "CONNECT".into(),
            Method::Options => "OPTIONS".into(),
            Method::Trace => "TRACE".into(),
            Method::Patch => "PATCH".into(),
            Method::Other(other) => other,
        }
    }

    /// The path, as sent (percent-encoded), without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(&self.target, |(path, _)| path)
    }

    /// The query string, without `?`; empty when there is none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The query's pairs, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query().as_bytes())
            .into_owned()
            .collect()
    }

    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<String> {
        first_text(&self.raw.get_headers(), name)
    }

    /// Rewrite the request: the handler behind sees `path` (which may carry
    /// a `?query`; without one, the query is kept). The client's URL is
    /// unchanged: this is not a redirect.
    pub fn set_path(&mut self, path: &str) -> Result<(), ErrorCode> {
        let target = match (path.contains('?'), self.query()) {
            (false, query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path.to_string(),
        };
        self.raw
            .set_path_with_query(Some(&target))
            .map_err(|()| ErrorCode::InternalError(Some(format!("`{target}` is not a path"))))?;
        self.target = target;
        Ok(())
    }

    /// Add header `name: value` before the request is passed on. A name or
    /// value HTTP does not allow, or one the host keeps for itself, is
    /// left out.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.added.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The request as `wasip3` has it, with the added headers.
    pub fn into_raw(self) -> RawRequest {
        if self.added.is_empty() {
            return self.raw;
        }
        let raw = self.raw;
        let headers = with_added(&raw.get_headers(), self.added);
        let (method, target) = (raw.get_method(), raw.get_path_with_query());
        let (scheme, authority) = (raw.get_scheme(), raw.get_authority());
        let options = raw.get_options();
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, trailers) = RawRequest::consume_body(raw, done);
        let (new, _sent) = RawRequest::new(headers, Some(body), trailers, options);
        let _ = new.set_method(&method);
        let _ = new.set_path_with_query(target.as_deref());
        let _ = new.set_scheme(scheme.as_ref());
        let _ = new.set_authority(authority.as_deref());
        new
    }
}

/// A response: one the middleware makes, or the next handler's.
pub struct Response {
    raw: RawResponse,
    added: Vec<(String, Vec<u8>)>,
}

impl Response {
    /// The response as `wasip3` has it.
    pub fn from_raw(raw: RawResponse) -> Self {
        Self {
            raw,
            added: Vec::new(),
        }
    }

    /// A `text/plain` response of `status`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::with_body(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }

    /// A response of `status` with `body` of `content_type`. A status
    /// outside 100 to 999, which HTTP has no room for, makes it a 500.
    pub fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        let headers = Fields::new();
        let _ = headers.set("content-type", &[content_type.as_bytes().to_vec()]);
        let (mut writer, contents) = wit_stream::new();
        wasip3::spawn_local(async move {
            writer.write_all(body).await;
        });
        let (_, trailers) = wit_future::new(|| Ok(None));
        let (raw, _sent) = RawResponse::new(headers, Some(contents), trailers);
        if raw.set_status_code(status).is_err() {
            let _ = raw.set_status_code(500);
        }
        Self::from_raw(raw)
    }

    /// A redirect to `location`, which is percent-encoded where it needs to
    /// be; `status` should be 301, 302, 303, 307 or 308.
    pub fn redirect(status: u16, location: &str) -> Self {
        let location = percent_encoding::utf8_percent_encode(location, LOCATION).to_string();
        Self::text(status, format!("redirecting to {location}")).with_header("location", location)
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.raw.get_status_code()
    }

    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<String> {
        first_text(&self.raw.get_headers(), name)
    }

    /// Add header `name: value` (the body is left as it is). A name or
    /// value HTTP does not allow, or one the host keeps for itself
    /// (`connection`, `transfer-encoding`, ...), is left out.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.added.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The response as `wasip3` has it, with the added headers.
    pub fn into_raw(self) -> RawResponse {
        if self.added.is_empty() {
            return self.raw;
        }
        let raw = self.raw;
        let headers = with_added(&raw.get_headers(), self.added);
        let status = raw.get_status_code();
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, trailers) = RawResponse::consume_body(raw, done);
        let (new, _sent) = RawResponse::new(headers, Some(body), trailers);
        let _ = new.set_status_code(status);
        new
    }
}

/// The first value of header `name` (any case) in `headers`, if it is text.
fn first_text(headers: &Fields, name: &str) -> Option<String> {
    let values = headers.get(&name.to_ascii_lowercase());
    values
        .into_iter()
        .next()
        .and_then(|value| String::from_utf8(value).ok())
}

/// A mutable copy of `headers` (those of a request or response are not),
/// with `added` appended; a header HTTP or the host does not allow is left
/// out.
fn with_added(headers: &Fields, added: Vec<(String, Vec<u8>)>) -> Fields {
    let copy = headers.clone();
    for (name, value) in added {
        let _ = copy.append(&name, &value);
    }
    copy
}

/// What a `Location` keeps as it is: everything a URL may hold but
/// controls, spaces and non-ASCII.
const LOCATION: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'"');

/// The type [`export!`](crate::export) exports for a middleware `M`.
#[doc(hidden)]
pub struct MiddlewareExport<M>(PhantomData<M>);

impl<M: Middleware> bindings::exports::wasi::http::handler::Guest for MiddlewareExport<M> {
    async fn handle(request: RawRequest) -> Result<RawResponse, ErrorCode> {
        M::handle(Request::from_raw(request))
            .await
            .map(Response::into_raw)
    }
}

/// Export `$middleware` (a type implementing [`Middleware`]) as the
/// component's `wasi:http/handler`.
#[macro_export]
macro_rules! export {
    ($middleware:ty) => {
        type __SwitchyardMiddlewareExport = $crate::MiddlewareExport<$middleware>;
        $crate::bindings::export_middleware!(__SwitchyardMiddlewareExport);
    };
}
