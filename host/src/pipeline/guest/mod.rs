//! The guest's turn: a request admitted once (or refused with 503), then a
//! page rendered by name through the app's `renderer` ([`render`]) or the
//! request handed to the app's wasi:http handler, p2 or p3 ([`handler`]).

mod admission;
mod handler;
mod render;

use super::error::Error;
use crate::body::{Body, RequestBody};
use crate::build::Build;
use crate::routing::Pairs;
use admission::Admitted;
use http::{Request, Response};
use std::sync::Arc;

/// Render `page` with `query` for `request`.
pub(super) async fn render(
    build: Arc<Build>,
    request: Request<RequestBody>,
    page: String,
    query: Pairs,
) -> Result<Response<Body>, Error> {
    let admitted = Admitted::new(build)?;
    // What a page is told of the request is its head.
    let (head, _body) = request.into_parts();
    let parts = render::RequestParts::new(&head);
    render::render(&admitted, &parts, &page, &query).await
}

/// Answer `request` with the app's own handler.
pub(super) async fn handle(
    build: Arc<Build>,
    request: Request<RequestBody>,
) -> Result<Response<Body>, Error> {
    handler::handle(Admitted::new(build)?, request).await
}
