//! `app.getRequestHandler()`: the config's redirects and routes, static
//! files, then the app's default handler (in dev mode, with live reload).

use super::access_log;
use super::admission::Admitted;
use super::dev;
use super::error::Error;
use crate::body::{Body, full};
use crate::prepared::{Prepared, Shared};
use crate::response::compress;
use crate::routing::{self, Pairs, Routed};
use bytes::Bytes;
use http::{Method, Request, Response, header, request};
use http_body_util::Empty;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::format_err;

/// Handles every request of an [`App`](crate::App); cheap to clone.
#[derive(Clone)]
pub struct RequestHandler {
    shared: Arc<Shared>,
}

/// A request body the handler takes: any `http_body::Body` of bytes.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl RequestHandler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Answer `request`. Never fails: a failure becomes a 500 (504 for a
    /// timeout), logged as `Error occurred handling <url> <error>`.
    ///
    /// The path: canonical path, redirects, static files, then (through
    /// the response cache, for GET and HEAD) a config route's page or the
    /// app's own handler; last, compression and the access log.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (access_log, compression) = self
            .shared
            .with_current(|prepared| {
                let server = &prepared.resolved.config.server;
                (server.access_log, server.compression)
            })
            .unwrap_or_default();
        let logged = access_log.then(|| access_log::Entry {
            method: request.method().clone(),
            path: request.uri().path().to_string(),
            started: Instant::now(),
        });
        let accept = request.headers().get(header::ACCEPT_ENCODING).cloned();
        // Formatted only for an error's log line.
        let uri = request.uri().clone();
        let dev = self.shared.options.dev;
        let method = dev.then(|| request.method().clone());
        if dev && let Some(response) = self.dev_only(&request) {
            return response;
        }
        let mut response = match self.try_handle(request).await {
            Ok(response) => response,
            Err(error) => {
                let options = &self.shared.options;
                error.into_response(&uri.to_string(), options.dev, options.quiet)
            }
        };
        if let Some(method) = method {
            response = dev::add_reload_script(&method, response).await;
        }
        if compression {
            response = compress::negotiate(accept, response).await;
        }
        match logged {
            Some(entry) => access_log::log(entry, response),
            None => response,
        }
    }

    /// Dev mode's own answers: the reload event stream, and the failed
    /// build's output for a page load.
    fn dev_only<B>(&self, request: &Request<B>) -> Option<Response<Body>> {
        if request.uri().path() == dev::EVENTS_PATH {
            return Some(dev::events(&self.shared));
        }
        let output = self.shared.dev.build_error()?;
        dev::wants_page(request.method(), request.headers()).then(|| dev::build_error_page(&output))
    }

    async fn try_handle<B>(&self, request: Request<B>) -> Result<Response<Body>, Error>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let prepared = self.shared.current().ok_or(Error::NotPrepared)?;
        let mut request = request;
        canonicalize(&mut request);
        let uri = request.uri();
        let routed = prepared.routes.route(uri.path(), uri.query().unwrap_or(""));
        if let Some(Routed::Redirect { status, location }) = routed {
            return redirect(status, &location);
        }
        let page = match routed {
            Some(Routed::Page { page, query }) => Some((page, query)),
            _ => None,
        };
        if page.is_none()
            && let Some(public) = &prepared.public
            && let Some(file) = public.serve(&request).await
        {
            return Ok(file);
        }
        let cacheable = request.method() == Method::GET || request.method() == Method::HEAD;
        match prepared.cache.clone() {
            Some(cache) if cacheable => {
                // A GET's body is nothing to keep: what runs is its head.
                let (parts, _body) = request.into_parts();
                let admit = {
                    let prepared = prepared.clone();
                    move || Admitted::new(prepared.clone())
                };
                let run = move |parts: request::Parts| {
                    dispatch(
                        prepared.clone(),
                        Request::from_parts(parts, Empty::<Bytes>::new()),
                        page.clone(),
                    )
                };
                cache.serve(&parts, run, admit).await
            }
            _ => dispatch(prepared, request, page).await,
        }
    }
}

/// Run what answers `request` (its redirects and static files done): the
/// page of a config route, `page` (with its query), through the renderer,
/// else the app's handler.
async fn dispatch<B>(
    prepared: Arc<Prepared>,
    request: Request<B>,
    page: Option<(String, Pairs)>,
) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let admitted = Admitted::new(prepared)?;
    if let Some((page, query)) = page {
        let parts = super::render::RequestParts::new(&request);
        return super::render::render(&admitted, &parts, &page, &query).await;
    }
    super::proxy::handle(admitted, request).await
}

/// Give `request` its path's canonical form (`/%61` is `/a`), which host
/// routes, redirects, static files and the guest all see.
fn canonicalize<B>(request: &mut Request<B>) {
    let uri = request.uri();
    let Some(path) = routing::canonical_path(uri.path()) else {
        return;
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = path_and_query.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
}

/// A redirect as Next.js sends it (308s also carry `Refresh`). A location
/// that is not a valid header is the config's fault: a logged 500.
fn redirect(status: u16, location: &str) -> Result<Response<Body>, Error> {
    let mut response = Response::builder()
        .status(status)
        .header(header::LOCATION, location)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if status == 308 {
        response = response.header("refresh", format!("0;url={location}"));
    }
    response
        .body(full(location.to_string()))
        .map_err(|error| Error::Host(format_err!("invalid redirect location: {error}")))
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for RequestHandler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let handler = self.clone();
        Box::pin(async move { Ok(handler.handle(request).await) })
    }
}
