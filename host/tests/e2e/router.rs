//! Router components: the seed's `server.js` as a component, plugged into
//! `switchyard serve --router`, and composed for the stock `wasmtime serve`.

use std::path::Path;
use std::time::Duration;
use switchyard_tests::process::{run, run_failing, wasmtime_serve};
use switchyard_tests::{
    APP_COMPONENT, FIXTURES_COMPONENT, ROUTER_COMPONENT, Server, config_dir, get, request,
};

use crate::SWITCHYARD;

fn serve_in(dir: &Path, args: &[&str]) -> Server {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Server::start(SWITCHYARD, &all, Some(dir), &[])
}

/// What the seed's custom server answers, through whichever server runs
/// router + app.
pub(crate) fn assert_routes_like_server_js(address: std::net::SocketAddr) {
    let a = get(address, "/a?name=hello%20w%C3%B6rld%26x");
    assert_eq!(a.status, 200);
    assert!(
        a.text().contains("Hello, hello wörld&#38;x!"),
        "{}",
        a.text()
    );
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        a.header("content-length"),
        Some(a.body.len().to_string().as_str())
    );
    assert!(
        get(address, "/b?name=bee")
            .text()
            .contains("<h1>This is page b</h1>")
    );

    let post = get(address, "/posts/hello%2Dworld");
    assert_eq!(post.status, 200, "passed through to the app");
    assert!(post.text().contains("<h1>Hello, world</h1>"));
    let api = request(address, "POST", "/api/hello", &[], b"{}");
    assert_eq!(
        api.text(),
        r#"{"name":"John Doe","method":"POST"}"#,
        "method and body pass through"
    );
    let missing = get(address, "/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.text().contains("404 - Page Not Found"));
    assert_eq!(get(address, "/a/").header("location"), Some("/a"));
}

#[test]
fn serve_with_a_router_routes_like_server_js() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), &[APP_COMPONENT, "--router", ROUTER_COMPONENT]);
    assert_routes_like_server_js(server.address);
}

#[test]
fn routed_pages_render_with_file_system_routes_off() {
    let dir = config_dir(&format!(
        "app = \"{APP_COMPONENT}\"\nrouter = \"{ROUTER_COMPONENT}\"\nuse_file_system_public_routes = false\n"
    ));
    let server = serve_in(dir.path(), &[]);
    assert!(
        get(server.address, "/a?name=x")
            .text()
            .contains("Hello, x!"),
        "the router renders /a"
    );
    for path in ["/", "/posts/caching", "/api/hello"] {
        assert_eq!(
            get(server.address, path).status,
            404,
            "{path}: the app learns the flag through the router"
        );
    }
}

#[test]
fn a_chain_of_routers_from_the_config_list() {
    let dir = config_dir(&format!(
        "app = \"{APP_COMPONENT}\"\nrouter = [\"{ROUTER_COMPONENT}\", \"{ROUTER_COMPONENT}\"]\n"
    ));
    let server = serve_in(dir.path(), &[]);
    assert_routes_like_server_js(server.address);
    let (status, stdout, _) = run(
        SWITCHYARD,
        &["routes"],
        Some(dir.path()),
        Duration::from_secs(60),
    );
    assert!(status.success());
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("router ")).count(),
        2,
        "{stdout}"
    );
}

#[test]
fn a_render_error_becomes_a_500_from_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(
        dir.path(),
        &[FIXTURES_COMPONENT, "--router", ROUTER_COMPONENT],
    );
    let failed = get(server.address, "/b?x=1");
    assert_eq!(
        (failed.status, failed.text().as_str()),
        (500, "internal server error")
    );
    assert!(
        server.printed("Error occurred handling /b?x=1 page `/b` failed: "),
        "{}",
        server.output()
    );
    assert_eq!(
        get(server.address, "/a?name=ok").text(),
        "slept 0 ms; hello, ok",
        "the next request is fine"
    );
}

#[test]
fn wrong_components_are_refused_at_startup_with_the_world_to_target() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "serve",
            APP_COMPONENT,
            "--router",
            APP_COMPONENT,
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert_eq!(
        stderr.trim(),
        format!(
            "error: `{APP_COMPONENT}` is not a router: it imports neither `wasi:http/incoming-handler@0.2.12` \
             nor `switchyard:server/renderer@0.2.0` from the app (target the `switchyard:server/router` \
             world, or `wasi:http/middleware@0.3.0`)"
        )
    );
    let stderr = run_failing(SWITCHYARD, &["check", ROUTER_COMPONENT], dir.path());
    assert!(
        stderr.contains(
            "is a router, not an app: serve an app and plug the router in with `--router"
        ),
        "{stderr}"
    );
    let stderr = run_failing(
        SWITCHYARD,
        &[
            "compose",
            "--router",
            ROUTER_COMPONENT,
            ROUTER_COMPONENT,
            "-o",
            "out.wasm",
        ],
        dir.path(),
    );
    assert!(
        stderr.contains("does not export it (build the app for the `switchyard:server/app` world)"),
        "{stderr}"
    );
}

/// `switchyard compose --router ROUTER APP -o composed.wasm` in `dir`.
fn compose_in(dir: &Path) {
    let (status, stdout, stderr) = run(
        SWITCHYARD,
        &[
            "compose",
            "--router",
            ROUTER_COMPONENT,
            APP_COMPONENT,
            "-o",
            "composed.wasm",
        ],
        Some(dir),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("wrote `composed.wasm`"), "{stdout}");
}

#[test]
fn the_composition_runs_under_the_stock_wasmtime_serve() {
    let dir = tempfile::tempdir().unwrap();
    compose_in(dir.path());

    let serve = |args: &[&str]| wasmtime_serve("composed.wasm", args, dir.path());
    let server = serve(&[]);
    assert_routes_like_server_js(server.address);

    // The flag reaches the app through the environment, under any host.
    let server = serve(&["--env", "SWITCHYARD_USE_FILE_SYSTEM_PUBLIC_ROUTES=false"]);
    assert!(
        get(server.address, "/a?name=x")
            .text()
            .contains("Hello, x!")
    );
    assert_eq!(get(server.address, "/posts/1").status, 404);
}

#[test]
fn the_app_alone_composed_for_any_host_runs_under_the_stock_wasmtime_serve() {
    // The example app imports Switchyard's revalidation: alone it cannot
    // run there; composed with no router, it can.
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run(
        SWITCHYARD,
        &["compose", APP_COMPONENT, "-o", "any-host.wasm"],
        Some(dir.path()),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    let server = wasmtime_serve("any-host.wasm", &[], dir.path());
    assert!(
        get(server.address, "/a?name=x")
            .text()
            .contains("Hello, x!")
    );
    let post = get(server.address, "/posts/caching");
    assert_eq!(post.status, 200);
    assert!(
        post.text().contains("Comments are off"),
        "no `site` store there"
    );
}

#[test]
fn the_composition_serves_under_switchyard_like_the_plugged_router() {
    let dir = tempfile::tempdir().unwrap();
    compose_in(dir.path());
    let (status, stdout, stderr) = run(
        SWITCHYARD,
        &["check", "composed.wasm"],
        Some(dir.path()),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("is a wasi:http proxy (p2);"),
        "a composition exports the handler only: {stdout}"
    );
    let composed = serve_in(dir.path(), &["composed.wasm"]);
    assert_routes_like_server_js(composed.address);
    let plugged = serve_in(dir.path(), &[APP_COMPONENT, "--router", ROUTER_COMPONENT]);
    for path in ["/", "/a?name=x", "/b", "/posts/1", "/nope", "/a/"] {
        let a = get(composed.address, path);
        let b = get(plugged.address, path);
        assert_eq!(
            (a.status, a.header("location"), a.text()),
            (b.status, b.header("location"), b.text()),
            "{path}"
        );
    }
}
