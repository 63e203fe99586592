//! Where things are, once the builder's options and the config file are
//! combined: the effective config, the app and router components.

use super::options::Options;
use crate::config::{CONFIG_FILE, Config, ConfigError};
use std::path::PathBuf;

/// Where things are, once the options and the config file are combined.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The effective configuration.
    pub(crate) config: Config,
    /// The config file it came from, if any.
    pub(crate) config_file: Option<PathBuf>,
    /// The app component.
    pub(crate) app: PathBuf,
    /// Router components in front of it, outermost first.
    pub(crate) routers: Vec<PathBuf>,
    /// Dev mode.
    pub(crate) dev: bool,
    /// Request errors are not logged.
    pub(crate) quiet: bool,
    /// Where compiled components are cached.
    pub(crate) cache_dir: Option<PathBuf>,
    /// Dev mode's build command, if any, and the source globs whose change
    /// reruns it.
    pub(crate) build_command: Option<String>,
    pub(crate) watch: Vec<String>,
}

impl Resolved {
    /// Combine the options: an explicit `conf` wins over `dir/switchyard.toml`,
    /// an explicit component over the config's `app`, which defaults to
    /// `dir/build/app.wasm`.
    pub(crate) fn from_options(options: &Options) -> Result<Self, ConfigError> {
        let dir = &options.dir;
        let overrides = &options.server_overrides;
        let default_file = dir.join(CONFIG_FILE);
        let (config, config_file) = match (&options.conf, &options.config_file) {
            (Some(config), file) => (config.clone(), file.clone()),
            (None, Some(file)) => (Config::load_with(file, overrides)?, Some(file.clone())),
            (None, None) if default_file.exists() => (
                Config::load_with(&default_file, overrides)?,
                Some(default_file),
            ),
            (None, None) if !overrides.is_empty() => {
                let mut config = Config::parse_with("", &default_file, overrides)?;
                config.base_dir = dir.clone();
                (config, None)
            }
            (None, None) => (
                Config {
                    base_dir: dir.clone(),
                    ..Config::default()
                },
                None,
            ),
        };
        let app = options
            .component
            .clone()
            .or_else(|| config.app.as_ref().map(|app| config.resolve(app)))
            .unwrap_or_else(|| dir.join("build").join("app.wasm"));
        let routers = if options.routers.is_empty() {
            config
                .router
                .iter()
                .map(|router| config.resolve(router))
                .collect()
        } else {
            options.routers.clone()
        };
        let mut config = config;
        if let Some(dir) = &options.data_dir {
            config.data_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        }
        let build_command = options.build.clone().or_else(|| config.dev.build.clone());
        let watch = if options.watch.is_empty() {
            config.dev.watch.clone()
        } else {
            options.watch.clone()
        };
        Ok(Self {
            config,
            config_file,
            app,
            routers,
            dev: options.dev,
            quiet: options.quiet,
            cache_dir: options.cache_dir.clone(),
            build_command,
            watch,
        })
    }

    /// The config file, or the name it would have, for messages.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(CONFIG_FILE))
    }
}
