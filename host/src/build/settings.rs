//! What every request of a build is served with, read once from the
//! options and the config when the build is prepared.

use super::Resolved;
use std::time::Duration;

/// The per-request settings of a build.
#[derive(Debug, Clone)]
pub(crate) struct RequestSettings {
    /// Dev mode: error responses show the error.
    pub(crate) dev: bool,
    /// Request errors are not logged.
    pub(crate) quiet: bool,
    /// `[server] access_log`.
    pub(crate) access_log: bool,
    /// `[server] compression`.
    pub(crate) compression: bool,
    /// `limits.request_timeout`.
    pub(crate) timeout: Duration,
    /// `limits.max_request_body`.
    pub(crate) max_request_body: u64,
    /// `[server] body_read_timeout`.
    pub(crate) body_read_timeout: Duration,
}

impl RequestSettings {
    pub(crate) fn new(resolved: &Resolved) -> Self {
        let config = &resolved.config;
        Self {
            dev: resolved.dev,
            quiet: resolved.quiet,
            access_log: config.server.access_log,
            compression: config.server.compression,
            timeout: config.limits.request_timeout,
            max_request_body: config.limits.max_request_body,
            body_read_timeout: config.server.body_read_timeout,
        }
    }
}
