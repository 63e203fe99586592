//! Standard wasi:http components that no Switchyard SDK built (`guest/standard`:
//! a plain `wasip2` proxy, a `wstd` one and a WASIp3 handler), served with
//! every host feature that needs no renderer, and side by side with the
//! stock `wasmtime serve`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_tests::client::{chunked, exchange, try_request};
use switchyard_tests::process::{run, run_failing, wasmtime_serve};
use switchyard_tests::{
    P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT, Server, WSTD_PROXY_COMPONENT, config_dir, get,
    request,
};

use crate::SWITCHYARD;

/// Each standard component, with the name it greets with.
const KINDS: [(&str, &str); 3] = [
    ("p2-proxy", P2_PROXY_COMPONENT),
    ("wstd-proxy", WSTD_PROXY_COMPONENT),
    ("p3-handler", P3_HANDLER_COMPONENT),
];

/// `switchyard serve COMPONENT` with `config` as its `switchyard.toml`.
fn serve(component: &str, config: &str) -> (Server, tempfile::TempDir) {
    let dir = config_dir(config);
    let args = ["serve", component, "--listen", "127.0.0.1:0"];
    (Server::start(SWITCHYARD, &args, Some(dir.path()), &[]), dir)
}

/// Send `head` (a whole request) on a new connection and read until the
/// server closes it: the raw bytes, and when each read arrived.
fn raw(address: SocketAddr, head: &str) -> Vec<(Instant, Vec<u8>)> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut reads = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return reads,
            Ok(n) => reads.push((Instant::now(), buffer[..n].to_vec())),
        }
    }
}

fn get_close(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

#[test]
fn check_and_routes_name_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    for (name, component, kind) in [
        ("p2-proxy", P2_PROXY_COMPONENT, "wasi:http proxy (p2)"),
        ("wstd-proxy", WSTD_PROXY_COMPONENT, "wasi:http proxy (p2)"),
        ("p3-handler", P3_HANDLER_COMPONENT, "wasi:http handler (p3)"),
    ] {
        let (status, stdout, stderr) = run(
            SWITCHYARD,
            &["check", component],
            Some(dir.path()),
            Duration::from_secs(60),
        );
        assert!(status.success(), "{name}: {stderr}");
        assert!(
            stdout.starts_with("ok: ") && stdout.contains(&format!("is a {kind};")),
            "{name}: {stdout}"
        );
        assert!(stdout.contains("\nkind: "), "{name}: {stdout}");
        let (status, stdout, _) = run(
            SWITCHYARD,
            &["routes", component],
            Some(dir.path()),
            Duration::from_secs(60),
        );
        assert!(status.success());
        assert!(stdout.starts_with(&format!("# {kind}: ")), "{stdout}");
    }
}

#[test]
fn each_kind_answers_streams_and_echoes() {
    for (name, component) in KINDS {
        let (server, _dir) = serve(component, "");
        let address = server.address;
        let hello = get(address, "/");
        assert_eq!(
            (hello.status, hello.text()),
            (200, format!("hello from {name}")),
            "{name}"
        );
        assert_eq!(
            hello.header("content-type"),
            Some("text/plain; charset=utf-8")
        );

        let echo = request(
            address,
            "POST",
            "/echo",
            &[("content-type", "application/x-test")],
            &[b'e'; 100_000],
        );
        assert_eq!((echo.status, echo.body.len()), (200, 100_000), "{name}");
        assert_eq!(echo.header("content-type"), Some("application/x-test"));

        assert_eq!(get(address, "/status?code=418").status, 418, "{name}");
        let missing = get(address, "/nope");
        assert_eq!(
            (missing.status, missing.text().as_str()),
            (404, "not found")
        );

        // What the guest is told of the request: scheme and authority as
        // `wasmtime serve` gives a p2 guest, headers as sent.
        let headers = request(address, "GET", "/headers?x=1", &[("x-probe", "yes")], b"");
        let text = headers.text();
        assert!(text.contains("GET"), "{name}: {text}");
        assert!(text.contains("/headers?x=1"), "{name}: {text}");
        assert!(
            text.contains(&format!("127.0.0.1:{}", address.port())),
            "{name}: {text}"
        );
        assert!(text.contains("x-probe: yes"), "{name}: {text}");

        // Absolute-form targets (as proxies send them) name the authority,
        // with or without a Host header.
        for head in [
            "GET http://example.test/headers HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET http://example.test/headers HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        ] {
            let reads = raw(address, head);
            let all: Vec<u8> = reads.into_iter().flat_map(|(_, bytes)| bytes).collect();
            let text = String::from_utf8_lossy(&all);
            assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
            assert!(text.contains("authority: example.test"), "{name}: {text}");
        }

        // A streamed body arrives as the guest writes it, not at its end.
        let reads = raw(address, &get_close("/stream?n=3&ms=400"));
        let all: Vec<u8> = reads.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
        assert!(text.contains("chunk 2"), "{name}: {text}");
        let first = reads
            .iter()
            .position(|(_, bytes)| String::from_utf8_lossy(bytes).contains("chunk 0"))
            .unwrap_or_else(|| panic!("{name}: chunk 0 came with the rest: {text}"));
        let spread = reads.last().unwrap().0 - reads[first].0;
        assert!(
            spread >= Duration::from_millis(500),
            "{name}: the chunks came together ({spread:?}), so the body was buffered"
        );
    }
}

#[test]
fn failures_fail_only_their_own_request() {
    let config = "[limits]\nrequest_timeout = \"2s\"\nmax_memory = \"32MiB\"\n";
    for (name, component) in KINDS {
        let (server, _dir) = serve(component, config);
        let address = server.address;
        let trap = get(address, "/trap");
        assert_eq!(
            (trap.status, trap.text().as_str()),
            (500, "internal server error"),
            "{name}"
        );
        assert!(server.printed("Error occurred handling /trap "), "{name}");
        assert_eq!(get(address, "/loop").status, 504, "{name}");
        assert_eq!(get(address, "/slow?ms=5000").status, 504, "{name}");
        assert_eq!(get(address, "/hog").status, 500, "{name}");

        // A trap right after the head: if nothing had gone out yet, the
        // server's 500 page; once the head went out, a body that never
        // looks whole (no last chunk). Never a connection closed with no
        // answer at all.
        let reads = raw(address, &get_close("/trap-after-head"));
        let all: Vec<u8> = reads.into_iter().flat_map(|(_, bytes)| bytes).collect();
        let text = String::from_utf8_lossy(&all);
        if text.starts_with("HTTP/1.1 500") {
            assert!(text.ends_with("internal server error"), "{name}: {text}");
        } else {
            assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text:?}");
            assert!(
                !text.ends_with("0\r\n\r\n"),
                "{name}: a failed body ended cleanly: {text:?}"
            );
        }
        assert_eq!(get(address, "/").status, 200, "{name}: the server goes on");
        assert!(
            !server.output().contains('\x1b'),
            "{name}: colour codes in a log that is not a terminal"
        );
    }
}

/// A guest that claims a `content-length` its body does not have never
/// desynchronizes the connection: a short body is an aborted response (no
/// waiting for bytes that never come), a long one is cut at the length it
/// claimed, and the connection's next request is answered as itself.
#[test]
fn a_guest_that_lies_about_its_length_cannot_desynchronize_the_connection() {
    let (server, _dir) = serve(P2_PROXY_COMPONENT, "");
    let started = Instant::now();
    let short: Vec<u8> = raw(server.address, &get_close("/lie?length=100"))
        .into_iter()
        .flat_map(|(_, bytes)| bytes)
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it waited for the missing bytes"
    );
    // The server's 500 page (the guest's error came before anything went
    // out), or a head whose framing the body does not meet (it came after
    // hyper had sent what it had): never the guest's response looking whole.
    let short = String::from_utf8_lossy(&short);
    let server_error =
        short.starts_with("HTTP/1.1 500") && short.ends_with("internal server error");
    let (head, body) = short.split_once("\r\n\r\n").unwrap_or((&short, ""));
    let claimed = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .map(|length| length.parse::<usize>().unwrap());
    let whole = match claimed {
        Some(length) => body.len() >= length,
        None => !head.is_empty() && body.ends_with("0\r\n\r\n"),
    };
    assert!(
        server_error || !whole,
        "a short body went out as a whole response: {short:?}"
    );

    // Too long, then a second request on the same connection.
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let keep_alive = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream
        .write_all(keep_alive("/lie?length=3").as_bytes())
        .unwrap();
    stream.write_all(get_close("/").as_bytes()).unwrap();
    let mut both = Vec::new();
    stream.read_to_end(&mut both).unwrap();
    let both = String::from_utf8_lossy(&both);
    let (first, second) = both
        .split_once("\r\n\r\nsho")
        .unwrap_or_else(|| panic!("the first body is not its claimed 3 bytes: {both:?}"));
    assert!(first.contains("content-length: 3"), "{both:?}");
    assert!(
        second.starts_with("HTTP/1.1 200 OK") && second.contains("hello from p2-proxy"),
        "the next response is not its own: {both:?}"
    );
}

#[test]
fn request_limits_hold_for_every_kind() {
    let config = "[limits]\nmax_request_body = \"1KiB\"\nmax_concurrent_requests = 1\nmax_header_size = \"8KiB\"\n";
    for (name, component) in KINDS {
        let (server, _dir) = serve(component, config);
        let address = server.address;
        let small = request(address, "POST", "/echo", &[], &[b'a'; 1000]);
        assert_eq!((small.status, small.body.len()), (200, 1000), "{name}");
        let large = request(address, "POST", "/echo", &[], &[b'a'; 2048]);
        assert_eq!(large.status, 413, "{name}");
        // Unannounced: 413 if the guest had not answered yet; if it was
        // already streaming its answer (an echo), its head went out and the
        // transfer fails (no last chunk). Never a connection closed silently.
        let mut streamed =
            b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        streamed.extend_from_slice(&chunked(4, 512, b'b'));
        let answer = String::from_utf8_lossy(&exchange(address, &streamed)).into_owned();
        let refused = answer.starts_with("HTTP/1.1 413");
        let cut = answer.starts_with("HTTP/1.1 200") && !answer.ends_with("\r\n0\r\n\r\n");
        assert!(
            refused || cut,
            "{name}: a streamed body over the limit: {answer:?}"
        );

        let big = "x".repeat(10 << 10);
        let headers = request(address, "GET", "/", &[("x-big", &big)], b"");
        assert_eq!(headers.status, 431, "{name}");

        let slow = std::thread::spawn(move || get(address, "/slow?ms=1500").status);
        std::thread::sleep(Duration::from_millis(500));
        let refused = get(address, "/");
        assert_eq!(refused.status, 503, "{name}");
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(slow.join().unwrap(), 200, "{name}");
        assert_eq!(get(address, "/").status, 200, "{name}");
    }
}

/// A one-shot upstream on 127.0.0.1 that answers every request with `upstream`.
fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream",
            );
        }
    });
    address
}

#[test]
fn grants_are_given_one_by_one() {
    let upstream = upstream();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("note.txt"), "granted file").unwrap();
    for (name, component) in KINDS {
        // Nothing granted: no env, no files, no outgoing HTTP.
        let (server, _dir) = serve(component, "");
        let address = server.address;
        assert_eq!(get(address, "/env?name=GREETING").text(), "unset", "{name}");
        assert_eq!(
            get(address, "/file?path=/data/note.txt").status,
            404,
            "{name}"
        );
        let denied = get(address, &format!("/fetch?url=http://{upstream}/"));
        assert_eq!(denied.status, 502, "{name}: {}", denied.text());
        drop(server);

        // `*` is any public host: never loopback (nor private, link-local...).
        let (server, _dir) = serve(component, "[grants]\noutgoing_http = [\"*\"]\n");
        let denied = get(server.address, &format!("/fetch?url=http://{upstream}/"));
        assert_eq!(denied.status, 502, "{name}: {}", denied.text());
        let named = get(
            server.address,
            &format!("/fetch?url=http://localhost:{}/", upstream.port()),
        );
        assert_eq!(named.status, 502, "{name}: {}", named.text());
        drop(server);

        let config = format!(
            "[grants]\nenv = {{ GREETING = \"hi\" }}\ndirs = {{ \"/data\" = {:?} }}\noutgoing_http = [\"{upstream}\"]\n",
            data.path().display().to_string()
        );
        let (server, _dir) = serve(component, &config);
        let address = server.address;
        assert_eq!(get(address, "/env?name=GREETING").text(), "hi", "{name}");
        assert_eq!(
            get(address, "/file?path=/data/note.txt").text(),
            "granted file",
            "{name}"
        );
        let fetched = get(address, &format!("/fetch?url=http://{upstream}/"));
        assert_eq!(
            (fetched.status, fetched.text().as_str()),
            (200, "upstream 200\nupstream"),
            "{name}"
        );
    }
}

#[test]
fn static_files_redirects_and_guest_output() {
    for (name, component) in KINDS {
        let dir = config_dir(
            "public_dir = \"public\"\n[[redirects]]\nsource = \"/old\"\ndestination = \"/\"\npermanent = true\n",
        );
        std::fs::create_dir(dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("public/robots.txt"), "User-agent: *\n").unwrap();
        let args = ["serve", component, "--listen", "127.0.0.1:0"];
        let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
        let address = server.address;
        assert_eq!(
            get(address, "/robots.txt").text(),
            "User-agent: *\n",
            "{name}"
        );
        let old = get(address, "/old");
        assert_eq!(
            (old.status, old.header("location")),
            (308, Some("/")),
            "{name}"
        );
        assert_eq!(get(address, "/print").text(), "printed", "{name}");
        // Whole lines, prefixed with the instance and the request.
        for stream in ["stdout", "stderr"] {
            let line = format!(" GET /print] :: {stream} line from {name}\n");
            assert!(server.printed(&line), "{name}: no {line:?}");
        }
    }
}

#[test]
fn instances_are_fresh_unless_reuse_is_asked_for() {
    for (name, component) in KINDS {
        let (server, _dir) = serve(component, "");
        for _ in 0..3 {
            assert_eq!(get(server.address, "/count").text(), "1", "{name}");
        }
        drop(server);
        let (server, _dir) = serve(component, "[performance]\ninstance_reuse = 100\n");
        let counts: Vec<u32> = (0..10)
            .map(|_| get(server.address, "/count").text().parse().unwrap())
            .collect();
        assert!(
            counts.iter().any(|&count| count > 1),
            "{name}: no instance was reused: {counts:?}"
        );
    }
}

#[test]
fn one_p3_instance_serves_requests_concurrently_when_asked() {
    // `/count?ms=M` counts, waits M ms (yielding), then answers the count:
    // two requests sharing one instance both see 2.
    let counts = |config: &str| {
        let (server, _dir) = serve(P3_HANDLER_COMPONENT, config);
        let address = server.address;
        let first = std::thread::spawn(move || get(address, "/count?ms=1500").text());
        std::thread::sleep(Duration::from_millis(300));
        let second = get(address, "/count?ms=0").text();
        (first.join().unwrap(), second)
    };
    assert_eq!(counts(""), ("1".into(), "1".into()), "fresh instances");
    assert_eq!(
        counts("[performance]\ninstance_reuse = 100\ninstance_concurrency = 8\n"),
        ("2".into(), "2".into()),
        "one instance, two requests at once"
    );
}

#[test]
fn the_compile_cache_and_dev_swaps_work_across_kinds() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.wasm");
    std::fs::copy(P2_PROXY_COMPONENT, &app).unwrap();
    let envs = [("XDG_CACHE_HOME", cache.path().to_str().unwrap())];
    let args = ["dev", "app.wasm", "--listen", "127.0.0.1:0"];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &envs);
    assert_eq!(get(server.address, "/").text(), "hello from p2-proxy");

    // A p3 build replaces the p2 one: it needs another engine, and gets it.
    let next = dir.path().join("next.wasm");
    std::fs::copy(P3_HANDLER_COMPONENT, &next).unwrap();
    std::fs::rename(&next, &app).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = get(server.address, "/");
        assert_eq!(answer.status, 200, "no request fails during the swap");
        if answer.text() == "hello from p3-handler" {
            break;
        }
        assert!(Instant::now() < deadline, "the p3 build was not swapped in");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    let cached = |dir: &Path| {
        std::fs::read_dir(dir.join("switchyard"))
            .map(|entries| {
                entries
                    .filter(|entry| {
                        entry.as_ref().is_ok_and(|entry| {
                            entry.path().extension().is_some_and(|ext| ext == "cwasm")
                        })
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(cached(cache.path()), 2, "one artifact per component");
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &envs);
    assert_eq!(get(server.address, "/").text(), "hello from p3-handler");
    assert_eq!(cached(cache.path()), 2, "the warm start compiled nothing");
}

#[test]
fn a_drain_lets_every_kind_finish_in_flight_requests() {
    for (name, component) in KINDS {
        let (mut server, _dir) = serve(component, "");
        let address = server.address;
        let slow = std::thread::spawn(move || get(address, "/slow?ms=1500"));
        std::thread::sleep(Duration::from_millis(500));
        server.signal("TERM");
        let answer = slow.join().unwrap();
        assert_eq!(
            (answer.status, answer.text()),
            (200, "slept 1500 ms".to_string()),
            "{name}"
        );
        let status = server.wait(Duration::from_secs(30)).expect("it exits");
        assert!(status.success(), "{name}: {status:?}");
    }
}

#[test]
fn what_needs_a_renderer_says_so() {
    for (name, component) in KINDS {
        let dir = config_dir(&format!(
            "app = {component:?}\n[[routes]]\npath = \"/about\"\npage = \"/a\"\n"
        ));
        let stderr = run_failing(SWITCHYARD, &["check"], dir.path());
        assert!(
            stderr.contains("key `routes[0].page`: route `/about` renders page `/a`")
                && stderr.contains("switchyard:server/renderer@0.2.0"),
            "{name}: {stderr}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "check",
            P2_PROXY_COMPONENT,
            "--router",
            switchyard_tests::ROUTER_COMPONENT,
        ],
        dir.path(),
    );
    assert!(
        stderr.contains("imports `switchyard:server/renderer@0.2.0`, but the app"),
        "{stderr}"
    );
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "check",
            P3_HANDLER_COMPONENT,
            "--router",
            switchyard_tests::ROUTER_COMPONENT,
        ],
        dir.path(),
    );
    assert!(stderr.contains("it is a WASIp3 component"), "{stderr}");
}

#[test]
fn answers_match_the_stock_wasmtime_serve() {
    let dir = tempfile::tempdir().unwrap();
    for (name, component) in [
        ("p2-proxy", P2_PROXY_COMPONENT),
        ("p3-handler", P3_HANDLER_COMPONENT),
    ] {
        let ours = serve(component, "").0;
        let theirs = wasmtime_serve(component, &[], dir.path());
        for (method, path, body) in [
            ("GET", "/", &b""[..]),
            ("POST", "/echo", &b"echo me"[..]),
            ("GET", "/status?code=418", &b""[..]),
            ("GET", "/stream?n=3&ms=10", &b""[..]),
            ("GET", "/env?name=GREETING", &b""[..]),
            ("GET", "/nope", &b""[..]),
        ] {
            let a = request(ours.address, method, path, &[], body);
            let b = request(theirs.address, method, path, &[], body);
            assert_eq!(
                (a.status, a.header("content-type"), a.text()),
                (b.status, b.header("content-type"), b.text()),
                "{name}: {method} {path}"
            );
        }
        // Both fail a trap before the head with a 500.
        assert_eq!(get(ours.address, "/trap").status, 500);
        assert_eq!(get(theirs.address, "/trap").status, 500);
    }
}

/// A WASIp3 instance that serves several requests at once lives as long as
/// requests keep coming, but each request's time is its own: a body still
/// streaming past `request_timeout` is cut, whatever came after it.
#[test]
fn a_p3_request_past_its_own_deadline_is_cut_while_others_keep_coming() {
    let (server, _dir) = serve(
        P3_HANDLER_COMPONENT,
        "[limits]\nrequest_timeout = \"1s\"\n[performance]\ninstance_reuse = 100\ninstance_concurrency = 8\n",
    );
    let address = server.address;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = try_request(address, "GET", "/slow?ms=50", &[], b"");
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let started = Instant::now();
    let streamed = exchange(
        address,
        b"GET /stream?n=40&ms=100 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();
    let text = String::from_utf8_lossy(&streamed);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut body ended cleanly: {text}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "the body streamed for {took:?}, past its 1 s"
    );
}

/// What `curl -d` sends (a small form body, its length announced) comes
/// back whole from every kind's echo, as under `wasmtime serve` (the `wstd`
/// example's echo once got an empty reply here).
#[test]
fn a_small_form_post_is_echoed_by_every_kind() {
    for (name, component) in KINDS {
        let (server, _dir) = serve(component, "");
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let echoed = request(
            server.address,
            "POST",
            "/echo",
            &form,
            b"hello=world&abc=xyz",
        );
        assert_eq!(
            (echoed.status, echoed.text().as_str()),
            (200, "hello=world&abc=xyz"),
            "{name}"
        );
    }
    // wstd's own example echo: the request's body as the response, nothing
    // else (its content-length is the request's, carried by wstd).
    let (server, _dir) = serve(WSTD_PROXY_COMPONENT, "");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let echoed = request(
        server.address,
        "POST",
        "/echo-bare",
        &form,
        b"hello=world&abc=xyz",
    );
    assert_eq!(
        (echoed.status, echoed.text().as_str()),
        (200, "hello=world&abc=xyz")
    );
}

/// A guest that traps right after its head never leaves its client with a
/// connection closed and no answer: the server's 500 page when nothing had
/// gone out yet, else a head and a body that fails.
#[test]
fn a_trap_right_after_the_head_is_never_an_empty_reply() {
    for (name, component) in KINDS {
        let (server, _dir) = serve(component, "");
        for _ in 0..10 {
            let answer = exchange(server.address, get_close("/trap-after-head").as_bytes());
            let text = String::from_utf8_lossy(&answer);
            assert!(
                text.starts_with("HTTP/1.1 500") || text.starts_with("HTTP/1.1 200"),
                "{name}: {text:?}"
            );
        }
    }
}
