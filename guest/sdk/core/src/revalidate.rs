//! On-demand revalidation, Next.js's `revalidatePath` and `revalidateTag`:
//! after a write, drop what the server's response cache holds for a path
//! or a tag (on every replica, when they share a cache). A page tags its
//! response with [`Response::cache_tags`](crate::Response::cache_tags).
//!
//! ```no_run
//! # fn main() -> switchyard_guest::Result<()> {
//! switchyard_guest::revalidate_path("/posts/1")?;
//! switchyard_guest::revalidate_tag("posts")?;
//! # Ok(())
//! # }
//! ```

use crate::bindings::switchyard::server::revalidate;
use anyhow::{Context as _, anyhow};

/// Drop what is cached for `path` (every query and variant of it).
pub fn revalidate_path(path: &str) -> anyhow::Result<()> {
    revalidate::revalidate_path(path)
        .map_err(|reason| anyhow!(reason))
        .with_context(|| format!("failed to revalidate `{path}`"))
}

/// Drop every cached response tagged `tag`.
pub fn revalidate_tag(tag: &str) -> anyhow::Result<()> {
    revalidate::revalidate_tag(tag)
        .map_err(|reason| anyhow!(reason))
        .with_context(|| format!("failed to revalidate the tag `{tag}`"))
}
