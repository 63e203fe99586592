//! `fetch`: outgoing HTTP from a page, the job of Next.js's
//! `getServerSideProps`. Blocking (a page renders in one call on WASIp2),
//! through `wasi:http/outgoing-handler`. The server must grant each host in
//! `[grants] outgoing_http`; a denied request says so.
//!
//! ```no_run
//! use serde::Deserialize;
//! use switchyard_guest::{Fetch, fetch};
//!
//! #[derive(Deserialize)]
//! struct Post { title: String }
//!
//! # fn main() -> switchyard_guest::Result<()> {
//! let posts: Vec<Post> = fetch("http://api.example.com/posts")?.ok()?.json()?;
//! let created = Fetch::post("http://api.example.com/posts")
//!     .json(&serde_json::json!({"title": "Hello"}))?
//!     .send()?;
//! assert_eq!(created.status, 201);
//! # Ok(())
//! # }
//! ```

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest response body [`Fetch::send`] reads unless told otherwise.
const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// GET `url` and read the whole response.
pub fn fetch(url: &str) -> anyhow::Result<Fetched> {
    Fetch::get(url).send()
}

/// An outgoing request, built step by step, sent with [`Fetch::send`].
#[derive(Debug, Clone)]
pub struct Fetch {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    max_body: usize,
}

/// A response to a [`Fetch`], body read whole.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL that was fetched.
    pub url: String,
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Fetch {
    /// A request with `method` (`GET`, `POST`, ...) to `url` (`http` or `https`).
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// A GET request to `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A POST request to `url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Send `value` as a JSON body.
    pub fn json(self, value: &impl Serialize) -> anyhow::Result<Self> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Send `value` as a form body (`application/x-www-form-urlencoded`).
    pub fn form(self, value: &impl Serialize) -> anyhow::Result<Self> {
        let body = serde_urlencoded::to_string(value)?;
        Ok(self
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body))
    }

    /// Read at most `bytes` of the response body (16 MiB unless set); a
    /// longer body fails the fetch.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Send the request and read the whole response. Any status is a
    /// success here; see [`Fetched::ok`].
    pub fn send(self) -> anyhow::Result<Fetched> {
        let url = self.url.clone();
        self.send_inner()
            .with_context(|| format!("fetch {} {url}", self.method))
    }

    fn send_inner(&self) -> anyhow::Result<Fetched> {
        let uri: http::Uri = self.url.parse().context("invalid URL")?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => bail!("only absolute http:// and https:// URLs can be fetched"),
        };
        let authority = uri.authority().context("the URL has no host")?.as_str();
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let fields: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
            .collect();
        let headers =
            Fields::from_list(&fields).map_err(|error| anyhow!("invalid header: {error:?}"))?;
        let request = OutgoingRequest::new(headers);
        request
            .set_method(&method(&self.method))
            .map_err(|()| anyhow!("invalid method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| anyhow!("invalid scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| anyhow!("invalid host `{authority}`"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| anyhow!("invalid path `{path}`"))?;
        let body = request.body().expect("a new request has a body");
        let future =
            outgoing_handler::handle(request, None).map_err(|code| explain(code, authority))?;
        crate::http::write_body(&body, &self.body)?;
        OutgoingBody::finish(body, None).map_err(|code| explain(code, authority))?;
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(explain(code, authority)),
            Some(Err(())) | None => bail!("the response was already taken"),
        };
        let status = response.status();
        let headers = crate::http::header_pairs(&response.headers());
        let incoming = response
            .consume()
            .map_err(|()| anyhow!("the response body was already taken"))?;
        let stream = incoming
            .stream()
            .map_err(|()| anyhow!("the response body was already taken"))?;
        let body = crate::http::read_to_end(&stream, self.max_body)?;
        Ok(Fetched {
            url: self.url.clone(),
            status,
            headers,
            body,
        })
    }
}

impl Fetched {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }

    /// This response if its status is 2xx, else an error naming the status.
    pub fn ok(self) -> anyhow::Result<Self> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            bail!("fetch {}: status {}", self.url, self.status)
        }
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.body).context("the body is not UTF-8")
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("fetch {}: invalid JSON", self.url))
    }
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

/// The wasi:http error, in words; a denied request names the grant it needs.
fn explain(code: ErrorCode, authority: &str) -> anyhow::Error {
    match code {
        ErrorCode::HttpRequestDenied => anyhow!(
            "outgoing HTTP to `{authority}` is not granted: add it to `outgoing_http` under `[grants]` in switchyard.toml"
        ),
        ErrorCode::DnsError(error) => anyhow!(
            "could not resolve `{authority}`: {}",
            error.rcode.unwrap_or_default()
        ),
        ErrorCode::ConnectionRefused => anyhow!("`{authority}` refused the connection"),
        ErrorCode::ConnectionTimeout => anyhow!("connecting to `{authority}` timed out"),
        other => anyhow!("{other:?}"),
    }
}
