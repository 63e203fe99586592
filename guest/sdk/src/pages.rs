//! The page table and Next.js's routing rules over it.
//!
//! Patterns are Next.js file names: exact (`/a`), dynamic (`/posts/[id]`) and
//! catch-all (`/docs/[...slug]`). Exact beats dynamic beats catch-all. `/404`
//! and `/_error` are the app's not-found and error pages.

use crate::{Request, Response};
use std::sync::OnceLock;

/// A page: renders a response from a request, or fails (then `/_error` renders).
pub type PageFn = fn(&Request) -> anyhow::Result<Response>;

const NOT_FOUND_PAGE: &str = "/404";
const ERROR_PAGE: &str = "/_error";

/// The app's pages.
pub struct Pages {
    pages: Vec<(String, PageFn)>,
    /// Built on first use: rendering by name never needs it.
    router: OnceLock<matchit::Router<usize>>,
}

/// How the default handler runs: set by the host through the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// `use_file_system_public_routes`: false means no page is served by its
    /// file name; only explicit routes (the renderer) reach pages.
    pub(crate) file_system_routes: bool,
    /// Dev mode: the `/_error` page is shown the error.
    pub(crate) dev: bool,
}

impl Mode {
    /// The mode the host set: `SWITCHYARD_USE_FILE_SYSTEM_PUBLIC_ROUTES=false`
    /// and `SWITCHYARD_DEV=1` (both unset by default).
    /// Read once per instance: the environment does not change.
    pub(crate) fn from_env() -> Self {
        static MODE: OnceLock<Mode> = OnceLock::new();
        *MODE.get_or_init(|| {
            let var = |name| std::env::var(name).unwrap_or_default();
            Self {
                file_system_routes: var("SWITCHYARD_USE_FILE_SYSTEM_PUBLIC_ROUTES") != "false",
                dev: var("SWITCHYARD_DEV") == "1",
            }
        })
    }
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            pages: Vec::new(),
            router: OnceLock::new(),
        }
    }

    /// Add a page. A malformed or duplicate pattern panics when the table
    /// is first used to route: the table is fixed at build time, so that is
    /// a bug in the app (test your table with [`Pages::check`]).
    pub fn page(mut self, pattern: &str, page: PageFn) -> Self {
        self.pages.push((pattern.to_string(), page));
        self
    }

    /// Check every pattern: malformed or conflicting ones are an error.
    pub fn check(&self) -> anyhow::Result<()> {
        build_router(&self.pages).map(drop)
    }

    fn router(&self) -> &matchit::Router<usize> {
        self.router
            .get_or_init(|| build_router(&self.pages).unwrap_or_else(|error| panic!("{error}")))
    }

    /// The page patterns, in the order they were added.
    pub fn patterns(&self) -> Vec<String> {
        self.pages
            .iter()
            .map(|(pattern, _)| pattern.clone())
            .collect()
    }

    fn get(&self, pattern: &str) -> Option<PageFn> {
        self.pages
            .iter()
            .find(|(p, _)| p == pattern)
            .map(|(_, page)| *page)
    }

    /// The default handler: route `request` by path, as Next.js does.
    pub(crate) fn respond(&self, mut request: Request, mode: Mode) -> Response {
        let raw_path = request.path.clone();
        if raw_path.len() > 1 && raw_path.ends_with('/') {
            let mut location = raw_path.trim_end_matches('/').to_string();
            if location.is_empty() {
                location.push('/');
            }
            if !request.raw_query.is_empty() {
                location = format!("{location}?{}", request.raw_query);
            }
            return Response::redirect(&location, true);
        }
        let found = mode
            .file_system_routes
            .then(|| self.router().at(&raw_path).ok())
            .flatten();
        let Some(found) = found else {
            request.path = crate::decode_path(&raw_path);
            return self.not_found(&request);
        };
        let (pattern, page) = &self.pages[*found.value];
        let params = params(pattern, &found.params);
        request.path = crate::decode_path(&raw_path);
        request.merge_params(params);
        self.call(*page, &request, mode)
            .unwrap_or_else(|error| fallback_error(&request, &error))
    }

    /// The renderer: render the page named `pattern` with the request's query.
    /// `None` when there is no such page.
    pub(crate) fn render(
        &self,
        pattern: &str,
        request: &Request,
        mode: Mode,
    ) -> Option<anyhow::Result<Response>> {
        let page = self.get(pattern)?;
        Some(self.call(page, request, mode))
    }

    /// Call a page; if it fails, log the error and render `/_error` with 500.
    /// Fails only when `/_error` fails too.
    fn call(&self, page: PageFn, request: &Request, mode: Mode) -> anyhow::Result<Response> {
        let error = match page(request) {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        eprintln!("Error occurred rendering {}: {error:#}", request.path);
        let Some(error_page) = self.get(ERROR_PAGE) else {
            return Ok(fallback_error(request, &error));
        };
        let mut request = request.clone();
        request.error = mode.dev.then(|| format!("{error:#}"));
        let response = error_page(&request).map_err(|page_error| {
            anyhow::anyhow!("{error:#}; and the `/_error` page failed too: {page_error:#}")
        })?;
        Ok(response.with_status(500))
    }

    /// The `/404` page with status 404, or a plain one.
    pub(crate) fn not_found(&self, request: &Request) -> Response {
        let page = self.get(NOT_FOUND_PAGE).and_then(|page| page(request).ok());
        page.unwrap_or_else(|| Response::text("404: This page could not be found."))
            .with_status(404)
    }
}

/// The plain 500 sent when the app has no working `/_error` page.
fn fallback_error(request: &Request, error: &anyhow::Error) -> Response {
    eprintln!("Error occurred handling {}: {error:#}", request.path);
    Response::text("500: Internal Server Error").with_status(500)
}

fn build_router(pages: &[(String, PageFn)]) -> anyhow::Result<matchit::Router<usize>> {
    let mut router = matchit::Router::new();
    for (i, (pattern, _)) in pages.iter().enumerate() {
        router
            .insert(to_matchit(pattern), i)
            .map_err(|error| anyhow::anyhow!("invalid page pattern `{pattern}`: {error}"))?;
    }
    Ok(router)
}

/// `/posts/[id]` is matchit's `/posts/{id}`; `/docs/[...slug]` is `/docs/{*slug}`.
fn to_matchit(pattern: &str) -> String {
    pattern
        .split('/')
        .map(
            |segment| match segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(name) => match name.strip_prefix("...") {
                    Some(rest) => format!("{{*{rest}}}"),
                    None => format!("{{{name}}}"),
                },
                None => segment.replace('{', "{{").replace('}', "}}"),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Route parameters as query entries, decoded; a catch-all gives one entry
/// per segment (Next.js's array).
fn params(pattern: &str, found: &matchit::Params<'_, '_>) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (name, value) in found.iter() {
        let catch_all = pattern.contains(&format!("[...{name}]"));
        let segments: Vec<&str> = if catch_all {
            value.split('/').collect()
        } else {
            vec![value]
        };
        for segment in segments {
            params.push((name.to_string(), crate::decode_path(segment)));
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODE: Mode = Mode {
        file_system_routes: true,
        dev: false,
    };

    fn echo_id(req: &Request) -> anyhow::Result<Response> {
        Ok(Response::text(
            req.query_all("id").collect::<Vec<_>>().join("|"),
        ))
    }

    fn fails(_: &Request) -> anyhow::Result<Response> {
        anyhow::bail!("boom")
    }

    fn pages() -> Pages {
        Pages::new()
            .page("/", |_| Ok(Response::text("index")))
            .page("/posts/new", |_| Ok(Response::text("new")))
            .page("/posts/[id]", echo_id)
            .page("/docs/[...id]", echo_id)
            .page("/boom", fails)
            .page("/404", |_| Ok(Response::html("custom 404")))
    }

    fn get(pages: &Pages, target: &str) -> Response {
        let (path, query) = crate::query::split_target(target);
        let mut request = Request::new("GET", path, crate::parse_query(query));
        request.raw_query = query.to_string();
        pages.respond(request, MODE)
    }

    #[test]
    fn exact_beats_dynamic_and_params_are_decoded() {
        let pages = pages();
        assert_eq!(get(&pages, "/posts/new").body, b"new");
        assert_eq!(get(&pages, "/posts/hello%20world").body, b"hello world");
        assert_eq!(get(&pages, "/posts/a%2Fb").body, b"a/b");
        assert_eq!(get(&pages, "/posts/1?id=overridden").body, b"1");
        assert_eq!(get(&pages, "/docs/a/b%20c").body, b"a|b c");
    }

    #[test]
    fn trailing_slash_redirects_permanently_keeping_the_query() {
        let response = get(&pages(), "/posts/1/?x=1");
        assert_eq!(response.status, 308);
        assert_eq!(response.header("location"), Some("/posts/1?x=1"));
        assert_eq!(get(&pages(), "//").header("location"), Some("/"));
    }

    #[test]
    fn unknown_paths_render_the_custom_404() {
        let response = get(&pages(), "/nope");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (404, &b"custom 404"[..])
        );
    }

    #[test]
    fn failing_page_without_error_page_is_a_plain_500() {
        let response = get(&pages(), "/boom");
        assert_eq!(response.status, 500);
    }

    #[test]
    fn error_page_gets_the_error_in_dev_only() {
        let pages = pages().page("/_error", |req| {
            Ok(Response::text(req.error().unwrap_or("hidden")))
        });
        let request = Request::new("GET", "/boom", Vec::new());
        let production = pages.render("/boom", &request, MODE).unwrap().unwrap();
        assert_eq!(
            (production.status, production.body.as_slice()),
            (500, &b"hidden"[..])
        );
        let dev = Mode { dev: true, ..MODE };
        let shown = pages.render("/boom", &request, dev).unwrap().unwrap();
        assert_eq!(shown.body, b"boom");
    }

    #[test]
    fn failing_error_page_fails_the_render() {
        let pages = pages().page("/_error", fails);
        let request = Request::new("GET", "/boom", Vec::new());
        assert!(pages.render("/boom", &request, MODE).unwrap().is_err());
        assert!(pages.render("/missing", &request, MODE).is_none());
    }

    #[test]
    fn conflicting_patterns_fail_the_check() {
        assert!(pages().check().is_ok());
        assert!(pages().page("/posts/[other]", echo_id).check().is_err());
    }

    #[test]
    fn file_system_routes_off_serves_only_404() {
        let off = Mode {
            file_system_routes: false,
            ..MODE
        };
        let response = pages().respond(Request::new("GET", "/", Vec::new()), off);
        assert_eq!(response.status, 404);
    }
}
