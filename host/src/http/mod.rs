//! The HTTP side: the server (accept loop, connection limits, drain) and
//! one request's path through the host: admission, redirects and routes,
//! static files, the renderer or the guest's own handler, and the one place
//! a failure becomes a response; and dev mode's live reload.

pub(crate) mod access_log;
pub(crate) mod admission;
pub(crate) mod deadline;
pub(crate) mod dev;
pub mod error;
pub mod handler;
pub(crate) mod proxy;
pub(crate) mod render;
pub mod server;
