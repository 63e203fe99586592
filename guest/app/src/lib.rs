//! The example Switchyard site: the pages a new user sees first.
//!
//! `/`, `/a` and `/b` (each greets the `name` query parameter), a dynamic
//! `/posts/[id]`, a JSON `/api/hello`, the ssr-caching example (`/cached`),
//! a page that fails (`/boom`), and the app's own `/404` and `/_error` pages. Every HTML page goes through an
//! askama template, which escapes what it prints.

use askama::Template;
use serde::Serialize;
use switchyard_guest::{App, Pages, Request, Response, Result};

struct Site;

impl App for Site {
    fn pages() -> Pages {
        Pages::new()
            .page("/", index)
            .page("/a", |req| named("a", req))
            .page("/b", |req| named("b", req))
            .page("/posts/[id]", post)
            .page("/api/hello", hello)
            .page("/cached", cached)
            .page("/boom", boom)
            .page("/404", not_found)
            .page("/_error", error)
    }
}

switchyard_guest::export!(Site);

#[derive(Template)]
#[template(path = "index.html")]
struct Index {
    page_count: usize,
    patterns: Vec<String>,
}

fn index(_req: &Request) -> Result<Response> {
    let patterns = Site::pages().patterns();
    let page = Index {
        page_count: patterns.len(),
        patterns,
    };
    Ok(Response::html(page.render()?))
}

#[derive(Template)]
#[template(path = "named.html")]
struct Named<'a> {
    title: &'a str,
    name: &'a str,
}

fn named(title: &str, req: &Request) -> Result<Response> {
    let name = req.query("name").unwrap_or("stranger");
    Ok(Response::html(Named { title, name }.render()?))
}

#[derive(Template)]
#[template(path = "post.html")]
struct Post<'a> {
    id: &'a str,
}

fn post(req: &Request) -> Result<Response> {
    let id = req.query("id").unwrap_or_default();
    Ok(Response::html(Post { id }.render()?))
}

#[derive(Template)]
#[template(path = "cached.html")]
struct Cached {
    rendered: String,
}

/// The seed's ssr-caching example: the server caches the page for 10
/// seconds, then serves it stale while one render refreshes it.
fn cached(_req: &Request) -> Result<Response> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let rendered = format!("{}.{:03}", now.as_secs(), now.subsec_millis());
    Ok(Response::html(Cached { rendered }.render()?).with_header(
        "cache-control",
        "public, s-maxage=10, stale-while-revalidate=59",
    ))
}

#[derive(Serialize)]
struct Hello<'a> {
    name: &'a str,
    method: &'a str,
}

fn hello(req: &Request) -> Result<Response> {
    Response::json(&Hello {
        name: "John Doe",
        method: req.method(),
    })
}

fn boom(_req: &Request) -> Result<Response> {
    switchyard_guest::bail!("boom: this page always fails")
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound<'a> {
    path: &'a str,
}

fn not_found(req: &Request) -> Result<Response> {
    Ok(Response::html(NotFound { path: req.path() }.render()?))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    error: Option<&'a str>,
}

fn error(req: &Request) -> Result<Response> {
    Ok(Response::html(ErrorPage { error: req.error() }.render()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_pattern_is_valid() {
        Site::pages().check().unwrap();
    }
}
