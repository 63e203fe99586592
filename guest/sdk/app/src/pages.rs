//! The page table and Next.js's routing rules over it.
//!
//! Patterns are Next.js file names: exact (`/a`), dynamic (`/posts/[id]`) and
//! catch-all (`/docs/[...slug]`). Exact beats dynamic beats catch-all. `/404`
//! and `/_error` are the app's not-found and error pages.

use std::sync::OnceLock;
use switchyard_guest::{IntoResponse, NotFound, Request, Response};

/// A page as the table keeps it: any [`PageFn`], its answer made a [`Response`].
type Page = Box<dyn Fn(&Request) -> anyhow::Result<Response> + Send + Sync>;

/// A page: a function (or a closure, which may capture state) from the
/// request to anything [`IntoResponse`], or an error (then `/_error`
/// renders, or `/404` for [`NotFound`]).
///
/// Implemented for every `fn(&Request) -> Result<R>` where `R` is
/// [`IntoResponse`], also when `R` borrows from the request (a template
/// holding `&str`s). A closure names its argument's type,
/// `|req: &Request| ...`, and returns what it owns.
pub trait PageFn<'a, Via>: Send + Sync + 'static {
    /// Render the page.
    fn call(&self, req: &'a Request) -> anyhow::Result<Response>;
}

impl<'a, F, R, Via> PageFn<'a, Via> for F
where
    F: Fn(&'a Request) -> anyhow::Result<R> + Send + Sync + 'static,
    R: IntoResponse<Via>,
{
    fn call(&self, req: &'a Request) -> anyhow::Result<Response> {
        self(req)?.into_response()
    }
}

const NOT_FOUND_PAGE: &str = "/404";
const ERROR_PAGE: &str = "/_error";

/// The app's pages.
pub struct Pages {
    pages: Vec<(String, Page)>,
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
    pub fn page<Via: 'static>(mut self, pattern: &str, page: impl for<'a> PageFn<'a, Via>) -> Self {
        self.pages
            .push((pattern.to_string(), Box::new(move |req| page.call(req))));
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
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.pages.iter().map(|(pattern, _)| pattern.as_str())
    }

    fn get(&self, pattern: &str) -> Option<&Page> {
        self.pages
            .iter()
            .find(|(p, _)| p == pattern)
            .map(|(_, page)| page)
    }

    /// The default handler: route `request` by path, as Next.js does.
    pub(crate) fn respond(&self, mut request: Request, mode: Mode) -> Response {
        let raw_path = request.path().to_string();
        if raw_path.len() > 1 && raw_path.ends_with('/') {
            let mut location = raw_path.trim_end_matches('/').to_string();
            if location.is_empty() {
                location.push('/');
            }
            if !request.raw_query().is_empty() {
                location = format!("{location}?{}", request.raw_query());
            }
            return Response::redirect(&location, true);
        }
        request.set_path(switchyard_guest::decode_path(&raw_path));
        if !mode.file_system_routes {
            return self.not_found(&request);
        }
        // An exact pattern needs no router: a fresh instance (one per
        // request, by default) then never builds it for such a path.
        let exact = self
            .pages
            .iter()
            .find(|(pattern, _)| *pattern == raw_path && !pattern.contains('['));
        let page = match exact {
            Some((_, page)) => page,
            None => {
                let Ok(found) = self.router().at(&raw_path) else {
                    return self.not_found(&request);
                };
                let (pattern, page) = &self.pages[*found.value];
                request.set_params(params(pattern, &found.params));
                page
            }
        };
        self.call(page, &request, mode)
            .unwrap_or_else(|error| fallback_error(&request, &error))
    }

    /// The renderer: render the page named `pattern` with the request's
    /// query, its path parameters read from the query entries of their
    /// names. `None` when there is no such page.
    pub(crate) fn render(
        &self,
        pattern: &str,
        request: &mut Request,
        mode: Mode,
    ) -> Option<anyhow::Result<Response>> {
        let page = self.get(pattern)?;
        let params = param_names(pattern)
            .flat_map(|name| {
                request
                    .query_all(name)
                    .map(move |value| (name.to_string(), value.to_string()))
            })
            .collect();
        request.set_params_only(params);
        Some(self.call(page, request, mode))
    }

    /// Call a page; if it fails, log the error and render `/_error` with
    /// 500 (or `/404` with 404 for [`NotFound`]). Fails only when `/_error`
    /// fails too.
    fn call(&self, page: &Page, request: &Request, mode: Mode) -> anyhow::Result<Response> {
        let error = match page(request) {
            Ok(response) => return Ok(response),
            Err(error) if error.is::<NotFound>() => return Ok(self.not_found(request)),
            Err(error) => error,
        };
        eprintln!("Error occurred rendering {}: {error:#}", request.path());
        let Some(error_page) = self.get(ERROR_PAGE) else {
            return Ok(fallback_error(request, &error));
        };
        let mut request = request.clone();
        request.set_error(mode.dev.then(|| format!("{error:#}")));
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
    eprintln!("Error occurred handling {}: {error:#}", request.path());
    Response::text("500: Internal Server Error").with_status(500)
}

fn build_router(pages: &[(String, Page)]) -> anyhow::Result<matchit::Router<usize>> {
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

/// The parameter names of `pattern`: `id` of `/posts/[id]`, `slug` of
/// `/docs/[...slug]`.
fn param_names(pattern: &str) -> impl Iterator<Item = &str> {
    pattern.split('/').filter_map(|segment| {
        let name = segment.strip_prefix('[')?.strip_suffix(']')?;
        Some(name.strip_prefix("...").unwrap_or(name))
    })
}

/// Route parameters, decoded; a catch-all gives one entry
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
            params.push((name.to_string(), switchyard_guest::decode_path(segment)));
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

    fn echo_id(req: &Request) -> anyhow::Result<String> {
        let params = req.params_all("id").collect::<Vec<_>>().join("|");
        let query = req.query_all("id").collect::<Vec<_>>().join("|");
        assert_eq!(params, query, "parameters are merged into the query");
        Ok(params)
    }

    #[derive(askama::Template)]
    #[template(source = "<h1>{{ title }}</h1>", ext = "html")]
    struct Title<'a> {
        title: &'a str,
    }

    /// A template that borrows from the request.
    fn titled(req: &Request) -> anyhow::Result<(u16, Title<'_>)> {
        Ok((
            201,
            Title {
                title: req.param("title").unwrap_or("none"),
            },
        ))
    }

    fn numbered(req: &Request) -> anyhow::Result<String> {
        Ok(format!("n={}", req.param_as::<u32>("n")? + 1))
    }

    fn fails(_: &Request) -> anyhow::Result<Response> {
        anyhow::bail!("boom")
    }

    fn pages() -> Pages {
        Pages::new()
            .page("/", |_: &Request| Ok(Response::text("index")))
            .page("/posts/new", |_: &Request| Ok("new"))
            .page("/titled/[title]", titled)
            .page("/numbered/[n]", numbered)
            .page("/posts/[id]", echo_id)
            .page("/docs/[...id]", echo_id)
            .page("/boom", fails)
            .page("/404", |_: &Request| Ok(Response::html("custom 404")))
    }

    fn get(pages: &Pages, target: &str) -> Response {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut request = Request::new("GET", path, Vec::new());
        request.set_raw_query(query);
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
        let pages = pages().page("/_error", |req: &Request| {
            Ok(Response::text(req.error().unwrap_or("hidden")))
        });
        let mut request = Request::new("GET", "/boom", Vec::new());
        let production = pages.render("/boom", &mut request, MODE).unwrap().unwrap();
        assert_eq!(
            (production.status, production.body.as_slice()),
            (500, &b"hidden"[..])
        );
        let dev = Mode { dev: true, ..MODE };
        let shown = pages.render("/boom", &mut request, dev).unwrap().unwrap();
        assert_eq!(shown.body, b"boom");
    }

    #[test]
    fn failing_error_page_fails_the_render() {
        let pages = pages().page("/_error", fails);
        let mut request = Request::new("GET", "/boom", Vec::new());
        assert!(pages.render("/boom", &mut request, MODE).unwrap().is_err());
        assert!(pages.render("/missing", &mut request, MODE).is_none());
    }

    #[test]
    fn pages_return_templates_strings_and_statuses() {
        let pages = pages();
        let titled = get(&pages, "/titled/a%20b");
        assert_eq!(
            (titled.status, titled.body.as_slice()),
            (201, &b"<h1>a b</h1>"[..])
        );
        assert_eq!(get(&pages, "/numbered/41").body, b"n=42");
        let not_a_number = get(&pages, "/numbered/x");
        assert_eq!(
            (not_a_number.status, not_a_number.body.as_slice()),
            (404, &b"custom 404"[..])
        );
    }

    #[test]
    fn rendering_by_name_reads_params_from_the_query() {
        let pages = pages();
        let mut request = Request::new("GET", "/x", switchyard_guest::parse_query("title=t&n=1"));
        let titled = pages
            .render("/titled/[title]", &mut request, MODE)
            .unwrap()
            .unwrap();
        assert_eq!(titled.body, b"<h1>t</h1>");
        let numbered = pages
            .render("/numbered/[n]", &mut request, MODE)
            .unwrap()
            .unwrap();
        assert_eq!(numbered.body, b"n=2");
    }

    #[test]
    fn closures_capture_state() {
        let greeting = String::from("hello");
        let pages = Pages::new().page("/", move |_: &Request| Ok(greeting.clone()));
        assert_eq!(get(&pages, "/").body, b"hello");
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
