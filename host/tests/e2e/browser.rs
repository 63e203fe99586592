//! The example site in a real browser: headless Chromium driven through
//! ChromeDriver (WebDriver). Every page loads with its stylesheet and no
//! console errors, links navigate, both forms land where they should, and in
//! dev mode an edit to a page's source shows up in the open tab by itself.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`just install-chromium`);
//! screenshots go to `target/browser/`.

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_tests::{APP_COMPONENT, Server};

use crate::SWITCHYARD;

/// How long the browser may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// How long a dev-mode rebuild of the example app may take (a release
/// build of one crate, with LTO, on a small machine).
const REBUILD: Duration = Duration::from_secs(300);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A ChromeDriver process and a headless Chromium session through it;
/// both end when dropped.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        for program in ["chromium", "chromedriver"] {
            assert!(
                Command::new(program).arg("--version").output().is_ok(),
                "`{program}` is missing: run `just install-chromium` (Debian's chromium and chromium-driver)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // In a process group of its own, so that Chromium goes with it.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start chromedriver");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("failed to start a Chromium session");
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The console messages since the last call, as `LEVEL message`.
    async fn console(&self) -> Vec<String> {
        let logs = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        logs.as_array()
            .into_iter()
            .flatten()
            .map(|entry| {
                format!(
                    "{} {}",
                    entry["level"].as_str().unwrap_or("?"),
                    entry["message"]
                )
            })
            .collect()
    }

    /// The console errors since the last call.
    async fn console_errors(&self) -> Vec<String> {
        let mut errors = self.console().await;
        errors.retain(|line| line.starts_with("SEVERE"));
        errors
    }

    /// The element `locator` finds, waiting for it to appear.
    async fn element(&self, locator: Locator<'_>) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(locator)
            .await
            .unwrap_or_else(|error| panic!("no {locator:?} on the page: {error}"))
    }

    /// The `css` element's text, waiting for it to appear.
    async fn text(&self, css: &str) -> String {
        self.text_where(css, WAIT, "any text", |_| true).await
    }

    async fn click(&self, locator: Locator<'_>) {
        self.element(locator).await.click().await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.element(Locator::Css(css)).await;
        field.send_keys(text).await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Wait until the `css` element's text contains `expected`.
    async fn wait_for_text(&self, css: &str, expected: &str, within: Duration) {
        let what = format!("{expected:?}");
        self.text_where(css, within, &what, |text| text.contains(expected))
            .await;
    }

    /// Wait until the `css` element's text is no longer `before`.
    async fn wait_for_text_other_than(&self, css: &str, before: &str, within: Duration) {
        let what = format!("anything but {before:?}");
        self.text_where(css, within, &what, |text| {
            !text.is_empty() && text != before
        })
        .await;
    }

    /// The `css` element's text once `accept` takes it (`what` says what
    /// for a failure). The page may change or reload meanwhile: an element
    /// missing or gone stale is looked up again.
    async fn text_where(
        &self,
        css: &str,
        within: Duration,
        what: &str,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && accept(&text)
            {
                return text;
            }
            assert!(
                started.elapsed() < within,
                "`{css}` never showed {what} within {within:?}; the page has: {}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let dir = root().join("target").join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// ChromeDriver, Chromium and its helpers: the whole process group.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

/// ChromeDriver's `POST /session/{id}/se/log`: the browser's console.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The example site's config, as the repository's `switchyard.toml` has
/// it, for `app` in a directory of its own.
fn site_config(app: &str) -> String {
    format!(
        "app = {app:?}\npublic_dir = {:?}\n[grants]\noutgoing_http = [\"self\"]\n[keyvalue.site]\n",
        root().join("public").display().to_string()
    )
}

/// `switchyard serve` on the example site in a directory of its own.
fn serve_the_site() -> (Server, tempfile::TempDir) {
    let dir = switchyard_tests::config_dir(&site_config(APP_COMPONENT));
    let server = Server::start(
        SWITCHYARD,
        &["serve", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    (server, dir)
}

fn url(address: SocketAddr, path: &str) -> String {
    format!("http://{address}{path}")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_loads_styled_without_console_errors() {
    let (server, _dir) = serve_the_site();
    let browser = Browser::start().await;
    let pages = [
        ("/", "Welcome to Switchyard", 200),
        ("/a?name=Ada", "This is page a", 200),
        ("/b", "This is page b", 200),
        ("/posts", "Posts", 200),
        ("/posts/hello-world", "Hello, world", 200),
        ("/search?q=cache", "Search", 200),
        ("/profile", "Profile", 200),
        ("/stats", "Stats", 200),
        ("/cached", "SSR caching", 200),
        ("/nope", "404 - Page Not Found", 404),
        ("/boom", "500 - Internal Server Error", 500),
    ];
    for (path, heading, status) in pages {
        browser
            .client
            .goto(&url(server.address, path))
            .await
            .unwrap();
        assert_eq!(browser.text("h1").await, heading, "{path}");
        // The stylesheet from public/ applied: the header has its border.
        let styled = browser
            .client
            .execute(
                "return getComputedStyle(document.querySelector('.site-header')).borderBottomStyle",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(styled, Value::from("solid"), "{path}: style.css applied");
        let mut errors = browser.console_errors().await;
        // The browser reports the page's own error status, and nothing else.
        if status != 200 {
            errors.retain(|line| !line.contains(&format!("status of {status}")));
        }
        assert!(errors.is_empty(), "{path}: console errors {errors:?}");
        let name = path.trim_matches('/').replace(['/', '?', '='], "-");
        browser
            .screenshot(if name.is_empty() { "index" } else { &name })
            .await;
    }
    // The page that fetched the app's JSON API over HTTP counted its words.
    browser
        .client
        .goto(&url(server.address, "/stats"))
        .await
        .unwrap();
    let total: u32 = browser.text("#total").await.parse().unwrap();
    assert!(total > 50, "{total}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_and_the_visit_counter_survive_a_restart() {
    let (server, dir) = serve_the_site();
    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&url(server.address, "/")).await.unwrap();
    let first: u64 = browser.text("#visits").await.parse().unwrap();

    // A comment through the post's form: stored, and the cached page
    // revalidated, so the redirect back shows it.
    client
        .goto(&url(server.address, "/posts/caching"))
        .await
        .unwrap();
    browser
        .wait_for_text("#comments", "No comments yet.", WAIT)
        .await;
    browser.type_into("input[name=author]", "Grace").await;
    browser
        .type_into("textarea[name=text]", "Nice <post>")
        .await;
    browser.click(Locator::Css("#comments form button")).await;
    browser
        .wait_for_text(".comments", "Nice <post>", WAIT)
        .await;
    assert_eq!(browser.path().await, "/posts/caching");
    browser.screenshot("comment-posted").await;

    // A new process on the same data.
    drop(server);
    let server = Server::start(
        SWITCHYARD,
        &["serve", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    client
        .goto(&url(server.address, "/posts/caching"))
        .await
        .unwrap();
    browser.wait_for_text(".comments", "Grace", WAIT).await;
    client.goto(&url(server.address, "/")).await.unwrap();
    let after: u64 = browser.text("#visits").await.parse().unwrap();
    assert_eq!(after, first + 1, "the counter went on from where it was");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors {errors:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn links_navigate_and_both_forms_land_where_they_should() {
    let (server, _dir) = serve_the_site();
    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&url(server.address, "/")).await.unwrap();

    // Navigation: the header's Posts link, then a post's card.
    browser.click(Locator::LinkText("Posts")).await;
    browser.wait_for_text("h1", "Posts", WAIT).await;
    assert_eq!(browser.path().await, "/posts");
    browser.click(Locator::Css(".card a")).await;
    browser.wait_for_text("h1", "Hello, world", WAIT).await;
    assert_eq!(browser.path().await, "/posts/hello-world");

    // A GET form: the search page with the words in its query.
    browser.click(Locator::LinkText("Search")).await;
    browser.type_into("input[name=q]", "cache").await;
    browser.click(Locator::Css("form button")).await;
    browser
        .wait_for_text("#summary", "1 post matches", WAIT)
        .await;
    assert_eq!(browser.path().await, "/search?q=cache");
    assert!(
        browser
            .text(".cards")
            .await
            .contains("Caching rendered pages")
    );

    // A POST form: the API route sets a cookie and redirects (303) back.
    browser.click(Locator::Css("nav a[href='/profile']")).await;
    browser
        .type_into("input[name=name]", "Ada <Lovelace>")
        .await;
    browser.click(Locator::Css("form button")).await;
    browser.wait_for_text("#saved", "Saved.", WAIT).await;
    assert_eq!(browser.path().await, "/profile?saved=1");
    assert_eq!(browser.text("#visitor").await, "Ada <Lovelace>");
    // The cookie follows the visitor to every page.
    client.goto(&url(server.address, "/a")).await.unwrap();
    assert_eq!(
        browser.text("nav a[href='/profile']").await,
        "Hi, Ada <Lovelace>"
    );
    browser.screenshot("profile-signed-in").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors {errors:?}");
    browser.close().await;
}

/// A workspace of its own holding a copy of the example app (renamed
/// `edited-app`), built into the shared guest target directory (so only
/// the app itself recompiles).
fn copy_of_the_example_app() -> tempfile::TempDir {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    for sub in ["src", "templates"] {
        std::fs::create_dir_all(app.join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join("guest/app").join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), app.join(sub).join(entry.file_name())).unwrap();
        }
    }
    // Named apart, so that its build does not replace the tests' app.wasm.
    let package = std::fs::read_to_string(root.join("guest/app/Cargo.toml")).unwrap();
    let package = package.replace("name = \"app\"", "name = \"edited-app\"");
    std::fs::write(app.join("Cargo.toml"), package).unwrap();
    std::fs::copy(root.join("guest/Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    // The guest workspace's manifest, its path dependencies made absolute.
    let manifest = std::fs::read_to_string(root.join("guest/Cargo.toml")).unwrap();
    let members_start = manifest.find("members = [").unwrap();
    let members_end = members_start + manifest[members_start..].find(']').unwrap() + 1;
    let manifest = format!(
        "{}members = [\"app\"]{}",
        &manifest[..members_start],
        &manifest[members_end..]
    )
    .replace(
        "path = \"sdk/",
        &format!("path = \"{}/guest/sdk/", root.display()),
    );
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    let target = root.join("target").join("wasm");
    let build = format!(
        "CARGO_TARGET_DIR='{target}' cargo build --offline --release --target wasm32-wasip2 -p edited-app \
         && mkdir -p build && cp '{target}/wasm32-wasip2/release/edited_app.wasm' build/app.wasm.tmp \
         && mv build/app.wasm.tmp build/app.wasm",
        target = target.display()
    );
    let config = format!(
        "{}[dev]\nbuild = {build:?}\nwatch = [\"app/src/**\", \"app/templates/**\"]\n",
        site_config("build/app.wasm")
    );
    std::fs::write(dir.path().join("switchyard.toml"), config).unwrap();
    dir
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_rebuilds_on_an_edit_and_the_open_tab_reloads_itself() {
    let dir = copy_of_the_example_app();
    let server = Server::start(
        SWITCHYARD,
        &["dev", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[("RUST_LOG", "info")],
    );
    let browser = Browser::start().await;
    browser
        .client
        .goto(&url(server.address, "/a?name=dev"))
        .await
        .unwrap();
    assert_eq!(browser.text("h1").await, "This is page a");

    // An edit to the page's template: the tab shows it without being told.
    let template = dir.path().join("app/templates/named.html");
    edit(&template, "This is page", "Edited: this is page");
    browser
        .wait_for_text("h1", "Edited: this is page a", REBUILD)
        .await;
    // One edit, one build (the start's build and this one): reads of the
    // sources, the build's own, never count.
    let builds = server.output().matches("INFO building:").count();
    assert_eq!(builds, 2, "{}", server.output());
    assert_eq!(
        browser.path().await,
        "/a?name=dev",
        "the same tab, reloaded"
    );

    // A broken build: the tab shows the compiler's error; the fix brings
    // the page back. Meanwhile the last good build serves everything else.
    let page = dir.path().join("app/src/lib.rs");
    edit(
        &page,
        "let name = req.query(\"name\")",
        "let name = req.query(\"name\") oops",
    );
    browser.wait_for_text("h1", "Build failed", REBUILD).await;
    assert!(browser.text("#build-error").await.contains("oops"));
    let api = switchyard_tests::get(server.address, "/api/hello");
    assert_eq!(api.status, 200, "the last good build still serves");
    browser.screenshot("dev-build-failed").await;
    edit(
        &page,
        "let name = req.query(\"name\") oops",
        "let name = req.query(\"name\")",
    );
    browser
        .wait_for_text("h1", "Edited: this is page a", REBUILD)
        .await;
    let mut errors = browser.console_errors().await;
    // The failed build's page answered 500; nothing else went wrong.
    errors.retain(|line| !line.contains("status of 500"));
    assert!(errors.is_empty(), "console errors {errors:?}");
    browser.close().await;
    assert!(server.printed("the build failed; still serving the last good build"));
}

#[tokio::test(flavor = "multi_thread")]
async fn in_dev_mode_a_cached_compressed_page_reloads_itself_too() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.wasm");
    std::fs::copy(APP_COMPONENT, &app).unwrap();
    std::fs::write(dir.path().join("switchyard.toml"), site_config("app.wasm")).unwrap();
    let server = Server::start(
        SWITCHYARD,
        &["dev", "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    let browser = Browser::start().await;
    let page = url(server.address, "/cached");
    browser.client.goto(&page).await.unwrap();
    // Loaded again, it comes from the cache, compressed for the browser.
    browser.client.goto(&page).await.unwrap();
    let before = browser.text("#rendered").await;
    let hit = switchyard_tests::request(
        server.address,
        "GET",
        "/cached",
        &[("accept", "text/html"), ("accept-encoding", "gzip, br")],
        b"",
    );
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.header("content-encoding").is_some());

    // A new build lands: the open tab, a cache hit, reloads by itself, and
    // the emptied cache renders the page anew.
    let staged = dir.path().join("app.wasm.new");
    std::fs::copy(APP_COMPONENT, &staged).unwrap();
    std::fs::rename(&staged, &app).unwrap();
    browser
        .wait_for_text_other_than("#rendered", &before, REBUILD)
        .await;
    assert_eq!(browser.path().await, "/cached", "the same tab, reloaded");
    browser.close().await;
}
