//! Content codings, in one place: which responses are worth compressing
//! (the rule), which coding a client gets (the negotiation), and the
//! encoders. The compression layer applies them to every response; the
//! response cache keeps what they made ([`Encoded`]) so that a hit is
//! compressed once per coding, not once per request.
//!
//! The rule: compressible types (HTML, CSS, JS, JSON, SVG, XML, text) of
//! 1 KiB or more (or of unknown length), never a body already encoded, a
//! range, `Cache-Control: no-transform`, or a status without a body.
//!
//! The negotiation is the one Next.js's server uses (the `negotiator`
//! package behind Express's `compression`, here its Rust port): q-values
//! decide, `q=0` refuses, and ties go to brotli, then zstd, then gzip.

use crate::body::{Body, BodyError, announced_length};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::sync::Mutex;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt};
use tokio_stream::StreamExt;
use tokio_util::io::{ReaderStream, StreamReader};

/// Smaller bodies are not worth compressing.
const MIN_SIZE: u64 = 1024;

/// How much compressed output is sent at a time.
const CHUNK: usize = 16 << 10;

/// A content coding the host produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Brotli,
    Zstd,
    Gzip,
}

/// The codings, in the order that wins a tie of q-values.
const PREFERRED: [&str; 3] = ["br", "zstd", "gzip"];

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The `Content-Encoding` value.
    pub(crate) fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.name())
    }
}

/// The coding a client that sent these `Accept-Encoding` values gets, if
/// any: the one it prefers by q-value among those the host makes
/// (`identity` may win).
pub(crate) fn negotiate<'a>(accept: impl IntoIterator<Item = &'a HeaderValue>) -> Option<Coding> {
    let mut values = accept.into_iter();
    let first = values.next()?.to_str().ok()?;
    let joined;
    let accept = match values.next() {
        None => first,
        Some(second) => {
            let mut all = format!("{first}, {}", second.to_str().ok()?);
            for value in values {
                all.push_str(", ");
                all.push_str(value.to_str().ok()?);
            }
            joined = all;
            &joined
        }
    };
    NEGOTIATED.with_borrow_mut(|known| {
        if let Some(i) = known.iter().position(|(value, _)| value == accept) {
            return known[i].1;
        }
        let available = ["br", "zstd", "gzip", "identity"];
        let best =
            negotiator::preferred_encodings(Some(accept), Some(&available), Some(&PREFERRED));
        let coding = match best.first().map(String::as_str) {
            Some("br") => Some(Coding::Brotli),
            Some("zstd") => Some(Coding::Zstd),
            Some("gzip") => Some(Coding::Gzip),
            _ => None,
        };
        if known.len() == NEGOTIATED_KEPT {
            known.remove(0);
        }
        known.push((accept.to_string(), coding));
        coding
    })
}

/// How many `Accept-Encoding` values each worker thread keeps the answer
/// of: clients send a handful of distinct ones (one per browser), and the
/// parser allocates, so a page sent compressed a hundred thousand times a
/// second is negotiated once per value, not once per request.
const NEGOTIATED_KEPT: usize = 16;

thread_local! {
    static NEGOTIATED: std::cell::RefCell<Vec<(String, Option<Coding>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `response` may be sent compressed (see the module docs).
pub(crate) fn is_compressible<B: http_body::Body>(response: &Response<B>) -> bool {
    let status = response.status();
    if status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
        || status.is_informational()
    {
        return false;
    }
    let headers = response.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !is_compressible_type(content_type) || headers.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    let no_transform = headers.get_all(header::CACHE_CONTROL).iter().any(|value| {
        value
            .as_bytes()
            .windows(12)
            .any(|word| word.eq_ignore_ascii_case(b"no-transform"))
    });
    let size = response
        .body()
        .size_hint()
        .exact()
        .or_else(|| announced_length(headers));
    !no_transform && size.is_none_or(|size| size >= MIN_SIZE)
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

/// `body` encoded in `coding` as it streams.
pub(crate) fn encode_stream(coding: Coding, body: Body) -> Body {
    let reader = StreamReader::new(
        body.into_data_stream()
            .map(|data| data.map_err(|error| std::io::Error::other(error.to_string()))),
    );
    let frames = ReaderStream::with_capacity(encoder(coding, reader), CHUNK).map(|data| {
        data.map(Frame::data)
            .map_err(|error| BodyError::InternalError(Some(error.to_string())))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// `bytes` encoded in `coding`, at once.
pub(crate) async fn encode_all(coding: Coding, bytes: &[u8]) -> std::io::Result<Bytes> {
    let mut encoded = Vec::with_capacity(bytes.len() / 3);
    encoder(coding, bytes).read_to_end(&mut encoded).await?;
    Ok(Bytes::from(encoded))
}

/// The encoder of `coding` over `input`: brotli at quality 4 and zstd and
/// gzip at their defaults, which keep up with a page as it streams.
fn encoder<'a, R>(coding: Coding, input: R) -> Box<dyn AsyncRead + Send + Unpin + 'a>
where
    R: AsyncBufRead + Send + Unpin + 'a,
{
    use async_compression::Level;
    use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
    match coding {
        Coding::Brotli => Box::new(BrotliEncoder::with_quality(input, Level::Precise(4))),
        Coding::Zstd => Box::new(ZstdEncoder::with_quality(input, Level::Default)),
        Coding::Gzip => Box::new(GzipEncoder::with_quality(input, Level::Default)),
    }
}

/// Carried by a response whose whole body is `identity` (a cache hit), so
/// that the compression layer takes or keeps its encoded form in `forms`
/// rather than encoding it again. Whoever changes such a body removes this.
#[derive(Debug, Clone)]
pub(crate) struct Reusable {
    pub(crate) identity: Bytes,
    pub(crate) forms: std::sync::Arc<Encoded>,
}

/// The encoded forms of one identity body, each made once, when first
/// asked for (the response cache keeps one per entry, and is told when one
/// is added, to weigh it).
#[derive(Default)]
pub(crate) struct Encoded {
    forms: Mutex<Vec<(Coding, Bytes)>>,
    grown: Option<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("size", &self.size())
            .finish()
    }
}

impl Encoded {
    /// No forms yet; `grown` is called each time one is added.
    pub(crate) fn new(grown: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            forms: Mutex::default(),
            grown: Some(Box::new(grown)),
        }
    }

    /// The bytes of the forms made so far.
    pub(crate) fn size(&self) -> usize {
        let forms = self.forms.lock().unwrap_or_else(|e| e.into_inner());
        forms.iter().map(|(_, bytes)| bytes.len()).sum()
    }

    /// `identity` in `coding`: made now if it was not yet.
    pub(crate) async fn get_or_make(&self, coding: Coding, identity: &[u8]) -> Option<Bytes> {
        if let Some(made) = self.get(coding) {
            return Some(made);
        }
        let made = encode_all(coding, identity).await.ok()?;
        let added = {
            let mut forms = self.forms.lock().unwrap_or_else(|e| e.into_inner());
            let new = !forms.iter().any(|(c, _)| *c == coding);
            if new {
                forms.push((coding, made.clone()));
            }
            new
        };
        if added && let Some(grown) = &self.grown {
            grown();
        }
        Some(made)
    }

    fn get(&self, coding: Coding) -> Option<Bytes> {
        let forms = self.forms.lock().unwrap_or_else(|e| e.into_inner());
        forms
            .iter()
            .find(|(c, _)| *c == coding)
            .map(|(_, bytes)| bytes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &'static str) -> [HeaderValue; 1] {
        [HeaderValue::from_static(value)]
    }

    #[test]
    fn q_values_decide_and_ties_prefer_brotli() {
        assert_eq!(
            negotiate(&accept("gzip, deflate, br")),
            Some(Coding::Brotli)
        );
        assert_eq!(
            negotiate(&accept("GZIP;q=0.5, br;q=0, zstd")),
            Some(Coding::Zstd)
        );
        assert_eq!(
            negotiate(&accept("gzip;q=0.5, br;q=0.9")),
            Some(Coding::Brotli)
        );
        assert_eq!(negotiate(&accept("gzip;q=1, br;q=0.1")), Some(Coding::Gzip));
        assert_eq!(negotiate(&accept("identity")), None);
        assert_eq!(negotiate(&accept("identity;q=1, gzip;q=0.5")), None);
        assert_eq!(negotiate(&accept("*")), Some(Coding::Brotli));
        assert_eq!(negotiate(&accept("br;q=0, *;q=0.5")), Some(Coding::Zstd));
        assert_eq!(negotiate(&[]), None, "no header: identity");
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let values = [
            HeaderValue::from_static("br;q=0"),
            HeaderValue::from_static("gzip"),
        ];
        assert_eq!(negotiate(&values), Some(Coding::Gzip));
    }

    #[tokio::test]
    async fn each_coding_round_trips_and_is_made_once() {
        use std::io::Read;
        let page = "<p>hello</p>".repeat(200);
        let encoded = Encoded::default();
        let gzip = encoded
            .get_or_make(Coding::Gzip, page.as_bytes())
            .await
            .unwrap();
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, page);
        let again = encoded.get_or_make(Coding::Gzip, b"ignored").await.unwrap();
        assert_eq!(again, gzip, "kept, not made again");
        assert_eq!(encoded.size(), gzip.len());
        let brotli = encoded
            .get_or_make(Coding::Brotli, page.as_bytes())
            .await
            .unwrap();
        assert!(brotli.len() < page.len());
    }

    #[test]
    fn the_rule() {
        let response = |content_type: &'static str, size: usize| {
            let mut response = Response::new(crate::body::full(vec![b'x'; size]));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        };
        assert!(is_compressible(&response("text/html; charset=utf-8", 2048)));
        assert!(is_compressible(&response("application/ld+json", 2048)));
        assert!(!is_compressible(&response("text/html", 100)), "too small");
        assert!(!is_compressible(&response("image/png", 2048)));
        let mut no_transform = response("text/html", 2048);
        no_transform.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, no-transform"),
        );
        assert!(!is_compressible(&no_transform));
        let mut partial = response("text/html", 2048);
        *partial.status_mut() = StatusCode::PARTIAL_CONTENT;
        assert!(!is_compressible(&partial));
    }
}
