//! The response cache as a layer: GET and HEAD go through the build's
//! [`ResponseCache`](crate::response_cache::ResponseCache) (unless
//! `[cache] enabled = false`), with routing and the guest behind it. A
//! page rendered by name (`App::render`) is cached under its page and
//! query as well as its URL. Each lookup is counted by its result.

use super::RenderTarget;
use crate::build::Build;
use crate::layer::layer;
use crate::metrics::CacheResult;
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
            if build.cache.is_some() {
                build.metrics.cache_lookup(CacheResult::Bypass);
            }
            return Box::pin(this.inner.call(request));
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
            let response = crate::telemetry::within(span.as_ref().map(|s| s.context().clone()), serve).await;
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
