//! Middleware: components of the `wasi:http/middleware@0.3.x` world
//! (import `handler`, export `handler`), chained by the host in front of
//! an app of any kind.
//!
//! Each middleware runs in instances of its own on the p3 path
//! ([`P3Handler`](super::p3::P3Handler)). Its import of `wasi:http/handler`
//! is the host's: the request it passes on leaves its store as an
//! `http::Request`, goes to the next link ([`Next`]: the next middleware,
//! or the app, p2 or p3), and the answer comes back in as its response.
//! The conversions both ways are wasmtime-wasi-http's own, the ones
//! `wasi:http/client.send` makes: the import calls that `send` with hooks
//! whose `send_request` is [`Next`]. Bodies stream through in both
//! directions; nothing is buffered.

use super::store::Host;
use crate::body::{Body, BodyError};
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use wasmtime::Result;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime::error::Context;
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{RequestOptions, WasiHttp, WasiHttpHooks};

/// The interface a middleware imports to call the next link (any 0.3.x
/// matches it by semver).
pub(crate) const HANDLER_IMPORT: &str = "wasi:http/handler@0.3.0";

/// What a link answers: the response, or why there is none.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, BodyError>> + Send>>;

/// The link after a middleware: the next middleware, or the app.
#[derive(Clone)]
pub(crate) struct Next(Arc<dyn Fn(Request<Body>) -> Answer + Send + Sync>);

impl Next {
    pub(crate) fn new(call: impl Fn(Request<Body>) -> Answer + Send + Sync + 'static) -> Self {
        Self(Arc::new(call))
    }
}

/// The `wasi:http` hooks of a middleware's calls to the next link.
#[derive(Default)]
pub(crate) struct NextHooks {
    /// Set as each request starts: a middleware instance serves one request
    /// at a time, and its calls go to that request's next link.
    pub(crate) next: Option<Next>,
}

impl WasiHttpHooks for NextHooks {
    /// A request passed on keeps the scheme it came with; one the
    /// middleware built without a scheme is `http`, as a request from a
    /// client without TLS is. (It needs an authority all the same:
    /// wasmtime-wasi-http refuses a request without one.)
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        Some(http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        request: Request<Body>,
        // The next link is bounded by the host's own request timeout, not by
        // timeouts the middleware asks for.
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), BodyError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        Response<Body>,
                        Box<dyn Future<Output = Result<(), BodyError>> + Send>,
                    ),
                    BodyError,
                >,
            > + Send,
    > {
        let next = self.next.clone();
        Box::new(async move {
            let Some(next) = next else {
                return Err(BodyError::InternalError(Some(
                    "this middleware has no next handler".to_string(),
                )));
            };
            let response = (next.0)(request).await?;
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Define the `handler` a middleware imports: the next link.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> Result<()> {
    linker
        .instance(HANDLER_IMPORT)?
        .func_wrap_concurrent(
            "handle",
            |accessor: &Accessor<Host>,
             (request,): (Resource<wasmtime_wasi_http::p3::Request>,)| {
                Box::pin(async move {
                    let accessor = accessor.with_getter::<WasiHttp>(Host::next_http);
                    match <WasiHttp as HostWithStore<Host>>::send(&accessor, request).await {
                        Ok(response) => Ok((Ok::<_, ErrorCode>(response),)),
                        // An error code goes to the guest; anything else traps it.
                        Err(error) => Ok((Err(error.downcast()?),)),
                    }
                })
            },
        )
        .context("failed to define wasi:http/handler for middleware")
}
