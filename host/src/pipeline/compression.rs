//! `[server] compression`: responses worth compressing go out in the coding
//! the client prefers, with `Vary: Accept-Encoding` (the rule, the
//! negotiation and the encoders are [`encoding`](crate::encoding)'s). A
//! body that streams is compressed as it streams; a cache hit's body is
//! compressed once per coding and kept beside the entry.

use crate::body::{Body, ResponseFuture, full};
use crate::build::Build;
use crate::encoding::{self, Reusable};
use crate::layer::layer;
use http::{HeaderValue, Response, header};

layer! {
    /// Compresses the responses of a service, when its build says so.
    pub(super) struct CompressionLayer(());
    /// `S`, its responses compressed.
    struct Compression;
    fn call(this, request) {
        let on = Build::carried_by(&request).is_some_and(|build| build.settings.compression);
        if !on {
            return Box::pin(this.inner.call(request));
        }
        // Negotiated only if the response turns out to be worth compressing
        // (a second line of the header is rare: only then a vector).
        let mut values = request.headers().get_all(header::ACCEPT_ENCODING).iter();
        let first = values.next().cloned();
        let more: Vec<HeaderValue> = values.cloned().collect();
        let answer: ResponseFuture = Box::pin(this.inner.call(request));
        Box::pin(async move {
            let accept = first.iter().chain(&more);
            Ok(compress(accept, answer.await?).await)
        })
    }
}

/// `response`, compressed for a client that sent `accept`, if it should be.
async fn compress<'a>(
    accept: impl IntoIterator<Item = &'a HeaderValue>,
    mut response: Response<Body>,
) -> Response<Body> {
    if !encoding::is_compressible(&response) {
        return response;
    }
    encoding::vary_on_accept_encoding(response.headers_mut());
    let Some(coding) = encoding::negotiate(accept) else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let body = match parts.extensions.remove::<Reusable>() {
        Some(reusable) => match reusable.forms.get_or_make(coding, &reusable.identity).await {
            Some(encoded) => full(encoded),
            None => return Response::from_parts(parts, full(reusable.identity)),
        },
        None => encoding::encode_stream(coding, body),
    };
    let headers = &mut parts.headers;
    headers.insert(header::CONTENT_ENCODING, coding.header_value());
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    Response::from_parts(parts, body)
}
