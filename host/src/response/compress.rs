//! Response compression: gzip, brotli or zstd, as the client accepts them
//! (tower-http's `Compression`, streaming: a streamed body is compressed
//! as it streams), for compressible types (HTML, CSS, JS, JSON, SVG, XML,
//! text) of 1 KiB or more (or of unknown length). Never for bodies that are
//! already encoded, ranges, `Cache-Control: no-transform`, or statuses
//! without a body. `Vary: Accept-Encoding` goes on what may be compressed.

use crate::body::{Body, BodyError};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use std::convert::Infallible;
use tower::ServiceExt;
use tower_http::compression::Compression;
use tower_http::compression::predicate::Predicate;

/// Smaller bodies are not worth compressing.
const MIN_SIZE: u64 = 1024;

/// `response`, compressed for a client that sent `accept` as its
/// `Accept-Encoding`, when it should be.
pub(crate) async fn negotiate(
    accept: Option<HeaderValue>,
    response: Response<Body>,
) -> Response<Body> {
    // The common cases, without building a compression service.
    if !Compressible.should_compress(&response) {
        return response;
    }
    let Some(accept) = accept else {
        let mut response = response;
        vary_on_accept_encoding(response.headers_mut());
        return response;
    };
    let mut response = Some(response);
    let answer = tower::service_fn(move |_: Request<()>| {
        let response = response.take();
        async move {
            Ok::<_, Infallible>(response.unwrap_or_else(|| {
                // The service is called once; a second call has nothing to give.
                let mut empty = Response::new(crate::body::full(""));
                *empty.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                empty
            }))
        }
    });
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert(header::ACCEPT_ENCODING, accept);
    let compressed = Compression::new(answer)
        .compress_when(Compressible)
        .oneshot(request)
        .await;
    match compressed {
        Ok(response) => response.map(|body| {
            body.map_err(|error| match error.downcast::<BodyError>() {
                Ok(error) => *error,
                Err(error) => BodyError::InternalError(Some(error.to_string())),
            })
            .boxed_unsync()
        }),
        Err(never) => match never {},
    }
}

/// Add `Vary: Accept-Encoding` unless it is there already.
pub(crate) fn vary_on_accept_encoding(headers: &mut HeaderMap) {
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"accept-encoding"));
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// `bytes` compressed in `encoding` (`br`, `zstd` or `gzip`), at once.
pub(crate) async fn compress_now(
    encoding: &HeaderValue,
    bytes: &bytes::Bytes,
) -> Option<bytes::Bytes> {
    let mut response = Response::new(crate::body::full(bytes.clone()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let compressed = negotiate(Some(encoding.clone()), response).await;
    if compressed.headers().get(header::CONTENT_ENCODING) != Some(encoding) {
        return None;
    }
    Some(compressed.into_body().collect().await.ok()?.to_bytes())
}

/// Whether a response of this type is worth compressing.
pub(crate) fn is_compressible_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let essence = essence.as_bytes();
    let starts = |prefix: &str| {
        essence.len() >= prefix.len()
            && essence[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    let ends = |suffix: &str| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    starts("text/")
        || ends("+json")
        || ends("+xml")
        || [
            "application/json",
            "application/javascript",
            "application/xml",
            "application/wasm",
        ]
        .iter()
        .any(|known| essence.eq_ignore_ascii_case(known.as_bytes()))
}

/// What tower-http compresses: see the module docs.
#[derive(Clone, Copy)]
struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B: http_body::Body>(&self, response: &Response<B>) -> bool {
        let headers = response.headers();
        let status = response.status();
        if status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::PARTIAL_CONTENT
        {
            return false;
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let no_transform = headers.get_all(header::CACHE_CONTROL).iter().any(|value| {
            value
                .as_bytes()
                .windows(12)
                .any(|word| word.eq_ignore_ascii_case(b"no-transform"))
        });
        let size = response.body().size_hint().exact().or_else(|| {
            headers
                .get(header::CONTENT_LENGTH)?
                .to_str()
                .ok()?
                .parse()
                .ok()
        });
        is_compressible_type(content_type)
            && !no_transform
            && size.is_none_or(|size| size >= MIN_SIZE)
    }
}
