//! Comments on posts, kept in the key-value store the server grants as
//! `site` (`[keyvalue.site]` in switchyard.toml). Each comment is a key of
//! its own, numbered by an atomic counter, so two replicas adding comments
//! at once never lose one. A new comment revalidates its post's page, which
//! the server caches until then.

use crate::posts::POSTS;
use serde::{Deserialize, Serialize};
use switchyard_app::kv::Store;
use switchyard_app::{Redirect, Request, Response, Result, revalidate_path};

/// The store the site keeps its data in.
pub(crate) const STORE: &str = "site";
/// The most comments a post page shows (the newest).
const SHOWN: u64 = 100;
const MAX_AUTHOR: usize = 40;
const MAX_TEXT: usize = 2000;

/// A comment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Comment {
    pub(crate) author: String,
    pub(crate) text: String,
}

fn count_key(post: &str) -> String {
    format!("comments:{post}")
}

fn comment_key(post: &str, n: u64) -> String {
    format!("comments:{post}:{n}")
}

/// The newest comments of `post`, oldest first.
pub(crate) fn of(store: &Store, post: &str) -> Result<Vec<Comment>> {
    let count: u64 = store.get(&count_key(post))?.unwrap_or(0);
    let keys: Vec<String> = (count.saturating_sub(SHOWN) + 1..=count)
        .map(|n| comment_key(post, n))
        .collect();
    Ok(store.get_many(&keys)?.into_iter().flatten().collect())
}

#[derive(Deserialize)]
struct Form {
    post: String,
    author: String,
    text: String,
}

/// `POST /api/comments` (a form): store the comment, revalidate the post's
/// page, and go back to it (303, so a reload does not post again).
pub(crate) fn add(req: &Request) -> Result<Response> {
    if req.method() != "POST" {
        return Ok(Response::text("use POST")
            .with_status(405)
            .with_header("allow", "POST"));
    }
    let form: Form = req.form()?;
    let Some(post) = POSTS.iter().find(|post| post.id == form.post) else {
        return Ok(Response::text("no such post").with_status(404));
    };
    let (author, text) = (form.author.trim(), form.text.trim());
    let back = format!("/posts/{}", post.id);
    let problem = if author.is_empty() || text.is_empty() {
        Some("a name and a comment, please")
    } else if author.chars().count() > MAX_AUTHOR || text.chars().count() > MAX_TEXT {
        Some("too long")
    } else {
        None
    };
    if let Some(problem) = problem {
        let to = format!("{back}?problem={}#comments", problem.replace(' ', "+"));
        return switchyard_app::IntoResponse::into_response(Redirect::see_other(to));
    }
    let store = Store::open(STORE)?;
    let n = store.increment(&count_key(post.id), 1)?;
    let comment = Comment {
        author: author.to_string(),
        text: text.to_string(),
    };
    store.set(&comment_key(post.id, n), &comment)?;
    revalidate_path(&back)?;
    switchyard_app::IntoResponse::into_response(Redirect::see_other(format!("{back}#comments")))
}
