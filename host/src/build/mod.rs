//! The prepared build: what `App::prepare` makes (the compiled, linked,
//! pre-instantiated app, checked against the config, with its route table,
//! static files, response cache and the settings every request needs),
//! and [`Current`], the one place that holds the build in use. A dev-mode
//! reload swaps a new build in; requests in flight finish on the one they
//! started with, which they carry.

mod in_flight;
mod options;
mod resolved;
mod settings;

pub(crate) use in_flight::InFlight;
pub(crate) use options::Options;
pub(crate) use resolved::Resolved;
pub(crate) use settings::RequestSettings;

use crate::config::ConfigError;
use crate::data::keyvalue::OpenStores;
use crate::data::{Granted, Revalidator, Variables};
use crate::metrics::Metrics;
use crate::response_cache::{CacheSettings, ResponseCache};
use crate::routing::{RouteLabels, RouteTable};
use crate::static_files::PublicDir;
use crate::wasm::bindings::AppPre;
use crate::wasm::component;
use crate::wasm::composition::{self, Target};
use crate::wasm::engine::{self, EngineSettings};
use crate::wasm::kind::{self, AppKind, RENDERER_EXPORT, RouterKind};
use crate::wasm::middleware;
use crate::wasm::outgoing::{Grant, Outgoing, OwnAddresses};
use crate::wasm::p3::{P3Handler, P3Settings};
use crate::wasm::pool::{self, Pool};
use crate::wasm::store::{Host, StoreSettings};
use arc_swap::ArcSwapOption;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::error::Context;
use wasmtime::{Result, bail};
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// The wasi:http export that is the app's default handler, by version.
pub(crate) enum HttpExport {
    /// `wasi:http/incoming-handler@0.2.x`: the app's, or that of the routers
    /// composed in front of it.
    P2(ProxyPre<Host>),
    /// `wasi:http/handler@0.3.x`.
    P3(P3Handler),
}

/// A middleware of the chain in front of the app, linked by the host.
pub(crate) struct Middleware {
    pub(crate) path: PathBuf,
    pub(crate) handler: P3Handler,
}

/// The build in use, if `prepare` has made one.
#[derive(Default)]
pub(crate) struct Current(ArcSwapOption<Build>);

impl Current {
    /// The build in use, for as long as the caller holds it.
    pub(crate) fn load(&self) -> Option<Arc<Build>> {
        self.0.load_full()
    }

    /// `f` of the build in use, without holding it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Build) -> R) -> Option<R> {
        self.0.load().as_deref().map(f)
    }

    /// Put `build` in use.
    pub(crate) fn swap_in(&self, build: Build) {
        self.0.store(Some(Arc::new(build)));
    }
}

/// The prepared build: everything a request needs, shared by all of them.
pub(crate) struct Build {
    /// Which build of this process it is (1, 2, ...): dev mode tells
    /// open tabs by it whether their page is of the build in use.
    pub(crate) serial: u64,
    pub(crate) engine: Engine,
    /// What kind of app it is.
    pub(crate) kind: AppKind,
    /// The app's renderer, for `render` calls (Switchyard apps only).
    pub(crate) renderer: Option<AppPre<Host>>,
    /// The default handler: the app's wasi:http export.
    pub(crate) http: HttpExport,
    /// The middleware in front of it, outermost first: a request meets
    /// them in order, then `http`.
    pub(crate) middleware: Vec<Middleware>,
    pub(crate) store: StoreSettings,
    pub(crate) routes: RouteTable,
    /// The shared response cache, unless `[cache] enabled = false`.
    pub(crate) cache: Option<Arc<ResponseCache>>,
    /// Static files, if `public_dir` is set.
    pub(crate) public: Option<PublicDir>,
    /// What each request is served with, read once from the config.
    pub(crate) settings: RequestSettings,
    /// The requests in flight (`limits.max_concurrent_requests`).
    pub(crate) in_flight: InFlight,
    /// Idle app instances for `render` calls (`[performance] instance_reuse`).
    pub(crate) idle_renderers: Pool<crate::wasm::bindings::App>,
    /// Idle handler instances.
    pub(crate) idle_handlers: Pool<Proxy>,
    /// The app's page patterns, as its renderer lists them.
    pub(crate) pages: Vec<String>,
    /// The `http.route` of each request.
    pub(crate) route_labels: RouteLabels,
    /// The app's metrics (shared by its builds).
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) resolved: Resolved,
}

/// What every build of one app shares.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppShared {
    /// The addresses the app is served on, for the `self` grant.
    pub(crate) own: OwnAddresses,
    /// The app's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The app's open key-value stores.
    pub(crate) stores: Arc<OpenStores>,
}

impl Build {
    /// The build `request` carries down the pipeline.
    pub(crate) fn carried_by<B>(request: &http::Request<B>) -> Option<&Arc<Build>> {
        request.extensions().get::<Arc<Build>>()
    }

    /// Compile (or load from the cache), link and pre-instantiate the app,
    /// and check the routes against its pages. `shared` is what every
    /// build of the app shares.
    pub(crate) async fn new(resolved: Resolved, shared: &AppShared) -> Result<Self> {
        let config = &resolved.config;
        let routes = RouteTable::new(&config.routes, &config.redirects).map_err(|error| {
            ConfigError::invalid(&resolved.config_path(), &error.key, error.reason)
        })?;
        let limits = &config.limits;
        let app_bytes = component::read(&resolved.app)?;
        let kind = kind::detect(&app_bytes, &resolved.app)?;
        let routers = Routers::read(&resolved.routers)?;
        if kind == AppKind::P3Handler && !routers.composed.is_empty() {
            bail!(
                "{} cannot go in front of `{}`: it is a WASIp3 component (wasi:http/handler@0.3), \
                 and Switchyard routers import a wasi:http@0.2 incoming handler (a \
                 wasi:http/middleware@0.3 component can)",
                list(&routers.composed),
                resolved.app.display()
            );
        }
        let p3 = kind.needs_concurrency() || !routers.middleware.is_empty();
        // Each request in flight holds an instance of every link of the chain.
        let links = 1 + routers.middleware.len() as u32;
        let engine = engine::engine(&EngineSettings {
            // Room for the requests in flight, the idle instances kept for
            // reuse, and startup's own instance.
            max_instances: (limits.max_concurrent_requests)
                .saturating_add(2 * pool::MAX_IDLE)
                .saturating_mul(links)
                .saturating_add(1),
            max_memory: limits.max_memory,
            concurrency: p3,
        })?;
        let mut linker = engine::linker(&engine, p3)?;
        if !routers.middleware.is_empty() {
            middleware::add_to_linker(&mut linker)?;
        }
        let cache = resolved.cache_dir.as_deref();
        let app_name = format!("`{}`", resolved.app.display());
        let metrics = &shared.metrics;
        let component = component::compile(&engine, &app_bytes, &app_name, cache, metrics)?;
        let instance_pre = engine::link(&linker, &component, &app_name)?;
        let renderer = match kind {
            AppKind::Switchyard => Some(AppPre::new(instance_pre.clone()).with_context(|| {
                format!(
                    "{app_name} does not export the renderer Switchyard knows ({RENDERER_EXPORT})"
                )
            })?),
            AppKind::Proxy | AppKind::P3Handler => None,
        };
        let response_cache = response_cache(&resolved, &app_bytes)?;
        let store = store_settings(&resolved, shared, response_cache.clone())?;
        let performance = &config.performance;
        let p3_handler = |instance_pre, what: &str, max_concurrent: u32| -> Result<P3Handler> {
            let pre = ServicePre::new(instance_pre).with_context(|| {
                format!("{what} does not export the `wasi:http/handler@0.3.0` Switchyard serves")
            })?;
            Ok(P3Handler::new(
                pre,
                P3Settings {
                    engine: engine.clone(),
                    store: store.clone(),
                    timeout: limits.request_timeout,
                    max_uses: performance.instance_reuse as usize,
                    max_concurrent: max_concurrent as usize,
                    metrics: shared.metrics.clone(),
                },
            ))
        };
        let mut chain = Vec::new();
        for (path, bytes) in &routers.middleware {
            let what = format!("the middleware `{}`", path.display());
            let component = component::compile(&engine, bytes, &what, cache, metrics)?;
            let instance_pre = engine::link(&linker, &component, &what)?;
            chain.push(Middleware {
                path: path.clone(),
                // One request at a time: the link behind is the request's.
                handler: p3_handler(instance_pre, &what, 1)?,
            });
        }
        let http = if kind == AppKind::P3Handler {
            HttpExport::P3(p3_handler(
                instance_pre,
                &app_name,
                performance.instance_concurrency,
            )?)
        } else if routers.composed.is_empty() {
            HttpExport::P2(ProxyPre::new(instance_pre).with_context(|| {
                format!("{app_name} does not export `wasi:http/incoming-handler@0.2.x`")
            })?)
        } else {
            let composed = composition::compose_files(
                &resolved.app,
                &app_bytes,
                &routers.composed,
                Target::Switchyard,
            )?;
            let what = format!(
                "the composition of {} and {app_name}",
                list(&routers.composed)
            );
            let component = component::compile(&engine, &composed, &what, cache, metrics)?;
            let instance_pre = engine::link(&linker, &component, &what)?;
            HttpExport::P2(ProxyPre::new(instance_pre).with_context(|| {
                format!("{what} does not export `wasi:http/incoming-handler@0.2.x`")
            })?)
        };
        let public = match &config.public_dir {
            Some(dir) => Some(
                PublicDir::new(&config.resolve(dir), !resolved.dev, config.public_dotfiles)
                    .map_err(|error| {
                        ConfigError::invalid(
                            &resolved.config_path(),
                            "public_dir",
                            format!("`{}`: {error}", dir.display()),
                        )
                    })?,
            ),
            None => None,
        };
        static BUILDS: AtomicU64 = AtomicU64::new(0);
        let mut build = Self {
            serial: BUILDS.fetch_add(1, Ordering::Relaxed) + 1,
            engine,
            kind,
            renderer,
            http,
            middleware: chain,
            cache: response_cache,
            store,
            routes,
            public,
            settings: RequestSettings::new(&resolved),
            in_flight: InFlight::new(limits.max_concurrent_requests),
            idle_renderers: Pool::new(config.performance.instance_reuse),
            idle_handlers: Pool::new(config.performance.instance_reuse),
            pages: Vec::new(),
            route_labels: RouteLabels::default(),
            metrics: shared.metrics.clone(),
            resolved,
        };
        build.pages = build.list_pages().await?;
        let config = &build.resolved.config;
        let patterns = (config.redirects.iter().map(|r| r.source.as_str()))
            .chain(config.routes.iter().map(|r| r.path.as_str()));
        build.route_labels = RouteLabels::new(patterns, &build.pages);
        build.check_route_pages()?;
        check_memory_budget(&build.resolved, build.middleware.len() + 1)?;
        Ok(build)
    }

    /// The renderer's pages; none for an app without one.
    async fn list_pages(&self) -> Result<Vec<String>> {
        let Some(renderer) = &self.renderer else {
            return Ok(Vec::new());
        };
        let app = &self.resolved.app;
        let mut store = Host::store(&self.engine, &self.store)?;
        let run = async {
            let instance = renderer.instantiate_async(&mut store).await?;
            instance
                .switchyard_server_renderer()
                .call_pages(&mut store)
                .await
        };
        let timeout = self.settings.timeout;
        tokio::time::timeout(timeout, run)
            .await
            .with_context(|| {
                format!(
                    "`{}` did not list its pages within {timeout:?}",
                    app.display()
                )
            })?
            .with_context(|| format!("`{}` failed to list its pages", app.display()))
    }

    /// Every `[[routes]]` page must be one of the app's pages, and the
    /// app must have a renderer to render it.
    fn check_route_pages(&self) -> Result<(), ConfigError> {
        let config = &self.resolved.config;
        for (i, route) in config.routes.iter().enumerate() {
            if self.renderer.is_none() {
                return Err(ConfigError::invalid(
                    &self.resolved.config_path(),
                    &format!("routes[{i}].page"),
                    format!(
                        "route `{}` renders page `{}`, but the app `{}` is a {} with no \
                         `{RENDERER_EXPORT}` export: only Switchyard apps render pages by name",
                        route.path,
                        route.page,
                        self.resolved.app.display(),
                        self.kind
                    ),
                ));
            }
            if !self.pages.contains(&route.page) {
                return Err(ConfigError::invalid(
                    &self.resolved.config_path(),
                    &format!("routes[{i}].page"),
                    format!(
                        "the app `{}` has no page `{}`; its pages are {}",
                        self.resolved.app.display(),
                        route.page,
                        self.pages.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What every store gets: the settings the host passes on, and the grants.
/// The response cache, unless `[cache] enabled = false`; with its shared
/// tier when `[cache] shared` is set, namespaced by a digest of the app,
/// its routers, routes and variables (replicas of one build share it, two
/// builds do not).
fn response_cache(resolved: &Resolved, app_bytes: &[u8]) -> Result<Option<Arc<ResponseCache>>> {
    let config = &resolved.config;
    if !config.cache.enabled {
        return Ok(None);
    }
    let settings = CacheSettings {
        max_size: config.cache.max_size,
        max_entry_size: config.cache.max_entry_size,
        wait: config.limits.request_timeout,
    };
    let Some(url) = &config.cache.shared else {
        return Ok(Some(Arc::new(ResponseCache::new(settings))));
    };
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(app_bytes);
    for router in &resolved.routers {
        digest.update(component::read(router)?);
    }
    // What else decides a page: the routes and the variables' values.
    digest.update(format!(
        "{:?}{:?}{}",
        config.routes, config.redirects, config.use_file_system_public_routes
    ));
    for (name, variable) in &config.variables {
        digest.update(format!("{name}={:?}\n", variable.resolve()));
    }
    let namespace: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config_path = resolved.config_path();
    let url = config.redis_url(url, &config_path, "cache.shared")?;
    let cache = ResponseCache::shared(settings, &url, &namespace).map_err(|error| {
        ConfigError::invalid(
            &resolved.config_path(),
            "cache.shared",
            format!("{error:#}"),
        )
    })?;
    Ok(Some(cache))
}

fn store_settings(
    resolved: &Resolved,
    shared: &AppShared,
    cache: Option<Arc<ResponseCache>>,
) -> Result<StoreSettings> {
    let config = &resolved.config;
    let config_path = resolved.config_path();
    let data = Granted {
        stores: shared.stores.grant(config, &config_path)?,
        variables: Variables::resolve(config, &config_path)?,
        revalidator: Revalidator::new(cache),
    };
    let grants = &config.grants;
    let mut env: Vec<(String, String)> = grants.env.clone().into_iter().collect();
    for name in &grants.inherit_env {
        if let Ok(value) = std::env::var(name) {
            env.push((name.clone(), value));
        }
    }
    if !config.use_file_system_public_routes {
        env.push((
            "SWITCHYARD_USE_FILE_SYSTEM_PUBLIC_ROUTES".into(),
            "false".into(),
        ));
    }
    if resolved.dev {
        env.push(("SWITCHYARD_DEV".into(), "1".into()));
    }
    let mut dirs = Vec::new();
    for (guest, host) in &grants.dirs {
        let host = config.resolve(host);
        if !host.is_dir() {
            let key = format!("grants.dirs.{guest}");
            let reason = format!("`{}` is not a directory", host.display());
            return Err(ConfigError::invalid(&resolved.config_path(), &key, reason).into());
        }
        dirs.push((host, guest.clone()));
    }
    Ok(StoreSettings {
        env: Arc::from(env),
        dirs: Arc::from(dirs),
        outgoing_http: Outgoing::new(grants_of(resolved)?, shared.own.clone()),
        max_memory: usize::try_from(config.limits.max_memory).unwrap_or(usize::MAX),
        data,
    })
}

/// `max_concurrent_requests x max_memory` (x the `links` of the chain, each
/// with an instance of its own) against `limits.memory_budget` (default:
/// the machine's memory): an error past a budget that was set, a warning
/// past the machine's.
fn check_memory_budget(resolved: &Resolved, links: usize) -> Result<()> {
    let limits = &resolved.config.limits;
    let worst = u64::from(limits.max_concurrent_requests)
        .saturating_mul(limits.max_memory)
        .saturating_mul(links as u64);
    let (budget, what) = match limits.memory_budget {
        Some(budget) => (budget, "limits.memory_budget"),
        None => match crate::config::machine_memory() {
            Some(memory) => (memory, "the machine's memory"),
            None => return Ok(()),
        },
    };
    if worst <= budget {
        return Ok(());
    }
    let chain = match links {
        1 => String::new(),
        n => format!(" x {n} instances a request (the app and its middleware)"),
    };
    let message = format!(
        "limits.max_concurrent_requests ({}) x limits.max_memory ({}){chain} = {} is more than \
         {what} ({}): requests that all use their allowance at once would run out; lower one of \
         them, or set limits.memory_budget",
        limits.max_concurrent_requests,
        bytesize::ByteSize(limits.max_memory).display().iec(),
        bytesize::ByteSize(worst).display().iec(),
        bytesize::ByteSize(budget).display().iec(),
    );
    if limits.memory_budget.is_some() {
        return Err(
            ConfigError::invalid(&resolved.config_path(), "limits.memory_budget", message).into(),
        );
    }
    tracing::warn!("{message}");
    Ok(())
}

/// `[grants] outgoing_http`, parsed; a bad entry names its key.
fn grants_of(resolved: &Resolved) -> Result<Arc<[Grant]>> {
    let grants = &resolved.config.grants.outgoing_http;
    let parsed = grants
        .iter()
        .enumerate()
        .map(|(i, grant)| {
            Grant::parse(grant).map_err(|reason| {
                ConfigError::invalid(
                    &resolved.config_path(),
                    &format!("grants.outgoing_http[{i}]"),
                    reason,
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::from(parsed))
}

/// The routers, read and told apart: the middleware the host links, then
/// the Switchyard routers composed with the app (both outermost first).
struct Routers {
    middleware: Vec<(PathBuf, Vec<u8>)>,
    composed: Vec<PathBuf>,
}

impl Routers {
    fn read(paths: &[PathBuf]) -> Result<Self> {
        let mut routers = Routers {
            middleware: Vec::new(),
            composed: Vec::new(),
        };
        for path in paths {
            let bytes = component::read(path)?;
            match kind::detect_router(&bytes, path)? {
                RouterKind::Middleware => {
                    if let Some(router) = routers.composed.last() {
                        bail!(
                            "the middleware `{}` cannot go behind the router `{}`, which is \
                             composed with the app: list middleware first",
                            path.display(),
                            router.display()
                        );
                    }
                    routers.middleware.push((path.clone(), bytes));
                }
                RouterKind::Composed => routers.composed.push(path.clone()),
            }
        }
        Ok(routers)
    }
}

/// `` `a.wasm`, `b.wasm` ``
fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| format!("`{}`", path.display()))
        .collect::<Vec<_>>()
        .join(", ")
}
