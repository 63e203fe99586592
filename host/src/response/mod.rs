//! What the host does to responses on their way out, whatever made them:
//! the shared cache (RFC 9111) and compression.

pub(crate) mod cache;
pub(crate) mod compress;
