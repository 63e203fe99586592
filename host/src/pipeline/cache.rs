//! The response cache as a layer: GET and HEAD go through the build's
//! [`ResponseCache`](crate::response_cache::ResponseCache) (unless
//! `[cache] enabled = false`), with routing and the guest behind it. A
//! page rendered by name (`App::render`) is cached under its page and
//! query as well as its URL. Each lookup is counted by its result. Where
//! there is a cache, it owns `Cache-Tag`: the header never leaves the
//! server, whether or not the response was stored.

use super::RenderTarget;
use crate::body::ResponseFuture;
use crate::build::Build;
use crate::layer::layer;
use crate::metrics::CacheResult;
use crate::response_cache::CACHE_TAG;
use http::Method;

layer! {
    /// Puts the build's response cache in front of a service.
    pub(super) struct CacheLayer(());
    /// `S`, behind the response cache.
    struct Cache;
    fn call(this, request) {
        let Some(build) = Build::carried_by(&request).cloned() else {
            return Box::pin(this.inner.call(request));
        };
        let cacheable = request.method() == Method::GET || request.method() == Method::HEAD;
        let Some(cache) = build.cache.clone().filter(|_| cacheable) else {
            if build.cache.is_none() {
                return Box::pin(this.inner.call(request));
            }
            build.metrics.cache_lookup(CacheResult::Bypass);
            let response: ResponseFuture = Box::pin(this.inner.call(request));
            return Box::pin(async move {
                let mut response = response.await?;
                response.headers_mut().remove(CACHE_TAG);
                Ok(response)
            });
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
        let inner = this.inner.clone();
        Box::pin(async move {
            let span = crate::telemetry::child("response cache");
            let serve = cache.serve(request, &scope, inner);
            let mut response = crate::telemetry::within(span.as_ref().map(|s| s.context().clone()), serve).await;
            response.headers_mut().remove(CACHE_TAG);
            let result = match response.headers().get("x-cache").map(|v| v.as_bytes()) {
                Some(b"HIT") => CacheResult::Hit,
                Some(b"STALE") => CacheResult::Stale,
                Some(_) => CacheResult::Miss,
                None => CacheResult::Bypass,
            };
            if let Some(span) = &span {
                span.set("switchyard.cache.result", result.as_str());
            }
            build.metrics.cache_lookup(result);
            build.metrics.set_cache_bytes(cache.size());
            Ok(response)
        })
    }
}
