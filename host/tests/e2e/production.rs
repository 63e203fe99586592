//! What an operator runs `switchyard serve` with in production, end to end
//! against the real binary over real sockets:
//! - the admin listener (`--admin-listen`): `/metrics` in the OpenMetrics
//!   text format, counting requests by method, status and route *pattern*
//!   (so that clients' paths never grow the label set), with the instance,
//!   connection and cache metrics beside; `/healthz`; `/readyz` from
//!   compiling (503) through serving (200) to draining after SIGTERM (503);
//!   none of them on the public listener;
//! - configuration from the environment: `SWITCHYARD_LISTEN`,
//!   `SWITCHYARD_ADMIN_LISTEN`, and `SWITCHYARD_SERVER_<KEY>` over the config
//!   file's `[server]` keys, a bad value failing startup naming its variable;
//! - JSON logs (`--log-format json`): one object a line, access lines with
//!   their fields;
//! - HTTPS (`--tls-cert`/`--tls-key`, `[server.tls]`): ALPN `h2` and
//!   `http/1.1` as curl sees them, a certificate replaced on disk served to
//!   new connections while an open HTTP/2 connection goes on, and bad files
//!   refused at startup naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use switchyard_tests::client::wait_for_status;
use switchyard_tests::openmetrics::{self, Exposition};
use switchyard_tests::process::{READY_TIMEOUT, run_with};
use switchyard_tests::{APP_COMPONENT, FIXTURES_COMPONENT, Server, config_dir, get, request};

use crate::SWITCHYARD;

/// The content type `/metrics` answers with.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The request duration histogram, as Prometheus names it.
const DURATION: &str = "http_server_request_duration_seconds";

/// How long a test waits for what a server does in the background (a
/// request counted once its body is sent, a certificate reloaded).
const SETTLE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// /metrics

#[test]
fn metrics_count_requests_by_method_status_and_route_pattern_never_by_path() {
    let dir = config_dir(
        "[[routes]]\npath = \"/blog/{slug}\"\npage = \"/posts/[id]\"\n\
         query = { id = \"{slug}\" }\n\
         [[redirects]]\nsource = \"/old/{x}\"\ndestination = \"/blog/{x}\"\n",
    );
    let (server, admin) = serve_with_admin(APP_COMPONENT, &[], dir.path(), &[]);
    let address = server.address;

    // Each request sent, and the series it must be counted in: the route
    // is the pattern of the config rule or app page that matched, or ""
    // for a path none matches.
    let mut sent: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut send = |method: &str, path: &str, route: &str| {
        let response = request(address, method, path, &[], b"");
        let key = (
            method_label(method).to_string(),
            response.status.to_string(),
            route.to_string(),
        );
        *sent.entry(key).or_default() += 1;
        response
    };
    for _ in 0..3 {
        assert_eq!(send("GET", "/a?name=x", "/a").status, 200);
    }
    assert_eq!(send("HEAD", "/a", "/a").status, 200);
    send("PURGE", "/a", "/a");
    assert_eq!(send("GET", "/posts/hello-world", "/posts/[id]").status, 200);
    assert_eq!(send("GET", "/nope", "").status, 404);
    assert_eq!(send("GET", "/blog/hello-world", "/blog/{slug}").status, 200);
    // An attacker's paths: every one new. Under a pattern of the config or
    // of the app's pages they count there; elsewhere they share the
    // unmatched route.
    let tokens: Vec<String> = (0..60).map(|_| random_token()).collect();
    for token in &tokens[..30] {
        assert_eq!(
            send("GET", &format!("/x/{token}?{token}=1"), "").status,
            404
        );
    }
    for token in &tokens[30..40] {
        send("GET", &format!("/posts/{token}"), "/posts/[id]");
    }
    for token in &tokens[40..50] {
        send("GET", &format!("/blog/{token}"), "/blog/{slug}");
    }
    for token in &tokens[50..] {
        assert_eq!(
            send("GET", &format!("/old/{token}"), "/old/{x}").status,
            307
        );
    }
    let requests: u64 = sent.values().sum();

    // A request is counted once its body is sent: wait for the last ones.
    let metrics = scrape_until(admin, "every request counted", |metrics| {
        metrics
            .samples(&format!("{DURATION}_count"))
            .map(|s| s.value)
            .sum::<f64>()
            == requests as f64
    });
    let family = metrics
        .family(DURATION)
        .expect("the request duration family");
    assert_eq!(family.kind, "histogram");
    assert_eq!(family.unit.as_deref(), Some("seconds"));
    assert!(family.help.as_ref().is_some_and(|help| !help.is_empty()));
    let counted: BTreeMap<(String, String, String), u64> = metrics
        .samples(&format!("{DURATION}_count"))
        .map(|sample| {
            let names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                [
                    "http_request_method",
                    "http_response_status_code",
                    "http_route"
                ],
                "the labels of {sample:?}"
            );
            let label = |name: &str| sample.labels[name].clone();
            let key = (
                label("http_request_method"),
                label("http_response_status_code"),
                label("http_route"),
            );
            (key, sample.value as u64)
        })
        .collect();
    assert_eq!(counted, sent, "series (method, status, route) => requests");
    for sample in metrics.samples(&format!("{DURATION}_sum")) {
        assert!(sample.value > 0.0, "a request took no time: {sample:?}");
    }

    // The label set is bounded: no path a client sent is a label value.
    for token in &tokens {
        assert!(
            !metrics
                .label_values()
                .any(|value| value.contains(token.as_str())),
            "the path token {token} became a label value"
        );
    }
    let buckets = format!("{DURATION}_bucket");
    let routes: BTreeSet<&str> = metrics
        .samples(&buckets)
        .map(|sample| sample.labels["http_route"].as_str())
        .collect();
    let expected = ["", "/a", "/posts/[id]", "/blog/{slug}", "/old/{x}"];
    assert_eq!(routes, BTreeSet::from(expected));
}

#[test]
fn metrics_count_instances_connections_and_cache_lookups() {
    // Slow header timeouts, so that the idle connections held below stay
    // open while the test looks at them.
    let config = "[server]\nmax_connections = 3\nheader_read_timeout = \"120s\"\n";
    let dir = config_dir(config);
    let (server, admin) = serve_with_admin(APP_COMPONENT, &[], dir.path(), &[]);
    let address = server.address;

    // `/cached` is `public, s-maxage=10`: a miss, then a hit.
    for (round, expected) in [(1, "MISS"), (2, "HIT")] {
        let cached = get(address, "/cached");
        assert_eq!(cached.status, 200);
        assert_eq!(cached.header("x-cache"), Some(expected), "round {round}");
    }
    assert_eq!(get(address, "/a").status, 200);
    let metrics = scrape_until(admin, "the cache hit counted", |metrics| {
        metrics.value("switchyard_cache_lookups_total", &[("result", "hit")]) == Some(1.0)
    });
    let family = |name: &str, kind: &str| family_of(&metrics, name, kind);
    family("switchyard_instances", "counter");
    family("switchyard_cache_lookups", "counter");
    family("switchyard_cache_size_bytes", "gauge");
    family("switchyard_connections_open", "gauge");
    family("switchyard_admission_rejections", "counter");
    family("switchyard_compile_cache_lookups", "counter");
    family("switchyard_compile_duration_seconds", "histogram");
    family("http_server_active_requests", "gauge");
    // The miss rendered the page once (the hit did not), and so did /a.
    let created = metrics.value("switchyard_instances_total", &[("result", "created")]);
    assert!(
        created.is_some_and(|n| n >= 2.0),
        "instances created: {created:?}"
    );
    let miss = metrics.value("switchyard_cache_lookups_total", &[("result", "miss")]);
    assert!(miss.is_some_and(|n| n >= 1.0), "cache misses: {miss:?}");
    let stored = metrics.value("switchyard_cache_size_bytes", &[]);
    assert!(stored.is_some_and(|n| n > 0.0), "cache bytes: {stored:?}");
    let compiled: f64 = metrics
        .samples("switchyard_compile_cache_lookups_total")
        .map(|s| s.value)
        .sum();
    assert!(
        compiled >= 1.0,
        "the app's component was looked up in the compile cache"
    );

    // Connections: each idle one counts while open; past `max_connections`
    // the next is refused, and counted. (The server closes the connections
    // of the requests above just after their responses.)
    scrape_until(
        admin,
        "the connections of the requests above closed",
        |metrics| metrics.value("switchyard_connections_open", &[]) == Some(0.0),
    );
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    scrape_until(admin, "three idle connections counted open", |metrics| {
        metrics.value("switchyard_connections_open", &[]) == Some(3.0)
    });
    let mut refused = TcpStream::connect(address).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = refused.write_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut refused, &mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "a connection past max_connections was served"
    );
    scrape_until(admin, "the fourth connection counted refused", |metrics| {
        let reason = [("reason", "max_connections")];
        metrics.value("switchyard_connections_refused_total", &reason) == Some(1.0)
    });
    family_of(&scrape(admin), "switchyard_connections_refused", "counter");
    drop(idle);
    scrape_until(admin, "closed connections no longer counted", |metrics| {
        metrics.value("switchyard_connections_open", &[]) == Some(0.0)
    });
}

#[test]
fn admin_endpoints_are_only_on_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = serve_with_admin(APP_COMPONENT, &[], dir.path(), &[]);
    for path in ["/metrics", "/healthz", "/readyz"] {
        let public = get(server.address, path);
        assert_eq!(public.status, 404, "{path} on the public listener");
        assert!(
            !public.text().contains("# EOF"),
            "{path}: {}",
            public.text()
        );
        assert_eq!(get(admin, path).status, 200, "{path} on the admin listener");
    }
    let metrics = get(admin, "/metrics");
    assert_eq!(metrics.header("content-type"), Some(OPENMETRICS));
    assert_eq!(metrics.header("cache-control"), Some("no-store"));
    openmetrics::parse(&metrics.text()).expect("a valid exposition");
    // The admin listener serves nothing of the app, and reads nothing.
    assert_eq!(get(admin, "/a").status, 404);
    let posted = request(admin, "POST", "/metrics", &[], b"x");
    assert_eq!(posted.status, 405);
    assert_eq!(posted.header("allow"), Some("GET, HEAD"));
}

// ---------------------------------------------------------------------------
// /healthz and /readyz

#[test]
fn readyz_is_503_while_the_app_compiles_and_200_once_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    // No compile cache: compiling takes seconds, and the admin listener
    // answers all along. `start_announcing` returns at the admin line.
    let args = [
        "serve",
        APP_COMPONENT,
        "--no-cache",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    let server = Server::start_announcing(
        SWITCHYARD,
        &args,
        Some(dir.path()),
        &[],
        switchyard_tests::process::ADMIN_LINE,
    );
    let admin = server.address;
    assert_eq!(get(admin, "/healthz").status, 200, "alive while compiling");
    let readyz = get(admin, "/readyz");
    assert!(
        !server.output().contains("> Ready on"),
        "the app compiled before /readyz answered: this test needs a slower compile"
    );
    assert_eq!(
        (readyz.status, readyz.text().as_str()),
        (503, "not ready\n")
    );

    let public = wait_for_line(&server, "> Ready on http://");
    let readyz = get(admin, "/readyz");
    assert_eq!((readyz.status, readyz.text().as_str()), (200, "ready\n"));
    assert_eq!(get(public, "/a").status, 200);
}

#[test]
fn sigterm_turns_readyz_503_while_a_slow_request_drains_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, admin) = serve_with_admin(FIXTURES_COMPONENT, &[], dir.path(), &[]);
    let address = server.address;
    assert_eq!(get(admin, "/healthz").status, 200);
    assert_eq!(get(admin, "/readyz").status, 200);

    let slow = std::thread::spawn(move || get(address, "/slow?ms=4000&name=drained"));
    scrape_until(admin, "the slow request in flight", |metrics| {
        metrics.value(
            "http_server_active_requests",
            &[("http_request_method", "GET")],
        ) == Some(1.0)
    });
    server.signal("TERM");
    wait_for_status(admin, "/readyz", 503, SETTLE, "after SIGTERM");
    assert!(
        !slow.is_finished(),
        "the slow request was over before /readyz said 503"
    );
    assert_eq!(get(admin, "/healthz").status, 200, "alive while draining");

    let drained = slow.join().unwrap();
    assert_eq!(
        (drained.status, drained.text().as_str()),
        (200, "slept 4000 ms; hello, drained")
    );
    let status = server
        .wait(Duration::from_secs(30))
        .expect("it exits once drained");
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(admin).is_err(),
        "the admin listener is closed"
    );
}

// ---------------------------------------------------------------------------
// Configuration from the environment

#[test]
fn switchyard_listen_admin_listen_and_config_variables_stand_for_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_dir("[[redirects]]\nsource = \"/old\"\ndestination = \"/a\"\n");
    let config_file = config.path().join("switchyard.toml");
    let envs = [
        ("SWITCHYARD_LISTEN", "127.0.0.1:0"),
        ("SWITCHYARD_ADMIN_LISTEN", "127.0.0.1:0"),
        ("SWITCHYARD_CONFIG", config_file.to_str().unwrap()),
    ];
    let server = Server::start(
        SWITCHYARD,
        &["serve", APP_COMPONENT],
        Some(dir.path()),
        &envs,
    );
    assert!(server.address.ip().is_loopback(), "{}", server.address);
    assert_ne!(server.address.port(), 3000, "not the default port");
    assert_eq!(get(server.address, "/a").status, 200);
    let admin = server.admin_address();
    assert!(admin.ip().is_loopback() && admin != server.address);
    assert_eq!(get(admin, "/readyz").status, 200);
    let redirected = get(server.address, "/old");
    assert_eq!(
        (redirected.status, redirected.header("location")),
        (307, Some("/a")),
        "the config named by SWITCHYARD_CONFIG"
    );
}

#[test]
fn switchyard_server_variables_override_the_config_files_server_keys() {
    let config = "[server]\nhostname = \"localhost\"\nport = 3000\ncompression = true\n";
    let dir = config_dir(config);
    let gzip = [("accept-encoding", "gzip")];

    // The file alone: the home page is compressed.
    let args = ["serve", APP_COMPONENT, "--listen", "127.0.0.1:0"];
    let plain = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let compressed = request(plain.address, "GET", "/", &gzip, b"");
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    drop(plain);

    // The variables win over the file: its address and its compression.
    let envs = [
        ("SWITCHYARD_SERVER_HOSTNAME", "127.0.0.1"),
        ("SWITCHYARD_SERVER_PORT", "0"),
        ("SWITCHYARD_SERVER_COMPRESSION", "false"),
    ];
    let server = Server::start(
        SWITCHYARD,
        &["serve", APP_COMPONENT],
        Some(dir.path()),
        &envs,
    );
    assert!(server.address.ip().is_loopback(), "{}", server.address);
    assert_ne!(
        server.address.port(),
        3000,
        "the port came from the variable"
    );
    let home = request(server.address, "GET", "/", &gzip, b"");
    assert_eq!(home.status, 200);
    assert_eq!(home.header("content-encoding"), None, "compression = false");
    assert!(home.text().contains("<h1>Welcome to Switchyard</h1>"));
}

#[test]
fn a_bad_switchyard_server_variable_fails_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let with_config = config_dir("[server]\nmax_connections = 100\n");
    for (variable, value, reason) in [
        (
            "SWITCHYARD_SERVER_MAX_CONNECTIONS",
            "lots",
            "expected usize",
        ),
        (
            "SWITCHYARD_SERVER_SHUTDOWN_TIMEOUT",
            "soon",
            "shutdown_timeout",
        ),
        ("SWITCHYARD_SERVER_MAX_CONECTIONS", "5", "max_conections"),
    ] {
        // With a config file and without one.
        for dir in [dir.path(), with_config.path()] {
            let args = ["serve", APP_COMPONENT, "--listen", "127.0.0.1:0"];
            let envs = [(variable, value)];
            let (status, stdout, stderr) =
                run_with(SWITCHYARD, &args, Some(dir), &envs, Duration::from_secs(60));
            assert_eq!(
                status.code(),
                Some(1),
                "{variable}={value}: {stdout}{stderr}"
            );
            assert!(!stdout.contains("Ready"), "{variable}={value}: {stdout}");
            assert!(
                stderr.contains(variable) && stderr.contains(reason),
                "{variable}={value}: the error names the variable and the reason: {stderr}"
            );
        }
    }
}

#[test]
fn switchyard_check_refuses_a_bad_switchyard_server_variable_as_serve_does() {
    // A deployment checks its image, with its environment, before serving.
    let dir = tempfile::tempdir().unwrap();
    let envs = [("SWITCHYARD_SERVER_MAX_CONNECTIONS", "lots")];
    let args = ["check", APP_COMPONENT];
    let (status, stdout, stderr) = run_with(
        SWITCHYARD,
        &args,
        Some(dir.path()),
        &envs,
        Duration::from_secs(60),
    );
    assert_eq!(
        status.code(),
        Some(1),
        "`switchyard check` passed what `switchyard serve` refuses: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("SWITCHYARD_SERVER_MAX_CONNECTIONS"),
        "{stderr}"
    );
}

#[test]
fn a_bad_admin_listen_address_fails_startup_naming_admin_listen() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", APP_COMPONENT, "--listen", "127.0.0.1:0"];
    let envs = [("SWITCHYARD_ADMIN_LISTEN", "oops")];
    let (status, stdout, stderr) = run_with(
        SWITCHYARD,
        &args,
        Some(dir.path()),
        &envs,
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("--admin-listen") && !stderr.contains("`--listen oops`"),
        "the error names the option that was wrong: {stderr}"
    );
}

// ---------------------------------------------------------------------------
// JSON logs

#[test]
fn json_logs_are_one_object_a_line_and_access_lines_carry_their_fields() {
    let dir = config_dir("[server]\naccess_log = true\n");
    let args = [
        "serve",
        APP_COMPONENT,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let address = server.address;
    assert_eq!(get(address, "/a?name=json").status, 200);
    assert_eq!(get(address, "/posts/hello-world").status, 200);
    assert_eq!(get(address, "/nope%22quoted%0A").status, 404);
    assert_eq!(get(address, "/boom").status, 500);

    let lines = wait_for_json_lines(&server, "four access lines", |lines| {
        lines.iter().filter(|line| is_access(line)).count() == 4
    });
    for line in &lines {
        assert!(
            line.get("timestamp").is_some_and(Value::is_string),
            "{line}"
        );
        assert!(line.get("level").is_some_and(Value::is_string), "{line}");
    }
    let access = |path: &str| {
        lines
            .iter()
            .find(|line| is_access(line) && line["path"] == path)
            .unwrap_or_else(|| panic!("no access line for {path} in {lines:#?}"))
    };
    let a = access("/a");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["status"], 200, "the status is a number: {a}");
    assert_eq!(a["route"], "/a");
    assert!(a["bytes"].as_u64().is_some_and(|bytes| bytes > 0), "{a}");
    assert!(a["duration_ms"].as_f64().is_some(), "{a}");
    assert_eq!(a["complete"], true);
    assert_eq!(a["level"], "INFO");
    assert_eq!(access("/posts/hello-world")["route"], "/posts/[id]");
    let missing = lines
        .iter()
        .find(|line| is_access(line) && line["status"] == 404)
        .expect("an access line for the 404");
    assert!(
        missing["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/nope")),
        "{missing}"
    );
    assert_eq!(missing["route"], "");
    let boom = access("/boom");
    assert_eq!(
        (&boom["status"], &boom["route"]),
        (&500.into(), &"/boom".into())
    );
}

#[test]
fn json_logs_keep_guest_output_lines_json_too() {
    // The example app's `/boom` fails, and the app writes the error on its
    // stderr: the one line that tells an operator why a page failed.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "serve",
        APP_COMPONENT,
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    assert_eq!(get(server.address, "/boom").status, 500);
    assert!(
        server.printed("boom: this page always fails"),
        "the page's error: {}",
        server.output()
    );
    // Every line but the server's own announcements (`> Ready on ...`) is
    // a log line, and a log collector reading JSON lines needs them all JSON.
    for line in server.output().lines() {
        if line.starts_with("> ") {
            continue;
        }
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|value| value.is_object()),
            "with --log-format json, a line that is not a JSON object: {line:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// TLS

/// `serve` over HTTPS with the `cert.pem` and `key.pem` of its directory.
const TLS_ARGS: [&str; 8] = [
    "serve",
    APP_COMPONENT,
    "--listen",
    "127.0.0.1:0",
    "--tls-cert",
    "cert.pem",
    "--tls-key",
    "key.pem",
];

#[test]
fn tls_serves_h2_and_http1_by_alpn_to_curl() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    ca.leaf("switchyard first", 1).write(dir.path());
    let server = serve_https(&TLS_ARGS, dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let url = format!("https://127.0.0.1:{}/a?name=tls", server.address.port());
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (written, body) = curl(&[flag, "--cacert", ca_file.to_str().unwrap(), &url]);
        assert_eq!(written, format!("200 {version}"), "curl {flag}");
        assert!(body.contains("Hello, tls!"), "curl {flag}: {body}");
    }
}

#[test]
fn tls_certificate_replaced_on_disk_serves_new_connections_while_open_ones_go_on() {
    let ca = TestCa::new();
    let old = ca.leaf("switchyard old", 1);
    let new = ca.leaf("switchyard new", 2);
    // `[server.tls]`, relative to the config file; connections with no
    // request open stay while the test looks.
    let dir = config_dir(
        "[server]\nidle_timeout = \"120s\"\n[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n",
    );
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    old.write(&tls_dir);
    let args = ["serve", APP_COMPONENT, "--listen", "127.0.0.1:0"];
    let server = serve_https(&args, dir.path());
    let address = server.address;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (open, certificate) = h2_connect(address, &ca).await;
        assert_eq!(certificate, old.der, "the first certificate");
        assert_eq!(h2_get(&open, "/a?name=before").await, (200, true));

        // Replaced as a deployment replaces files: written aside, renamed in.
        new.replace(&tls_dir);
        let deadline = Instant::now() + SETTLE;
        loop {
            let (_, certificate) = h2_connect(address, &ca).await;
            if certificate == new.der {
                break;
            }
            assert_eq!(certificate, old.der, "an unknown certificate");
            assert!(
                Instant::now() < deadline,
                "new connections still get the old certificate after {SETTLE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The connection opened before goes on, with the old certificate.
        assert_eq!(h2_get(&open, "/a?name=after").await, (200, true));

        // A broken replacement is refused: the last good pair stays.
        std::fs::write(tls_dir.join("cert.pem"), "not a certificate\n").unwrap();
        assert!(
            server.printed("keeping the certificate in use"),
            "the broken certificate was not reported"
        );
        let (later, certificate) = h2_connect(address, &ca).await;
        assert_eq!(certificate, new.der, "the last good certificate");
        assert_eq!(h2_get(&later, "/a").await, (200, true));
    });
    assert!(server.printed("reloaded the TLS certificate"));
}

#[test]
fn a_tls_handshake_that_never_comes_is_cut_off_after_header_read_timeout() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    ca.leaf("switchyard", 1).write(dir.path());
    let envs = [("SWITCHYARD_SERVER_HEADER_READ_TIMEOUT", "1s")];
    let server = Server::start_announcing(
        SWITCHYARD,
        &TLS_ARGS,
        Some(dir.path()),
        &envs,
        "> Ready on https://",
    );
    // Nothing at all, then the first bytes of a ClientHello and no more.
    for sent in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]] {
        let mut stalled = TcpStream::connect(server.address).unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stalled.write_all(sent).unwrap();
        let started = Instant::now();
        let read = std::io::Read::read_to_end(&mut stalled, &mut Vec::new());
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(10),
            "a TLS client stalled after {sent:?} was cut off only after {waited:?} ({read:?})"
        );
        assert!(
            waited > Duration::from_millis(500),
            "a TLS client stalled after {sent:?} was cut off before its timeout ({read:?})"
        );
    }
}

#[test]
fn bad_tls_files_fail_startup_naming_the_file() {
    let ca = TestCa::new();
    let good = ca.leaf("good", 1);
    let other = ca.leaf("other", 2);
    let corrupt = "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n";
    let cases: [(&str, &str, &str); 5] = [
        (
            "this is not a certificate\n",
            &good.key_pem,
            "the TLS certificate `cert.pem` holds no certificate",
        ),
        (
            corrupt,
            &good.key_pem,
            "the TLS certificate `cert.pem` is not valid PEM",
        ),
        (
            &good.cert_pem,
            "garbage\n",
            "the TLS key `key.pem` holds no private key",
        ),
        (
            &good.cert_pem,
            &other.key_pem,
            "the TLS key `key.pem` does not fit the certificate `cert.pem`",
        ),
        (
            &good.cert_pem,
            "",
            "the TLS key `key.pem` holds no private key",
        ),
    ];
    for (cert, key, error) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let stderr = switchyard_tests::process::run_failing(SWITCHYARD, &TLS_ARGS, dir.path());
        assert!(stderr.contains(error), "expected `{error}` in: {stderr}");
    }

    // A missing file, and a file named by the config.
    let dir = config_dir("[server.tls]\ncert = \"cert.pem\"\nkey = \"missing.pem\"\n");
    std::fs::write(dir.path().join("cert.pem"), &good.cert_pem).unwrap();
    let args = ["serve", APP_COMPONENT, "--listen", "127.0.0.1:0"];
    let stderr = switchyard_tests::process::run_failing(SWITCHYARD, &args, dir.path());
    assert!(
        stderr.contains("failed to read the TLS key `") && stderr.contains("missing.pem`"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Helpers

/// `switchyard serve COMPONENT --listen 127.0.0.1:0 --admin-listen
/// 127.0.0.1:0 ARGS` in `dir`: the server, and its admin listener's address.
fn serve_with_admin(
    component: &str,
    args: &[&str],
    dir: &Path,
    envs: &[(&str, &str)],
) -> (Server, SocketAddr) {
    let mut all = vec![
        "serve",
        component,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let server = Server::start(SWITCHYARD, &all, Some(dir), envs);
    let admin = server.admin_address();
    (server, admin)
}

/// `GET /metrics` on the admin listener, checked and parsed.
fn scrape(admin: SocketAddr) -> Exposition {
    let response = get(admin, "/metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some(OPENMETRICS));
    let text = response.text();
    openmetrics::parse(&text).unwrap_or_else(|error| panic!("{error}\nin:\n{text}"))
}

/// Scrape until `done` says the metrics show it (up to [`SETTLE`]).
fn scrape_until(admin: SocketAddr, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + SETTLE;
    loop {
        let metrics = scrape(admin);
        if done(&metrics) {
            return metrics;
        }
        if Instant::now() > deadline {
            let text = get(admin, "/metrics").text();
            panic!("the metrics did not show {what} within {SETTLE:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assert that `metrics` have a family `name` of type `kind`.
fn family_of(metrics: &Exposition, name: &str, kind: &str) {
    let family = metrics
        .family(name)
        .unwrap_or_else(|| panic!("no family `{name}`"));
    assert_eq!(family.kind, kind, "the type of `{name}`");
}

/// The method as the metrics label it.
fn method_label(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH" => {
            method
        }
        _ => "_OTHER",
    }
}

/// Sixteen random hex digits.
fn random_token() -> String {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    format!("{random:016x}")
}

/// Wait (up to [`READY_TIMEOUT`]) for `server` to print a line starting
/// with `prefix` and an address; that address.
fn wait_for_line(server: &Server, prefix: &str) -> SocketAddr {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let output = server.output();
        let found = output
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|address| address.trim().trim_end_matches('/').parse().ok());
        if let Some(address) = found {
            return address;
        }
        assert!(
            Instant::now() < deadline,
            "no `{prefix}` line within {READY_TIMEOUT:?}:\n{output}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server's log lines on stderr as JSON objects, once `done` holds of
/// them (up to [`SETTLE`]); panics at a line that is not a JSON object.
/// The guest's own output is left out: see
/// `json_logs_keep_guest_output_lines_json_too`.
fn wait_for_json_lines(server: &Server, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let stderr = server.stderr();
        let lines: Vec<Value> = stderr
            .lines()
            .filter(|line| !is_guest_output(line))
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(value) if value.is_object() => value,
                _ => panic!("a log line that is not a JSON object: {line:?}"),
            })
            .collect();
        if done(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {SETTLE:?}:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a line is one the guest wrote (`stderr [3 GET /boom] :: ...`).
fn is_guest_output(line: &str) -> bool {
    let rest = line
        .strip_prefix("stdout [")
        .or_else(|| line.strip_prefix("stderr ["));
    rest.is_some_and(|rest| rest.contains("] :: "))
}

/// Whether a JSON log line is an access log line.
fn is_access(line: &Value) -> bool {
    line["target"] == "access"
}

/// A certificate authority made for one test.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Its certificate, PEM, for clients to trust.
    pem: String,
    der: CertificateDer<'static>,
}

/// A server certificate for `localhost` and `127.0.0.1`, and its key.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.distinguished_name).push(rcgen::DnType::CommonName, "switchyard test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf certificate with common name `name` and serial `serial`.
    fn leaf(&self, name: &str, serial: u64) -> Leaf {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        (params.distinguished_name).push(rcgen::DnType::CommonName, name);
        params.serial_number = Some(serial.into());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A rustls client trusting this CA only, offering `h2`.
    fn client(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Leaf {
    /// Write `cert.pem` and `key.pem` into `dir`.
    fn write(&self, dir: &Path) {
        std::fs::write(dir.join("cert.pem"), &self.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &self.key_pem).unwrap();
    }

    /// Replace `cert.pem` and `key.pem` in `dir`, each written aside and
    /// renamed over the old one (key first, so the pair is never half old).
    fn replace(&self, dir: &Path) {
        for (name, text) in [("key.pem", &self.key_pem), ("cert.pem", &self.cert_pem)] {
            let aside = dir.join(format!(".{name}.new"));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, dir.join(name)).unwrap();
        }
    }
}

/// Start `switchyard ARGS` in `dir`, serving HTTPS.
fn serve_https(args: &[&str], dir: &Path) -> Server {
    Server::start_announcing(SWITCHYARD, args, Some(dir), &[], "> Ready on https://")
}

/// An HTTP/2 connection over TLS to `address`, trusting `ca`; the
/// certificate the server presented.
async fn h2_connect(
    address: SocketAddr,
    ca: &TestCa,
) -> (h2::client::SendRequest<Bytes>, CertificateDer<'static>) {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::IpAddress(address.ip().into());
    let tls = tokio::time::timeout(SETTLE, ca.client().connect(name, tcp))
        .await
        .expect("the TLS handshake timed out")
        .expect("the TLS handshake failed");
    let session = tls.get_ref().1;
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
    let certificate = session.peer_certificates().expect("a certificate")[0].clone();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, certificate)
}

/// `GET path` on an HTTP/2 connection: the status, and whether the body
/// came whole.
async fn h2_get(client: &h2::client::SendRequest<Bytes>, path: &str) -> (u16, bool) {
    let request = http::Request::get(format!("https://127.0.0.1{path}"))
        .body(())
        .unwrap();
    let exchange = async {
        let mut ready = client
            .clone()
            .ready()
            .await
            .expect("the connection is open");
        let (response, _) = ready.send_request(request, true).unwrap();
        let response = response.await.expect("a response");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut whole = true;
        while let Some(data) = body.data().await {
            match data {
                Ok(data) => {
                    let _ = body.flow_control().release_capacity(data.len());
                }
                Err(_) => whole = false,
            }
        }
        (status, whole)
    };
    tokio::time::timeout(SETTLE, exchange)
        .await
        .expect("the HTTP/2 request timed out")
}

/// Run `curl ARGS` (bounded in time); what `-w '%{http_code}
/// %{http_version}'` wrote, and the body.
fn curl(args: &[&str]) -> (String, String) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(["--write-out", "%{http_code} %{http_version}", "--output"])
        .arg(body.path())
        .args(args)
        .output()
        .expect("curl is needed for this test: `apt-get install curl`");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        std::fs::read_to_string(body.path()).unwrap(),
    )
}
