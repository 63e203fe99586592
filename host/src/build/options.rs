//! The options given to `App::builder()`, as Next.js's `next(options)`.

use crate::config::Config;
use std::path::PathBuf;

/// The builder's options; each `None` or empty falls back to the config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub(crate) dev: bool,
    pub(crate) dir: PathBuf,
    pub(crate) hostname: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) conf: Option<Config>,
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) quiet: bool,
    pub(crate) component: Option<PathBuf>,
    pub(crate) routers: Vec<PathBuf>,
    pub(crate) cache_dir: Option<PathBuf>,
    /// Where the app's data lives, over the config's `data_dir`.
    pub(crate) data_dir: Option<PathBuf>,
    /// Dev mode's build command, over the config's `[dev] build`.
    pub(crate) build: Option<String>,
    /// Dev mode's watched source globs, over the config's `[dev] watch`.
    pub(crate) watch: Vec<String>,
    /// `[server]` keys from the environment, over the config file's.
    pub(crate) server_overrides: Vec<crate::config::ServerOverride>,
}
