//! The innermost service: the config's redirects and `[[routes]]`, then
//! static files, then the guest (a route's page, a page named by
//! `App::render`, or the app's own handler). Every failure on the way
//! becomes its response here, through [`Error::into_response`], the one
//! place that makes error responses.

use super::error::Error;
use super::{RenderTarget, guest};
use crate::body::{Body, RequestBody, ResponseFuture, full};
use crate::build::Build;
use crate::routing::Routed;
use http::{Request, Response, header};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use wasmtime::format_err;

/// Routes a request to what answers it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route;

impl Service<Request<RequestBody>> for Route {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> ResponseFuture {
        let Some(build) = Build::carried_by(&request).cloned() else {
            let response =
                Error::NotPrepared.into_response(&request.uri().to_string(), false, false);
            return Box::pin(async move { Ok(response) });
        };
        let target = request.extensions_mut().remove::<RenderTarget>();
        Box::pin(async move {
            // Formatted only for an error's log line.
            let uri = request.uri().clone();
            let answer = match target {
                Some(target) => {
                    guest::render(build.clone(), request, target.page, target.query).await
                }
                None => route(build.clone(), request).await,
            };
            Ok(answer.unwrap_or_else(|error| {
                let settings = &build.settings;
                error.into_response(&uri.to_string(), settings.dev, settings.quiet)
            }))
        })
    }
}

/// Redirect, render a route's page, serve a static file, or hand the
/// request to the app's handler.
async fn route(build: Arc<Build>, request: Request<RequestBody>) -> Result<Response<Body>, Error> {
    let uri = request.uri();
    match build.routes.route(uri.path(), uri.query().unwrap_or("")) {
        Some(Routed::Redirect { status, location }) => redirect(status, &location),
        Some(Routed::Page { page, query }) => guest::render(build, request, page, query).await,
        None => {
            let (head, body) = request.into_parts();
            if let Some(public) = &build.public
                && let Some(file) = public.serve(&head).await
            {
                return Ok(file);
            }
            guest::handle(build, Request::from_parts(head, body)).await
        }
    }
}

/// A redirect as Next.js sends it (308s also carry `Refresh`). A location
/// that is not a valid header is the config's fault: a logged 500.
fn redirect(status: u16, location: &str) -> Result<Response<Body>, Error> {
    let mut response = Response::builder()
        .status(status)
        .header(header::LOCATION, location)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if status == 308 {
        response = response.header("refresh", format!("0;url={location}"));
    }
    response
        .body(full(location.to_string()))
        .map_err(|error| Error::Host(format_err!("invalid redirect location: {error}")))
}
