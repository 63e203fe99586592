//! The `next(options)` API: build an [`App`], `prepare` it, then serve it
//! with its [`request_handler`](App::request_handler) or render pages by
//! name with [`render`](App::render).

use crate::body::Body;
use crate::config::Config;
use crate::http::admission::Admitted;
use crate::http::error::Error;
use crate::http::handler::RequestHandler;
use crate::http::render::{self, RequestParts};
use crate::http::server::ServerSettings;
use crate::prepared::{Options, Shared};
use crate::routing::Pairs;
use crate::wasm::component;
use crate::wasm::kind::AppKind;
use http::{Request, Response};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::Result;

/// A Switchyard app: Next.js's `next({ dev, dir, hostname, port, conf, quiet })`.
///
/// Cheap to clone; clones share the prepared app.
#[derive(Clone)]
pub struct App {
    shared: Arc<Shared>,
}

/// Builds an [`App`]; every option has Next.js's default.
#[derive(Debug, Clone)]
pub struct AppBuilder {
    options: Options,
}

impl App {
    /// Start building an app.
    pub fn builder() -> AppBuilder {
        AppBuilder {
            options: Options {
                dir: PathBuf::from("."),
                cache_dir: component::default_cache_dir(),
                ..Options::default()
            },
        }
    }

    /// `app.prepare()`: load the config, compile (or load the cached) app
    /// component, link and pre-instantiate it, and check the routes against
    /// its pages. Every mistake is reported here, before a socket is bound.
    /// In dev mode it also starts watching the component and the config, and
    /// swaps each new build in as it lands.
    pub async fn prepare(&self) -> Result<()> {
        self.shared.prepare().await
    }

    /// `app.getRequestHandler()`: the handler for every request, applying the
    /// config's redirects and routes, then the app's default handler. May be
    /// taken before `prepare` completes; requests get 500 until it has.
    pub fn request_handler(&self) -> RequestHandler {
        RequestHandler::new(self.shared.clone())
    }

    /// `app.render(req, res, page, query)`: render the page named `page` (a
    /// pattern such as `/a` or `/posts/[id]`) with `query`, for `req`.
    ///
    /// A page that fails renders the app's `/_error` page with 500 and a page
    /// the app does not have renders its `/404` page with 404: both are
    /// `Ok`. `Err` is a failure of the guest itself (trap, timeout), or
    /// [`Error::NoRenderer`] for an app without the `renderer` export (a
    /// plain wasi:http component): turn it into a response with
    /// [`Error::into_response`] or your own. Counts against
    /// `limits.max_concurrent_requests` like any request.
    pub async fn render<B>(
        &self,
        req: &Request<B>,
        page: &str,
        query: Pairs,
    ) -> Result<Response<Body>, Error> {
        let prepared = self.shared.current().ok_or(Error::NotPrepared)?;
        let admitted = Admitted::new(prepared)?;
        render::render(&admitted, &RequestParts::new(req), page, &query).await
    }

    /// Dev mode: error responses show the error.
    pub fn is_dev(&self) -> bool {
        self.shared.options.dev
    }

    /// Quiet: request errors are not logged.
    pub fn is_quiet(&self) -> bool {
        self.shared.options.quiet
    }

    /// The host name to listen on: the option, else the config's `[server]`.
    /// `None` before `prepare`.
    pub fn hostname(&self) -> Option<String> {
        let options = &self.shared.options;
        self.shared.with_current(|prepared| {
            options
                .hostname
                .clone()
                .unwrap_or_else(|| prepared.resolved.config.server.hostname.clone())
        })
    }

    /// The port to listen on: the option, else the config's `[server]`.
    /// `None` before `prepare`.
    pub fn port(&self) -> Option<u16> {
        let options = &self.shared.options;
        self.shared
            .with_current(|prepared| options.port.unwrap_or(prepared.resolved.config.server.port))
    }

    /// How to serve it with [`server::serve`](crate::server::serve): the
    /// config's `[server]` and `[limits]` (after `prepare`).
    pub fn server_settings(&self) -> Option<ServerSettings> {
        self.shared
            .with_current(|prepared| ServerSettings::from_config(&prepared.resolved.config))
    }

    /// The app's page patterns, as its renderer lists them (after `prepare`).
    pub fn pages(&self) -> Vec<String> {
        self.shared
            .with_current(|prepared| prepared.pages.clone())
            .unwrap_or_default()
    }

    /// The effective route table as `(pattern, target)` lines (after `prepare`).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.shared
            .with_current(|prepared| prepared.routes.listing().to_vec())
            .unwrap_or_default()
    }

    /// What kind of wasi:http component the app is (after `prepare`).
    pub fn kind(&self) -> Option<AppKind> {
        self.shared.with_current(|prepared| prepared.kind)
    }

    /// The app component in use (after `prepare`).
    pub fn component(&self) -> Option<PathBuf> {
        self.shared
            .with_current(|prepared| prepared.resolved.app.clone())
    }

    /// The router components in front of the app, outermost first (after
    /// `prepare`).
    pub fn routers(&self) -> Vec<PathBuf> {
        self.shared
            .with_current(|prepared| prepared.resolved.routers.clone())
            .unwrap_or_default()
    }

    /// The effective configuration (after `prepare`).
    pub fn config(&self) -> Option<Config> {
        self.shared
            .with_current(|prepared| prepared.resolved.config.clone())
    }
}

impl AppBuilder {
    /// `dev`: error pages show the error, and the app reloads when its
    /// component changes.
    pub fn dev(mut self, dev: bool) -> Self {
        self.options.dev = dev;
        self
    }

    /// Dev mode's build command (run with `sh -c` in the config's
    /// directory) when a watched source changes, over the config's
    /// `[dev] build`. It also runs once in `prepare`.
    pub fn build_command(mut self, command: impl Into<String>) -> Self {
        self.options.build = Some(command.into());
        self
    }

    /// A glob of sources (relative to the config's directory) whose change
    /// reruns the build command, over the config's `[dev] watch`.
    pub fn watch(mut self, glob: impl Into<String>) -> Self {
        self.options.watch.push(glob.into());
        self
    }

    /// `dir`: the app's directory, where `switchyard.toml` and
    /// `build/app.wasm` are looked for. Default `.`.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.dir = dir.into();
        self
    }

    /// `hostname`: overrides the config's `[server] hostname`.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.options.hostname = Some(hostname.into());
        self
    }

    /// `port`: overrides the config's `[server] port`.
    pub fn port(mut self, port: u16) -> Self {
        self.options.port = Some(port);
        self
    }

    /// `conf`: the configuration, instead of reading `switchyard.toml`.
    pub fn conf(mut self, conf: Config) -> Self {
        self.options.conf = Some(conf);
        self
    }

    /// Read the configuration from this file instead of `dir/switchyard.toml`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.config_file = Some(path.into());
        self
    }

    /// `quiet`: do not log request errors.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.options.quiet = quiet;
        self
    }

    /// The app component, overriding the config's `app`.
    pub fn component(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.component = Some(path.into());
        self
    }

    /// Put a router component in front of the app's default handler (call
    /// again for a chain, outermost first). Overrides the config's `router`.
    pub fn router(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.routers.push(path.into());
        self
    }

    /// Where compiled components are cached (default: the user's cache
    /// directory); `None` compiles at every start.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.options.cache_dir = dir;
        self
    }

    /// The app, ready to `prepare`.
    pub fn build(self) -> App {
        App {
            shared: Shared::new(self.options),
        }
    }
}
