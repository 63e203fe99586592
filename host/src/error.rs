//! The one place that turns a failed request into an HTTP response.
//!
//! Clients get a short generic body; the details go to the log as
//! `Error occurred handling <url> <error>` (and, in dev mode, to the body).

use crate::body::{Body, full};
use http::{Response, StatusCode, header};
use std::time::Duration;

/// Why a request failed on the host side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guest trapped, failed, or broke the protocol.
    #[error("{0:#}")]
    Guest(wasmtime::Error),
    /// The guest ran past `limits.request_timeout`.
    #[error("the guest ran past the request timeout of {0:?}")]
    Timeout(Duration),
    /// `prepare()` has not completed.
    #[error("the app is not prepared: await `App::prepare` before serving")]
    NotPrepared,
}

impl Error {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Guest(_) | Error::NotPrepared => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Log the error for `url` and build the client's response: the details
    /// are shown only when `dev` is on, and logged unless `quiet`.
    pub fn into_response(self, url: &str, dev: bool, quiet: bool) -> Response<Body> {
        if !quiet {
            tracing::error!("Error occurred handling {url} {self}");
        }
        let status = self.status();
        let summary = match status {
            StatusCode::GATEWAY_TIMEOUT => "gateway timeout",
            _ => "internal server error",
        };
        let body = if dev {
            format!("{summary}\n\n{self}\n")
        } else {
            summary.to_string()
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(full(body))
            .expect("a static response is valid")
    }
}

impl From<wasmtime::Error> for Error {
    fn from(error: wasmtime::Error) -> Self {
        Error::Guest(error)
    }
}
