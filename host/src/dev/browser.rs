//! Dev mode in the browser, as a layer of the request pipeline (below
//! compression, above the response cache, so that every HTML page gets the
//! script, cached or not, before it is compressed): a small script in every
//! HTML page, which names what the page was served with and listens on
//! [`EVENTS_PATH`] (server-sent events), and reloads the tab when the
//! stream names something else (a build swapped in, a build that failed or
//! was fixed, another server); and the page that shows a failed build's
//! output. None of it exists outside dev mode.

use super::Dev;
use crate::body::{Body, RequestBody, ResponseFuture, full};
use crate::encoding::Reusable;
use crate::layer::layer;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};

/// The dev-only event stream the reload script listens on.
pub(crate) const EVENTS_PATH: &str = "/_switchyard/events";

/// How often an idle event stream sends a comment, so that proxies and
/// the browser keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The largest HTML page the script is added to; larger ones go unchanged.
const MAX_PAGE: usize = 16 * 1024 * 1024;

/// Added at the end of every HTML page in dev mode: it reloads the tab
/// when the event stream names a build other than the page's own `build`,
/// so a build that lands before the stream connects reloads the tab too.
fn reload_script(build: &str) -> String {
    format!(
        "<script>/* switchyard dev: reload after each build */\
         new EventSource(\"{EVENTS_PATH}\").addEventListener(\"build\",e=>{{if(e.data!==\"{build}\")location.reload()}});\
         </script>"
    )
}

layer! {
    /// Adds dev mode's answers and the reload script to a service, in dev
    /// mode (with `Some`); else it passes everything through.
    pub(crate) struct ReloadScriptLayer(Option<Arc<Dev>>);
    /// Dev mode's answers (the event stream, a failed build's page for a
    /// page load), else `inner`'s, with the reload script in its HTML pages.
    struct ReloadScript;
    fn call(this, request) {
        let Some(dev) = &this.state else {
            return Box::pin(this.inner.call(request));
        };
        if !is_allowed_origin(&request) {
            let refused = forbidden();
            return Box::pin(async move { Ok(refused) });
        }
        if request.uri().path() == EVENTS_PATH {
            let events = events(dev);
            return Box::pin(async move { Ok(events) });
        }
        // The page's name: the build that answers it (chosen as the request
        // came in), and the builds finished so far, read before the error
        // page is: a page that changes meanwhile is named as stale, and its
        // tab reloads once more.
        let serial = crate::build::Build::carried_by(&request).map(|build| build.serial);
        let name = dev.page_name(serial);
        if let Some(output) = dev.build_error()
            && wants_page(request.method(), request.headers())
        {
            let page = build_error_page(&output, &name);
            return Box::pin(async move { Ok(page) });
        }
        let method = request.method().clone();
        let answer: ResponseFuture = Box::pin(this.inner.call(request));
        Box::pin(async move { Ok(add_reload_script(&method, answer.await?, &name).await) })
    }
}

/// Whether a dev-mode request comes from a page of this server: its `Host`,
/// and its `Origin` when it has one, name `localhost`, a loopback address,
/// the address the server listens on, or one of `[dev] allowed_origins`.
/// Anything else may be a page elsewhere that rebound a name of its own to
/// this machine (DNS rebinding) to read the dev pages, the event stream or
/// the compiler's output.
fn is_allowed_origin(request: &Request<RequestBody>) -> bool {
    let allowed = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            let listening = request
                .extensions()
                .get::<crate::server::ServedOn>()
                .map(|served_on| served_on.0.ip());
            return ip.is_loopback() || listening == Some(ip);
        }
        crate::build::Build::carried_by(request).is_some_and(|build| {
            let names = &build.resolved.config.dev.allowed_origins;
            names.iter().any(|name| name.eq_ignore_ascii_case(host))
        })
    };
    let host = request
        .uri()
        .authority()
        .map(|authority| authority.host().to_string())
        .or_else(|| {
            let host = request.headers().get(header::HOST)?.to_str().ok()?;
            Some(host_of(host).to_string())
        });
    let Some(host) = host else { return false };
    if !allowed(&host) {
        return false;
    }
    match request.headers().get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .is_some_and(|(_, rest)| allowed(host_of(rest))),
    }
}

/// The host of `host[:port]` (an IPv6 address in brackets keeps them).
fn host_of(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => &authority[..colon],
        _ => authority,
    }
}

/// The answer to a request dev mode does not answer.
fn forbidden() -> Response<Body> {
    let mut response = Response::new(full(
        "403: this dev server answers only for localhost, its own address and `[dev] allowed_origins`\n",
    ));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The event stream: `event: build` with what tabs should show as it
/// connects, and again after each swap and each finished build.
fn events(dev: &Dev) -> Response<Body> {
    let (now, later) = dev.subscribe();
    let build = |name: &str| Bytes::from(format!("event: build\ndata: {name}\n\n"));
    // Reconnect quickly when the server restarts.
    let hello = tokio_stream::iter([Bytes::from_static(b"retry: 500\n\n"), build(&now)]);
    // A receiver that lagged behind gets the builds still queued: the
    // last one names the build in use.
    let reloads = BroadcastStream::new(later).filter_map(move |name| Some(build(&name.ok()?)));
    let pings = IntervalStream::new(tokio::time::interval(KEEP_ALIVE))
        .skip(1)
        .map(|_| Bytes::from_static(b": ping\n\n"));
    let stream = hello
        .chain(reloads.merge(pings))
        .map(|bytes| Ok(Frame::data(bytes)));
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Each event goes out as it comes: never compressed.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-transform"),
    );
    response
}

/// Whether a request is a page load (a tab that would show HTML).
fn wants_page(method: &Method, headers: &http::HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// The page that shows a failed build's output (escaped), and reloads
/// itself when a build succeeds.
fn build_error_page(output: &str, build: &str) -> Response<Body> {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Build failed · switchyard dev</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>\
         body{{margin:0;font-family:system-ui,sans-serif;background:#1f2430;color:#f1f3f5}}\
         main{{max-width:60rem;margin:0 auto;padding:2rem 1.25rem}}\
         h1{{color:#ff8787;font-size:1.5rem}}\
         pre{{background:#12151c;padding:1rem;border-radius:8px;overflow-x:auto;white-space:pre-wrap;line-height:1.45}}\
         </style>\n</head>\n<body>\n<main>\n<h1>Build failed</h1>\n\
         <p>The last good build is still serving everything else. Fix the error and save: this page reloads itself.</p>\n\
         <pre id=\"build-error\">{}</pre>\n</main>\n{}\n</body>\n</html>\n",
        escape_html(output),
        reload_script(build)
    );
    let mut response = Response::new(full(page));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `response` with the reload script before its `</body>` (or at its end),
/// if it is an HTML page with a body.
async fn add_reload_script(
    method: &Method,
    response: Response<Body>,
    build: &str,
) -> Response<Body> {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let status = response.status();
    let has_body = !(method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational());
    if !is_html || !has_body || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let page = match Limited::new(body, MAX_PAGE).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::error!("dev: failed to read an HTML page to add the reload script: {error}");
            let mut failed = Response::new(full("500: Internal Server Error"));
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return failed;
        }
    };
    let at = find_last_ignore_case(&page, b"</body>").unwrap_or(page.len());
    let script = reload_script(build);
    let mut with_script = BytesMut::with_capacity(page.len() + script.len());
    with_script.extend_from_slice(&page[..at]);
    with_script.extend_from_slice(script.as_bytes());
    with_script.extend_from_slice(&page[at..]);
    parts.headers.remove(header::CONTENT_LENGTH);
    // The page names its build, so it is never revalidated into a copy
    // that names an older one (the tab would reload it forever).
    parts.headers.remove(header::ETAG);
    parts.headers.remove(header::LAST_MODIFIED);
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // A cache hit's body is no longer the one its encoded forms are of.
    parts.extensions.remove::<Reusable>();
    Response::from_parts(parts, full(with_script.freeze()))
}

fn find_last_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window.eq_ignore_ascii_case(needle))
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn html(body: &'static str) -> Response<Body> {
        let mut response = Response::new(full(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        response
    }

    #[tokio::test]
    async fn the_script_goes_before_the_end_of_the_body() {
        let script = reload_script("1.2");
        assert!(script.contains(r#"if(e.data!=="1.2")location.reload()"#));
        let page =
            add_reload_script(&Method::GET, html("<body><p>x</p></BODY></html>"), "1.2").await;
        assert!(page.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(
            text(page).await,
            format!("<body><p>x</p>{script}</BODY></html>")
        );
        let fragment = add_reload_script(&Method::GET, html("<p>x</p>"), "1.2").await;
        assert_eq!(text(fragment).await, format!("<p>x</p>{script}"));
        let head = add_reload_script(&Method::HEAD, html("<p>x</p>"), "1.2").await;
        assert_eq!(text(head).await, "<p>x</p>");
    }

    #[tokio::test]
    async fn the_error_page_escapes_the_output() {
        let page = build_error_page("error: <script>alert(1)</script> & \"x\"", "1.2");
        assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = text(page).await;
        assert!(body.contains("error: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
    }
}
