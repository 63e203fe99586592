//! The response cache as a layer: GET and HEAD go through the build's
//! [`ResponseCache`](crate::response_cache::ResponseCache) (unless
//! `[cache] enabled = false`), with routing and the guest behind it. A
//! page rendered by name (`App::render`) is cached under its page and
//! query as well as its URL.

use super::RenderTarget;
use crate::body::{Body, RequestBody, ResponseFuture};
use crate::build::Build;
use http::{Method, Request, Response};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Puts the build's response cache in front of a service.
#[derive(Debug, Clone, Copy)]
pub(super) struct CacheLayer;

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache(inner)
    }
}

/// `S`, behind the response cache.
#[derive(Clone)]
pub(super) struct Cache<S>(S);

impl<S> Service<Request<RequestBody>> for Cache<S>
where
    S: Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> ResponseFuture {
        let cacheable = request.method() == Method::GET || request.method() == Method::HEAD;
        let cache = Build::carried_by(&request).and_then(|build| build.cache.clone());
        let Some(cache) = cache.filter(|_| cacheable) else {
            return Box::pin(self.0.call(request));
        };
        let scope = match request.extensions().get::<RenderTarget>() {
            Some(target) => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&target.query)
                    .finish();
                format!("render {}?{query}\n", target.page)
            }
            None => String::new(),
        };
        let inner = self.0.clone();
        Box::pin(async move { Ok(cache.serve(request, &scope, inner).await) })
    }
}
