//! A plain `wasi:http/proxy@0.2` component, written as a third party would:
//! the `wasip2` crate's bindings and its `export!` macro, none of our SDK, so
//! the host's tests can show that it serves any standard component. The same
//! app is built with `wstd` (`../wstd-proxy`) and for WASIp3
//! (`../p3-handler`); all three answer the same paths:
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | `hello from p2-proxy` |
//! | `/headers` | method, path-with-query, scheme, authority, then each header, one `name: value` a line |
//! | `/echo` | the request body, streamed back with its `content-type` |
//! | `/stream?n=5&ms=100` | `n` chunks `chunk i`, `ms` apart, each flushed |
//! | `/slow?ms=0` | `slept M ms` after sleeping |
//! | `/trap` | a panic before the response |
//! | `/trap-after-head` | the head and `partial`, then a panic |
//! | `/loop` | a busy loop that never yields |
//! | `/hog` | memory grown without bound |
//! | `/env?name=X` | the value of `X`, or `unset` |
//! | `/file?path=P` | the file's contents, or 404 with the error |
//! | `/fetch?url=U` | `upstream <status>` and the body of a GET to `U`, or 502 with the error |
//! | `/lie?length=N` | (this component only) `content-length: N` and a 10-byte body |
//! | `/print` | a line to stdout and one to stderr, then `printed` |
//! | `/status?code=N` | status `N`, empty body |
//! | `/count` | how many requests this instance has seen |
//!
//! and the data routes of `../data.rs` (`/kv/...`, `/config`), through the
//! standard `wasi:keyvalue` and `wasi:config`. Anything else is 404
//! `not found`.

#[path = "../../data.rs"]
mod data;

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{OutputStream, StreamError};

const KIND: &str = "p2-proxy";
const TEXT: &[u8] = b"text/plain; charset=utf-8";
/// The most bytes `/echo` reads at once.
const CHUNK: u64 = 64 * 1024;

/// Requests this instance has answered on `/count`.
static COUNT: AtomicU64 = AtomicU64::new(0);

struct Proxy;

wasip2::http::proxy::export!(Proxy);

impl Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let arg = |name| param(query, name).unwrap_or_default();
        let number = |name, default: u64| {
            param(query, name).map_or(default, |v| v.parse().unwrap_or(default))
        };
        match path {
            "/" => text(out, 200, format!("hello from {KIND}")),
            "/headers" => text(out, 200, describe(&request)),
            "/echo" => echo(request, out),
            "/stream" => stream(out, number("n", 5), number("ms", 100)),
            "/slow" => {
                let ms = number("ms", 0);
                std::thread::sleep(Duration::from_millis(ms));
                text(out, 200, format!("slept {ms} ms"));
            }
            "/trap" => panic!("/trap panics on purpose"),
            "/trap-after-head" => send(out, head(200, Some(TEXT)), |body| {
                write_flushed(body, b"partial\n")?;
                panic!("/trap-after-head panics on purpose")
            }),
            "/loop" => spin(),
            "/hog" => hog(),
            "/env" => {
                let value = std::env::var_os(arg("name"));
                let value = value.map_or("unset".into(), |v| v.to_string_lossy().into_owned());
                text(out, 200, value);
            }
            "/file" => match std::fs::read(arg("path")) {
                Ok(contents) => text(out, 200, contents),
                Err(error) => text(out, 404, error.to_string()),
            },
            "/fetch" => match fetch(&arg("url")) {
                Ok((status, body)) => {
                    let mut answer = format!("upstream {status}\n").into_bytes();
                    answer.extend(body);
                    text(out, 200, answer);
                }
                Err(error) => text(out, 502, error),
            },
            "/print" => {
                println!("stdout line from {KIND}");
                eprintln!("stderr line from {KIND}");
                text(out, 200, "printed");
            }
            "/status" => {
                let response = OutgoingResponse::new(Fields::new());
                match arg("code").parse() {
                    Ok(code) if response.set_status_code(code).is_ok() => {
                        send(out, response, |_| Ok(()));
                    }
                    _ => text(out, 400, "bad status code"),
                }
            }
            "/lie" => {
                // Claims `length` bytes and sends `short body` (10).
                let headers = Fields::new();
                headers
                    .append("content-length", &arg("length").into_bytes())
                    .expect("content-length is an allowed header");
                send(out, OutgoingResponse::new(headers), |stream| {
                    stream.write_all(b"short body")
                });
            }
            "/count" => {
                let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
                text(out, 200, count.to_string());
            }
            _ => match data::answer(path, |name| param(query, name).unwrap_or_default()) {
                Some((status, body)) => text(out, status, body),
                None => text(out, 404, "not found"),
            },
        }
    }
}

/// The query parameter `name`, decoded.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A response head with `status` and, if given, a `content-type`.
fn head(status: u16, content_type: Option<&[u8]>) -> OutgoingResponse {
    let headers = Fields::new();
    if let Some(content_type) = content_type {
        headers
            .append("content-type", content_type)
            .expect("content-type is an allowed header");
    }
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("the status is a valid code");
    response
}

/// Send `response`'s head, then its body as `write` writes it. A write fails
/// only when the client has gone; the body is then left unfinished.
fn send(
    out: ResponseOutparam,
    response: OutgoingResponse,
    write: impl FnOnce(&mut OutputStream) -> io::Result<()>,
) {
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("a new body has a stream");
    let written = write(&mut stream).and_then(|()| io::Write::flush(&mut stream));
    drop(stream);
    if written.is_ok() {
        // Fails only when the client has gone.
        let _ = OutgoingBody::finish(body, None);
    }
}

/// Write `bytes`, then wait until the host has taken them.
fn write_flushed(stream: &mut OutputStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)?;
    // `io::Write`'s flush blocks; `OutputStream::flush` would only start one.
    io::Write::flush(stream)
}

/// A plain-text response.
fn text(out: ResponseOutparam, status: u16, body: impl AsRef<[u8]>) {
    send(out, head(status, Some(TEXT)), |stream| {
        stream.write_all(body.as_ref())
    });
}

/// What the request looks like from in here, one `name: value` a line.
fn describe(request: &IncomingRequest) -> String {
    let method = match request.method() {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other,
    };
    let scheme = match request.scheme() {
        Some(Scheme::Http) => "http".into(),
        Some(Scheme::Https) => "https".into(),
        Some(Scheme::Other(other)) => other,
        None => "none".into(),
    };
    let mut text = format!(
        "method: {method}\npath-with-query: {}\nscheme: {scheme}\nauthority: {}\n",
        request.path_with_query().unwrap_or_default(),
        request.authority().unwrap_or_else(|| "none".into()),
    );
    for (name, value) in request.headers().entries() {
        let _ = writeln!(text, "{name}: {}", String::from_utf8_lossy(&value));
    }
    text
}

/// Stream the request body back, chunk by chunk, as it arrives.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let content_type = request.headers().get("content-type").into_iter().next();
    let response = head(200, content_type.as_deref());
    let incoming = request.consume().expect("the body is consumed once");
    let input = incoming.stream().expect("the body's stream is taken once");
    send(out, response, |output| {
        loop {
            match input.blocking_read(CHUNK) {
                Ok(chunk) => {
                    write_flushed(output, &chunk)?;
                }
                Err(StreamError::Closed) => return Ok(()),
                Err(StreamError::LastOperationFailed(error)) => {
                    return Err(io::Error::other(error.to_debug_string()));
                }
            }
        }
    });
    drop(input);
    drop(IncomingBody::finish(incoming));
}

/// `n` chunks, `ms` milliseconds apart, each flushed as it is written.
fn stream(out: ResponseOutparam, n: u64, ms: u64) {
    send(out, head(200, Some(TEXT)), |body| {
        for i in 0..n {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            write_flushed(body, format!("chunk {i}\n").as_bytes())?;
        }
        Ok(())
    });
}

/// GET `url`: the upstream's status and body, or what went wrong.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not an absolute URL: {url:?}"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.into()),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| format!("bad scheme in {url:?}"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("bad authority in {url:?}"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("bad path in {url:?}"))?;

    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .expect("the response is ready")
        .expect("the response is taken once")
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().expect("the body is consumed once");
    let mut body = Vec::new();
    let mut stream = incoming.stream().expect("the body's stream is taken once");
    stream.read_to_end(&mut body).map_err(|e| e.to_string())?;
    drop(stream);
    drop(IncomingBody::finish(incoming));
    Ok((status, body))
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
