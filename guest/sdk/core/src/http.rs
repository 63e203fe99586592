//! The wasi:http side: read an incoming request, write a response.

use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::{InputStream, StreamError};
use crate::{Request, Response};

/// The most a single `blocking-write-and-flush` may carry.
const WRITE_CHUNK: usize = 4096;

/// Read `incoming` (body included) into a [`Request`]. The path is left raw
/// (percent-encoded) for routing; the query is parsed.
#[doc(hidden)]
pub fn read_request(incoming: IncomingRequest) -> anyhow::Result<Request> {
    let mut request = read_head(&incoming);
    let body = incoming
        .consume()
        .map_err(|()| anyhow::anyhow!("request body already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| anyhow::anyhow!("request body stream already taken"))?;
    request.set_body(read_to_end(&stream, usize::MAX)?);
    Ok(request)
}

/// Read everything but the body of `incoming`, which stays unconsumed (a
/// router may pass the request on). The path is left raw (percent-encoded).
#[doc(hidden)]
pub fn read_head(incoming: &IncomingRequest) -> Request {
    let target = incoming
        .path_with_query()
        .unwrap_or_else(|| "/".to_string());
    let (path, raw_query) = crate::query::split_target(&target);
    let headers = header_pairs(&incoming.headers());
    Request::from_head(
        method_name(&incoming.method()),
        path,
        raw_query,
        incoming.authority(),
        headers,
    )
}

/// The name/value pairs of `fields`, names in lower case (what the SDK's
/// requests, responses and fetches keep).
pub(crate) fn header_pairs(fields: &Fields) -> Vec<(String, String)> {
    fields
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect()
}

/// The first value of header `name` in `headers` (case-insensitive).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Read `stream` until it closes; more than `limit` bytes is an error.
pub(crate) fn read_to_end(stream: &InputStream, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => {
                anyhow::bail!("failed to read the body: {}", error.to_debug_string())
            }
        }
        if bytes.len() > limit {
            anyhow::bail!("the body is larger than {limit} bytes");
        }
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
    .to_string()
}

/// Send `response` through `out`. The whole body is written even for HEAD:
/// the server drops it on the wire and keeps `content-length`.
#[doc(hidden)]
pub fn write_response(out: ResponseOutparam, response: Response) {
    let fields: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let headers = match Fields::from_list(&fields) {
        Ok(headers) => headers,
        Err(error) => {
            eprintln!("invalid response headers: {error:?}");
            let message = format!("invalid response headers: {error:?}");
            let error = crate::bindings::wasi::http::types::ErrorCode::InternalError(Some(message));
            ResponseOutparam::set(out, Err(error));
            return;
        }
    };
    let outgoing = OutgoingResponse::new(headers);
    // Any u16 that is not a valid status is refused; 500 is always valid.
    if outgoing.set_status_code(response.status).is_err() {
        let _ = outgoing.set_status_code(500);
    }
    let body = outgoing.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(outgoing));
    if let Err(error) = write_body(&body, &response.body) {
        eprintln!("failed to write the response body: {error}");
        return;
    }
    if let Err(error) = OutgoingBody::finish(body, None) {
        eprintln!("failed to finish the response body: {error:?}");
    }
}

pub(crate) fn write_body(body: &OutgoingBody, bytes: &[u8]) -> anyhow::Result<()> {
    let stream = body
        .write()
        .map_err(|()| anyhow::anyhow!("response body stream already taken"))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|error| anyhow::anyhow!("{error:?}"))?;
    }
    Ok(())
}
