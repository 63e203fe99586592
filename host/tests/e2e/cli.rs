//! End-to-end tests of the `switchyard` binary over real HTTP: the example
//! app's pages, the ready line, errors at startup, signals.

use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_tests::process::{run, run_failing};
use switchyard_tests::{APP_COMPONENT, FIXTURES_COMPONENT, Server, config_dir, get, request};

use crate::SWITCHYARD;

/// `switchyard serve APP --listen 127.0.0.1:0 ARGS`, in an empty directory
/// (so no stray `switchyard.toml` is picked up).
fn serve(app: &str, args: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["serve", app, "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    (Server::start(SWITCHYARD, &all, Some(dir.path()), &[]), dir)
}

#[test]
fn example_app_pages_answer_like_nextjs() {
    let (server, _dir) = serve(APP_COMPONENT, &[]);
    let address = server.address;

    let index = get(address, "/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        index.header("content-length"),
        Some(index.body.len().to_string().as_str())
    );
    assert!(
        index.header("etag").unwrap().starts_with('"'),
        "strong etag"
    );
    assert!(index.text().contains("<h1>Welcome to Switchyard</h1>"));

    let a = get(address, "/a?name=hello%20w%C3%B6rld%26x%3Cb%3E");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("cache-control"),
        Some("private, no-cache, no-store, max-age=0, must-revalidate")
    );
    assert!(
        a.text().contains("Hello, hello wörld&#38;x&#60;b&#62;!"),
        "{}",
        a.text()
    );
    assert!(
        get(address, "/b?name=bee")
            .text()
            .contains("<h1>This is page b</h1>")
    );
    assert!(get(address, "/b?name=bee").text().contains("Hello, bee!"));

    let post = get(address, "/posts/hello%2Dworld");
    assert_eq!(post.status, 200);
    assert!(
        post.text().contains("<h1>Hello, world</h1>"),
        "{}",
        post.text()
    );

    let api = get(address, "/api/hello");
    assert_eq!(api.status, 200);
    assert_eq!(
        api.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(api.text(), r#"{"name":"John Doe","method":"GET"}"#);
    let posted = request(address, "POST", "/api/hello", &[], b"{}");
    assert_eq!(
        (posted.status, posted.text().as_str()),
        (200, r#"{"name":"John Doe","method":"POST"}"#)
    );

    let missing = get(address, "/nope");
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("404 - Page Not Found"),
        "custom 404 page"
    );
    assert!(missing.text().contains("<code>/nope</code>"));

    let slash = get(address, "/a/?name=x");
    assert_eq!(slash.status, 308);
    assert_eq!(slash.header("location"), Some("/a?name=x"));

    let head = request(address, "HEAD", "/a?name=x", &[], b"");
    let get_a = get(address, "/a?name=x");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        get_a.header("content-length")
    );
    assert_eq!(head.header("content-type"), get_a.header("content-type"));

    let boom = get(address, "/boom");
    assert_eq!(boom.status, 500);
    assert!(
        boom.text().contains("500 - Internal Server Error"),
        "the app's /_error page"
    );
    assert!(
        !boom.text().contains("always fails"),
        "production hides the error"
    );
    assert!(server.printed("Error occurred rendering /boom: boom: this page always fails"));

    let etag = index.header("etag").unwrap();
    let cached = request(address, "GET", "/", &[("if-none-match", etag)], b"");
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
}

#[test]
fn ready_line_has_the_real_port_and_a_port_in_use_fails_in_one_line() {
    let (server, dir) = serve(APP_COMPONENT, &[]);
    assert_ne!(server.address.port(), 0);
    let listen = server.address.to_string();
    let started = Instant::now();
    let stderr = run_failing(
        SWITCHYARD,
        &["serve", APP_COMPONENT, "--listen", &listen],
        dir.path(),
    );
    assert_eq!(
        stderr.trim(),
        format!("error: failed to listen on {listen}: address already in use")
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(
        get(server.address, "/").status,
        200,
        "the first server is unharmed"
    );
}

#[test]
fn a_missing_component_names_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_failing(
        SWITCHYARD,
        &["serve", "--listen", "127.0.0.1:0"],
        dir.path(),
    );
    assert_eq!(
        stderr.trim(),
        "error: component `./build/app.wasm` not found: build it with `just build-guest`"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let stderr = run_failing(SWITCHYARD, &["check", "core.wasm"], dir.path());
    assert!(
        stderr.contains(
            "`core.wasm` is not a WebAssembly component: build it for the `wasm32-wasip2` target"
        ),
        "{stderr}"
    );
}

#[test]
fn a_trap_fails_only_its_own_request() {
    let (server, _dir) = serve(FIXTURES_COMPONENT, &[]);
    let trapped = get(server.address, "/trap");
    assert_eq!(trapped.status, 500);
    assert_eq!(trapped.text(), "internal server error");
    assert_eq!(get(server.address, "/").text(), "fixtures");
    assert!(
        server.printed("Error occurred handling /trap "),
        "{}",
        server.output()
    );
}

#[test]
fn dev_mode_shows_the_error() {
    let (server, _dir) = serve(APP_COMPONENT, &["--dev"]);
    let boom = get(server.address, "/boom");
    assert_eq!(boom.status, 500);
    assert!(
        boom.text()
            .contains("<pre id=\"error\">boom: this page always fails</pre>"),
        "{}",
        boom.text()
    );
    let (fixtures, _dir) = serve(FIXTURES_COMPONENT, &["--dev"]);
    let trapped = get(fixtures.address, "/trap");
    assert_eq!(trapped.status, 500);
    assert!(
        trapped.text().starts_with("internal server error\n\n"),
        "{}",
        trapped.text()
    );
    assert!(
        trapped.text().contains("wasm trap") || trapped.text().contains("unreachable"),
        "{}",
        trapped.text()
    );
}

#[test]
fn a_guest_past_the_timeout_gets_504_and_the_server_goes_on() {
    let dir = config_dir("[limits]\nrequest_timeout = \"500ms\"\n");
    let app = FIXTURES_COMPONENT;
    let server = Server::start(
        SWITCHYARD,
        &["serve", app, "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    let started = Instant::now();
    let looping = get(server.address, "/loop");
    assert_eq!(looping.status, 504);
    assert_eq!(looping.text(), "gateway timeout");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "timed out in {:?}",
        started.elapsed()
    );
    assert_eq!(get(server.address, "/slow?ms=1").status, 200);
    assert!(server.printed("Error occurred handling /loop the guest ran past the request timeout"));
}

#[test]
fn config_routes_render_pages_and_redirects_answer_first() {
    let dir = config_dir(&format!(
        r#"
        app = "{APP_COMPONENT}"
        [server]
        hostname = "127.0.0.1"
        port = 0
        [[routes]]
        path = "/blog/{{slug}}"
        page = "/posts/[id]"
        query = {{ id = "{{slug}}" }}
        [[routes]]
        path = "/about"
        page = "/a"
        query = {{ name = "config" }}
        [[redirects]]
        source = "/old/{{x}}"
        destination = "/blog/{{x}}"
        permanent = true
        [[redirects]]
        source = "/moved"
        destination = "/b"
        "#
    ));
    let server = Server::start(SWITCHYARD, &["serve"], Some(dir.path()), &[]);
    let blog = get(server.address, "/blog/hello-world");
    assert_eq!(blog.status, 200);
    assert!(
        blog.text().contains("<h1>Hello, world</h1>"),
        "{}",
        blog.text()
    );
    let about = get(server.address, "/about?name=ignored");
    assert!(about.text().contains("Hello, config!"), "{}", about.text());
    // The renderer sees the request's headers: its ETag answers 304.
    let etag = about.header("etag").expect("a rendered page has an ETag");
    let cached = request(
        server.address,
        "GET",
        "/about",
        &[("if-none-match", etag)],
        b"",
    );
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let old = get(server.address, "/old/x?y=1");
    assert_eq!(
        (old.status, old.header("location")),
        (308, Some("/blog/x?y=1"))
    );
    let moved = get(server.address, "/moved");
    assert_eq!((moved.status, moved.header("location")), (307, Some("/b")));
    assert_eq!(
        get(server.address, "/a?name=fs").status,
        200,
        "file-system routes still on"
    );
}

#[test]
fn file_system_routes_off_leaves_only_explicit_routes() {
    let dir = config_dir(&format!(
        r#"
        app = "{APP_COMPONENT}"
        use_file_system_public_routes = false
        [[routes]]
        path = "/a"
        page = "/a"
        [[routes]]
        path = "/b"
        page = "/b"
        "#
    ));
    let server = Server::start(
        SWITCHYARD,
        &["serve", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    for path in ["/", "/posts/42", "/api/hello", "/boom"] {
        let response = get(server.address, path);
        assert_eq!(response.status, 404, "{path}");
        assert!(
            response.text().contains("404 - Page Not Found"),
            "{path}: the custom 404"
        );
    }
    let a = get(server.address, "/a?name=x");
    assert_eq!(
        a.status, 200,
        "unlike Next.js 14, explicit routes still render"
    );
    assert!(a.text().contains("Hello, x!"));
    assert!(
        get(server.address, "/b?name=y")
            .text()
            .contains("Hello, y!")
    );
}

#[test]
fn check_and_routes_report_without_serving() {
    let dir = config_dir(&format!(
        "app = \"{APP_COMPONENT}\"\n[[routes]]\npath = \"/blog/{{slug}}\"\npage = \"/posts/[id]\"\n[[redirects]]\nsource = \"/old\"\ndestination = \"/\"\n"
    ));
    let (status, stdout, stderr) = run(
        SWITCHYARD,
        &["check"],
        Some(dir.path()),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(
        stdout.contains("with 16 pages; 2 routes and redirects"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\ncache: on, 64.0 MiB at most, entries up to 1.0 MiB"),
        "{stdout}"
    );

    let (status, stdout, _) = run(
        SWITCHYARD,
        &["routes"],
        Some(dir.path()),
        Duration::from_secs(60),
    );
    assert!(status.success());
    let lines: Vec<&str> = stdout.lines().map(str::trim_end).collect();
    assert!(lines[0].starts_with("# Switchyard app: "), "{stdout}");
    let lines = &lines[1..];
    assert_eq!(lines[0], "/old           redirect 307 -> /");
    assert_eq!(lines[1], "/blog/{slug}   page /posts/[id]");
    assert!(lines.contains(&"/posts/[id]    app page"), "{stdout}");
}

#[test]
fn a_route_to_a_page_the_app_lacks_is_refused_at_startup() {
    let dir = config_dir(&format!(
        "app = \"{APP_COMPONENT}\"\n[[routes]]\npath = \"/x\"\npage = \"/nope\"\n"
    ));
    let stderr = run_failing(SWITCHYARD, &["check"], dir.path());
    assert!(
        stderr.starts_with(
            "error: invalid config `./switchyard.toml`: key `routes[0].page`: the app "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("has no page `/nope`; its pages are /, /a, /b, /posts, /posts/[id]"),
        "{stderr}"
    );
}

#[test]
fn sigterm_and_sigint_drain_in_flight_requests_then_exit_zero() {
    for signal in ["TERM", "INT"] {
        let (mut server, _dir) = serve(FIXTURES_COMPONENT, &[]);
        let address = server.address;
        let slow = std::thread::spawn(move || get(address, "/slow?ms=1500&name=drained"));
        std::thread::sleep(Duration::from_millis(500));
        server.signal(signal);
        let response = slow.join().unwrap();
        assert_eq!(response.status, 200, "SIG{signal}");
        assert_eq!(response.text(), "slept 1500 ms; hello, drained");
        let status = server
            .wait(Duration::from_secs(30))
            .expect("exits after draining");
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert!(
            std::net::TcpStream::connect(address).is_err(),
            "no longer listening"
        );
    }
}

#[test]
fn no_ambient_authority_by_default() {
    let (server, _dir) = serve(FIXTURES_COMPONENT, &[]);
    assert_eq!(
        get(server.address, "/env").text(),
        "",
        "an empty environment"
    );
    let file = get(server.address, "/file?path=/etc/passwd");
    assert_eq!(file.status, 403, "{}", file.text());
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn dev_mode_swaps_in_a_new_build_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("app.wasm");
    std::fs::copy(APP_COMPONENT, &component).unwrap();
    let server = Server::start(
        SWITCHYARD,
        &["dev", "app.wasm", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    assert!(
        get(server.address, "/")
            .text()
            .contains("Welcome to Switchyard")
    );

    // A new build lands the way `cp` writes it: a new file, renamed over the old.
    let staged = dir.path().join("app.wasm.new");
    std::fs::copy(FIXTURES_COMPONENT, &staged).unwrap();
    std::fs::rename(&staged, &component).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(server.address, "/").text() != "fixtures" {
        assert!(
            Instant::now() < deadline,
            "the new build was not swapped in:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.printed("reloaded `app.wasm`"), "{}", server.output());
    // One edit, one reload: the server's own reads of the file are no change.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        server.output().matches("reloaded `app.wasm`").count(),
        1,
        "{}",
        server.output()
    );

    // A broken build is reported and the last good one keeps serving.
    std::fs::write(dir.path().join("app.wasm.new"), b"not wasm").unwrap();
    std::fs::rename(dir.path().join("app.wasm.new"), &component).unwrap();
    while !server.printed("failed to reload, still serving the previous build") {
        assert!(
            Instant::now() < deadline,
            "the broken build was not reported:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(server.address, "/").text(), "fixtures");
}

#[test]
fn the_access_log_has_a_line_per_request_when_asked() {
    let dir = config_dir(&format!(
        "app = \"{APP_COMPONENT}\"\n[server]\naccess_log = true\n"
    ));
    let args = ["serve", "--listen", "127.0.0.1:0"];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let page = get(server.address, "/a?name=x");
    assert!(server.printed(&format!("GET /a 200 {} ", page.body.len())));
    get(server.address, "/nope%0aforged");
    // The path as the app sees it: its canonical form.
    assert!(server.printed("GET /nope%0Aforged 404 "));
}

#[test]
fn limits_are_held_against_the_memory_budget() {
    let dir = config_dir(&format!(
        "app = \"{APP_COMPONENT}\"\n[limits]\nmax_concurrent_requests = 100\nmax_memory = \"64MiB\"\nmemory_budget = \"1GiB\"\n"
    ));
    let stderr = run_failing(SWITCHYARD, &["check"], dir.path());
    assert!(
        stderr.contains("key `limits.memory_budget`: limits.max_concurrent_requests (100) x limits.max_memory (64.0 MiB) = 6.2 GiB is more than limits.memory_budget (1.0 GiB)"),
        "{stderr}"
    );
}
