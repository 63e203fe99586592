//! `switchyard dev` over raw HTTP, without a browser (`browser.rs` has the
//! open tab): the `--build` and `--watch` flags, a failed build's page for
//! page loads only and its output on the terminal, the reload script, and
//! which public files dev mode and production serve.

use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_tests::process::run_failing;
use switchyard_tests::{APP_COMPONENT, Server, config_dir, get, request};

use crate::SWITCHYARD;

/// How long a rebuild (a copy, here) and its swap may take.
const WITHIN: Duration = Duration::from_secs(30);

/// A build that copies the example app into place, or fails with a message
/// while `src/broken` exists.
const BUILD: &str = "sh build.sh";

fn project() -> tempfile::TempDir {
    let dir = config_dir("");
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/page.txt"), "v1").unwrap();
    std::fs::write(
        dir.path().join("build.sh"),
        format!(
            "if [ -e src/broken ]; then echo 'error[E0425]: cannot find value `oops`' >&2; exit 101; fi\n\
             mkdir -p build && cp '{APP_COMPONENT}' build/app.wasm.tmp && mv build/app.wasm.tmp build/app.wasm\n"
        ),
    )
    .unwrap();
    dir
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WITHIN, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn page_load(server: &Server, path: &str) -> switchyard_tests::Response {
    request(server.address, "GET", path, &[("accept", "text/html")], b"")
}

/// The build a dev page's reload script names.
fn build_of(page: &str) -> String {
    let (_, rest) = page
        .split_once("if(e.data!==\"")
        .unwrap_or_else(|| panic!("no build named in {page}"));
    rest.split('"').next().unwrap().to_string()
}

/// The build the event stream names as it connects.
fn build_announced(server: &Server) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    write!(
        stream,
        "GET /_switchyard/events HTTP/1.1\r\nhost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 1024];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((_, rest)) = text.split_once("event: build\ndata: ")
            && let Some((build, _)) = rest.split_once('\n')
        {
            return build.to_string();
        }
        let read = stream.read(&mut buffer).expect("the event stream");
        assert!(read > 0, "the event stream ended: {text}");
        seen.extend_from_slice(&buffer[..read]);
    }
}

#[test]
fn build_and_watch_flags_rebuild_and_a_failed_build_shows_on_page_loads_only() {
    let dir = project();
    let server = Server::start(
        SWITCHYARD,
        &[
            "dev",
            "--build",
            BUILD,
            "--watch",
            "src/**",
            "--listen",
            "127.0.0.1:0",
        ],
        Some(dir.path()),
        &[("RUST_LOG", "info")],
    );
    // Built once at start (there was nothing to serve before), then served
    // with the reload script in its pages, which names the build; the
    // event stream names the same one as it connects.
    let page = page_load(&server, "/a");
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("new EventSource(\"/_switchyard/events\")")
    );
    let first = build_of(&page.text());
    assert_eq!(build_announced(&server), first);

    // A failed build: page loads show its output, everything else is served
    // by the last good build; the terminal has the output too.
    std::fs::write(dir.path().join("src/broken"), "").unwrap();
    until("the failed build's page", || {
        page_load(&server, "/a").status == 500
    });
    let failed = page_load(&server, "/a").text();
    assert!(failed.contains("Build failed"), "{failed}");
    assert!(
        failed.contains("error[E0425]: cannot find value `oops`"),
        "{failed}"
    );
    assert_eq!(get(server.address, "/api/hello").status, 200);
    assert_eq!(get(server.address, "/a").status, 200, "not a page load");
    assert!(server.printed("error[E0425]: cannot find value `oops`"));
    assert!(server.printed("the build failed; still serving the last good build"));

    // Fixed: page loads get the page again. A tab still showing the first
    // build's page, whose event stream connects only now, is told of a
    // later build, and so reloads.
    std::fs::remove_file(dir.path().join("src/broken")).unwrap();
    until("the page back", || page_load(&server, "/a").status == 200);
    until("the rebuilt component swapped in", || {
        server.printed("reloaded `")
    });
    let now = build_announced(&server);
    assert_ne!(now, first);
    until("pages named as the stream names them", || {
        build_of(&page_load(&server, "/a").text()) == build_announced(&server)
    });
    // A change outside the watched globs builds nothing.
    let builds = server.output().matches("INFO building:").count();
    std::fs::write(dir.path().join("notes.txt"), "unwatched").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(server.output().matches("INFO building:").count(), builds);
}

#[test]
fn a_failing_first_build_with_nothing_to_serve_stops_with_its_output() {
    let dir = project();
    std::fs::write(dir.path().join("src/broken"), "").unwrap();
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "dev",
            "--build",
            BUILD,
            "--watch",
            "src/**",
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert!(
        stderr.contains(
            "the build failed and there is no earlier build of `./build/app.wasm` to serve"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("cannot find value `oops`"), "{stderr}");
}

#[test]
fn build_flags_are_for_dev_mode_only() {
    let dir = project();
    let stderr = run_failing(
        SWITCHYARD,
        &["serve", APP_COMPONENT, "--build", BUILD],
        dir.path(),
    );
    assert!(
        stderr.contains("`--build` and `--watch` are for dev mode"),
        "{stderr}"
    );
}

fn public_site(dir: &Path) {
    std::fs::create_dir(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/there.txt"), "at startup").unwrap();
    std::fs::write(
        dir.join("switchyard.toml"),
        format!("app = {APP_COMPONENT:?}\npublic_dir = \"public\"\n"),
    )
    .unwrap();
}

#[test]
fn production_serves_the_public_files_of_startup_and_dev_mode_those_added_since() {
    for (command, added_is_served) in [("serve", false), ("dev", true)] {
        let dir = tempfile::tempdir().unwrap();
        public_site(dir.path());
        let server = Server::start(
            SWITCHYARD,
            &[command, "--listen", "127.0.0.1:0"],
            Some(dir.path()),
            &[],
        );
        assert_eq!(get(server.address, "/there.txt").text(), "at startup");
        std::fs::write(dir.path().join("public/added.txt"), "added").unwrap();
        let added = get(server.address, "/added.txt");
        if added_is_served {
            assert_eq!(added.text(), "added", "{command}");
        } else {
            assert_eq!(added.status, 404, "{command}: the app's 404");
        }
    }
}

/// What `just dev` runs (after building the host): `switchyard dev` in the
/// repository, whose switchyard.toml builds the example app with `just
/// build-app`, serves `public/` and grants the site its own JSON API.
#[test]
fn the_repositorys_config_builds_and_serves_the_example_site_in_dev_mode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let server = Server::start(
        SWITCHYARD,
        &["dev", "--listen", "127.0.0.1:0"],
        Some(root),
        &[("RUST_LOG", "info")],
    );
    assert!(server.printed("INFO building: just build-app"));
    let index = page_load(&server, "/");
    assert_eq!(index.status, 200);
    assert!(
        index
            .text()
            .contains("<link rel=\"stylesheet\" href=\"/style.css\">")
    );
    assert!(index.text().contains("/_switchyard/events"));
    let style = get(server.address, "/style.css");
    assert_eq!(style.status, 200);
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    // `/stats` fetched `/api/posts` from this same server.
    let stats = get(server.address, "/stats");
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert!(stats.text().contains("/api/posts"));
}

#[test]
fn dev_mode_answers_only_its_own_host_and_origins() {
    let dir = config_dir(&format!(
        "app = {APP_COMPONENT:?}\n[dev]\nallowed_origins = [\"myapp.test\"]\n"
    ));
    let server = Server::start(
        SWITCHYARD,
        &["dev", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    let port = server.address.port();
    let status = |headers: &[(&str, &str)], path: &str| {
        let mut raw = format!("GET {path} HTTP/1.1\r\nconnection: close\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        let answer = switchyard_tests::client::exchange(server.address, raw.as_bytes());
        let answer = String::from_utf8_lossy(&answer).into_owned();
        answer
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let own = format!("127.0.0.1:{port}");
    let localhost = format!("localhost:{port}");
    for allowed in [own.as_str(), localhost.as_str(), "[::1]", "myapp.test:3000"] {
        assert_eq!(status(&[("host", allowed)], "/a"), "200", "{allowed}");
    }
    // A page elsewhere that rebound its name to this machine (DNS rebinding).
    for path in ["/a", "/_switchyard/events"] {
        assert_eq!(status(&[("host", "evil.example")], path), "403", "{path}");
    }
    assert_eq!(
        status(&[("host", &own), ("origin", "http://evil.example")], "/a"),
        "403"
    );
    assert_eq!(
        status(
            &[
                ("host", &own),
                ("origin", &format!("http://localhost:{port}"))
            ],
            "/a"
        ),
        "200"
    );
    // Outside dev mode, no such check.
    drop(server);
    let server = Server::start(
        SWITCHYARD,
        &["serve", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    let served = request(server.address, "GET", "/a", &[("host", "example.com")], b"");
    assert_eq!(served.status, 200);
}
