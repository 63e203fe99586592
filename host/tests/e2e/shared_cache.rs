//! The response cache's second tier over a real Redis: two servers (two
//! replicas of one app) see each other's entries, revalidations and
//! single flight; a different app does not share them; Redis going away
//! costs the second tier, not a request.

use std::time::{Duration, Instant};
use switchyard_tests::redis::Redis;
use switchyard_tests::{FIXTURES_COMPONENT, Response, Server, config_dir, request};

use crate::SWITCHYARD;

fn replica(dir: &std::path::Path) -> Server {
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    Server::start(SWITCHYARD, &args, Some(dir), &[])
}

/// GET `path` from the replica at `address`, as a load balancer in front
/// of both would: with the site's host name.
fn get(address: std::net::SocketAddr, path: &str) -> Response {
    request(address, "GET", path, &[("host", "site.test")], b"")
}

fn cache_of(response: &Response) -> &str {
    response.header("x-cache").unwrap_or("none")
}

/// How many times a replica rendered `/cached` so far.
fn renders(server: &Server) -> usize {
    server.output().matches("rendered /cached").count()
}

/// Ask `server` for `path` until `done` says yes (within 5 s): what the
/// other replica published takes a moment to arrive.
fn until(server: &Server, path: &str, done: impl Fn(&Response) -> bool) -> Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = get(server.address, path);
        if done(&response) {
            return response;
        }
        assert!(Instant::now() < deadline, "never: {}", cache_of(&response));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replicas_share_entries_and_revalidations() {
    let redis = Redis::start();
    let dir = config_dir(&format!("[cache]\nshared = \"{}\"\n", redis.url()));
    let (a, b) = (replica(dir.path()), replica(dir.path()));
    let path = "/cached?tags=posts&cc=public,+s-maxage%3D300";

    let first = get(a.address, path);
    assert_eq!(cache_of(&first), "MISS");
    let on_b = get(b.address, path);
    assert_eq!(cache_of(&on_b), "HIT", "stored by the other replica");
    assert_eq!(on_b.body, first.body, "the same render");
    assert!(on_b.header("cache-tag").is_none());

    // A tag revalidated on `a` is dropped on `b` too.
    assert_eq!(get(a.address, "/api/revalidate?tag=posts").status, 200);
    let fresh = until(&b, path, |r| cache_of(r) == "MISS");
    assert_ne!(fresh.body, first.body);
    // ... and what `b` rendered again is what `a` serves now.
    let on_a = until(&a, path, |r| cache_of(r) == "HIT");
    assert_eq!(on_a.body, fresh.body);

    // By path, from `b`.
    assert_eq!(get(b.address, "/api/revalidate?path=/cached").status, 200);
    until(&a, path, |r| cache_of(r) == "MISS" && r.body != fresh.body);

    // A response that may not be shared is not.
    let private = "/cached?cc=private";
    assert_eq!(cache_of(&get(a.address, private)), "MISS");
    assert_eq!(cache_of(&get(b.address, private)), "MISS");
}

#[test]
fn a_miss_renders_once_across_replicas() {
    let redis = Redis::start();
    let dir = config_dir(&format!("[cache]\nshared = \"{}\"\n", redis.url()));
    let (a, b) = (replica(dir.path()), replica(dir.path()));
    let path = "/cached?ms=800&cc=public,+s-maxage%3D300";
    let threads: Vec<_> = [a.address, b.address, a.address, b.address]
        .into_iter()
        .map(|address| std::thread::spawn(move || get(address, path)))
        .collect();
    let bodies: Vec<Vec<u8>> = threads
        .into_iter()
        .map(|thread| {
            let response = thread.join().unwrap();
            assert_eq!(response.status, 200);
            response.body
        })
        .collect();
    // Each render stamps its body: one body, one render.
    assert!(
        bodies.iter().all(|body| *body == bodies[0]),
        "one render for both replicas"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(renders(&a) + renders(&b), 1, "one render for both replicas");
}

#[test]
fn another_app_does_not_share_and_redis_down_costs_no_request() {
    let redis = Redis::start();
    let config = format!("[cache]\nshared = \"{}\"\n", redis.url());
    let dir = config_dir(&config);
    let fixtures = replica(dir.path());
    let other = Server::start(
        SWITCHYARD,
        &[
            "serve",
            switchyard_tests::APP_COMPONENT,
            "--listen",
            "127.0.0.1:0",
        ],
        Some(dir.path()),
        &[],
    );
    assert_eq!(cache_of(&get(fixtures.address, "/cached")), "MISS");
    // The example app's `/cached` is its own page, not the fixture's.
    let theirs = get(other.address, "/cached");
    assert_eq!(cache_of(&theirs), "MISS");

    drop(redis);
    let path = "/cached?cc=public,+s-maxage%3D300&after=redis";
    assert_eq!(get(fixtures.address, path).status, 200);
    assert_eq!(
        cache_of(&get(fixtures.address, path)),
        "HIT",
        "this replica's tier"
    );
    let revalidate = get(fixtures.address, "/api/revalidate?tag=posts");
    assert_eq!(
        revalidate.status, 500,
        "the other replicas cannot be told: said so"
    );
    assert!(
        fixtures.stderr().contains("shared cache"),
        "{}",
        fixtures.stderr()
    );
}
