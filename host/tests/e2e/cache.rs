//! The shared response cache and compression, over real HTTP: what is
//! stored and what never is, freshness, stale-while-revalidate,
//! stale-if-error, Vary, HEAD, single flight, eviction by size, and
//! compression negotiated and round-tripped.

use std::io::Read;
use std::time::Duration;
use switchyard_tests::{FIXTURES_COMPONENT, Response, Server, config_dir, get, request};

use crate::SWITCHYARD;

fn serve(config: &str) -> (Server, tempfile::TempDir) {
    let dir = config_dir(config);
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    (Server::start(SWITCHYARD, &args, Some(dir.path()), &[]), dir)
}

fn cache_of(response: &Response) -> &str {
    response.header("x-cache").unwrap_or("none")
}

/// How many times the fixture rendered `/cached` so far.
fn renders(server: &Server) -> usize {
    server.output().matches("rendered /cached").count()
}

/// Ask for `path` until the background refresh has landed: a fresh hit
/// whose body is not `old`'s (within 10 s).
fn until_refreshed(server: &Server, path: &str, old: &Response) -> Response {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = get(server.address, path);
        if cache_of(&next) == "HIT" && next.body != old.body {
            return next;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never refreshed: {}",
            cache_of(&next)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn percent(text: &str) -> String {
    text.replace(' ', "%20")
        .replace(',', "%2C")
        .replace('=', "%3D")
}

#[test]
fn a_public_page_is_a_miss_then_hits_with_the_same_body() {
    let (server, _dir) = serve("");
    let first = get(server.address, "/cached");
    assert_eq!((first.status, cache_of(&first)), (200, "MISS"));
    let second = get(server.address, "/cached");
    assert_eq!((second.status, cache_of(&second)), (200, "HIT"));
    assert_eq!(second.body, first.body);
    assert!(second.header("age").is_some());
    let head = request(server.address, "HEAD", "/cached", &[], b"");
    assert_eq!(
        (head.status, cache_of(&head)),
        (200, "HIT"),
        "HEAD from GET's entry"
    );
    assert!(head.body.is_empty());
    assert!(server.printed("rendered /cached"));
    assert_eq!(renders(&server), 1);
}

#[test]
fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let (server, _dir) = serve("");
    let path = format!(
        "/cached?cc={}",
        percent("public, s-maxage=1, stale-while-revalidate=30")
    );
    let first = get(server.address, &path);
    std::thread::sleep(Duration::from_millis(1300));
    let stale = get(server.address, &path);
    assert_eq!(cache_of(&stale), "STALE");
    assert_eq!(stale.body, first.body, "the stale entry at once");
    // The background render lands: the next answer is fresh and new.
    until_refreshed(&server, &path, &first);
    assert_eq!(renders(&server), 2, "one background render");
}

#[test]
fn stale_if_error_keeps_serving_when_the_render_fails() {
    let flags = tempfile::tempdir().unwrap();
    let config = format!(
        "[grants]\ndirs = {{ \"/flags\" = {:?} }}\n",
        flags.path().display().to_string()
    );
    let (server, _dir) = serve(&config);
    let path = format!(
        "/cached?cc={}",
        percent("public, s-maxage=1, stale-if-error=60")
    );
    let first = get(server.address, &path);
    assert_eq!(first.status, 200);
    std::fs::write(flags.path().join("fail"), "").unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    let stale = get(server.address, &path);
    assert_eq!((stale.status, cache_of(&stale)), (200, "STALE"));
    assert_eq!(stale.body, first.body);
}

/// A path, the request headers, the method.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn what_must_never_be_shared_is_never_stored() {
    let (server, _dir) = serve("[cache]\nmax_entry_size = \"2KiB\"\n");
    let cases: [Case; 8] = [
        ("/cached?cc=private%2C%20s-maxage%3D10", &[], "GET"),
        ("/cached?cc=no-store", &[], "GET"),
        ("/cached?cc=max-age%3D10", &[], "GET"),
        ("/cached?cookie=session%3D1", &[], "GET"),
        ("/cached?vary=*", &[], "GET"),
        ("/cached?status=418", &[], "GET"),
        ("/cached?kb=8", &[], "GET"),
        (
            "/cached?cc=s-maxage%3D10",
            &[("authorization", "Bearer x")],
            "GET",
        ),
    ];
    for (path, headers, method) in cases {
        let before = renders(&server);
        for _ in 0..2 {
            let answer = request(server.address, method, path, headers, b"");
            assert_eq!(cache_of(&answer), "MISS", "{path}");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while renders(&server) < before + 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "{path} was served from the cache"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let post = request(server.address, "POST", "/cached", &[], b"");
    assert_eq!(
        post.header("x-cache"),
        None,
        "POST does not go through the cache"
    );
}

#[test]
fn vary_puts_the_named_headers_in_the_key() {
    let (server, _dir) = serve("");
    let path = "/cached?vary=x-lang";
    let en = request(server.address, "GET", path, &[("x-lang", "en")], b"");
    let fr = request(server.address, "GET", path, &[("x-lang", "fr")], b"");
    assert_eq!((cache_of(&en), cache_of(&fr)), ("MISS", "MISS"));
    assert_ne!(en.body, fr.body);
    let en_again = request(server.address, "GET", path, &[("x-lang", "en")], b"");
    assert_eq!(cache_of(&en_again), "HIT");
    assert_eq!(en_again.body, en.body);
}

#[test]
fn a_hundred_concurrent_misses_render_once() {
    // Only the render counts in flight: the others wait, holding no slot.
    let (server, _dir) = serve("[limits]\nmax_concurrent_requests = 2\n");
    let address = server.address;
    let clients: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || get(address, "/cached?ms=500&flight=1")))
        .collect();
    let bodies: Vec<Vec<u8>> = clients
        .into_iter()
        .map(|client| {
            let answer = client.join().unwrap();
            assert_eq!(answer.status, 200);
            answer.body
        })
        .collect();
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "one render, shared"
    );
    assert_eq!(renders(&server), 1);
}

#[test]
fn a_scan_of_one_off_pages_neither_flushes_a_hot_page_nor_passes_the_bound() {
    let (server, _dir) = serve("[cache]\nmax_size = \"256KiB\"\nmax_entry_size = \"32KiB\"\n");
    // A cache in use (moka counts how often keys are asked for once it is
    // half full), with one page asked for again and again.
    for page in 100..108 {
        get(server.address, &format!("/cached?kb=16&page={page}"));
    }
    let hot = "/cached?kb=16&page=hot";
    assert_eq!(cache_of(&get(server.address, hot)), "MISS");
    for _ in 0..5 {
        assert_eq!(cache_of(&get(server.address, hot)), "HIT");
    }
    // Thirty pages of 16 KiB, each asked for once: more than the cache holds.
    for page in 0..30 {
        let answer = get(server.address, &format!("/cached?kb=16&page={page}"));
        assert_eq!(cache_of(&answer), "MISS");
    }
    assert_eq!(
        cache_of(&get(server.address, hot)),
        "HIT",
        "the hot page stays"
    );
    let kept = (0..30)
        .filter(|page| {
            let answer = get(server.address, &format!("/cached?kb=16&page={page}"));
            cache_of(&answer) == "HIT"
        })
        .count();
    assert!(kept < 14, "{kept} pages of 16 KiB kept within 256 KiB");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn compression_is_negotiated_and_round_trips() {
    let (server, _dir) = serve("");
    for path in ["/cached?kb=4", "/cached?kb=4&cc=no-store"] {
        let plain = get(server.address, path);
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        let gzip = request(
            server.address,
            "GET",
            path,
            &[("accept-encoding", "gzip")],
            b"",
        );
        assert_eq!(gzip.header("content-encoding"), Some("gzip"), "{path}");
        assert!(
            gzip.header("vary")
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        assert!(gzip.body.len() < plain.body.len() / 4, "{path}: compressed");
        let text = String::from_utf8(gunzip(&gzip.body)).unwrap();
        assert!(text.starts_with("<p>rendered "), "{path}");
        let brotli = request(
            server.address,
            "GET",
            path,
            &[("accept-encoding", "br;q=1, gzip;q=0.5")],
            b"",
        );
        assert_eq!(brotli.header("content-encoding"), Some("br"), "{path}");
        let zstd = request(
            server.address,
            "GET",
            path,
            &[("accept-encoding", "zstd")],
            b"",
        );
        assert_eq!(zstd.header("content-encoding"), Some("zstd"), "{path}");
        let refused = request(
            server.address,
            "GET",
            path,
            &[("accept-encoding", "gzip;q=0")],
            b"",
        );
        assert_eq!(refused.header("content-encoding"), None, "{path}");
    }
    // Small bodies and ranges stay as they are.
    let small = request(
        server.address,
        "GET",
        "/cached",
        &[("accept-encoding", "gzip")],
        b"",
    );
    assert_eq!(small.header("content-encoding"), None);
}

#[test]
fn the_example_sites_caching_page_shows_the_cache_at_work() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "serve",
        switchyard_tests::APP_COMPONENT,
        "--listen",
        "127.0.0.1:0",
    ];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let first = get(server.address, "/cached");
    assert_eq!(
        first.header("cache-control"),
        Some("public, s-maxage=10, stale-while-revalidate=59")
    );
    assert_eq!(cache_of(&first), "MISS");
    let second = get(server.address, "/cached");
    assert_eq!(
        (cache_of(&second), second.body == first.body),
        ("HIT", true)
    );
}

#[test]
fn hits_are_not_compressed_when_compression_is_off() {
    let (server, _dir) = serve("[server]\ncompression = false\n");
    let gzip = [("accept-encoding", "gzip")];
    let miss = request(server.address, "GET", "/cached?kb=4", &gzip, b"");
    let hit = request(server.address, "GET", "/cached?kb=4", &gzip, b"");
    assert_eq!((cache_of(&miss), cache_of(&hit)), ("MISS", "HIT"));
    assert_eq!(hit.header("content-encoding"), None);
    assert_eq!(hit.body, miss.body);
}

#[test]
fn a_dev_mode_reload_empties_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.wasm");
    std::fs::copy(FIXTURES_COMPONENT, &app).unwrap();
    let args = ["dev", "app.wasm", "--listen", "127.0.0.1:0"];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let first = get(server.address, "/cached");
    assert_eq!(cache_of(&get(server.address, "/cached")), "HIT");
    // A new build lands (the same bytes, written anew).
    let staged = dir.path().join("app.wasm.new");
    std::fs::copy(FIXTURES_COMPONENT, &staged).unwrap();
    std::fs::rename(&staged, &app).unwrap();
    assert!(server.printed("reloaded `app.wasm`"));
    let after = get(server.address, "/cached");
    assert_eq!(cache_of(&after), "MISS");
    assert_ne!(after.body, first.body);
}

#[test]
fn in_dev_mode_a_compressed_hit_still_has_the_reload_script() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.wasm");
    std::fs::copy(FIXTURES_COMPONENT, &app).unwrap();
    let args = ["dev", "app.wasm", "--listen", "127.0.0.1:0"];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let headers = [("accept-encoding", "gzip"), ("accept", "text/html")];
    for expected in ["MISS", "HIT"] {
        let page = request(server.address, "GET", "/cached?kb=2", &headers, b"");
        assert_eq!(cache_of(&page), expected);
        assert_eq!(page.header("content-encoding"), Some("gzip"), "{expected}");
        let text = String::from_utf8(gunzip(&page.body)).unwrap();
        assert!(
            text.contains("switchyard dev: reload after each build"),
            "{expected}: no reload script in {text}"
        );
    }
}

#[test]
fn a_refresh_that_may_not_be_stored_lets_the_next_stale_hit_try_again() {
    let flags = tempfile::tempdir().unwrap();
    let config = format!(
        "[grants]\ndirs = {{ \"/flags\" = {:?} }}\n",
        flags.path().display().to_string()
    );
    let (server, _dir) = serve(&config);
    let path = format!(
        "/cached?cc={}",
        percent("public, s-maxage=1, stale-while-revalidate=60")
    );
    let first = get(server.address, &path);
    assert_eq!(cache_of(&first), "MISS");
    // The page turns private: the background refresh may not be stored.
    std::fs::write(flags.path().join("private"), "").unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(cache_of(&get(server.address, &path)), "STALE");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while renders(&server) < 2 {
        assert!(std::time::Instant::now() < deadline, "no refresh");
        std::thread::sleep(Duration::from_millis(50));
    }
    // It is public again: the next stale hit refreshes it for real.
    std::fs::remove_file(flags.path().join("private")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    until_refreshed(&server, &path, &first);
}

#[test]
fn concurrent_misses_that_vary_get_their_own_variant() {
    let (server, _dir) = serve("");
    let address = server.address;
    // A cold URL: nobody knows yet that it varies on the cookie.
    let clients: Vec<_> = ["a=1", "a=2", "a=1"]
        .into_iter()
        .map(|cookie| {
            std::thread::spawn(move || {
                let answer = request(
                    address,
                    "GET",
                    "/cached?vary=cookie&ms=600",
                    &[("cookie", cookie)],
                    b"",
                );
                (cookie, answer)
            })
        })
        .collect();
    for client in clients {
        let (cookie, answer) = client.join().unwrap();
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .text()
                .contains(&format!("<!-- cookie: {cookie} -->")),
            "{cookie} got {}",
            answer.text()
        );
    }
}

#[test]
fn a_failed_render_ends_the_flight_for_those_that_waited() {
    let (server, _dir) = serve("");
    let address = server.address;
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(address, "/cached?status=500&ms=800")))
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap().status, 500);
    }
    assert_eq!(renders(&server), 1, "the waiters shared the failure");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "nobody rendered after it"
    );
}

#[test]
fn a_background_refresh_carries_no_cookie() {
    let (server, _dir) = serve("");
    let path = format!(
        "/cached?cc={}",
        percent("public, s-maxage=1, stale-while-revalidate=30")
    );
    let first = get(server.address, &path);
    assert!(!first.text().contains("cookie"));
    std::thread::sleep(Duration::from_millis(1300));
    let stale = request(
        server.address,
        "GET",
        &path,
        &[("cookie", "session=secret")],
        b"",
    );
    assert_eq!(cache_of(&stale), "STALE");
    let next = until_refreshed(&server, &path, &first);
    assert!(!next.text().contains("secret"), "{}", next.text());
}
