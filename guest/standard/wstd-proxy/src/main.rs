//! A `wasi:http/proxy@0.2` component written as a third party would with
//! `wstd`: an async `#[wstd::http_server] main` and `http` types, none of our
//! SDK, so the host's tests can show that it serves any standard component.
//! The same app is built on plain `wasip2` (`../p2-proxy`) and for WASIp3
//! (`../p3-handler`); all three answer the same paths:
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | `hello from wstd-proxy` |
//! | `/headers` | method, path-with-query, scheme, authority, then each header, one `name: value` a line |
//! | `/echo` | the request body, streamed back with its `content-type` |
//! | `/echo-bare` | (this component only) the request body as the response, nothing else: `wstd`'s own example echo |
//! | `/stream?n=5&ms=100` | `n` chunks `chunk i`, `ms` apart, each written as it comes |
//! | `/slow?ms=0` | `slept M ms` after sleeping |
//! | `/trap` | a panic before the response |
//! | `/trap-after-head` | the head and `partial`, then a panic |
//! | `/loop` | a busy loop that never yields |
//! | `/hog` | memory grown without bound |
//! | `/env?name=X` | the value of `X`, or `unset` |
//! | `/file?path=P` | the file's contents, or 404 with the error |
//! | `/fetch?url=U` | `upstream <status>` and the body of a GET to `U`, or 502 with the error |
//! | `/print` | a line to stdout and one to stderr, then `printed` |
//! | `/status?code=N` | status `N`, empty body |
//! | `/count` | how many requests this instance has seen |
//!
//! Anything else is 404 `not found`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_lite::stream;
use wstd::http::body::Bytes;
use wstd::http::body::util::Empty;
use wstd::http::{Body, Client, Error, Request, Response};
use wstd::time::Duration;

const KIND: &str = "wstd-proxy";
const TEXT: &str = "text/plain; charset=utf-8";

/// Requests this instance has answered on `/count`.
static COUNT: AtomicU64 = AtomicU64::new(0);

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let arg = |name| param(&query, name).unwrap_or_default();
    let number =
        |name, default: u64| param(&query, name).map_or(default, |v| v.parse().unwrap_or(default));
    match path.as_str() {
        "/" => text(200, format!("hello from {KIND}")),
        "/headers" => text(200, describe(&request)),
        "/echo" => echo(request),
        "/echo-bare" => {
            // As wstd 0.6.8's `examples/http_server.rs` echoes.
            let (_parts, body) = request.into_parts();
            Ok(Response::new(body))
        }
        "/stream" => chunks(number("n", 5), number("ms", 100)),
        "/slow" => {
            let ms = number("ms", 0);
            wstd::task::sleep(Duration::from_millis(ms)).await;
            text(200, format!("slept {ms} ms"))
        }
        "/trap" => panic!("/trap panics on purpose"),
        "/trap-after-head" => trap_after_head(),
        "/loop" => spin(),
        "/hog" => hog(),
        "/env" => {
            let value = std::env::var_os(arg("name"));
            text(
                200,
                value.map_or("unset".into(), |v| v.to_string_lossy().into_owned()),
            )
        }
        "/file" => match std::fs::read(arg("path")) {
            Ok(contents) => text(200, contents),
            Err(error) => text(404, error.to_string()),
        },
        "/fetch" => match fetch(&arg("url")).await {
            Ok((status, body)) => {
                let mut answer = format!("upstream {status}\n").into_bytes();
                answer.extend(body);
                text(200, answer)
            }
            Err(error) => text(502, format!("{error:#}")),
        },
        "/print" => {
            println!("stdout line from {KIND}");
            eprintln!("stderr line from {KIND}");
            text(200, "printed")
        }
        "/status" => {
            let code = arg("code").parse::<u16>().ok();
            let response = code.and_then(|code| {
                let response = Response::builder().status(code);
                response.body(Body::empty()).ok()
            });
            response.map_or_else(|| text(400, "bad status code"), Ok)
        }
        "/count" => {
            let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
            text(200, count.to_string())
        }
        _ => text(404, "not found"),
    }
}

/// The query parameter `name`, decoded.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A plain-text response.
fn text(status: u16, body: impl Into<Body>) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", TEXT)
        .body(body.into())?)
}

/// What the request looks like from in here, one `name: value` a line.
fn describe(request: &Request<Body>) -> String {
    let uri = request.uri();
    let mut text = format!(
        "method: {}\npath-with-query: {}\nscheme: {}\nauthority: {}\n",
        request.method(),
        uri.path_and_query().map_or("", |p| p.as_str()),
        uri.scheme_str().unwrap_or("none"),
        uri.authority().map_or("none", |a| a.as_str()),
    );
    for (name, value) in request.headers() {
        let _ = writeln!(
            text,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    text
}

/// Stream the request body back, chunk by chunk, as it arrives.
fn echo(request: Request<Body>) -> Result<Response<Body>, Error> {
    let mut response = Response::builder().status(200);
    if let Some(content_type) = request.headers().get("content-type") {
        response = response.header("content-type", content_type);
    }
    Ok(response.body(request.into_body())?)
}

/// `n` chunks, `ms` milliseconds apart, each sent as it is made.
fn chunks(n: u64, ms: u64) -> Result<Response<Body>, Error> {
    let chunks = stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        if i > 0 {
            wstd::task::sleep(Duration::from_millis(ms)).await;
        }
        Some((Ok::<_, Infallible>(format!("chunk {i}\n")), i + 1))
    });
    text(200, Body::from_try_stream(chunks))
}

/// The head and a first chunk, then a panic while making the next one.
fn trap_after_head() -> Result<Response<Body>, Error> {
    let chunks = stream::unfold(true, |first| async move {
        if !first {
            panic!("/trap-after-head panics on purpose");
        }
        Some((Ok::<_, Infallible>("partial\n"), false))
    });
    text(200, Body::from_try_stream(chunks))
}

/// GET `url`: the upstream's status and body.
async fn fetch(url: &str) -> Result<(u16, Vec<u8>), Error> {
    // Not `Body::empty()`: wstd writes that as a zero-length write, which
    // fails with "connection reset" when the upstream has already answered
    // and closed; an empty `http_body` is only finished.
    let request = Request::get(url).body(Body::from_http_body(Empty::<Bytes>::new()))?;
    let mut response = Client::new().send(request).await?;
    let body = response.body_mut().contents().await?.to_vec();
    Ok((response.status().as_u16(), body))
}

/// Spin forever without yielding.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Grow memory without bound, touching every page.
fn hog() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}
