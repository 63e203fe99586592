//! `app.getRequestHandler()`: the config's redirects and routes, then the
//! app's default handler.

use crate::admission::Admitted;
use crate::app::App;
use crate::body::{Body, full};
use crate::error::Error;
use crate::routes::Routed;
use bytes::Bytes;
use http::{Request, Response, header};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

/// Handles every request of an [`App`]; cheap to clone.
#[derive(Clone)]
pub struct RequestHandler {
    app: App,
}

impl RequestHandler {
    pub(crate) fn new(app: App) -> Self {
        Self { app }
    }

    /// The effective configuration (defaults before `prepare`).
    pub(crate) fn config(&self) -> crate::Config {
        self.app.config().unwrap_or_default()
    }

    /// Answer `request`. Never fails: a failure becomes a 500 (504 for a
    /// timeout), logged as `Error occurred handling <url> <error>`.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // Formatted only for an error's log line.
        let uri = request.uri().clone();
        match self.try_handle(request).await {
            Ok(response) => response,
            Err(error) => {
                error.into_response(&uri.to_string(), self.app.is_dev(), self.app.is_quiet())
            }
        }
    }

    async fn try_handle<B>(&self, request: Request<B>) -> Result<Response<Body>, Error>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let prepared = self.app.prepared.load_full().ok_or(Error::NotPrepared)?;
        let uri = request.uri();
        let routed = prepared.routes.route(uri.path(), uri.query().unwrap_or(""));
        if let Some(Routed::Redirect { status, location }) = routed {
            return Ok(redirect(status, &location));
        }
        let prepared = Admitted::new(prepared)?;
        if let Some(Routed::Page { page, query }) = routed {
            let parts = crate::render::RequestParts::new(&request);
            return crate::render::render(&prepared, &parts, &page, &query).await;
        }
        if let Some(public) = &prepared.public
            && let Some(file) = public
                .serve(request.method(), uri.path(), request.headers())
                .await
        {
            return Ok(file);
        }
        crate::default_handler::handle(prepared, request).await
    }
}

/// A redirect as Next.js sends it (308s also carry `Refresh`).
fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut response = Response::builder()
        .status(status)
        .header(header::LOCATION, location)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if status == 308 {
        response = response.header("refresh", format!("0;url={location}"));
    }
    response
        .body(full(location.to_string()))
        .unwrap_or_else(|_| Response::new(full("invalid redirect location")))
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
