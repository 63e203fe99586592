//! [`IntoResponse`]: what a page may return. A [`Response`], an askama
//! template, a string, [`Html`], [`Json`], a [`Redirect`], or any of them
//! with a status: `(404, template)`.
//!
//! The trait takes a marker type parameter, as axum's `Handler` does: a
//! blanket implementation for every askama template could not live beside
//! the one for `String` otherwise (askama might one day implement
//! `Template` for `String`). Callers never name the marker; the compiler
//! infers it.

use crate::Response;
use serde::Serialize;
use std::fmt::{Display, Write as _};
/// Something a page can answer with.
///
/// ```
/// use switchyard_guest::{Html, IntoResponse, Json, Redirect, Response};
///
/// fn status<Via>(response: impl IntoResponse<Via>) -> u16 {
///     response.into_response().unwrap().status
/// }
/// assert_eq!(status(Response::text("plain")), 200);
/// assert_eq!(status("text/plain, for it is not escaped"), 200);
/// assert_eq!(status(Html("<p>trusted markup</p>")), 200);
/// assert_eq!(status(Json(vec![1, 2, 3])), 200);
/// assert_eq!(status(Redirect::see_other("/thanks")), 303);
/// assert_eq!(status((404, "no such post")), 404);
/// ```
pub trait IntoResponse<Via = Direct> {
    /// The response (an error when rendering or serializing fails).
    fn into_response(self) -> anyhow::Result<Response>;
}

/// The markers that tell [`IntoResponse`]'s implementations apart.
pub mod via {
    use std::marker::PhantomData;

    /// Types that are responses by themselves.
    #[derive(Debug)]
    pub enum Direct {}

    /// askama templates.
    #[derive(Debug)]
    pub enum Template {}

    /// `(status, response)`.
    #[derive(Debug)]
    pub struct WithStatus<Via>(PhantomData<Via>);
}

use via::{Direct, WithStatus};

impl IntoResponse for Response {
    fn into_response(self) -> anyhow::Result<Response> {
        Ok(self)
    }
}

/// Plain text: a string is not escaped, so it is never sent as HTML (use
/// [`Html`] for markup you trust, or a template).
impl IntoResponse for String {
    fn into_response(self) -> anyhow::Result<Response> {
        Ok(Response::text(self))
    }
}

impl IntoResponse for &str {
    fn into_response(self) -> anyhow::Result<Response> {
        Ok(Response::text(self))
    }
}

/// An askama template, rendered as an HTML page (askama escapes what it prints).
#[cfg(feature = "askama")]
impl<T: askama::Template> IntoResponse<via::Template> for T {
    fn into_response(self) -> anyhow::Result<Response> {
        Ok(Response::html(self.render()?))
    }
}

/// `(status, response)`: any response with another status.
impl<Via, R: IntoResponse<Via>> IntoResponse<WithStatus<Via>> for (u16, R) {
    fn into_response(self) -> anyhow::Result<Response> {
        let (status, response) = self;
        Ok(response.into_response()?.with_status(status))
    }
}

/// An HTML page from markup you trust (anything `Display`): `Html(markup)`.
#[derive(Debug, Clone)]
pub struct Html<T>(pub T);

impl<T: Display> IntoResponse for Html<T> {
    fn into_response(self) -> anyhow::Result<Response> {
        let mut body = String::new();
        write!(body, "{}", self.0)?;
        Ok(Response::html(body))
    }
}

/// A JSON response: `Json(value)`.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> anyhow::Result<Response> {
        Response::json(&self.0)
    }
}

/// A redirect. After a form's POST, [`Redirect::see_other`] (303) makes the
/// browser GET the next page, so a reload does not post the form again.
#[derive(Debug, Clone)]
pub struct Redirect {
    status: u16,
    location: String,
}

impl Redirect {
    /// 303 See Other: GET `location` next (after a POST).
    pub fn see_other(location: impl Into<String>) -> Self {
        Self {
            status: 303,
            location: location.into(),
        }
    }

    /// 307 Temporary Redirect: repeat the request, method and body, at `location`.
    pub fn temporary(location: impl Into<String>) -> Self {
        Self {
            status: 307,
            location: location.into(),
        }
    }

    /// 308 Permanent Redirect (with `Refresh`, as Next.js sends it).
    pub fn permanent(location: impl Into<String>) -> Self {
        Self {
            status: 308,
            location: location.into(),
        }
    }
}

impl IntoResponse for Redirect {
    fn into_response(self) -> anyhow::Result<Response> {
        let response = Response::redirect(&self.location, self.status == 308);
        Ok(response.with_status(self.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(askama::Template)]
    #[template(source = "<p>{{ name }}</p>", ext = "html")]
    struct Hello<'a> {
        name: &'a str,
    }

    fn respond<Via>(page: impl IntoResponse<Via>) -> Response {
        page.into_response().unwrap()
    }

    #[test]
    fn templates_render_as_escaped_html() {
        let response = respond(Hello { name: "<b>" });
        assert_eq!(response.body, b"<p>&#60;b&#62;</p>");
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(respond((404, Hello { name: "x" })).status, 404);
    }

    #[test]
    fn strings_are_plain_text_and_html_is_opt_in() {
        let text = respond(String::from("<b>"));
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let html = respond(Html(format_args!("<b>{}</b>", 1)));
        assert_eq!(html.body, b"<b>1</b>");
    }

    #[test]
    fn redirects_carry_their_location() {
        let response = respond(Redirect::see_other("/thanks?x=1"));
        assert_eq!(
            (response.status, response.header("location")),
            (303, Some("/thanks?x=1"))
        );
        assert_eq!(response.header("refresh"), None);
        let permanent = respond(Redirect::permanent("/new"));
        assert_eq!(permanent.header("refresh"), Some("0;url=/new"));
    }

    #[test]
    fn json_serializes() {
        let response = respond(Json(serde_json::json!({"a": 1})));
        assert_eq!(response.body, br#"{"a":1}"#);
    }
}
