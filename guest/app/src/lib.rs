//! The example Switchyard site: a small blog, the pages a new user sees first.
//!
//! - `/`, and the seed's `/a` and `/b` (each greets the `name` query parameter);
//! - `/posts` and the dynamic `/posts/[id]`, from the app's own data, with
//!   comments (a form that POSTs to `/api/comments`) kept in the server's
//!   key-value store `site`;
//! - `/search`, a form that GETs a page;
//! - `/profile`, a form that POSTs to the API route `/api/profile`, which
//!   sets a cookie and redirects back (303, so a reload does not post again);
//! - `/stats`, which fetches the app's own JSON API (`/api/posts`) over HTTP;
//! - `/cached`, the ssr-caching example;
//! - `/boom` (a page that fails), and the app's own `/404` and `/_error` pages.
//!
//! The home page counts its visits in the same store, and shows the
//! `tagline` variable of the server's `[variables]`. Without a `site`
//! store (a config that grants none), the pages say so and work on.
//!
//! Every HTML page is an askama template (it escapes what it prints) that
//! extends `layout.html`; the stylesheet is `public/style.css`.

mod comments;
mod posts;
mod profile;

use askama::Template;
use serde::Serialize;
use switchyard_app::{App, IntoResponse, Json, Pages, Request, Result};

struct Site;

impl App for Site {
    fn pages() -> Pages {
        Pages::new()
            .page("/", index)
            .page("/a", |req: &Request| named("a", req)?.into_response())
            .page("/b", |req: &Request| named("b", req)?.into_response())
            .page("/posts", posts::list)
            .page("/posts/[id]", posts::post)
            .page("/search", posts::search)
            .page("/stats", posts::stats)
            .page("/api/posts", posts::api)
            .page("/profile", profile::page)
            .page("/api/profile", profile::save)
            .page("/api/comments", comments::add)
            .page("/api/hello", hello)
            .page("/cached", cached)
            .page("/boom", boom)
            .page("/404", not_found)
            .page("/_error", error)
    }
}

switchyard_app::export!(Site);

/// What the layout shows on every page: who is signed in (a cookie).
struct Visitor(Option<String>);

impl Visitor {
    fn of(req: &Request) -> Self {
        Self(req.cookie(profile::NAME_COOKIE).filter(|n| !n.is_empty()))
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct Index {
    visitor: Visitor,
    patterns: Vec<&'static str>,
    posts: &'static [posts::Post],
    /// `None` when the server grants no `site` store.
    visits: Option<u64>,
    tagline: String,
}

/// The home page: counts its visits (an atomic increment, right across
/// replicas sharing a Redis store) and shows the `tagline` variable.
fn index(req: &Request) -> Result<Index> {
    let visits = match switchyard_app::kv::Store::open(comments::STORE) {
        Ok(store) => Some(store.increment("visits", 1)?),
        Err(_) => None,
    };
    let tagline = switchyard_app::config::get("tagline")?
        .unwrap_or_else(|| "Server-rendered pages from a WebAssembly component.".into());
    Ok(Index {
        visitor: Visitor::of(req),
        patterns: switchyard_app::pages::<Site>().patterns().collect(),
        posts: posts::POSTS,
        visits,
        tagline,
    })
}

#[derive(Template)]
#[template(path = "named.html")]
struct Named<'a> {
    visitor: Visitor,
    title: &'a str,
    name: &'a str,
}

fn named<'a>(title: &'a str, req: &'a Request) -> Result<Named<'a>> {
    let name = req.query("name").unwrap_or("stranger");
    Ok(Named {
        visitor: Visitor::of(req),
        title,
        name,
    })
}

#[derive(Template)]
#[template(path = "cached.html")]
struct Cached {
    visitor: Visitor,
    rendered: String,
}

/// The seed's ssr-caching example: the server caches the page for 10
/// seconds, then serves it stale while one render refreshes it. Shared, so
/// it shows no visitor.
fn cached(_req: &Request) -> Result<switchyard_app::Response> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let rendered = format!("{}.{:03}", now.as_secs(), now.subsec_millis());
    let page = Cached {
        visitor: Visitor(None),
        rendered,
    };
    Ok(switchyard_app::Response::html(page.render()?).with_header(
        "cache-control",
        "public, s-maxage=10, stale-while-revalidate=59",
    ))
}

#[derive(Serialize)]
struct Hello<'a> {
    name: &'a str,
    method: &'a str,
}

fn hello(req: &Request) -> Result<Json<Hello<'_>>> {
    Ok(Json(Hello {
        name: "John Doe",
        method: req.method(),
    }))
}

fn boom(_req: &Request) -> Result<&'static str> {
    switchyard_app::bail!("boom: this page always fails")
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound<'a> {
    visitor: Visitor,
    path: &'a str,
}

fn not_found(req: &Request) -> Result<NotFound<'_>> {
    Ok(NotFound {
        visitor: Visitor::of(req),
        path: req.path(),
    })
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    visitor: Visitor,
    error: Option<&'a str>,
}

fn error(req: &Request) -> Result<ErrorPage<'_>> {
    Ok(ErrorPage {
        visitor: Visitor::of(req),
        error: req.error(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_pattern_is_valid() {
        Site::pages().check().unwrap();
    }

    #[test]
    fn pages_escape_what_they_print() {
        let req = Request::new("GET", "/a", vec![("name".into(), "<b>".into())]);
        let page = named("a", &req).unwrap().into_response().unwrap();
        let body = String::from_utf8(page.body).unwrap();
        assert!(body.contains("Hello, &#60;b&#62;!"), "{body}");
    }
}
