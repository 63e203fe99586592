//! Isolation, limits and safety: a misbehaving guest fails only its own
//! request, limits answer with the right status, and a guest gets no
//! authority it was not granted. Load tests here are bounded in count and
//! time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use switchyard_tests::client::{chunked, try_request, wait_for_status};
use switchyard_tests::{APP_COMPONENT, FIXTURES_COMPONENT, Server, config_dir, get, request};

use crate::SWITCHYARD;

/// `switchyard serve FIXTURES` with `config` as its `switchyard.toml`.
fn fixtures(config: &str) -> (Server, tempfile::TempDir) {
    let dir = config_dir(config);
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    (Server::start(SWITCHYARD, &args, Some(dir.path()), &[]), dir)
}

#[test]
fn a_memory_hog_gets_500_and_the_server_goes_on() {
    let (server, _dir) = fixtures("[limits]\nmax_memory = \"32MiB\"\n");
    let hog = get(server.address, "/hog");
    assert_eq!(
        (hog.status, hog.text().as_str()),
        (500, "internal server error")
    );
    assert!(server.printed("Error occurred handling /hog "));
    assert_eq!(get(server.address, "/").text(), "fixtures");
}

#[test]
fn no_state_is_kept_between_requests() {
    let (server, _dir) = fixtures("");
    for _ in 0..5 {
        assert_eq!(
            get(server.address, "/count").text(),
            "1",
            "a fresh instance for every request"
        );
    }
}

#[test]
fn request_bodies_over_the_limit_get_413_announced_or_streamed() {
    let (server, _dir) = fixtures("[limits]\nmax_request_body = \"1KiB\"\n");
    let address = server.address;
    let small = request(address, "POST", "/echo", &[], &[b'a'; 1000]);
    assert_eq!((small.status, small.body.len()), (200, 1000));
    assert_eq!(small.header("x-body-length"), Some("1000"));

    let announced = request(address, "POST", "/echo", &[], &[b'a'; 2048]);
    assert_eq!(
        (announced.status, announced.text().as_str()),
        (413, "payload too large")
    );

    // Chunked: no length announced, the limit trips while the guest reads.
    let chunked = chunked(4, 512, b'b');
    let streamed = request(
        address,
        "POST",
        "/echo",
        &[("transfer-encoding", "chunked")],
        &chunked,
    );
    assert_eq!(streamed.status, 413);
    assert_eq!(get(address, "/").status, 200);
}

#[test]
fn requests_past_the_concurrency_limit_get_503_with_retry_after() {
    let (server, _dir) = fixtures("[limits]\nmax_concurrent_requests = 2\n");
    let address = server.address;
    // Two URLs: two renders (one URL would be one render, and a wait).
    let slow: Vec<_> = (0..2)
        .map(|i| std::thread::spawn(move || get(address, &format!("/slow?ms=2000&n={i}"))))
        .collect();
    // Let both get in flight (polling now could take a permit from them),
    // then a third is refused at once.
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let response = get(address, "/");
        if response.status == 503 {
            break response;
        }
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.header("retry-after"), Some("1"));
    for slow in slow {
        assert_eq!(slow.join().unwrap().status, 200);
    }
    assert_eq!(get(address, "/").status, 200, "capacity is back");
}

#[test]
fn oversized_headers_get_431() {
    let (server, _dir) = fixtures("[limits]\nmax_header_size = \"16KiB\"\n");
    let big = "x".repeat(32 << 10);
    let response = try_request(server.address, "GET", "/", &[("x-big", &big)], b"");
    match response {
        Ok(response) => assert_eq!(response.status, 431),
        // hyper may close the connection after the 431 before we read it all.
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
    }
    assert_eq!(get(server.address, "/").status, 200);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (server, _dir) = fixtures("[server]\nheader_read_timeout = \"500ms\"\n");
    let mut slow = TcpStream::connect(server.address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the connection was closed by the server"
    );
    assert_eq!(get(server.address, "/").status, 200);
}

#[test]
fn a_huge_response_streams_whole() {
    let (server, _dir) = fixtures("");
    let huge = get(server.address, "/huge?mb=48");
    assert_eq!(huge.status, 200);
    assert_eq!(huge.body.len(), 48 << 20);
    assert!(huge.body.iter().all(|&b| b == b'x'));
}

#[test]
fn grants_give_exactly_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/greeting.txt"), "hello from the host").unwrap();
    let config = "[grants]\nenv = { GREETING = \"hi\" }\ninherit_env = [\"SWITCHYARD_TEST_INHERITED\", \"NOT_SET_ANYWHERE\"]\ndirs = { \"/data\" = \"data\" }\n";
    std::fs::write(dir.path().join("switchyard.toml"), config).unwrap();
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    let envs = [
        ("SWITCHYARD_TEST_INHERITED", "passed"),
        ("SECRET", "kept out"),
    ];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &envs);
    let env = get(server.address, "/env").text();
    let mut lines: Vec<&str> = env.lines().collect();
    lines.sort();
    assert_eq!(lines, ["GREETING=hi", "SWITCHYARD_TEST_INHERITED=passed"]);
    assert_eq!(
        get(server.address, "/file?path=/data/greeting.txt").text(),
        "hello from the host"
    );
    let outside = get(server.address, "/file?path=/data/../switchyard.toml");
    assert_eq!(
        outside.status,
        403,
        "the grant is the folder only: {}",
        outside.text()
    );
    assert_eq!(get(server.address, "/file?path=/etc/passwd").status, 403);
}

#[test]
fn public_files_are_served_with_validators_and_never_leave_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir(&public).unwrap();
    std::fs::write(public.join("hello.txt"), "hello, static world\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("leak.txt")).unwrap();
    std::fs::write(
        dir.path().join("switchyard.toml"),
        format!("app = \"{APP_COMPONENT}\"\npublic_dir = \"public\"\n"),
    )
    .unwrap();
    let server = Server::start(
        SWITCHYARD,
        &["serve", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    let address = server.address;

    let hello = get(address, "/hello.txt");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "hello, static world\n");
    assert_eq!(
        hello.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(hello.header("cache-control"), Some("public, max-age=0"));
    assert!(hello.header("last-modified").is_some());
    let etag = hello.header("etag").unwrap();
    assert!(etag.starts_with("W/\""), "{etag}");
    let cached = request(
        address,
        "GET",
        "/hello.txt",
        &[("if-none-match", etag)],
        b"",
    );
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let head = request(address, "HEAD", "/hello.txt", &[], b"");
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some("20"), 0)
    );

    for escape in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/leak.txt",
        "//etc/passwd",
        "/..%5Csecret.txt",
    ] {
        let response = get(address, escape);
        assert_eq!(response.status, 404, "{escape}");
        assert!(!response.text().contains("TOP-SECRET-CONTENT"), "{escape}");
    }
    assert!(
        get(address, "/a?name=x").text().contains("Hello, x!"),
        "pages still render"
    );
}

#[test]
fn dotfiles_are_not_served_and_ranges_are_few() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    for folder in [".git", ".well-known"] {
        std::fs::create_dir_all(public.join(folder)).unwrap();
    }
    std::fs::write(public.join(".env"), "SECRET=env").unwrap();
    std::fs::write(public.join(".git/config"), "SECRET=git").unwrap();
    std::fs::write(public.join(".well-known/security.txt"), "Contact: x").unwrap();
    std::fs::write(public.join("big.txt"), "x".repeat(10_000)).unwrap();
    let config = format!("app = \"{APP_COMPONENT}\"\npublic_dir = \"public\"\n");
    std::fs::write(dir.path().join("switchyard.toml"), &config).unwrap();
    let args = ["serve", "--listen", "127.0.0.1:0"];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    for hidden in ["/.env", "/.git/config", "/%2egit/config", "/%2Eenv"] {
        let response = get(server.address, hidden);
        assert_eq!(response.status, 404, "{hidden}");
        assert!(!response.text().contains("SECRET"), "{hidden}");
    }
    let known = get(server.address, "/.well-known/security.txt");
    assert_eq!((known.status, known.text().as_str()), (200, "Contact: x"));

    let ranges = |count: usize| {
        let list: Vec<String> = (0..count)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 4))
            .collect();
        let header = format!("bytes={}", list.join(","));
        request(
            server.address,
            "GET",
            "/big.txt",
            &[("range", &header)],
            b"",
        )
    };
    assert_eq!(ranges(1).status, 206);
    let refused = ranges(5000);
    assert_eq!(refused.status, 416);
    assert_eq!(refused.header("content-range"), Some("bytes */10000"));
    drop(server);

    // Asked for, dotfiles are served.
    std::fs::write(
        dir.path().join("switchyard.toml"),
        format!("{config}public_dotfiles = true\n"),
    )
    .unwrap();
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    assert_eq!(get(server.address, "/.env").text(), "SECRET=env");
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_storm_of_misbehaving_guests_fails_none_of_the_good_requests() {
    let (server, _dir) = fixtures("[limits]\nrequest_timeout = \"1s\"\nmax_memory = \"32MiB\"\n");
    let address = server.address;
    let bad = ["/trap", "/loop", "/hog", "/trap", "/b"];
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            std::thread::spawn(move || {
                let mut good = 0;
                for i in 0..40 {
                    if (i + worker) % 4 == 0 {
                        let path = bad[(i + worker) % bad.len()];
                        let response = get(address, path);
                        assert!(
                            [500, 504].contains(&response.status),
                            "{path}: {}",
                            response.status
                        );
                    } else {
                        let response = get(address, "/slow?ms=0&name=good");
                        assert_eq!(response.status, 200, "a good request failed");
                        assert_eq!(response.text(), "slept 0 ms; hello, good");
                        good += 1;
                    }
                }
                good
            })
        })
        .collect();
    let good: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(good, 240);
}

#[test]
fn memory_returns_to_its_baseline_after_many_traps() {
    let (server, _dir) = fixtures("[limits]\nmax_memory = \"32MiB\"\n");
    let address = server.address;
    for _ in 0..50 {
        get(address, "/count");
    }
    let baseline = rss_kib(server.pid());
    for i in 0..400 {
        let path = if i % 10 == 0 { "/hog" } else { "/trap" };
        assert_eq!(get(address, path).status, 500);
    }
    let after = rss_kib(server.pid());
    assert!(
        after < baseline + 48 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB after 400 traps"
    );
    assert_eq!(get(address, "/count").text(), "1");
}

#[test]
fn sigterm_lets_a_request_that_started_during_shutdown_finish() {
    let (mut server, _dir) = fixtures("");
    let address = server.address;
    // Two requests: one in flight before the signal, one started right after it.
    let before = std::thread::spawn(move || get(address, "/slow?ms=1000&name=before"));
    std::thread::sleep(Duration::from_millis(300));
    let mut during = TcpStream::connect(address).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    during
        .write_all(b"GET /slow?ms=200&name=during HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    during
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = during.read_to_string(&mut answer);
    assert_eq!(
        before.join().unwrap().text(),
        "slept 1000 ms; hello, before"
    );
    assert!(
        answer.ends_with("slept 200 ms; hello, during"),
        "{answer:?}"
    );
    assert_eq!(
        server.wait(Duration::from_secs(30)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(
        TcpStream::connect(address).is_err(),
        "new connections are refused"
    );
}

/// A one-shot upstream on 127.0.0.1:0 answering `pong` to every request,
/// for at most `requests` connections.
fn upstream(requests: usize) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    address
}

#[test]
fn outgoing_http_only_to_granted_hosts() {
    let upstream = upstream(4);
    let fetch = format!("/fetch?authority={upstream}");

    let (denied, _dir) = fixtures("");
    let refused = get(denied.address, &fetch);
    assert_eq!(refused.status, 403);
    let expected = format!(
        "denied: fetch GET http://{upstream}/: outgoing HTTP to `{upstream}` is not granted: \
         add it to `outgoing_http` under `[grants]` in switchyard.toml"
    );
    assert_eq!(refused.text(), expected);

    let (granted, _dir) = fixtures(&format!("[grants]\noutgoing_http = [\"{upstream}\"]\n"));
    assert_eq!(get(granted.address, &fetch).text(), "pong");
    let other = get(granted.address, "/fetch?authority=127.0.0.1:9");
    assert!(
        other.text().contains("is not granted"),
        "only the granted host: {}",
        other.text()
    );
}

#[test]
fn instance_reuse_serves_sequential_requests_and_drops_a_failed_instance() {
    let config = "[performance]\ninstance_reuse = 3\n\
        [[routes]]\npath = \"/rendered-count\"\npage = \"/count\"\n\
        [[routes]]\npath = \"/rendered-trap\"\npage = \"/trap\"\n";
    let (server, _dir) = fixtures(config);
    let count = |path: &str| get(server.address, path).text();

    // The render path gives its instance back before it answers, so reuse
    // is exact.
    let counts: Vec<String> = (0..4).map(|_| count("/rendered-count")).collect();
    assert_eq!(counts, ["1", "2", "3", "1"], "up to 3 requests an instance");
    assert_eq!(count("/rendered-count"), "2");
    assert_eq!(get(server.address, "/rendered-trap").status, 500);
    assert_eq!(
        count("/rendered-count"),
        "1",
        "the trapped instance is not reused"
    );

    // The handler path answers once the guest has sent its response, and the
    // instance goes back when `handle` returns: a request arriving in
    // between gets a fresh instance. So: reused, never past its 3 requests.
    let counts: Vec<u32> = (0..8)
        .map(|_| count("/count").parse().expect("a count"))
        .collect();
    assert!(
        counts.iter().all(|count| (1..=3).contains(count)),
        "at most 3 requests an instance: {counts:?}"
    );
    assert!(
        counts.iter().any(|&count| count > 1),
        "handler instances are reused: {counts:?}"
    );
}

#[test]
fn half_an_http2_preface_is_cut_off_like_a_slow_header() {
    let (server, _dir) = fixtures("[server]\nheader_read_timeout = \"500ms\"\n");
    let mut half = TcpStream::connect(server.address).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = half.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(20), "not cut off");
    assert_eq!(get(server.address, "/").status, 200);
}

/// Open two idle connections to `address`, then check that a third is
/// closed unanswered; the two are returned, holding their slots.
fn two_held_and_a_third_refused(address: SocketAddr, what: &str) -> Vec<TcpStream> {
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = TcpStream::connect(address).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{what}");
    idle
}

#[test]
fn connections_past_max_connections_are_refused() {
    let (server, _dir) = fixtures("[server]\nmax_connections = 2\n");
    let idle = two_held_and_a_third_refused(server.address, "the third connection was served");
    drop(idle);
    let within = Duration::from_secs(10);
    wait_for_status(
        server.address,
        "/",
        200,
        within,
        "capacity did not come back",
    );
}

#[test]
fn one_client_address_gets_at_most_its_share_of_connections() {
    let (server, _dir) = fixtures("[server]\nmax_connections_per_ip = 2\n");
    let idle = two_held_and_a_third_refused(
        server.address,
        "a third connection from one address was served",
    );
    // Another address (127.0.0.2 is loopback too) is served meanwhile.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let other = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(server.address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        answer
    });
    assert!(
        other.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&other)
    );
    drop(idle);
    let within = Duration::from_secs(10);
    wait_for_status(
        server.address,
        "/",
        200,
        within,
        "the address's share did not come back",
    );
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once() {
    let (mut server, _dir) = fixtures("");
    let address = server.address;
    let slow = std::thread::spawn(move || try_request(address, "GET", "/slow?ms=20000", &[], b""));
    std::thread::sleep(Duration::from_millis(500));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(10)).expect("it exits");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "interrupted, not drained");
    assert!(server.printed("interrupted again"));
    let _ = slow.join();
}

#[test]
fn framing_on_the_render_path_is_the_hosts() {
    let (server, _dir) = fixtures("[[routes]]\npath = \"/framing\"\npage = \"/framing\"\n");
    let page = get(server.address, "/framing");
    assert_eq!((page.status, page.text().as_str()), (200, "hello world"));
    assert_eq!(page.header("content-length"), Some("11"));
    assert_eq!(page.header("x-kept"), Some("yes"));
    for dropped in ["transfer-encoding", "upgrade"] {
        assert_eq!(page.header(dropped), None, "{dropped}");
    }
    let informational = get(server.address, "/framing?status=101");
    assert_eq!(informational.status, 500);
    assert!(server.printed("the rendered page has an invalid status 101"));
}

/// `switchyard serve FIXTURES` with a `public/` folder holding `files`.
fn with_public(files: &[(&str, &[u8])]) -> (Server, tempfile::TempDir) {
    let dir = config_dir("public_dir = \"public\"\n");
    std::fs::create_dir(dir.path().join("public")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join("public").join(name), bytes).unwrap();
    }
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    (Server::start(SWITCHYARD, &args, Some(dir.path()), &[]), dir)
}

#[test]
fn static_files_answer_ranges() {
    let (server, _dir) = with_public(&[("digits.txt", b"0123456789")]);
    let address = server.address;
    let whole = get(address, "/digits.txt");
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let last_modified = whole.header("last-modified").unwrap().to_string();
    let part = request(
        address,
        "GET",
        "/digits.txt",
        &[("range", "bytes=2-4")],
        b"",
    );
    assert_eq!((part.status, part.text().as_str()), (206, "234"));
    assert_eq!(part.header("content-range"), Some("bytes 2-4/10"));
    let beyond = request(
        address,
        "GET",
        "/digits.txt",
        &[("range", "bytes=20-30")],
        b"",
    );
    assert_eq!(beyond.status, 416);
    // If-Range: the range holds only while the file is the one named.
    let same = [("range", "bytes=0-0"), ("if-range", last_modified.as_str())];
    assert_eq!(
        request(address, "GET", "/digits.txt", &same, b"").status,
        206
    );
    let stale = [
        ("range", "bytes=0-0"),
        ("if-range", "Mon, 01 Jan 2001 00:00:00 GMT"),
    ];
    let whole_again = request(address, "GET", "/digits.txt", &stale, b"");
    assert_eq!((whole_again.status, whole_again.body.len()), (200, 10));
}

#[test]
fn slow_readers_of_a_large_static_file_cost_little_memory() {
    let big = vec![b'z'; 48 << 20];
    let (server, _dir) = with_public(&[("big.bin", &big)]);
    let before = rss_kib(server.pid());
    let readers: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(server.address).unwrap();
            stream
                .write_all(b"GET /big.bin HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 1];
            stream.read_exact(&mut first).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(server.pid());
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB with 4 stalled readers"
    );
    drop(readers);
    assert_eq!(get(server.address, "/").status, 200);
}

#[test]
fn one_canonical_path_for_routes_redirects_files_and_guests() {
    let dir = config_dir(
        "public_dir = \"public\"\n[[redirects]]\nsource = \"/old\"\ndestination = \"/\"\n[[redirects]]\nsource = \"/go/{x}\"\ndestination = \"/{x}\"\n",
    );
    std::fs::create_dir(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/hello.txt"), "hi").unwrap();
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let address = server.address;
    // `/%6Fld` is `/old`, `/h%65llo.txt` is `/hello.txt`, everywhere.
    assert_eq!(get(address, "/%6Fld").status, 307);
    assert_eq!(get(address, "/h%65llo.txt").text(), "hi");
    // Redirect parameters cannot lead off the site or into the headers.
    for (path, location) in [
        ("/go/%2Fevil.example", "/%2Fevil.example"),
        ("/go/%5Cevil.example", "/%5Cevil.example"),
        ("/go/%0D%0ASet-Cookie:%20x", "/%0D%0ASet-Cookie:%20x"),
    ] {
        let answer = get(address, path);
        assert_eq!(
            (answer.status, answer.header("location")),
            (307, Some(location)),
            "{path}"
        );
        assert_eq!(answer.header("set-cookie"), None);
    }
}

#[test]
fn a_tampered_compile_cache_is_never_executed() {
    let cache = tempfile::tempdir().unwrap();
    let envs = [("XDG_CACHE_HOME", cache.path().to_str().unwrap())];
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    drop(Server::start(SWITCHYARD, &args, Some(dir.path()), &envs));
    let artifacts: Vec<_> = std::fs::read_dir(cache.path().join("switchyard"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1);
    // Other machine code of the same length: not what was compiled.
    let length = std::fs::metadata(&artifacts[0]).unwrap().len() as usize;
    std::fs::write(&artifacts[0], vec![0xcc; length]).unwrap();
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &envs);
    assert_eq!(get(server.address, "/").text(), "fixtures");
    assert!(server.printed("does not match its digest"));
    drop(server);

    // A cache directory others may write is refused, by name.
    use std::os::unix::fs::PermissionsExt;
    let shared = cache.path().join("switchyard");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let check = |args: &[&str]| {
        switchyard_tests::process::run_with(
            SWITCHYARD,
            args,
            Some(dir.path()),
            &envs,
            Duration::from_secs(60),
        )
    };
    let (status, _, stderr) = check(&["check", FIXTURES_COMPONENT]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains(&format!(
            "the compile cache `{}` may be written by other users",
            shared.display()
        )),
        "{stderr}"
    );
    let (status, _, stderr) = check(&["check", FIXTURES_COMPONENT, "--no-cache"]);
    assert!(status.success(), "--no-cache needs no cache: {stderr}");
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let (server, _dir) = fixtures("[server]\nwrite_timeout = \"1s\"\n");
    let mut stalled = TcpStream::connect(server.address).unwrap();
    stalled
        .write_all(b"GET /huge?mb=48 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    // Read nothing while the server's writes stall past the deadline...
    std::thread::sleep(Duration::from_secs(4));
    // ...then everything that is left: the connection ends short.
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut received = Vec::new();
    let _ = stalled.read_to_end(&mut received);
    assert!(received.len() < 48 << 20, "the whole body was sent");
    assert_eq!(get(server.address, "/").status, 200);
}

#[test]
fn an_upload_that_stalls_is_cut_off() {
    let (server, _dir) = fixtures("[server]\nbody_read_timeout = \"1s\"\n");
    let mut stalled = TcpStream::connect(server.address).unwrap();
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten.")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "still waiting for the upload"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_client_that_leaves_frees_its_slot_at_once() {
    let (server, _dir) = fixtures("[limits]\nmax_concurrent_requests = 2\n");
    for _ in 0..4 {
        let mut leaving = TcpStream::connect(server.address).unwrap();
        leaving
            .write_all(b"GET /slow?ms=20000 HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        drop(leaving);
    }
    // Had the guests gone on, both slots would be taken for 20 s.
    let within = Duration::from_secs(5);
    wait_for_status(server.address, "/", 200, within, "the slots stayed taken");
}
