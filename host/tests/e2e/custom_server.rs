//! `examples/custom_server.rs`, the seed's `server.js` in Rust, run as a
//! process: `/a` and `/b` through `app.render`, the rest through the request
//! handler, errors to a 500.

use std::path::{Path, PathBuf};
use switchyard_tests::{APP_COMPONENT, FIXTURES_COMPONENT, Server, get};

/// `target/debug/examples/custom_server`, built by `cargo test`.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir
        .join("examples")
        .join(format!("custom_server{}", std::env::consts::EXE_SUFFIX))
}

/// A directory laid out like an app's: `build/app.wasm` and a config.
fn app_dir(component: &str, config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("build")).unwrap();
    std::fs::copy(component, dir.path().join("build/app.wasm")).unwrap();
    std::fs::write(dir.path().join("switchyard.toml"), config).unwrap();
    dir
}

fn start(dir: &Path) -> Server {
    let envs = [
        ("PORT", "0"),
        ("HOSTNAME", "127.0.0.1"),
        ("NODE_ENV", "production"),
    ];
    Server::start(example(), &[], Some(dir), &envs)
}

#[test]
fn routes_a_and_b_through_render_and_the_rest_through_the_handler() {
    // With file-system routes off, only the custom server's render calls
    // can reach `/a` and `/b`: the handler alone would answer 404.
    let dir = app_dir(APP_COMPONENT, "use_file_system_public_routes = false\n");
    let server = start(dir.path());
    let a = get(server.address, "/a?name=hello%20w%C3%B6rld%26x");
    assert_eq!(a.status, 200);
    assert!(
        a.text().contains("Hello, hello wörld&#38;x!"),
        "{}",
        a.text()
    );
    assert!(
        get(server.address, "/b?name=bee")
            .text()
            .contains("<h1>This is page b</h1>")
    );
    let other = get(server.address, "/posts/1");
    assert_eq!(other.status, 404, "the handler: file-system routes are off");
}

#[test]
fn handler_serves_everything_else() {
    let dir = app_dir(APP_COMPONENT, "");
    let server = start(dir.path());
    assert!(
        get(server.address, "/posts/hello%2Dworld")
            .text()
            .contains("<h1>Hello, world</h1>")
    );
    assert_eq!(get(server.address, "/nope").status, 404);
    assert_eq!(get(server.address, "/a/").status, 308);
}

#[test]
fn errors_become_a_500() {
    let dir = app_dir(
        FIXTURES_COMPONENT,
        "[limits]\nrequest_timeout = \"300ms\"\n",
    );
    let server = start(dir.path());
    // `/b` and its error page fail: the app answers 500 and says why.
    let failed = get(server.address, "/b");
    assert_eq!(
        (failed.status, failed.text().as_str()),
        (500, "internal server error")
    );
    assert!(server.printed("Error occurred rendering /b: the fails fixture fails on purpose"));
    // A render past the request timeout is a 504, as any request's.
    let slow = get(server.address, "/a?ms=5000");
    assert_eq!(
        (slow.status, slow.text().as_str()),
        (504, "gateway timeout")
    );
    assert!(
        server.printed("Error occurred handling /a?ms=5000 the guest ran past the request timeout")
    );
    assert_eq!(
        get(server.address, "/a?ms=0&name=ok").text(),
        "slept 0 ms; hello, ok"
    );
}

/// Read what the server sends on `stream` until it closes the connection
/// (or 30 s pass); returns the bytes and how long it took.
fn read_until_closed(stream: &mut std::net::TcpStream) -> (Vec<u8>, std::time::Duration) {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    (bytes, started.elapsed())
}

#[test]
fn the_example_gets_the_servers_protections() {
    use std::io::Write;
    let dir = app_dir(
        FIXTURES_COMPONENT,
        "[server]\nheader_read_timeout = \"500ms\"\n[limits]\nmax_header_size = \"16KiB\"\n",
    );
    let mut server = start(dir.path());
    let address = server.address;

    // Headers over the limit: 431, then the connection is closed (with the
    // rest of the headers unread, the close may be a reset that loses the
    // answer now and then: one of three tries must see it, none another).
    let big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "x".repeat(32 << 10)
    );
    let answers: Vec<String> = (0..3)
        .map(|_| {
            String::from_utf8_lossy(&switchyard_tests::client::exchange(address, big.as_bytes()))
                .into_owned()
        })
        .collect();
    assert!(
        answers
            .iter()
            .any(|answer| answer.starts_with("HTTP/1.1 431"))
            && answers
                .iter()
                .all(|answer| answer.is_empty() || answer.starts_with("HTTP/1.1 431")),
        "{answers:?}"
    );

    // A client that sends nothing, or stops halfway through its headers,
    // is cut off after the header timeout.
    for sent in [&b""[..], b"GET / HTTP/1.1\r\nhost: x\r\n"] {
        let mut slow = std::net::TcpStream::connect(address).unwrap();
        slow.write_all(sent).unwrap();
        let (_, waited) = read_until_closed(&mut slow);
        assert!(
            waited < std::time::Duration::from_secs(20),
            "a silent client was not cut off"
        );
    }

    // SIGTERM: the request in flight finishes, then the server exits 0.
    let slow = std::thread::spawn(move || get(address, "/a?ms=1500&name=drained"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    server.signal("TERM");
    assert_eq!(slow.join().unwrap().text(), "slept 1500 ms; hello, drained");
    let status = server
        .wait(std::time::Duration::from_secs(30))
        .expect("it exits after the drain");
    assert_eq!(status.code(), Some(0));
}
