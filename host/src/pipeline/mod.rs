//! One request's path through the host, as one stack of tower layers. A
//! request walks down it once and its response walks back up:
//!
//! 1. [`observe`]: the request's metrics, and its access log line, once
//!    its body is sent;
//! 2. [`compression`]: the coding the client prefers, for what is worth it;
//! 3. dev mode's [`ReloadScriptLayer`](crate::dev::ReloadScriptLayer): its
//!    event stream and error page, and the script in every HTML page;
//! 4. [`cache`]: the shared response cache, for GET and HEAD;
//! 5. [`route`]: redirects and `[[routes]]`, then static files or the
//!    guest ([`guest`]: admission, then a page rendered by name or the
//!    app's own handler, p2 or p3), with [`error`] the one place where a
//!    failure becomes a response.
//!
//! [`RequestHandler`] is the way in: it loads the build in use once and
//! carries it with the request (its extensions), so a dev-mode swap never
//! mixes two builds in one request. `App::render` goes through the same
//! stack, with its page named on the request ([`RenderTarget`]).

mod cache;
mod compression;
pub(crate) mod error;
mod guest;
mod observe;
mod route;

use crate::body::{Body, BoxError, RequestBody, ResponseFuture};
use crate::build::Current;
use crate::dev::{Dev, ReloadScriptLayer};
use crate::routing::{self, Pairs};
use crate::wasm::outgoing::OwnAddresses;
use bytes::Bytes;
use error::Error;
use http::{Request, Response};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::sync::Arc;
use tower::{Service, ServiceBuilder};

/// The stack, outermost first.
type Stack = observe::Observe<
    compression::Compression<crate::dev::ReloadScript<cache::Cache<route::Route>>>,
>;

/// Handles every request of an [`App`](crate::App); cheap to clone.
#[derive(Clone)]
pub struct RequestHandler {
    current: Arc<Current>,
    own: OwnAddresses,
    stack: Stack,
    dev: bool,
    quiet: bool,
}

/// A page to render by name (`App::render`), instead of routing the
/// request: it rides on the request, through the same stack.
#[derive(Debug, Clone)]
pub(crate) struct RenderTarget {
    pub(crate) page: String,
    pub(crate) query: Pairs,
}

impl RequestHandler {
    pub(crate) fn new(
        current: Arc<Current>,
        own: OwnAddresses,
        dev: Option<Arc<Dev>>,
        quiet: bool,
    ) -> Self {
        let is_dev = dev.is_some();
        let stack = ServiceBuilder::new()
            .layer(observe::ObserveLayer(()))
            .layer(compression::CompressionLayer(()))
            .layer(ReloadScriptLayer(dev))
            .layer(cache::CacheLayer(()))
            .service(route::Route);
        Self {
            current,
            own,
            stack,
            dev: is_dev,
            quiet,
        }
    }

    /// Answer `request`. Never fails: a failure becomes a 500 (504 for a
    /// timeout), logged as `Error occurred handling <url> <error>`.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let answer = self.answer(request.map(|body| body.map_err(Into::into).boxed_unsync()));
        match answer.await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Render `page` with `query` for `request`, through the whole stack.
    pub(crate) async fn render<B>(
        &self,
        request: &Request<B>,
        page: &str,
        query: Pairs,
    ) -> Response<Body> {
        let mut builder = Request::builder()
            .method(request.method())
            .uri(request.uri())
            .version(request.version());
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers().clone();
        }
        let mut copy = match builder.body(RequestBody::default()) {
            Ok(copy) => copy,
            Err(error) => {
                let error = wasmtime::format_err!("failed to copy the request's head: {error}");
                return self.failed(request.uri(), Error::Host(error));
            }
        };
        if let Some(served_on) = request.extensions().get::<crate::server::ServedOn>() {
            copy.extensions_mut().insert(*served_on);
        }
        copy.extensions_mut().insert(RenderTarget {
            page: page.to_string(),
            query,
        });
        match self.answer(copy).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Down the stack with the build in use.
    fn answer(&self, mut request: Request<RequestBody>) -> ResponseFuture {
        if let Some(served_on) = request.extensions().get::<crate::server::ServedOn>() {
            self.own.record(served_on.0);
        }
        let Some(build) = self.current.load() else {
            let failed = self.failed(request.uri(), Error::NotPrepared);
            return Box::pin(std::future::ready(Ok(failed)));
        };
        canonicalize(&mut request);
        request.extensions_mut().insert(build);
        // Every layer is always ready (none holds requests back: admission
        // refuses at once), so no `poll_ready` first.
        self.stack.clone().call(request)
    }

    fn failed(&self, uri: &http::Uri, error: Error) -> Response<Body> {
        error.into_response(&uri.to_string(), self.dev, self.quiet)
    }
}

/// Give `request` its path's canonical form (`/%61` is `/a`), which the
/// cache, host routes, redirects, static files and the guest all see, and
/// the connection's scheme: a client's absolute-form target (`GET
/// https://host/ HTTP/1.1` over plain TCP) cannot claim another.
fn canonicalize<B>(request: &mut Request<B>) {
    let uri = request.uri();
    let scheme = crate::server::scheme_of(request);
    let wrong_scheme = uri.scheme().is_some_and(|claimed| *claimed != scheme);
    let path = routing::canonical_path(uri.path());
    if path.is_none() && !wrong_scheme {
        return;
    }
    let mut parts = uri.clone().into_parts();
    if wrong_scheme {
        parts.scheme = Some(scheme);
    }
    let path_and_query = path.map(|path| match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    });
    if let Some(Ok(path_and_query)) = path_and_query.map(|text| text.parse()) {
        parts.path_and_query = Some(path_and_query);
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for RequestHandler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<hyper::body::Incoming>) -> ResponseFuture {
        self.answer(request.map(|body| body.map_err(Into::into).boxed_unsync()))
    }
}
