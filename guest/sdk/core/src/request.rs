//! The request a page reads: method, decoded path, path parameters, query,
//! headers, cookies and body (raw, as a form or as JSON).

use crate::NotFound;
use crate::bindings::switchyard::server::types::RequestInfo;
use anyhow::Context as _;
use serde::de::DeserializeOwned;
use std::str::FromStr;

/// A request as a page sees it.
///
/// For the default handler it is the incoming HTTP request; for
/// `renderer.render` it is the `request-info` the caller passed, with the
/// caller's query. Path parameters (`[id]` in `/posts/[id]`) are read with
/// [`Request::param`]; as in Next.js they are also query entries.
#[derive(Debug, Clone, Default)]
pub struct Request {
    method: String,
    path: String,
    raw_query: String,
    authority: Option<String>,
    query: Vec<(String, String)>,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    error: Option<String>,
}

impl Request {
    /// A request for `path` with `query`, as `renderer.render` builds it;
    /// with [`Request::with_header`], [`Request::with_param`] and
    /// [`Request::with_body`], what unit tests of pages call them with.
    ///
    /// ```
    /// use switchyard_guest::Request;
    ///
    /// let req = Request::new("GET", "/posts/7", vec![("q".into(), "rust".into())])
    ///     .with_param("id", "7")
    ///     .with_header("Cookie", "theme=dark");
    /// assert_eq!(req.param_as::<u32>("id").unwrap(), 7);
    /// assert_eq!(req.query("q"), Some("rust"));
    /// assert_eq!(req.cookie("theme").as_deref(), Some("dark"));
    /// ```
    pub fn new(method: &str, path: &str, query: Vec<(String, String)>) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            query,
            ..Self::default()
        }
    }

    /// Add a header (name in lower case).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Add a path parameter.
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    /// Set the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The HTTP method, upper case.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, percent-decoded.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the request was sent: host and port (`example.com:8080`), from
    /// the request target or its `Host` header. Any client can claim any
    /// host: use it to reach this same server, never to trust the client.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref().or_else(|| self.header("host"))
    }

    /// The path parameter `name` (`id` of `/posts/[id]`), percent-decoded;
    /// a catch-all (`[...slug]`) gives its first segment, see
    /// [`Request::params_all`].
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the path parameter `name`: one per segment of a
    /// catch-all (`/docs/[...slug]` at `/docs/a/b` gives `a`, `b`).
    pub fn params_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path parameter `name` parsed as a `T` (`req.param_as::<u32>("id")`).
    /// A missing or unparsable parameter is a [`NotFound`] error: the page
    /// answers with the app's 404 page, as a path that names nothing should.
    pub fn param_as<T>(&self, name: &str) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.param(name).ok_or_else(|| {
            anyhow::Error::new(NotFound).context(format!("no path parameter `{name}`"))
        })?;
        value.parse().map_err(|error| {
            anyhow::Error::new(NotFound).context(format!("path parameter `{name}`: {error}"))
        })
    }

    /// All query entries, in order (path parameters included, as Next.js
    /// merges them).
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// The first value of the query entry `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the query entry `name`, in order (`?tag=a&tag=b`).
    pub fn query_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query read into a `T` with serde, the way a GET form is read.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use switchyard_guest::{Request, parse_query};
    ///
    /// #[derive(Deserialize)]
    /// struct Search { q: String, page: Option<u32> }
    ///
    /// let req = Request::new("GET", "/search", parse_query("q=wasm+pages&page=2"));
    /// let search: Search = req.query_as().unwrap();
    /// assert_eq!((search.q.as_str(), search.page), ("wasm pages", Some(2)));
    /// ```
    pub fn query_as<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        serde_urlencoded::from_str(&encoded).context("invalid query")
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }

    /// All headers, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The value of cookie `name`, percent-decoded (as
    /// [`Response::with_cookie`](crate::Response::with_cookie) encodes it).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, value)| cookie::Cookie::split_parse_encoded(value.as_str()))
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value().to_string())
    }

    /// The request body (empty for `renderer.render`, and in a router, which
    /// leaves the body to the app).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body of a submitted form read into a `T` with serde: an HTML
    /// form (`application/x-www-form-urlencoded`) or JSON
    /// (`application/json`), told apart by `Content-Type`.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use switchyard_guest::Request;
    ///
    /// #[derive(Deserialize)]
    /// struct Message { name: String, text: String }
    ///
    /// let posted = Request::new("POST", "/api/messages", Vec::new())
    ///     .with_header("content-type", "application/x-www-form-urlencoded")
    ///     .with_body("name=Ada&text=Hello%2C+world");
    /// let message: Message = posted.form().unwrap();
    /// assert_eq!((message.name.as_str(), message.text.as_str()), ("Ada", "Hello, world"));
    /// ```
    pub fn form<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        let content_type = self.header("content-type").unwrap_or("");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-www-form-urlencoded" => {
                serde_urlencoded::from_bytes(&self.body).context("invalid form")
            }
            "application/json" => self.json(),
            _ => anyhow::bail!(
                "expected a form (application/x-www-form-urlencoded or application/json), got content-type `{content_type}`"
            ),
        }
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).context("invalid JSON body")
    }

    /// On the `/_error` page: the error's message, in dev mode only (in
    /// production the details stay in the server log).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// What the app and router SDKs change in a request as they route it; not
/// for pages.
#[doc(hidden)]
impl Request {
    /// The request a `render` call describes: `info`, with `query`.
    pub fn rendering(info: RequestInfo, query: Vec<(String, String)>) -> Self {
        Self {
            method: info.method,
            path: info.path,
            query,
            headers: info.headers,
            ..Self::default()
        }
    }

    /// The query as it came, undecoded (empty for a `render` call).
    pub fn raw_query(&self) -> &str {
        &self.raw_query
    }

    /// Set the (decoded) path.
    pub fn set_path(&mut self, path: String) {
        self.path = path;
    }

    /// Set the raw query and the entries parsed from it.
    pub fn set_raw_query(&mut self, raw_query: &str) {
        self.query = crate::parse_query(raw_query);
        self.raw_query = raw_query.to_string();
    }

    /// Set the path parameters, and replace the query entries of the same
    /// names with them, as Next.js merges route parameters into `query`.
    pub fn set_params(&mut self, params: Vec<(String, String)>) {
        self.query
            .retain(|(name, _)| !params.iter().any(|(param, _)| param == name));
        self.query.extend(params.iter().cloned());
        self.params = params;
    }

    /// Set the path parameters only (a `render` call reads them from the query).
    pub fn set_params_only(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }

    /// Show `error` to the `/_error` page.
    pub fn set_error(&mut self, error: Option<String>) {
        self.error = error;
    }

    /// Read everything but the body from a wasi:http request.
    pub(crate) fn from_head(
        method: String,
        path: &str,
        raw_query: &str,
        authority: Option<String>,
        headers: Vec<(String, String)>,
    ) -> Self {
        let mut request = Self {
            method,
            path: path.to_string(),
            authority,
            headers,
            ..Self::default()
        };
        request.set_raw_query(raw_query);
        request
    }

    pub(crate) fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
    }
}

#[cfg(test)]
mod tests {
    use super::Request;
    use serde::Deserialize;

    #[test]
    fn built_requests_read_back() {
        let request = Request::new(
            "POST",
            "/api/x",
            vec![("tag".into(), "a".into()), ("tag".into(), "b".into())],
        )
        .with_header("Content-Type", "application/json")
        .with_body(br#"{"n": 1}"#.to_vec());
        assert_eq!(request.query_all("tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(request.header("content-type"), Some("application/json"));
        let body: serde_json::Value = request.json().unwrap();
        assert_eq!(body["n"], 1);
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Message {
        name: String,
        text: String,
    }

    #[test]
    fn forms_read_urlencoded_and_json() {
        let form = Request::new("POST", "/", Vec::new())
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body("name=Ada+L&text=hi%21");
        let json = Request::new("POST", "/", Vec::new())
            .with_header("content-type", "application/json; charset=utf-8")
            .with_body(r#"{"name": "Ada L", "text": "hi!"}"#);
        let expected = Message {
            name: "Ada L".into(),
            text: "hi!".into(),
        };
        assert_eq!(form.form::<Message>().unwrap(), expected);
        assert_eq!(json.form::<Message>().unwrap(), expected);
        let plain = Request::new("POST", "/", Vec::new()).with_header("content-type", "text/plain");
        let error = plain.form::<Message>().unwrap_err().to_string();
        assert!(error.contains("text/plain"), "{error}");
        let missing = form.clone().with_body("name=x");
        assert!(missing.form::<Message>().is_err());
    }

    #[test]
    fn query_reads_into_a_struct() {
        #[derive(Deserialize)]
        struct Search {
            q: String,
            page: Option<u32>,
        }
        let request = Request::new("GET", "/", crate::parse_query("q=a+b&page=2"));
        let search: Search = request.query_as().unwrap();
        assert_eq!((search.q.as_str(), search.page), ("a b", Some(2)));
    }

    #[test]
    fn typed_params_fail_as_not_found() {
        let request = Request::new("GET", "/posts/x", Vec::new()).with_param("id", "x");
        let error = request.param_as::<u32>("id").unwrap_err();
        assert!(error.is::<crate::NotFound>());
        assert!(format!("{error:#}").contains("path parameter `id`"));
        assert!(
            request
                .param_as::<u32>("other")
                .unwrap_err()
                .is::<crate::NotFound>()
        );
    }

    #[test]
    fn cookies_are_read_and_decoded() {
        let request = Request::new("GET", "/", Vec::new())
            .with_header("cookie", "a=1; name=Ada%20L%3B; b=2")
            .with_header("cookie", "c=3");
        assert_eq!(request.cookie("name").as_deref(), Some("Ada L;"));
        assert_eq!(request.cookie("c").as_deref(), Some("3"));
        assert_eq!(request.cookie("missing"), None);
    }
}
