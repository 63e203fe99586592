//! The request a page reads: method, decoded path, query, headers, body.

#[cfg(not(feature = "router"))]
use crate::bindings::switchyard::server::types::RequestInfo;

/// A request as a page sees it.
///
/// For the default handler it is the incoming HTTP request; for
/// `renderer.render` it is the `request-info` the caller passed, with the
/// caller's query. Dynamic route parameters (`[id]`) are query entries.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) raw_query: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) error: Option<String>,
}

impl Request {
    /// A request for `path` with `query`, as `renderer.render` builds it;
    /// with [`Request::with_header`] and [`Request::with_body`], what unit
    /// tests of pages call them with.
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

    /// Set the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
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

    /// All query entries, in order (route parameters included).
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

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The request body (empty for `renderer.render`, and in a router, which
    /// leaves the body to the app).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// On the `/_error` page: the error's message, in dev mode only (in
    /// production the details stay in the server log).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Replace query entries named like `params` with the parameters, as
    /// Next.js merges route parameters into `query`.
    #[cfg(not(feature = "router"))]
    pub(crate) fn merge_params(&mut self, params: Vec<(String, String)>) {
        self.query
            .retain(|(name, _)| !params.iter().any(|(param, _)| param == name));
        self.query.extend(params);
    }
}

#[cfg(not(feature = "router"))]
impl Request {
    /// The request a `render` call describes: `info`, with `query`.
    pub(crate) fn rendering(info: RequestInfo, query: Vec<(String, String)>) -> Self {
        Self {
            method: info.method,
            path: info.path,
            raw_query: String::new(),
            query,
            headers: info.headers,
            body: Vec::new(),
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

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
}
