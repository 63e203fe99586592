//! A WASIp3 component exporting `wasi:http/handler@0.3.2`, written as a third
//! party would with the `wasip3` crate's bindings (wasi:http@0.3.2, which
//! wasmtime 50 serves as its 0.3.0 by semver), none of our SDK, so the host's
//! tests can show that it serves any standard component. `handle` is async:
//! `/slow` waits on the monotonic clock, so requests in one instance overlap.
//! Bodies are component-model streams written by tasks spawned with
//! `spawn_local`, which keep running after `handle` has returned the head.
//! The same app is built on `wasip2` (`../p2-proxy`) and with `wstd`
//! (`../wstd-proxy`); all three answer the same paths:
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | `hello from p3-handler` |
//! | `/headers` | method, path-with-query, scheme, authority, then each header, one `name: value` a line |
//! | `/echo` | the request body, streamed back with its `content-type` |
//! | `/stream?n=5&ms=100` | `n` chunks `chunk i`, `ms` apart, each taken by the host before the next |
//! | `/slow?ms=0` | `slept M ms` after waiting, yielding meanwhile |
//! | `/trap` | a panic before the response |
//! | `/trap-after-head` | the head and `partial`, then a panic |
//! | `/loop` | a busy loop that never yields |
//! | `/hog` | memory grown without bound |
//! | `/env?name=X` | the value of `X`, or `unset` |
//! | `/file?path=P` | the file's contents, or 404 with the error |
//! | `/fetch?url=U` | `upstream <status>` and the body of a GET to `U`, or 502 with the error |
//! | `/print` | a line to stdout and one to stderr, then `printed` |
//! | `/status?code=N` | status `N`, empty body |
//! | `/count?ms=M` | counts the request, waits M ms, then answers how many this instance has seen |
//!
//! and the data routes of `../data.rs` (`/kv/...`, `/config`), through the
//! standard `wasi:keyvalue` and `wasi:config`. Anything else is 404
//! `not found`.

#[path = "../../data.rs"]
mod data;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::clocks::monotonic_clock;
use wasip3::exports::http::handler::Guest;
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response, Scheme};
use wasip3::wit_bindgen::{StreamResult, StreamWriter};
use wasip3::{spawn_local, wit_future, wit_stream};

const KIND: &str = "p3-handler";
const TEXT: &[u8] = b"text/plain; charset=utf-8";
/// The most bytes `/echo` reads at once.
const CHUNK: usize = 64 * 1024;

/// Requests this instance has answered on `/count`.
static COUNT: AtomicU64 = AtomicU64::new(0);

struct Handler;

wasip3::http::service::export!(Handler);

impl Guest for Handler {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let arg = |name| param(query, name).unwrap_or_default();
        let number = |name, default: u64| {
            param(query, name).map_or(default, |v| v.parse().unwrap_or(default))
        };
        Ok(match path {
            "/" => text(200, format!("hello from {KIND}")),
            "/headers" => text(200, describe(&request)),
            "/echo" => echo(request),
            "/stream" => chunks(number("n", 5), number("ms", 100)),
            "/slow" => {
                let ms = number("ms", 0);
                sleep(ms).await;
                text(200, format!("slept {ms} ms"))
            }
            "/trap" => panic!("/trap panics on purpose"),
            "/trap-after-head" => respond(200, Some(TEXT), |mut body| async move {
                body.write_all(b"partial\n".to_vec()).await;
                panic!("/trap-after-head panics on purpose");
            }),
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
                Err(error) => text(502, error),
            },
            "/print" => {
                println!("stdout line from {KIND}");
                eprintln!("stderr line from {KIND}");
                text(200, "printed")
            }
            "/status" => {
                let response = respond(200, None, |_| async {});
                match arg("code").parse() {
                    Ok(code) if response.set_status_code(code).is_ok() => response,
                    _ => text(400, "bad status code"),
                }
            }
            "/count" => {
                // Count this request, wait `ms` (yielding), then answer
                // the count as it is then: requests that share the
                // instance meanwhile are counted too.
                COUNT.fetch_add(1, Ordering::Relaxed);
                sleep(number("ms", 0)).await;
                text(200, COUNT.load(Ordering::Relaxed).to_string())
            }
            _ => match data::answer(path, |name| param(query, name).unwrap_or_default()) {
                Some((status, body)) => text(status, body),
                None => text(404, "not found"),
            },
        })
    }
}

/// The query parameter `name`, decoded.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Wait `ms` milliseconds, letting other requests run meanwhile.
async fn sleep(ms: u64) {
    monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
}

/// A response with `status` and, if given, a `content-type`, whose body is
/// what `write` writes. `write` runs as a task of its own, after `handle` has
/// returned; when it ends, the body ends, with no trailers.
fn respond<F>(
    status: u16,
    content_type: Option<&[u8]>,
    write: impl FnOnce(StreamWriter<u8>) -> F,
) -> Response
where
    F: Future<Output = ()> + 'static,
{
    let headers = Fields::new();
    if let Some(content_type) = content_type {
        headers
            .append("content-type", content_type)
            .expect("content-type is an allowed header");
    }
    let (body, contents) = wit_stream::new();
    let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(contents), trailers_reader);
    response
        .set_status_code(status)
        .expect("the status is a valid code");
    let writing = write(body);
    spawn_local(async move {
        writing.await;
        drop(trailers);
    });
    response
}

/// A plain-text response.
fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
    let body = body.into();
    respond(status, Some(TEXT), |mut stream| async move {
        // What is left unwritten, the client has gone without.
        stream.write_all(body).await;
    })
}

/// What the request looks like from in here, one `name: value` a line.
fn describe(request: &Request) -> String {
    let method = match request.get_method() {
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
    let scheme = match request.get_scheme() {
        Some(Scheme::Http) => "http".into(),
        Some(Scheme::Https) => "https".into(),
        Some(Scheme::Other(other)) => other,
        None => "none".into(),
    };
    let mut text = format!(
        "method: {method}\npath-with-query: {}\nscheme: {scheme}\nauthority: {}\n",
        request.get_path_with_query().unwrap_or_default(),
        request.get_authority().unwrap_or_else(|| "none".into()),
    );
    for (name, value) in request.get_headers().copy_all() {
        let _ = writeln!(text, "{name}: {}", String::from_utf8_lossy(&value));
    }
    text
}

/// Stream the request body back, chunk by chunk, as it arrives.
fn echo(request: Request) -> Response {
    let content_type = request.get_headers().get("content-type").into_iter().next();
    let (handled, handled_reader) = wit_future::new(|| Ok(()));
    let (mut input, trailers) = Request::consume_body(request, handled_reader);
    respond(200, content_type.as_deref(), |mut output| async move {
        loop {
            let (result, chunk) = input.read(Vec::with_capacity(CHUNK)).await;
            let StreamResult::Complete(_) = result else {
                break;
            };
            if !output.write_all(chunk).await.is_empty() {
                break; // The client has gone.
            }
        }
        drop((trailers, handled));
    })
}

/// `n` chunks, `ms` milliseconds apart, each written once the host has taken
/// the one before.
fn chunks(n: u64, ms: u64) -> Response {
    respond(200, Some(TEXT), move |mut body| async move {
        for i in 0..n {
            if i > 0 {
                sleep(ms).await;
            }
            if !body
                .write_all(format!("chunk {i}\n").into_bytes())
                .await
                .is_empty()
            {
                break; // The client has gone.
            }
        }
    })
}

/// GET `url`: the upstream's status and body, or what went wrong.
async fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("not an absolute URL: {url:?}"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.into()),
    };
    let (trailers, trailers_reader) = wit_future::new(|| Ok(None));
    drop(trailers);
    let (request, _sent) = Request::new(Fields::new(), None, trailers_reader, None);
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| format!("bad scheme in {url:?}"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("bad authority in {url:?}"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("bad path in {url:?}"))?;

    let response = client::send(request).await.map_err(|e| format!("{e:?}"))?;
    let status = response.get_status_code();
    let (handled, handled_reader) = wit_future::new(|| Ok(()));
    let (body, trailers) = Response::consume_body(response, handled_reader);
    let body = body.collect().await;
    trailers.await.map_err(|e| format!("{e:?}"))?;
    drop(handled);
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
