//! The blog: posts from the app's own data, a search form that GETs a page,
//! a JSON API, and a page that fetches that API over HTTP.

use crate::Visitor;
use crate::comments::{self, Comment};
use askama::Template;
use serde::{Deserialize, Serialize};
use switchyard_app::kv::Store;
use switchyard_app::{Context, IntoResponse, Json, NotFound, Request, Response, Result, fetch};

/// A blog post.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Post {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) date: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) body: &'static [&'static str],
}

/// The posts, newest first.
pub(crate) static POSTS: &[Post] = &[
    Post {
        id: "hello-world",
        title: "Hello, world",
        date: "2026-11-20",
        summary: "Why this site renders its pages in a WebAssembly component.",
        body: &[
            "Every page of this site is rendered by a WebAssembly component: a sandbox that \
             sees nothing of the server but the request it was given.",
            "A fresh instance serves each request, so no request can leak into the next.",
        ],
    },
    Post {
        id: "pages-and-routes",
        title: "Pages and routes",
        date: "2026-11-12",
        summary: "File-system routes, dynamic segments, and routes of your own.",
        body: &[
            "Pages are named like Next.js files: /posts/[id] is this page, and id is read \
             with req.param(\"id\").",
            "Routes of your own live in switchyard.toml, or in a router component composed \
             in front of the app.",
        ],
    },
    Post {
        id: "caching",
        title: "Caching rendered pages",
        date: "2026-11-02",
        summary: "A page that says Cache-Control: public is rendered once and served many times.",
        body: &[
            "The server keeps pages that allow it in a shared cache, serves them stale while \
             one render refreshes them, and compresses what it sends.",
        ],
    },
];

#[derive(Template)]
#[template(path = "posts.html")]
pub(crate) struct List {
    visitor: Visitor,
    posts: &'static [Post],
}

pub(crate) fn list(req: &Request) -> Result<List> {
    Ok(List {
        visitor: Visitor::of(req),
        posts: POSTS,
    })
}

#[derive(Template)]
#[template(path = "post.html")]
pub(crate) struct Page {
    visitor: Visitor,
    post: &'static Post,
    /// `None` when the server grants no `site` store.
    comments: Option<Vec<Comment>>,
    problem: Option<String>,
}

/// `/posts/[id]`: the post and its comments, or the app's 404 page. The
/// server caches it (per visitor cookie) until a new comment revalidates
/// it; it is tagged `posts` and `post-ID`.
pub(crate) fn post(req: &Request) -> Result<Response> {
    let id = req.param("id").unwrap_or_default();
    let post = POSTS.iter().find(|post| post.id == id).ok_or(NotFound)?;
    let comments = match Store::open(comments::STORE) {
        Ok(store) => Some(comments::of(&store, post.id)?),
        Err(_) => None,
    };
    let problem = req.query("problem").map(str::to_string);
    let cacheable = problem.is_none() && comments.is_some();
    let page = Page {
        visitor: Visitor::of(req),
        post,
        comments,
        problem,
    }
    .into_response()?;
    Ok(if cacheable {
        page.with_header("cache-control", "public, s-maxage=3600")
            .with_header("vary", "cookie")
            .cache_tags(&["posts", &format!("post-{}", post.id)])
    } else {
        page
    })
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[derive(Template)]
#[template(path = "search.html")]
pub(crate) struct Search {
    visitor: Visitor,
    q: String,
    results: Vec<&'static Post>,
}

/// `/search?q=`: the target of a GET form.
pub(crate) fn search(req: &Request) -> Result<Search> {
    let SearchQuery { q } = req.query_as()?;
    let needle = q.trim().to_lowercase();
    let results = POSTS
        .iter()
        .filter(|post| {
            !needle.is_empty()
                && [post.title, post.summary]
                    .into_iter()
                    .chain(post.body.iter().copied())
                    .any(|text| text.to_lowercase().contains(&needle))
        })
        .collect();
    Ok(Search {
        visitor: Visitor::of(req),
        q,
        results,
    })
}

/// `/api/posts`: the posts as JSON.
pub(crate) fn api(_req: &Request) -> Result<Json<&'static [Post]>> {
    Ok(Json(POSTS))
}

#[derive(Deserialize)]
struct Fetched {
    id: String,
    title: String,
    body: Vec<String>,
}

#[derive(Template)]
#[template(path = "stats.html")]
pub(crate) struct Stats {
    visitor: Visitor,
    source: String,
    rows: Vec<(String, String, usize)>,
    total: usize,
}

/// `/stats`: fetches `/api/posts` from this same server over HTTP (as
/// Next.js's `getServerSideProps` would a backend), granted by
/// `outgoing_http = ["self"]` in switchyard.toml.
pub(crate) fn stats(req: &Request) -> Result<Stats> {
    let host = req.authority().context("the request names no host")?;
    let source = format!("http://{host}/api/posts");
    let posts: Vec<Fetched> = fetch(&source)?.ok()?.json()?;
    let rows: Vec<(String, String, usize)> = posts
        .into_iter()
        .map(|post| {
            let words = post.body.iter().map(|p| p.split_whitespace().count()).sum();
            (post.id, post.title, words)
        })
        .collect();
    let total = rows.iter().map(|(_, _, words)| words).sum();
    Ok(Stats {
        visitor: Visitor::of(req),
        source,
        rows,
        total,
    })
}
