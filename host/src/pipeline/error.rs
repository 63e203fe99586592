//! The one place that turns a failed request into an HTTP response.
//!
//! Clients get a short generic body; the details go to the log as
//! `Error occurred handling <url> <error>` (and, in dev mode, to the body),
//! saying whose fault it was: the guest's, or the host's.

use crate::body::{Body, full};
use crate::log_text::Escaped;
use crate::wasm::kind::AppKind;
use http::{Response, StatusCode, header};
use std::time::Duration;

/// Why a request failed on the host side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guest trapped, failed, or broke the protocol.
    #[error("{0:#}")]
    Guest(wasmtime::Error),
    /// The host could not run the guest: no room in the instance pool, a
    /// granted directory that cannot be opened, ...
    #[error("host error (not the app's fault): {0:#}")]
    Host(wasmtime::Error),
    /// The guest ran past `limits.request_timeout`.
    #[error("the guest ran past the request timeout of {0:?}")]
    Timeout(Duration),
    /// A page was asked for by name, but the app has no renderer.
    #[error(
        "the app is a {0}: rendering a page by name needs its `switchyard:server/renderer@0.2.0` export"
    )]
    NoRenderer(AppKind),
    /// `prepare()` has not completed.
    #[error("the app is not prepared: await `App::prepare` before serving")]
    NotPrepared,
    /// `limits.max_concurrent_requests` requests are already in flight.
    #[error("too many requests in flight (limits.max_concurrent_requests = {0})")]
    Overloaded(u32),
    /// The request body is larger than `limits.max_request_body`.
    #[error("the request body is larger than limits.max_request_body = {0} bytes")]
    PayloadTooLarge(u64),
}

impl Error {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Guest(_) | Error::Host(_) | Error::NotPrepared | Error::NoRenderer(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// What a middleware is told when the link behind it failed: the kind
    /// of failure, never its details (they are logged, once, as this
    /// request's error).
    pub(crate) fn code(&self) -> crate::body::BodyError {
        use crate::body::BodyError;
        match self {
            Error::Timeout(_) => BodyError::HttpResponseTimeout,
            Error::PayloadTooLarge(max) => BodyError::HttpRequestBodySize(Some(*max)),
            _ => BodyError::InternalError(Some(
                "the handler behind this middleware failed".to_string(),
            )),
        }
    }

    /// Log the error for `url` and build the client's response: the details
    /// are shown only when `dev` is on, and logged unless `quiet`.
    pub fn into_response(self, url: &str, dev: bool, quiet: bool) -> Response<Body> {
        let status = self.status();
        // A client's own mistake or a busy server is not worth an error line.
        if !quiet && status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            let error = self.to_string();
            tracing::error!(
                "Error occurred handling {} {}",
                Escaped(url),
                Escaped(&error)
            );
        }
        let summary = match status {
            StatusCode::GATEWAY_TIMEOUT => "gateway timeout",
            StatusCode::SERVICE_UNAVAILABLE => "service unavailable",
            StatusCode::PAYLOAD_TOO_LARGE => "payload too large",
            _ => "internal server error",
        };
        let body = if dev {
            format!("{summary}\n\n{self}\n")
        } else {
            summary.to_string()
        };
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response = response.header(header::RETRY_AFTER, "1");
        }
        response
            .body(full(body))
            .expect("a static response is valid")
    }
}

impl From<wasmtime::Error> for Error {
    /// A guest's failure, but for the pool running out of instances.
    fn from(error: wasmtime::Error) -> Self {
        if error.is::<wasmtime::PoolConcurrencyLimitError>() {
            Error::Host(error)
        } else {
            Error::Guest(error)
        }
    }
}
