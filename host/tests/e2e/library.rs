//! The library in-process: `App::builder()`, `prepare`, `render`,
//! `request_handler`, and `server::serve` on a real socket.

use http::Request;
use std::path::Path;
use switchyard::{App, Config};
use switchyard_tests::{APP_COMPONENT, get};

fn app(dir: &Path) -> App {
    App::builder().dir(dir).component(APP_COMPONENT).build()
}

async fn text(response: http::Response<switchyard::Body>) -> (u16, String) {
    use http_body_util::BodyExt;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get_request(uri: &str) -> Request<http_body_util::Empty<bytes::Bytes>> {
    Request::get(uri)
        .header("host", "localhost")
        .body(http_body_util::Empty::new())
        .unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn render_renders_pages_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let handle = app.request_handler();
    let (status, body) = text(handle.handle(get_request("/")).await).await;
    assert_eq!(
        (status, body.as_str()),
        (500, "internal server error"),
        "before prepare"
    );

    app.prepare().await.unwrap();
    let req = get_request("/anything");
    let (status, body) = text(
        app.render(&req, "/a", pairs(&[("name", "<x>")]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("Hello, &#60;x&#62;!"), "{body}");
    let (_, body) = text(
        app.render(&req, "/posts/[id]", pairs(&[("id", "caching")]))
            .await
            .unwrap(),
    )
    .await;
    assert!(body.contains("<h1>Caching rendered pages</h1>"), "{body}");
    let (status, body) = text(app.render(&req, "/nope", Vec::new()).await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body.contains("404 - Page Not Found"));
    let (status, body) = text(app.render(&req, "/boom", Vec::new()).await.unwrap()).await;
    assert_eq!(status, 500);
    assert!(body.contains("500 - Internal Server Error"));
    assert_eq!(app.pages().len(), 16);

    let (status, body) = text(handle.handle(get_request("/posts/hello%2Dworld")).await).await;
    assert_eq!(status, 200);
    assert!(body.contains("<h1>Hello, world</h1>"));
}

#[tokio::test]
async fn render_works_with_file_system_routes_off() {
    let dir = tempfile::tempdir().unwrap();
    let conf = Config::parse(
        "use_file_system_public_routes = false",
        Path::new("switchyard.toml"),
    )
    .unwrap();
    let app = App::builder()
        .dir(dir.path())
        .component(APP_COMPONENT)
        .conf(conf)
        .build();
    app.prepare().await.unwrap();
    let (status, _) = text(app.request_handler().handle(get_request("/a")).await).await;
    assert_eq!(status, 404, "the default handler serves no page by name");
    let (status, body) = text(
        app.render(&get_request("/a"), "/a", pairs(&[("name", "r")]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "app.render still works, unlike Next.js 14");
    assert!(body.contains("Hello, r!"));
}

#[tokio::test]
async fn render_goes_through_the_cache_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    app.prepare().await.unwrap();
    let req = Request::get("/anything")
        .header("host", "localhost")
        .header("accept-encoding", "gzip")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let first = app.render(&req, "/cached", Vec::new()).await.unwrap();
    assert_eq!(first.headers()["x-cache"], "MISS");
    assert_eq!(first.headers()["content-encoding"], "gzip");
    let second = app.render(&req, "/cached", Vec::new()).await.unwrap();
    assert_eq!(second.headers()["x-cache"], "HIT");
    // Another page for the same URL is another entry.
    let plain = get_request("/anything");
    let (status, body) = text(
        app.render(&plain, "/a", pairs(&[("name", "k")]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("Hello, k!"), "{body}");
}

#[test]
fn serve_answers_over_a_real_socket() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let (address, stop) = runtime.block_on(async {
        app.prepare().await.unwrap();
        let listener = switchyard::server::bind("127.0.0.1", 0).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = app.server_settings().unwrap();
        let server = switchyard::server::serve(listener, app.request_handler(), settings, async {
            let _ = stopped.await;
        });
        tokio::spawn(server);
        (address, stop)
    });
    let response = get(address, "/a?name=socket");
    assert_eq!(response.status, 200);
    assert!(response.text().contains("Hello, socket!"));
    stop.send(()).unwrap();
}
