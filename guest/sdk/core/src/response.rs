//! Responses: HTML, JSON, text, redirects and cookies, with the headers
//! Next.js sends.

use crate::bindings::switchyard::server::types::Page;
use serde::Serialize;

/// What a server-rendered page sends: `Cache-Control` of a Next.js SSR page.
const SSR_CACHE_CONTROL: &str = "private, no-cache, no-store, max-age=0, must-revalidate";

/// A response a page returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, `content-type` and `body`, with room for
    /// the headers [`finish`](Self::finish) adds.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut headers = Vec::with_capacity(4);
        headers.push(("content-type".into(), content_type.into()));
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A 200 HTML page, with the `Cache-Control` of a server-rendered page.
    pub fn html(body: impl Into<String>) -> Self {
        let mut page = Self::new(200, "text/html; charset=utf-8", body.into());
        // Pushed, not `with_header`: the name is lower case and not there yet.
        page.headers
            .push(("cache-control".into(), SSR_CACHE_CONTROL.into()));
        page
    }

    /// A 200 JSON response (`application/json; charset=utf-8`).
    pub fn json(value: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Self::new(
            200,
            "application/json; charset=utf-8",
            serde_json::to_vec(value)?,
        ))
    }

    /// A 200 plain-text response.
    pub fn text(body: impl Into<String>) -> Self {
        Self::new(200, "text/plain; charset=utf-8", body.into())
    }

    /// A redirect to `location` (308 when `permanent`, else 307). A 308
    /// also carries `Refresh`, as Next.js sends it (and the host's
    /// `[[redirects]]` do).
    pub fn redirect(location: &str, permanent: bool) -> Self {
        let status = if permanent { 308 } else { 307 };
        let response = Self::new(status, "text/plain; charset=utf-8", location)
            .with_header("location", location);
        if permanent {
            response.with_header("refresh", &format!("0;url={location}"))
        } else {
            response
        }
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same response with header `name` set to `value` (replacing it).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_string()));
        self
    }

    /// The same response with one more header `name: value` (keeping
    /// those already there: `set-cookie`, `link`, `vary`...).
    pub fn append_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The same response tagged for on-demand revalidation: the server's
    /// response cache keeps the tags with it (a `Cache-Tag` header that
    /// never reaches the client), and
    /// [`revalidate_tag`](crate::revalidate_tag) drops every response of a
    /// tag.
    ///
    /// ```
    /// use switchyard_guest::Response;
    ///
    /// let response = Response::html("<h1>Post 1</h1>")
    ///     .with_header("cache-control", "public, s-maxage=60")
    ///     .cache_tags(&["posts", "post-1"]);
    /// assert_eq!(response.header("cache-tag"), Some("posts, post-1"));
    /// ```
    pub fn cache_tags(self, tags: &[&str]) -> Self {
        self.with_header("cache-tag", &tags.join(", "))
    }

    /// The same response setting `cookie` (a `Set-Cookie` header, name and
    /// value percent-encoded, as [`Request::cookie`](crate::Request::cookie)
    /// decodes them).
    ///
    /// ```
    /// use switchyard_guest::{Cookie, Response, SameSite};
    ///
    /// let cookie = Cookie::build(("name", "Ada L"))
    ///     .path("/")
    ///     .http_only(true)
    ///     .same_site(SameSite::Lax)
    ///     .max_age(switchyard_guest::cookie::time::Duration::days(30));
    /// let response = Response::html("ok").with_cookie(cookie);
    /// assert_eq!(
    ///     response.header("set-cookie"),
    ///     Some("name=Ada%20L; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000"),
    /// );
    /// ```
    pub fn with_cookie<'c>(self, cookie: impl Into<cookie::Cookie<'c>>) -> Self {
        let cookie = cookie.into();
        self.append_header("set-cookie", &cookie.encoded().to_string())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }

    /// Complete the headers for the wire: a strong `ETag` on a 200, then
    /// `304 Not Modified` when `if_none_match` has it, and `content-length`.
    /// On every page render's path: it formats by hand, with no `format!`.
    #[doc(hidden)]
    pub fn finish(mut self, if_none_match: Option<&str>) -> Self {
        if self.status == 200 && self.header("etag").is_none() {
            let etag = etag(&self.body);
            if if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag)) {
                self.status = 304;
                self.body.clear();
            }
            self.headers.push(("etag".into(), etag));
        }
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
        if self.status != 304 {
            let length = itoa::Buffer::new().format(self.body.len()).to_string();
            self.headers.push(("content-length".into(), length));
        }
        self
    }
}

impl From<Response> for Page {
    fn from(response: Response) -> Self {
        Page {
            status: response.status,
            headers: response.headers,
            body: response.body,
        }
    }
}

impl From<Page> for Response {
    fn from(page: Page) -> Self {
        Response {
            status: page.status,
            headers: page.headers,
            body: page.body,
        }
    }
}

/// A cheap, stable content hash for `ETag`s (not for security): FxHash's
/// rotate-xor-multiply, eight bytes at a time.
fn content_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    let hash = chunks.by_ref().fold(0, |hash, chunk| {
        mix(hash, u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
    });
    chunks
        .remainder()
        .iter()
        .fold(hash, |hash, &b| mix(hash, u64::from(b)))
}

/// The strong `ETag` of `body`: `"<content hash>-<length>"`, in hex.
fn etag(body: &[u8]) -> String {
    let mut etag = String::with_capacity(28);
    etag.push('"');
    push_hex(&mut etag, content_hash(body));
    etag.push('-');
    push_hex(&mut etag, body.len() as u64);
    etag.push('"');
    etag
}

/// Append `n` in lower-case hex, no leading zeros (as `{:x}` would).
fn push_hex(out: &mut String, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        let digit = (n >> (shift * 4)) & 0xf;
        out.push(char::from_digit(digit as u32, 16).expect("a hex digit"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_adds_length_and_etag() {
        let response = Response::html("hi").finish(None);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-length"), Some("2"));
        assert!(response.header("etag").unwrap().starts_with('"'));
    }

    #[test]
    fn matching_etag_gives_304_without_body() {
        let etag = Response::html("hi")
            .finish(None)
            .header("etag")
            .unwrap()
            .to_string();
        let response = Response::html("hi").finish(Some(&format!("\"x\", {etag}")));
        assert_eq!(response.status, 304);
        assert!(response.body.is_empty());
        assert_eq!(response.header("content-length"), None);
    }

    #[test]
    fn etags_follow_the_content() {
        let etag = |body: &str| {
            Response::html(body)
                .finish(None)
                .header("etag")
                .unwrap()
                .to_string()
        };
        assert_eq!(
            etag("same body, long enough"),
            etag("same body, long enough")
        );
        assert_ne!(
            etag("same body, long enough"),
            etag("same body, long enougH")
        );
        assert_ne!(etag("a"), etag("b"));
    }

    #[test]
    fn hex_is_formatted_as_std_does() {
        for n in [0, 1, 9, 10, 15, 16, 255, 4096, u64::MAX] {
            let mut hex = String::new();
            push_hex(&mut hex, n);
            assert_eq!(hex, format!("{n:x}"));
        }
    }

    #[test]
    fn errors_get_no_etag() {
        let response = Response::text("nope").with_status(404).finish(None);
        assert_eq!(response.header("etag"), None);
        assert_eq!(response.header("content-length"), Some("4"));
    }
}
