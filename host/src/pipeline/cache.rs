//! The response cache as a layer: GET and HEAD go through the build's
//! [`ResponseCache`](crate::response_cache::ResponseCache) (unless
//! `[cache] enabled = false`), with routing and the guest behind it. A
//! page rendered by name (`App::render`) is cached under its page and
//! query as well as its URL.

use super::RenderTarget;
use crate::build::Build;
use crate::layer::layer;
use http::Method;

layer! {
    /// Puts the build's response cache in front of a service.
    pub(super) struct CacheLayer(());
    /// `S`, behind the response cache.
    struct Cache;
    fn call(this, request) {
        let cacheable = request.method() == Method::GET || request.method() == Method::HEAD;
        let cache = Build::carried_by(&request).and_then(|build| build.cache.clone());
        let Some(cache) = cache.filter(|_| cacheable) else {
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
        Box::pin(async move { Ok(cache.serve(request, &scope, inner).await) })
    }
}
