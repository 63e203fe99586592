//! `app.render(req, res, page, query)`: call the guest's typed `renderer`
//! export (in a fresh instance, or an idle one with instance reuse) and turn
//! the page into a response. The app owns its fallbacks (`/404`,
//! `/_error`); the host owns the framing: the page's own framing and
//! hop-by-hop headers are dropped, and the length is the body's.

use crate::body::{Body, full};
use crate::build::Build;
use crate::metrics::InstanceEvent;
use crate::pipeline::error::Error;
use crate::routing::Pairs;
use crate::telemetry;
use crate::wasm::bindings::{Page, RequestInfo};
use crate::wasm::store::Host;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use std::borrow::Cow;
use wasmtime::bail;
use wasmtime::error::Context;
use wasmtime::format_err;

/// Headers of a message's framing and of one connection: the host's to set.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    HeaderName::from_static("keep-alive"),
];

/// Render `page` with `query`. A page the app does not have renders the
/// app's `/404` page with status 404, as in Next.js (the app does it).
pub(super) async fn render(
    build: &Build,
    request: &RequestParts<'_>,
    page: &str,
    query: &Pairs,
) -> Result<Response<Body>, Error> {
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_ref()))
        .collect();
    let info = RequestInfo {
        method: request.method,
        path: &request.path,
        headers: &headers,
    };
    match call(build, page, &query, info).await? {
        Ok(rendered) => Ok(to_response(rendered)?),
        Err(message) => Err(Error::Guest(format_err!("page `{page}` failed: {message}"))),
    }
}

/// One `renderer.render` call, bounded by the timeout, in an idle instance
/// when reuse is on, else a fresh one.
async fn call(
    build: &Build,
    page: &str,
    query: &[(&str, &str)],
    info: RequestInfo<'_>,
) -> Result<Result<Page, String>, Error> {
    let renderer = build
        .renderer
        .as_ref()
        .ok_or(Error::NoRenderer(build.kind))?;
    let run = async {
        let mut reusable = build
            .idle_renderers
            .take_or(|| Host::store(&build.engine, &build.store))
            .map_err(Error::Host)?;
        reusable
            .store
            .data_mut()
            .serving(info.method, info.path, telemetry::current());
        let app = match reusable.instance.take() {
            Some(app) => {
                build.metrics.instance(InstanceEvent::Reused);
                app
            }
            None => {
                build.metrics.instance(InstanceEvent::Created);
                let _span = telemetry::child("instantiate");
                renderer.instantiate_async(&mut reusable.store).await?
            }
        };
        let span = telemetry::child("guest render");
        if let Some(span) = &span {
            span.set("switchyard.page", page.to_string());
        }
        let rendered = app
            .switchyard_server_renderer()
            .call_render(&mut reusable.store, page, query, info)
            .await
            .inspect_err(|error| telemetry::failed(span.as_ref(), error))?;
        drop(span);
        reusable.instance = Some(app);
        // Only an instance that returned normally may serve again.
        build.idle_renderers.give_back(reusable);
        Ok::<_, wasmtime::Error>(rendered)
    };
    match tokio::time::timeout(build.settings.timeout, run).await {
        Ok(Ok(rendered)) => Ok(rendered),
        Ok(Err(error)) => {
            build.metrics.instance(InstanceEvent::Trapped);
            Err(error.into())
        }
        Err(_elapsed) => {
            build.metrics.instance(InstanceEvent::TimedOut);
            Err(Error::Timeout(build.settings.timeout))
        }
    }
}

/// The page as a response: a final status (200 to 999), its headers but
/// the framing ones, and the length of its body. The header strings are
/// moved, not copied.
fn to_response(page: Page) -> wasmtime::Result<Response<Body>> {
    if !(200..=999).contains(&page.status) {
        bail!("the rendered page has an invalid status {}", page.status);
    }
    let mut response = Response::new(full(page.body));
    *response.status_mut() = StatusCode::from_u16(page.status)
        .with_context(|| format!("the rendered page has an invalid status {}", page.status))?;
    let headers = response.headers_mut();
    headers.reserve(page.headers.len());
    for (name, value) in page.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .with_context(|| format!("the rendered page has an invalid header name `{name}`"))?;
        if HOP_BY_HOP.contains(&name) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(Bytes::from(value))
            .with_context(|| format!("the rendered page has an invalid value for `{name}`"))?;
        headers.append(name, value);
    }
    Ok(response)
}

/// What the renderer is told of the request (method, decoded path,
/// headers), borrowed from it where it can be.
pub(super) struct RequestParts<'a> {
    method: &'a str,
    path: Cow<'a, str>,
    headers: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> RequestParts<'a> {
    pub(super) fn new(request: &'a http::request::Parts) -> Self {
        let path = percent_encoding::percent_decode_str(request.uri.path()).decode_utf8_lossy();
        let headers = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes())))
            .collect();
        Self {
            method: request.method.as_str(),
            path,
            headers,
        }
    }
}
