//! The response body type every handler returns.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// A response body: the guest's stream, or bytes the host made.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>;

/// An error while streaming a body (the guest failed mid-response).
pub type BodyError = wasmtime_wasi_http::Error;

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}
