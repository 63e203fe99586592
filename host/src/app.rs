//! The `next(options)` API: build an [`App`], `prepare` it, then serve it
//! with its [`request_handler`](App::request_handler) or render pages by
//! name with [`render`](App::render). Both go down the same request
//! pipeline ([`pipeline`](crate::pipeline)).

use crate::body::Body;
use crate::build::AppShared;
use crate::build::{Build, Current, Options, Resolved};
use crate::config::Config;
use crate::dev::{self, Dev};
use crate::metrics::Metrics;
use crate::pipeline::RequestHandler;
use crate::pipeline::error::Error;
use crate::routing::Pairs;
use crate::server::ServerSettings;
use crate::wasm::component;
use crate::wasm::kind::{AppKind, RouterKind};
use http::{Request, Response};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::Result;

/// A Switchyard app: Next.js's `next({ dev, dir, hostname, port, conf, quiet })`.
///
/// Cheap to clone; clones share the prepared app.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    options: Options,
    /// The build in use, once prepared.
    current: Arc<Current>,
    /// What its builds share: its own addresses, its metrics.
    shared: AppShared,
    /// Set on the first SIGTERM (`begin_shutdown`): `/readyz` says 503.
    shutting_down: std::sync::atomic::AtomicBool,
    /// Dev mode's state, in dev mode.
    dev: Option<Arc<Dev>>,
    handler: RequestHandler,
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
    /// In dev mode it also runs the build command, starts watching the
    /// sources, the component and the config, and swaps each new build in
    /// as it lands.
    pub async fn prepare(&self) -> Result<()> {
        let inner = &self.inner;
        match &inner.dev {
            Some(dev) => {
                dev.prepare(&inner.options, &inner.current, &inner.shared)
                    .await
            }
            None => {
                let resolved = Resolved::from_options(&inner.options)?;
                dev::check(&resolved)?;
                let build = Build::new(resolved, &inner.shared).await?;
                inner.current.swap_in(build);
                Ok(())
            }
        }
    }

    /// `app.getRequestHandler()`: the handler for every request, applying the
    /// config's redirects and routes, then the app's default handler. May be
    /// taken before `prepare` completes; requests get 500 until it has.
    pub fn request_handler(&self) -> RequestHandler {
        self.inner.handler.clone()
    }

    /// `app.render(req, res, page, query)`: render the page named `page` (a
    /// pattern such as `/a` or `/posts/[id]`) with `query`, for `req`.
    ///
    /// It goes down the same pipeline as every request: the response cache
    /// (keyed by the page and query as well as the URL), compression, dev
    /// mode's reload script and the access log all apply. A page that fails
    /// renders the app's `/_error` page with 500, a page the app does not
    /// have renders its `/404` page with 404, and a guest that traps or
    /// times out gets the server's 500 or 504, logged as for any request:
    /// all are `Ok`. `Err` is [`Error::NotPrepared`] before `prepare`, or
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
        let kind = self
            .inner
            .current
            .with(|build| build.renderer.is_none().then_some(build.kind))
            .ok_or(Error::NotPrepared)?;
        if let Some(kind) = kind {
            return Err(Error::NoRenderer(kind));
        }
        Ok(self.inner.handler.render(req, page, query).await)
    }

    /// Dev mode: error responses show the error.
    pub fn is_dev(&self) -> bool {
        self.inner.options.dev
    }

    /// Quiet: request errors are not logged.
    pub fn is_quiet(&self) -> bool {
        self.inner.options.quiet
    }

    /// `f` of the build in use; `None` before `prepare`.
    fn with_build<R>(&self, f: impl FnOnce(&Build) -> R) -> Option<R> {
        self.inner.current.with(f)
    }

    /// The host name to listen on: the option, else the config's `[server]`.
    /// `None` before `prepare`.
    pub fn hostname(&self) -> Option<String> {
        let options = &self.inner.options;
        self.with_build(|build| {
            options
                .hostname
                .clone()
                .unwrap_or_else(|| build.resolved.config.server.hostname.clone())
        })
    }

    /// The port to listen on: the option, else the config's `[server]`.
    /// `None` before `prepare`.
    pub fn port(&self) -> Option<u16> {
        let options = &self.inner.options;
        self.with_build(|build| options.port.unwrap_or(build.resolved.config.server.port))
    }

    /// How to serve it with [`server::serve`](crate::server::serve): the
    /// config's `[server]` and `[limits]` (after `prepare`).
    pub fn server_settings(&self) -> Option<ServerSettings> {
        self.with_build(|build| {
            ServerSettings::from_config(&build.resolved.config)
                .with_metrics(Some(self.inner.shared.metrics.clone()))
        })
    }

    /// The app's metrics: every request, guest instance, cache lookup and
    /// compile of its builds, and the connections of a server given its
    /// [`server_settings`](Self::server_settings).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.shared.metrics
    }

    /// Whether it should get requests: prepared, and not shutting down
    /// (what `/readyz` answers).
    pub fn is_ready(&self) -> bool {
        self.inner.current.with(|_| ()).is_some()
            && !self
                .inner
                .shutting_down
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Shutdown has begun (the first SIGTERM): from now on
    /// [`is_ready`](Self::is_ready) is `false`, so that load balancers stop
    /// sending requests while those in flight drain.
    pub fn begin_shutdown(&self) {
        self.inner
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The app's page patterns, as its renderer lists them (after `prepare`).
    pub fn pages(&self) -> Vec<String> {
        self.with_build(|build| build.pages.clone())
            .unwrap_or_default()
    }

    /// The effective route table as `(pattern, target)` lines (after `prepare`).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.with_build(|build| build.routes.listing().to_vec())
            .unwrap_or_default()
    }

    /// What kind of wasi:http component the app is (after `prepare`).
    pub fn kind(&self) -> Option<AppKind> {
        self.with_build(|build| build.kind)
    }

    /// The app component in use (after `prepare`).
    pub fn component(&self) -> Option<PathBuf> {
        self.with_build(|build| build.resolved.app.clone())
    }

    /// The router components in front of the app, outermost first (after
    /// `prepare`).
    pub fn routers(&self) -> Vec<PathBuf> {
        self.with_build(|build| build.resolved.routers.clone())
            .unwrap_or_default()
    }

    /// The chain in front of the app, outermost first, with each link's
    /// kind: the middleware the host links, then the routers composed with
    /// the app (after `prepare`).
    pub fn chain(&self) -> Vec<(PathBuf, RouterKind)> {
        self.with_build(|build| {
            let middleware = build.middleware.len();
            (build.resolved.routers.iter().enumerate())
                .map(|(i, path)| {
                    let kind = match i < middleware {
                        true => RouterKind::Middleware,
                        false => RouterKind::Composed,
                    };
                    (path.clone(), kind)
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The effective configuration (after `prepare`).
    pub fn config(&self) -> Option<Config> {
        self.with_build(|build| build.resolved.config.clone())
    }

    /// Where the prepared app keeps its data (the config's `data_dir`,
    /// resolved).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.with_build(|build| {
            let config = &build.resolved.config;
            config.resolve(&config.data_dir)
        })
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

    /// The configuration `prepare` will use: the config file (or `conf`),
    /// with the [`server_overrides`](Self::server_overrides) over it; an
    /// error names the file, the key and the reason.
    pub fn load_config(&self) -> Result<Config> {
        Ok(Resolved::from_options(&self.options)?.config)
    }

    /// `[server]` keys that override the config file's, as the
    /// `SWITCHYARD_SERVER_*` environment variables give them
    /// ([`config::server_overrides`](crate::config::server_overrides)).
    pub fn server_overrides(mut self, overrides: Vec<crate::config::ServerOverride>) -> Self {
        self.options.server_overrides = overrides;
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

    /// Where the app's data lives (its embedded key-value stores),
    /// overriding the config's `data_dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.data_dir = Some(dir.into());
        self
    }

    /// The app, ready to `prepare`.
    pub fn build(self) -> App {
        let current = Arc::new(Current::default());
        let shared = AppShared::default();
        let dev = self.options.dev.then(Dev::new);
        let handler = RequestHandler::new(
            current.clone(),
            shared.own.clone(),
            dev.clone(),
            self.options.quiet,
        );
        App {
            inner: Arc::new(Inner {
                options: self.options,
                current,
                shared,
                shutting_down: std::sync::atomic::AtomicBool::new(false),
                dev,
                handler,
            }),
        }
    }
}
