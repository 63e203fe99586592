//! `wasi:http/middleware@0.3` components in front of apps: a plain one
//! built with the `wasip3` crate and wit-bindgen (`guest/standard/p3-middleware`)
//! and the example built with our SDK (`guest/middleware`), linked by the
//! host in front of every kind of app, chained, and composed with a p3 app
//! for the stock `wasmtime serve`.

use std::path::Path;
use switchyard_tests::process::{run, run_failing, wasmtime_serve};
use switchyard_tests::{
    APP_COMPONENT, MIDDLEWARE_COMPONENT, P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT,
    P3_MIDDLEWARE_COMPONENT, ROUTER_COMPONENT, Server, config_dir, get, request,
};

use crate::SWITCHYARD;
use crate::router::assert_routes_like_server_js;

/// `switchyard serve` in `dir` with `args`.
fn serve_in(dir: &Path, args: &[&str]) -> Server {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Server::start(SWITCHYARD, &all, Some(dir), &[])
}

/// Every value of header `name`, in order.
fn values(response: &switchyard_tests::client::Response, name: &str) -> Vec<String> {
    (response.headers.iter())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn a_plain_middleware_stands_in_front_of_every_kind_of_app() {
    let dir = tempfile::tempdir().unwrap();
    for (name, app) in [
        ("p2-proxy", P2_PROXY_COMPONENT),
        ("p3-handler", P3_HANDLER_COMPONENT),
    ] {
        let server = serve_in(dir.path(), &[app, "--router", P3_MIDDLEWARE_COMPONENT]);
        let address = server.address;
        let hello = get(address, "/");
        assert_eq!(hello.status, 200, "{name}");
        assert_eq!(hello.text(), format!("hello from {name}"));
        assert_eq!(values(&hello, "x-middleware"), ["p3-middleware"], "{name}");

        // The request it passes on carries its header, and a rewrite is
        // what the app sees (query kept); the client's URL is unchanged.
        let headers = get(address, "/mw/rewrite/headers?x=1").text();
        assert!(headers.contains("/headers?x=1"), "{name}: {headers}");
        assert!(
            headers.contains("x-middleware-in: p3-middleware"),
            "{name}: {headers}"
        );

        // Bodies stream through both ways.
        let echo = request(
            address,
            "POST",
            "/echo",
            &[("content-type", "text/x-a")],
            b"both ways",
        );
        assert_eq!(
            (echo.status, echo.text()),
            (200, "both ways".to_string()),
            "{name}"
        );
        let stream = get(address, "/stream?n=3&ms=10");
        assert_eq!(stream.text(), "chunk 0\nchunk 1\nchunk 2\n", "{name}");
        // A body the middleware re-streams from a task that outlives its
        // `handle` (as a compressing one would) comes whole: a MiB sent,
        // echoed by the app, and upper-cased on the way back.
        let big = request(
            address,
            "POST",
            "/mw/upper/echo",
            &[("content-type", "text/x-a")],
            &vec![b'a'; 1 << 20],
        );
        assert_eq!(big.status, 200, "{name}");
        assert!(
            big.body.len() == 1 << 20 && big.body.iter().all(|&byte| byte == b'A'),
            "{name}: {} bytes",
            big.body.len()
        );
        let upper = get(address, "/mw/upper/stream?n=3&ms=10");
        assert_eq!(upper.text(), "CHUNK 0\nCHUNK 1\nCHUNK 2\n", "{name}");

        // It answers 401 itself, without the app.
        let denied = get(address, "/mw/deny");
        assert_eq!(
            (denied.status, denied.text()),
            (401, "denied by p3-middleware".to_string())
        );

        // A trap in the middleware, or in the app behind it, fails only
        // its own request.
        assert_eq!(get(address, "/mw/trap").status, 500, "{name}");
        assert_eq!(get(address, "/trap").status, 500, "{name}");
        assert_eq!(get(address, "/").status, 200, "{name}: serves on");
        let log = server.stderr();
        assert!(
            log.contains(&format!(
                "Error occurred handling /mw/trap the middleware `{P3_MIDDLEWARE_COMPONENT}` failed"
            )),
            "{log}"
        );
        assert!(log.contains("Error occurred handling /trap "), "{log}");
        assert!(
            !log.contains("the handler behind this middleware failed"),
            "the app's own error is what is logged for /trap, not the middleware's: {log}"
        );
    }
}

#[test]
fn the_example_middleware_routes_like_server_js_with_rewrites_auth_and_a_header() {
    let dir = config_dir("[grants]\nenv = { ADMIN_TOKEN = \"s3cret\" }\n[cache]\nenabled = true\n");
    let server = serve_in(
        dir.path(),
        &[APP_COMPONENT, "--router", MIDDLEWARE_COMPONENT],
    );
    let address = server.address;
    assert_routes_like_server_js(address);
    let a = get(address, "/a?name=mw");
    assert_eq!(values(&a, "x-middleware"), ["site"]);

    // A rewrite: `/old/a` is page `/a`, with its query.
    let old = get(address, "/old/a?name=rewritten");
    assert_eq!(old.status, 200);
    assert!(old.text().contains("Hello, rewritten!"), "{}", old.text());

    // The auth check answers 401 itself; with the token, the app answers.
    assert_eq!(
        get(address, "/old//admin/settings").status,
        401,
        "a rewrite cannot get past the guard"
    );
    let denied = get(address, "/admin/settings");
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let wrong = request(
        address,
        "GET",
        "/admin/settings",
        &[("authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let allowed = request(
        address,
        "GET",
        "/admin/settings",
        &[("authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(
        allowed.status, 404,
        "past the middleware: the app has no such page"
    );
    assert!(allowed.text().contains("404 - Page Not Found"));

    // Host features stand in front of the chain: the response cache
    // serves a cached page without the chain, compression applies to
    // what the middleware sends.
    let first = get(address, "/cached");
    let second = get(address, "/cached");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(second.header("x-cache"), Some("HIT"));
    assert_eq!(
        values(&second, "x-middleware"),
        ["site"],
        "kept with the entry"
    );
    let gzip = request(address, "GET", "/a", &[("accept-encoding", "gzip")], b"");
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
}

#[test]
fn middleware_chains_in_order_and_check_and_routes_print_the_chain() {
    let dir = config_dir(&format!(
        "app = \"{P3_HANDLER_COMPONENT}\"\nrouter = [\"{MIDDLEWARE_COMPONENT}\", \"{P3_MIDDLEWARE_COMPONENT}\"]\n"
    ));
    let server = serve_in(dir.path(), &[]);
    let address = server.address;
    let hello = get(address, "/");
    assert_eq!(hello.text(), "hello from p3-handler");
    assert_eq!(
        values(&hello, "x-middleware"),
        ["p3-middleware", "site"],
        "the inner link adds its header first"
    );
    // The outer link's rewrite reaches the inner one: `/old/mw/deny` is
    // `/mw/deny` to the plain middleware, which answers it.
    let denied = get(address, "/old/mw/deny");
    assert_eq!(
        (denied.status, denied.text()),
        (401, "denied by p3-middleware".to_string())
    );

    let (status, stdout, stderr) = run(
        SWITCHYARD,
        &["routes"],
        Some(dir.path()),
        std::time::Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    let chain: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("middleware "))
        .collect();
    assert_eq!(chain.len(), 2, "{stdout}");
    assert!(chain[0].contains(MIDDLEWARE_COMPONENT) && chain[1].contains(P3_MIDDLEWARE_COMPONENT));
    let (status, stdout, _) = run(
        SWITCHYARD,
        &["check"],
        Some(dir.path()),
        std::time::Duration::from_secs(60),
    );
    assert!(status.success());
    assert!(
        stdout.contains(&format!(
            "middleware: `{P3_MIDDLEWARE_COMPONENT}` (wasi:http/middleware@0.3, linked by the host)"
        )),
        "{stdout}"
    );
}

#[test]
fn middleware_goes_before_composed_routers_and_is_no_app() {
    let dir = tempfile::tempdir().unwrap();
    // In front of a Switchyard router composed with the app: fine.
    let server = serve_in(
        dir.path(),
        &[
            APP_COMPONENT,
            "--router",
            P3_MIDDLEWARE_COMPONENT,
            "--router",
            ROUTER_COMPONENT,
        ],
    );
    let a = get(server.address, "/a?name=both");
    assert!(a.text().contains("Hello, both!"));
    assert_eq!(values(&a, "x-middleware"), ["p3-middleware"]);
    drop(server);
    // Behind one: refused, saying what to do.
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "check",
            APP_COMPONENT,
            "--router",
            ROUTER_COMPONENT,
            "--router",
            P3_MIDDLEWARE_COMPONENT,
        ],
        dir.path(),
    );
    assert!(stderr.contains("list middleware first"), "{stderr}");
    // Served as an app: refused, naming the flag.
    let stderr = run_failing(SWITCHYARD, &["check", P3_MIDDLEWARE_COMPONENT], dir.path());
    assert!(stderr.contains("is a middleware, not an app"), "{stderr}");
    // A p3 app is not a router.
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "check",
            P2_PROXY_COMPONENT,
            "--router",
            P3_HANDLER_COMPONENT,
        ],
        dir.path(),
    );
    assert!(stderr.contains("does not import it"), "{stderr}");
}

#[test]
fn a_composed_chain_answers_alike_under_switchyard_and_the_stock_wasmtime_serve() {
    let dir = tempfile::tempdir().unwrap();
    let composed = dir.path().join("chain.wasm");
    let composed = composed.to_str().unwrap();
    let (status, _, stderr) = run(
        SWITCHYARD,
        &[
            "compose",
            "--router",
            MIDDLEWARE_COMPONENT,
            "--router",
            P3_MIDDLEWARE_COMPONENT,
            P3_HANDLER_COMPONENT,
            "-o",
            composed,
        ],
        Some(dir.path()),
        std::time::Duration::from_secs(120),
    );
    assert!(status.success(), "{stderr}");
    let ours = serve_in(dir.path(), &[composed]);
    let linked = serve_in(
        dir.path(),
        &[
            P3_HANDLER_COMPONENT,
            "--router",
            MIDDLEWARE_COMPONENT,
            "--router",
            P3_MIDDLEWARE_COMPONENT,
        ],
    );
    let theirs = wasmtime_serve(composed, &[], dir.path());
    for (method, path, body) in [
        ("GET", "/", &b""[..]),
        ("POST", "/echo", &b"echo me"[..]),
        ("GET", "/old/status?code=418", &b""[..]),
        ("GET", "/old/mw/deny", &b""[..]),
        ("GET", "/admin/x", &b""[..]),
        ("GET", "/stream?n=3&ms=10", &b""[..]),
        ("POST", "/mw/upper/echo", &b"shouted back"[..]),
        // `request-options` on a request passed on are the app's to read,
        // as they are in a composition: no timeout of 1 ms cuts it short.
        ("GET", "/mw/hurry/stream?n=2&ms=50", &b""[..]),
        ("GET", "/nope", &b""[..]),
    ] {
        let answers: Vec<_> = [ours.address, linked.address, theirs.address]
            .into_iter()
            .map(|address| {
                let a = request(address, method, path, &[], body);
                (
                    a.status,
                    a.header("content-type").map(str::to_string),
                    values(&a, "x-middleware"),
                    a.text(),
                )
            })
            .collect();
        assert_eq!(
            answers[0], answers[2],
            "composed, switchyard vs wasmtime serve: {method} {path}"
        );
        assert_eq!(
            answers[0], answers[1],
            "composed vs linked by the host: {method} {path}"
        );
    }
    let shouted = request(
        theirs.address,
        "POST",
        "/mw/upper/echo",
        &[],
        b"shouted back",
    );
    assert_eq!(shouted.text(), "SHOUTED BACK");
    let hurried = get(linked.address, "/mw/hurry/stream?n=2&ms=50");
    assert_eq!(hurried.text(), "chunk 0\nchunk 1\n");
    assert_eq!(get(theirs.address, "/mw/trap").status, 500);
    assert_eq!(get(ours.address, "/mw/trap").status, 500);
    // A middleware cannot be composed in front of a p2 app: the host links
    // those instead.
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "compose",
            "--router",
            P3_MIDDLEWARE_COMPONENT,
            P2_PROXY_COMPONENT,
            "-o",
            composed,
        ],
        dir.path(),
    );
    assert!(stderr.contains("links the two instead"), "{stderr}");
}

#[test]
fn dev_mode_swaps_in_a_new_middleware_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let middleware = dir.path().join("mw.wasm");
    std::fs::copy(P3_MIDDLEWARE_COMPONENT, &middleware).unwrap();
    let args = [
        "dev",
        P2_PROXY_COMPONENT,
        "--router",
        "mw.wasm",
        "--listen",
        "127.0.0.1:0",
    ];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    assert_eq!(
        values(&get(server.address, "/"), "x-middleware"),
        ["p3-middleware"]
    );
    let next = dir.path().join("next.wasm");
    std::fs::copy(MIDDLEWARE_COMPONENT, &next).unwrap();
    std::fs::rename(&next, &middleware).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answer = get(server.address, "/");
        assert_eq!(answer.status, 200, "no request fails during the swap");
        if values(&answer, "x-middleware") == ["site"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new middleware was not swapped in"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn each_link_reuses_its_own_instances_when_asked() {
    // `/count` counts in the p3 app's instance; the middleware in front
    // keeps no state, but its instances are reused all the same.
    let dir = config_dir("[performance]\ninstance_reuse = 100\n");
    let server = serve_in(
        dir.path(),
        &[
            P3_HANDLER_COMPONENT,
            "--router",
            P3_MIDDLEWARE_COMPONENT,
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let counts: Vec<String> = (0..3)
        .map(|_| get(server.address, "/count").text())
        .collect();
    assert_eq!(counts, ["1", "2", "3"], "one app instance served all three");
    let metrics = get(server.admin_address(), "/metrics").text();
    let created = metrics
        .lines()
        .find(|line| line.starts_with("switchyard_instances_total{result=\"created\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let created: u64 = created.rsplit(' ').next().unwrap().parse().unwrap();
    // Fresh, three requests would make six; reused, one per link (and at
    // most one more, should the next request come before a worker is free).
    assert!(
        (2..=3).contains(&created),
        "one instance per link: {created}"
    );
}

#[test]
fn limits_hold_through_a_chain_with_the_status_of_the_link_that_failed() {
    let dir = config_dir("[limits]\nrequest_timeout = \"1s\"\nmax_request_body = \"1KiB\"\n");
    for app in [P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT] {
        let server = serve_in(dir.path(), &[app, "--router", P3_MIDDLEWARE_COMPONENT]);
        let address = server.address;
        // The app behind the middleware loops or sleeps past the timeout:
        // 504, as without the middleware, and the server serves on.
        assert_eq!(get(address, "/loop").status, 504, "{app}");
        assert_eq!(get(address, "/slow?ms=3000").status, 504, "{app}");
        // A body over the limit is 413 through the middleware too.
        let big = vec![b'x'; 4096];
        assert_eq!(
            request(address, "POST", "/echo", &[], &big).status,
            413,
            "{app}"
        );
        let small = request(address, "POST", "/echo", &[], b"fits");
        assert_eq!(
            (small.status, small.text()),
            (200, "fits".to_string()),
            "{app}"
        );
        assert_eq!(get(address, "/").status, 200, "{app}: serves on");
        let log = server.stderr();
        assert!(log.contains("Error occurred handling /loop "), "{log}");
    }
}

#[test]
fn a_middleware_calls_the_next_link_once_at_a_time_while_serving_and_the_scheme_is_the_connections()
{
    let dir = tempfile::tempdir().unwrap();
    for app in [P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT] {
        let server = serve_in(dir.path(), &[app, "--router", P3_MIDDLEWARE_COMPONENT]);
        // Two calls at once: one is served, the other refused with an error
        // code (each would hold an instance of the app).
        let twice = get(server.address, "/mw/twice").text();
        assert!(
            twice == "first 200, second error" || twice == "first error, second 200",
            "{app}: {twice}"
        );
        // A call after its request ended is refused: the response went out.
        assert_eq!(get(server.address, "/mw/late").text(), "early", "{app}");
        let started = std::time::Instant::now();
        while !server.stderr().contains("late call:") {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{}",
                server.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            server.stderr().contains("late call: error"),
            "{app}: {}",
            server.stderr()
        );
        // A plain-TCP client cannot claim https with an absolute-form target.
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(server.address).unwrap();
        stream
            .write_all(b"GET https://localhost/headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.contains("scheme: http\n"), "{app}: {answer}");
    }
}
