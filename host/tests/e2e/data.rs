//! Data for pages over real HTTP: `wasi:keyvalue` on the embedded store and
//! on a real Redis, shared by two servers; the limits and the stores not
//! granted; `wasi:config` from `[variables]`; on-demand revalidation by
//! path and by tag; acknowledged writes surviving a SIGKILL. The standard
//! guests (p2 and p3, no SDK) and the example app (our SDK) both.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_tests::redis::Redis;
use switchyard_tests::{
    APP_COMPONENT, FIXTURES_COMPONENT, P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT, Server,
    config_dir, get, request,
};

use crate::SWITCHYARD;

/// `switchyard serve COMPONENT` with the config in `dir`.
fn serve_in(dir: &Path, component: &str, envs: &[(&str, &str)]) -> Server {
    let args = ["serve", component, "--listen", "127.0.0.1:0"];
    Server::start(SWITCHYARD, &args, Some(dir), envs)
}

/// `switchyard serve COMPONENT` with the config in `dir` and its embedded
/// stores in `data`.
fn serve_with_data(dir: &Path, component: &str, data: &Path) -> Server {
    let data = data.to_str().unwrap();
    let args = [
        "serve",
        component,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ];
    Server::start(SWITCHYARD, &args, Some(dir), &[])
}

fn body(server: &Server, path: &str) -> (u16, String) {
    let response = get(server.address, path);
    (response.status, response.text())
}

fn post_form(server: &Server, path: &str, form: &str) -> switchyard_tests::Response {
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    request(server.address, "POST", path, &headers, form.as_bytes())
}

#[test]
fn the_example_keeps_comments_and_counts_visits_across_a_restart() {
    let dir = config_dir("[keyvalue.site]\n[variables]\ntagline = \"Kept by the server\"\n");
    let server = serve_in(dir.path(), APP_COMPONENT, &[]);
    let home = body(&server, "/").1;
    assert!(home.contains("<strong id=\"visits\">1</strong>"), "{home}");
    assert!(home.contains("Kept by the server"), "{home}");
    assert!(
        body(&server, "/")
            .1
            .contains("<strong id=\"visits\">2</strong>")
    );

    // The post page is cached until a comment revalidates it.
    let post = get(server.address, "/posts/caching");
    assert_eq!(post.header("x-cache"), Some("MISS"));
    assert!(
        post.header("cache-tag").is_none(),
        "the host keeps the tags"
    );
    assert!(post.text().contains("No comments yet."));
    assert_eq!(
        get(server.address, "/posts/caching").header("x-cache"),
        Some("HIT")
    );
    let posted = post_form(
        &server,
        "/api/comments",
        "post=caching&author=Ana&text=First+%3Cb%3Ecomment%3C%2Fb%3E",
    );
    assert_eq!(posted.status, 303);
    assert_eq!(posted.header("location"), Some("/posts/caching#comments"));
    let post = get(server.address, "/posts/caching");
    assert_eq!(post.header("x-cache"), Some("MISS"), "revalidated");
    assert!(
        post.text()
            .contains("<strong>Ana</strong><p>First &#60;b&#62;comment&#60;/b&#62;</p>"),
        "{}",
        post.text()
    );
    // Another post's page was not revalidated.
    get(server.address, "/posts/hello-world");
    post_form(
        &server,
        "/api/comments",
        "post=caching&author=Bo&text=Second",
    );
    assert_eq!(
        get(server.address, "/posts/hello-world").header("x-cache"),
        Some("HIT")
    );

    drop(server);
    let server = serve_in(dir.path(), APP_COMPONENT, &[]);
    assert!(
        body(&server, "/")
            .1
            .contains("<strong id=\"visits\">3</strong>")
    );
    let post = body(&server, "/posts/caching").1;
    assert!(post.contains("<strong>Ana</strong>") && post.contains("<strong>Bo</strong>"));
}

#[test]
fn without_a_store_the_example_says_so_and_serves_on() {
    let dir = config_dir("");
    let server = serve_in(dir.path(), APP_COMPONENT, &[]);
    let (status, post) = body(&server, "/posts/caching");
    assert_eq!(status, 200);
    assert!(post.contains("Comments are off"), "{post}");
    let (status, home) = body(&server, "/");
    assert_eq!(status, 200);
    assert!(!home.contains("visits"), "{home}");
}

/// The standard guests' data routes, on a store granted as `store`.
fn exercise_a_store(server: &Server, store: &str) {
    let kv = |op: &str, args: &str| body(server, &format!("/kv/{op}?store={store}&{args}"));
    assert_eq!(kv("get", "key=a"), (404, "absent".into()));
    assert_eq!(kv("set", "key=a&value=1"), (200, "ok".into()));
    assert_eq!(kv("get", "key=a"), (200, "1".into()));
    assert_eq!(kv("exists", "key=a"), (200, "true".into()));
    assert_eq!(kv("incr", "key=a&by=41"), (200, "42".into()));
    assert_eq!(kv("incr", "key=n&by=2"), (200, "2".into()));
    assert_eq!(kv("set-many", "pairs=b:x,c:y"), (200, "ok".into()));
    assert_eq!(
        kv("get-many", "keys=b,zz,c"),
        (200, "b=x\nzz absent\nc=y\n".into())
    );
    assert_eq!(kv("keys", ""), (200, "a\nb\nc\nn\n".into()));
    assert_eq!(kv("delete", "key=b"), (200, "ok".into()));
    assert_eq!(kv("exists", "key=b"), (200, "false".into()));
    let (status, error) = kv("incr", "key=c");
    assert_eq!(status, 500);
    assert!(error.contains("not a decimal integer"), "{error}");
}

#[test]
fn standard_p2_and_p3_guests_use_the_embedded_store() {
    let dir = config_dir("[keyvalue.default]\n[keyvalue.other]\n");
    for component in [P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT] {
        let data = tempfile::tempdir().unwrap();
        let server = serve_with_data(dir.path(), component, data.path());
        exercise_a_store(&server, "other");
        // The empty name is `default`, as `wasmtime serve -S keyvalue` has it.
        assert_eq!(body(&server, "/kv/set?store=&key=k&value=v").0, 200);
        assert_eq!(
            body(&server, "/kv/get?store=default&key=k"),
            (200, "v".into())
        );
        assert_eq!(body(&server, "/kv/get?store=other&key=k").0, 404);
        assert!(data.path().join("keyvalue/other.redb").is_file());
    }
}

#[test]
fn a_store_not_granted_cannot_be_opened_and_the_error_names_the_key() {
    let dir = config_dir("[keyvalue.site]\n");
    let server = serve_in(dir.path(), P3_HANDLER_COMPONENT, &[]);
    let (status, error) = body(&server, "/kv/get?store=secrets&key=a");
    assert_eq!(status, 500);
    assert!(
        error.contains("no store `secrets` is granted: add a `[keyvalue.secrets]` section"),
        "{error}"
    );
}

/// Keys, values and stores past their limits fail with the limit's key.
fn past_the_limits(server: &Server) {
    let set = |key: &str, value: &str| {
        body(
            server,
            &format!("/kv/set?store=small&key={key}&value={value}"),
        )
    };
    let (status, error) = set(&"k".repeat(17), "v");
    assert_eq!(status, 500);
    assert!(error.contains("keyvalue.small.max_key_size"), "{error}");
    let (status, error) = set("k", &"v".repeat(33));
    assert_eq!(status, 500);
    assert!(error.contains("keyvalue.small.max_value_size"), "{error}");
    for key in ["a", "b", "c"] {
        assert_eq!(set(key, "1").0, 200);
    }
    let (status, error) = set("d", "1");
    assert_eq!(status, 500);
    assert!(
        error.contains("the store is full") && error.contains("keyvalue.small.max_keys"),
        "{error}"
    );
    let (status, error) = body(server, "/kv/incr?store=small&key=d");
    assert_eq!(status, 500, "{error}");
    // Replacing a key is not a new key.
    assert_eq!(set("a", "2").0, 200);
}

const LIMITS: &str = "max_key_size = \"16B\"\nmax_value_size = \"32B\"\nmax_keys = 3\n";

#[test]
fn limits_hold_on_the_embedded_store() {
    let dir = config_dir(&format!("[keyvalue.small]\n{LIMITS}"));
    past_the_limits(&serve_in(dir.path(), P2_PROXY_COMPONENT, &[]));
}

#[test]
fn limits_hold_on_redis() {
    let redis = Redis::start();
    // The URL from the environment, as a secret is given in a container.
    let dir = config_dir(&format!(
        "[keyvalue.small]\nurl = {{ env = \"TEST_REDIS_URL\" }}\n{LIMITS}"
    ));
    let url = redis.url();
    past_the_limits(&serve_in(
        dir.path(),
        P3_HANDLER_COMPONENT,
        &[("TEST_REDIS_URL", url.as_str())],
    ));
    let stderr = switchyard_tests::process::run_failing(
        SWITCHYARD,
        &["serve", P3_HANDLER_COMPONENT],
        dir.path(),
    );
    assert!(
        stderr.contains(
            "key `keyvalue.small.url`: the environment variable TEST_REDIS_URL is not set"
        ),
        "{stderr}"
    );
}

#[test]
fn two_servers_share_a_redis_store() {
    let redis = Redis::start();
    let dir = config_dir(&format!(
        "[keyvalue.shared]\nurl = \"{}\"\npool_size = 4\n",
        redis.url()
    ));
    let p2 = serve_in(dir.path(), P2_PROXY_COMPONENT, &[]);
    let p3 = serve_in(dir.path(), P3_HANDLER_COMPONENT, &[]);
    exercise_a_store(&p2, "shared");
    assert_eq!(body(&p3, "/kv/get?store=shared&key=a"), (200, "42".into()));
    assert_eq!(
        body(&p3, "/kv/set?store=shared&key=from-p3&value=hi").0,
        200
    );
    assert_eq!(
        body(&p2, "/kv/get?store=shared&key=from-p3"),
        (200, "hi".into())
    );
    // Increments from both at once: none is lost.
    let threads: Vec<_> = [p2.address, p3.address, p2.address, p3.address]
        .into_iter()
        .map(|address| {
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let response = get(address, "/kv/incr?store=shared&key=hits");
                    assert_eq!(response.status, 200, "{}", response.text());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        body(&p2, "/kv/get?store=shared&key=hits"),
        (200, "100".into())
    );
    // The store is one Redis hash.
    let length = redis.command("HLEN switchyard:kv:shared\r\n").unwrap();
    assert_eq!(length, ":5\r\n");
    // The draft's increment is unsigned: a counter below zero (written by
    // another client) is refused, and left as it was.
    assert_eq!(
        redis
            .command("HSET switchyard:kv:shared neg -5\r\n")
            .unwrap(),
        ":1\r\n"
    );
    let (status, error) = body(&p2, "/kv/incr?store=shared&key=neg&by=1");
    assert_eq!(status, 500);
    assert!(error.contains("below zero"), "{error}");
    assert_eq!(
        body(&p3, "/kv/get?store=shared&key=neg"),
        (200, "-5".into())
    );
}

#[test]
fn redis_down_is_an_error_for_the_request_and_the_server_serves_on() {
    let redis = Redis::start();
    let dir = config_dir(&format!("[keyvalue.shared]\nurl = \"{}\"\n", redis.url()));
    let server = serve_in(dir.path(), P2_PROXY_COMPONENT, &[]);
    assert_eq!(body(&server, "/kv/set?store=shared&key=a&value=1").0, 200);
    drop(redis);
    let (status, error) = body(&server, "/kv/get?store=shared&key=a");
    assert_eq!(status, 500);
    assert!(error.contains("keyvalue.shared"), "{error}");
    assert_eq!(body(&server, "/").0, 200);
}

#[test]
fn acknowledged_writes_survive_a_sigkill() {
    let dir = config_dir("[keyvalue.default]\n");
    let mut server = serve_in(dir.path(), P2_PROXY_COMPONENT, &[]);
    let address = server.address;
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let counted = Arc::new(AtomicU64::new(0));
    // Writers that run until the server dies under them, each noting what
    // the server acknowledged.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (stop, acknowledged, counted) =
                (stop.clone(), acknowledged.clone(), counted.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let key = format!("w{writer}-{i}");
                    let set = format!("/kv/set?store=&key={key}&value=v{i}");
                    match switchyard_tests::client::try_request(address, "GET", &set, &[], b"") {
                        Ok(response) if response.status == 200 => {
                            acknowledged.lock().unwrap().push(key)
                        }
                        _ => return,
                    }
                    let incr = "/kv/incr?store=&key=count&by=1";
                    match switchyard_tests::client::try_request(address, "GET", incr, &[], b"") {
                        Ok(response) if response.status == 200 => {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.signal("KILL");
    server.wait(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "only {} writes",
        acknowledged.len()
    );

    let server = serve_in(dir.path(), P2_PROXY_COMPONENT, &[]);
    for key in &acknowledged {
        let (status, _) = body(&server, &format!("/kv/get?store=&key={key}"));
        assert_eq!(status, 200, "the acknowledged write of `{key}` is lost");
    }
    // Every acknowledged increment is there (one in flight may be too).
    let (_, count) = body(&server, "/kv/get?store=&key=count");
    let count: u64 = count.parse().unwrap();
    let counted = counted.load(Ordering::Relaxed);
    assert!(
        count >= counted && count <= counted + 4,
        "{count} against {counted} acknowledged"
    );
}

#[test]
fn variables_come_from_the_config_and_the_environment_and_check_never_shows_them() {
    let dir = config_dir(
        "[variables]\ngreeting = \"hello there\"\napi_key = { env = \"TEST_API_KEY\" }\n",
    );
    let envs = [("TEST_API_KEY", "s3cr3t-value")];
    let server = serve_in(dir.path(), P3_HANDLER_COMPONENT, &envs);
    assert_eq!(
        body(&server, "/config?name=greeting"),
        (200, "hello there".into())
    );
    assert_eq!(
        body(&server, "/config?name=api_key"),
        (200, "s3cr3t-value".into())
    );
    assert_eq!(body(&server, "/config?name=nope"), (404, "unset".into()));
    // The upstream WIT's version (0.2.0-draft), as wasmCloud components have it.
    let fixtures = serve_in(dir.path(), FIXTURES_COMPONENT, &envs);
    assert_eq!(
        body(&fixtures, "/config-draft?name=greeting"),
        (200, "hello there".into())
    );
    assert_eq!(
        body(&server, "/config/all"),
        (200, "api_key=s3cr3t-value\ngreeting=hello there\n".into())
    );
    assert!(!server.output().contains("s3cr3t") && !server.stderr().contains("s3cr3t"));

    let (status, stdout, stderr) = switchyard_tests::process::run_with(
        SWITCHYARD,
        &["check", P3_HANDLER_COMPONENT],
        Some(dir.path()),
        &envs,
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("api_key") && stdout.contains("TEST_API_KEY"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("s3cr3t") && !stdout.contains("hello there"),
        "{stdout}"
    );

    // Unset, it is an error naming the key and the variable, at startup.
    let stderr = switchyard_tests::process::run_failing(
        SWITCHYARD,
        &["serve", P3_HANDLER_COMPONENT],
        dir.path(),
    );
    assert!(
        stderr
            .contains("key `variables.api_key`: the environment variable TEST_API_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn a_redis_password_is_never_printed() {
    let dir = config_dir("[keyvalue.site]\nurl = \"redis://user:hunter2@127.0.0.1:1/0\"\n");
    let (status, stdout, stderr) = switchyard_tests::process::run(
        SWITCHYARD,
        &["check", P2_PROXY_COMPONENT],
        Some(dir.path()),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    let dir = config_dir("[keyvalue.site]\nurl = \"rediss://user:hunter2@example.com\"\n");
    let stderr = switchyard_tests::process::run_failing(
        SWITCHYARD,
        &["check", P2_PROXY_COMPONENT],
        dir.path(),
    );
    assert!(
        stderr.contains("key `keyvalue.site.url`: TLS to Redis is not built in"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn pages_revalidate_cached_responses_by_path_and_by_tag() {
    let dir = config_dir("");
    let server = serve_in(dir.path(), FIXTURES_COMPONENT, &[]);
    let cached = |path: &str| {
        let response = get(server.address, path);
        assert!(
            response.header("cache-tag").is_none(),
            "the tags stay in the server"
        );
        response.header("x-cache").unwrap_or("none").to_string()
    };
    let tagged = "/cached?tags=posts,post-1";
    let other = "/cached?tags=posts&cc=public,+s-maxage%3D60";
    assert_eq!(cached(tagged), "MISS");
    assert_eq!(cached(tagged), "HIT");
    assert_eq!(cached(other), "MISS");
    assert_eq!(
        body(&server, "/api/revalidate?tag=post-1"),
        (200, "revalidated".into())
    );
    assert_eq!(cached(tagged), "MISS");
    assert_eq!(cached(other), "HIT", "not tagged post-1");
    assert_eq!(body(&server, "/api/revalidate?tag=posts").0, 200);
    assert_eq!(
        (cached(tagged), cached(other)),
        ("MISS".into(), "MISS".into())
    );
    // By path: every query of it.
    assert_eq!(body(&server, "/api/revalidate?path=/cached").0, 200);
    assert_eq!(
        (cached(tagged), cached(other)),
        ("MISS".into(), "MISS".into())
    );
    assert_eq!(cached(tagged), "HIT");
    // Bad input is the guest's error (logged), not the server's.
    assert_eq!(body(&server, "/api/revalidate?path=no-slash").0, 500);
    assert_eq!(body(&server, "/api/revalidate?tag=a,b").0, 500);
    let log = server.stderr();
    assert!(log.contains("not a path to revalidate"), "{log}");
    assert!(log.contains("not a tag"), "{log}");
    assert_eq!(cached(tagged), "HIT");
}

/// 2,500 keys in batches of at most 1,000, listed back through every page
/// of `list-keys`; a batch of more is refused.
fn pages_through_many_keys(server: &Server, store: &str) {
    for batch in 0..3 {
        let pairs: Vec<String> = (batch * 1000..(batch * 1000 + 1000).min(2500))
            .map(|n| format!("k{n:04}:{n}"))
            .collect();
        let path = format!("/kv/set-many?store={store}&pairs={}", pairs.join(","));
        assert_eq!(body(server, &path), (200, "ok".into()));
    }
    let (status, keys) = body(server, &format!("/kv/keys?store={store}"));
    assert_eq!(status, 200);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.dedup();
    assert_eq!(keys.len(), 2500, "every key, once");
    let names: Vec<String> = (0..1001).map(|n| format!("k{n:04}")).collect();
    let (status, error) = body(
        server,
        &format!("/kv/get-many?store={store}&keys={}", names.join(",")),
    );
    assert_eq!(status, 500);
    assert!(error.contains("more than 1000"), "{error}");
}

#[test]
fn list_keys_pages_through_every_key_on_both_backends() {
    let redis = Redis::start();
    let dir = config_dir(&format!(
        "[keyvalue.local]\n[keyvalue.shared]\nurl = \"{}\"\n",
        redis.url()
    ));
    let server = serve_in(dir.path(), P2_PROXY_COMPONENT, &[]);
    pages_through_many_keys(&server, "local");
    pages_through_many_keys(&server, "shared");
}

#[test]
fn compare_and_swap_loses_no_concurrent_append() {
    let redis = Redis::start();
    let dir = config_dir(&format!(
        "[keyvalue.local]\n[keyvalue.shared]\nurl = \"{}\"\n",
        redis.url()
    ));
    // `b` keeps its embedded store elsewhere: a file serves one server.
    let elsewhere = tempfile::tempdir().unwrap();
    let a = serve_in(dir.path(), FIXTURES_COMPONENT, &[]);
    let b = serve_with_data(dir.path(), FIXTURES_COMPONENT, elsewhere.path());
    // Two servers on one Redis store; one server's threads on its file.
    for (store, addresses) in [
        ("shared", [a.address, b.address, a.address, b.address]),
        ("local", [a.address; 4]),
    ] {
        let threads: Vec<_> = addresses
            .into_iter()
            .enumerate()
            .map(|(thread, address)| {
                std::thread::spawn(move || {
                    for n in 0..10 {
                        let path = format!(
                            "/api/append?store={store}&key=list&item={}",
                            thread * 100 + n
                        );
                        let response = get(address, &path);
                        assert_eq!(response.status, 200, "{}", response.text());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let last = get(
            a.address,
            &format!("/api/append?store={store}&key=list&item=999"),
        );
        assert_eq!(
            last.text(),
            "41",
            "{store}: 40 appends and this one, none lost"
        );
    }
}

#[test]
fn a_wrong_redis_password_fails_the_call_without_showing_it() {
    let redis = Redis::start();
    let dir = config_dir(&format!(
        "[keyvalue.shared]\nurl = \"redis://:hunter2@{}\"\n",
        redis.address
    ));
    let server = serve_in(dir.path(), P2_PROXY_COMPONENT, &[]);
    let (status, error) = body(&server, "/kv/get?store=shared&key=a");
    assert_eq!(status, 500);
    assert!(error.contains("keyvalue.shared"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    std::thread::sleep(Duration::from_millis(200));
    let logs = server.output() + &server.stderr();
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[test]
fn an_embedded_store_serves_one_server_and_a_second_is_refused_naming_the_file() {
    let dir = config_dir("[keyvalue.site]\n");
    let data = tempfile::tempdir().unwrap();
    let _first = serve_with_data(dir.path(), P2_PROXY_COMPONENT, data.path());
    let stderr = switchyard_tests::process::run_failing(
        SWITCHYARD,
        &[
            "serve",
            P2_PROXY_COMPONENT,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        stderr.contains("site.redb` is open in another process")
            && stderr.contains("keyvalue.site"),
        "{stderr}"
    );
}
