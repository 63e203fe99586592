//! A form that POSTs: `/profile` shows it, `/api/profile` reads it, sets a
//! cookie and redirects back with 303 (post, redirect, get).

use crate::Visitor;
use askama::Template;
use serde::Deserialize;
use switchyard_app::{Cookie, Redirect, Request, Response, Result, SameSite};

/// The cookie that remembers the visitor's name.
pub(crate) const NAME_COOKIE: &str = "name";
const MAX_NAME: usize = 40;

#[derive(Template)]
#[template(path = "profile.html")]
pub(crate) struct Page {
    visitor: Visitor,
    saved: bool,
    problem: Option<String>,
}

/// `/profile`: the form, and what the last post did.
pub(crate) fn page(req: &Request) -> Result<Page> {
    Ok(Page {
        visitor: Visitor::of(req),
        saved: req.query("saved").is_some(),
        problem: req.query("problem").map(str::to_string),
    })
}

#[derive(Deserialize)]
struct Form {
    name: String,
}

/// `POST /api/profile` (a form or JSON): remember the name in a cookie for
/// a year, or forget it when empty; then back to `/profile`.
pub(crate) fn save(req: &Request) -> Result<Response> {
    if req.method() != "POST" {
        return Ok(Response::text("use POST")
            .with_status(405)
            .with_header("allow", "POST"));
    }
    let form: Form = req.form()?;
    let name = form.name.trim();
    if name.chars().count() > MAX_NAME {
        let redirect = Redirect::see_other(format!(
            "/profile?problem=longer+than+{MAX_NAME}+characters"
        ));
        return switchyard_app::IntoResponse::into_response(redirect);
    }
    let mut cookie = Cookie::build((NAME_COOKIE, name.to_string()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax);
    cookie = if name.is_empty() {
        cookie.max_age(switchyard_app::cookie::time::Duration::ZERO)
    } else {
        cookie.max_age(switchyard_app::cookie::time::Duration::days(365))
    };
    let back =
        switchyard_app::IntoResponse::into_response(Redirect::see_other("/profile?saved=1"))?;
    Ok(back.with_cookie(cookie))
}
