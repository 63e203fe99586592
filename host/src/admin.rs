//! The admin listener's service, for operators and orchestrators, on an
//! address of its own (`[admin] listen`, `--admin-listen`), never the
//! public one:
//! - `/metrics`: the app's [`Metrics`](crate::metrics::Metrics), in the
//!   text format Prometheus scrapes;
//! - `/healthz`: 200 while the process serves at all (liveness);
//! - `/readyz`: 200 once the app is prepared, 503 before and from the
//!   first SIGTERM on, while the requests in flight drain (readiness: a
//!   load balancer stops sending requests).
//!
//! Anything else is 404; methods other than GET and HEAD are 405.

use crate::App;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::Ready;

/// The admin endpoints of one app; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    app: App,
}

impl Admin {
    /// The endpoints of `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// The answer to `request`.
    pub fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, HEAD")
                .body(Full::from("method not allowed\n"))
                .unwrap_or_default();
        }
        let (status, content_type, body) = match request.uri().path() {
            "/metrics" => (
                StatusCode::OK,
                crate::metrics::CONTENT_TYPE,
                self.app.metrics().encode(),
            ),
            "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            "/readyz" if self.app.is_ready() => {
                (StatusCode::OK, "text/plain", "ready\n".to_string())
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready\n".to_string(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_string(),
            ),
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::from(body))
            .unwrap_or_default()
    }
}

impl<B> hyper::service::Service<Request<B>> for Admin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.answer(&request)))
    }
}
