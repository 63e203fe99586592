//! `switchyard:server/revalidate`: a guest drops cached responses by path
//! or by tag (Next.js's `revalidatePath` and `revalidateTag`), through the
//! build's response cache, which tells the other replicas when it is shared.

use super::DataView;
use super::bindings::switchyard::server::revalidate::Host;
use crate::response_cache::ResponseCache;
use std::sync::Arc;

/// The longest path or tag a guest may revalidate.
const MAX_LENGTH: usize = 1024;

/// The response cache the guests of a build revalidate, if there is one.
#[derive(Clone, Default)]
pub(crate) struct Revalidator(Option<Arc<ResponseCache>>);

impl Revalidator {
    pub(crate) fn new(cache: Option<Arc<ResponseCache>>) -> Self {
        Self(cache)
    }
}

impl Host for DataView<'_> {
    async fn revalidate_path(&mut self, path: String) -> wasmtime::Result<Result<(), String>> {
        if !path.starts_with('/') || path.len() > MAX_LENGTH || path.contains(['?', '#']) {
            return Ok(Err(format!(
                "not a path to revalidate: it must start with `/`, have no query and be at most {MAX_LENGTH} bytes"
            )));
        }
        if path.chars().any(char::is_control) {
            return Ok(Err(
                "not a path to revalidate: it has control characters".into()
            ));
        }
        let Some(cache) = &self.granted.revalidator.0 else {
            return Ok(Ok(()));
        };
        Ok(cache.revalidate_path(&path).await)
    }

    async fn revalidate_tag(&mut self, tag: String) -> wasmtime::Result<Result<(), String>> {
        if !crate::response_cache::is_tag(&tag) {
            return Ok(Err(format!(
                "not a tag: it must be 1 to {} visible ASCII characters but `,`",
                crate::response_cache::MAX_TAG
            )));
        }
        let Some(cache) = &self.granted.revalidator.0 else {
            return Ok(Ok(()));
        };
        Ok(cache.revalidate_tag(&tag).await)
    }
}
