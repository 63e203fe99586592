//! What kind of wasi:http component an app is, read from its exports before
//! anything is compiled (a WASIp3 component needs an engine with concurrency
//! support, which costs every p2 instance; see [`AppKind::needs_concurrency`]).

use std::fmt;
use std::path::Path;
use wasmparser::{Parser, Payload};
use wasmtime::error::Context;
use wasmtime::{Result, bail};

/// The WASIp2 handler export a proxy has: `wasi:http/incoming-handler@0.2.x`.
pub(crate) const P2_HANDLER: &str = "wasi:http/incoming-handler@0.2.";
/// The WASIp3 handler export: `wasi:http/handler@0.3.x` (or a release
/// candidate of it).
const P3_HANDLER: &str = "wasi:http/handler@0.3.";
/// Our typed export: `switchyard:server/renderer`, any version.
pub(crate) const RENDERER: &str = "switchyard:server/renderer@";
/// The full name of the renderer export, for messages.
pub(crate) const RENDERER_EXPORT: &str = "switchyard:server/renderer@0.2.0";

/// The kinds of app Switchyard serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// A `wasi:http/proxy@0.2.x` component, whatever built it: served
    /// through its incoming handler.
    Proxy,
    /// A Switchyard app: a proxy that also exports `switchyard:server/renderer`,
    /// so config routes, `App::render` and routers can render its pages.
    Switchyard,
    /// A WASIp3 component exporting `wasi:http/handler@0.3.x`: served through
    /// its handler (preferred over a p2 export, like `wasmtime serve`).
    P3Handler,
}

impl AppKind {
    /// Whether the engine needs the component model's concurrency support.
    pub(crate) fn needs_concurrency(self) -> bool {
        self == AppKind::P3Handler
    }

    /// Whether the app exports `switchyard:server/renderer`.
    pub fn has_renderer(self) -> bool {
        self == AppKind::Switchyard
    }

    /// One line: the kind and what it enables.
    pub fn describe(self) -> &'static str {
        match self {
            AppKind::Proxy => {
                "a wasi:http/proxy@0.2 component: served through its incoming handler, with every \
                 host feature but page rendering (no `switchyard:server/renderer` export)"
            }
            AppKind::Switchyard => {
                "a Switchyard app (wasi:http/proxy@0.2 + switchyard:server/renderer): its handler, \
                 config routes that render pages, `App::render` and routers"
            }
            AppKind::P3Handler => {
                "a WASIp3 component (wasi:http/handler@0.3): served through its handler, with every \
                 host feature but page rendering; one instance may serve requests concurrently"
            }
        }
    }
}

/// The kinds of router Switchyard puts in front of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterKind {
    /// A `wasi:http/middleware@0.3.x` component: linked by the host to the
    /// next link, in instances of its own, in front of any kind of app.
    Middleware,
    /// A `switchyard:server/router` component (wasi:http@0.2): composed
    /// with the app it imports the handler and renderer of.
    Composed,
}

impl RouterKind {
    /// What it is and how it is put in front of the app.
    pub fn describe(self) -> &'static str {
        match self {
            RouterKind::Middleware => "wasi:http/middleware@0.3, linked by the host",
            RouterKind::Composed => "switchyard:server/router, composed with the app",
        }
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouterKind::Middleware => "middleware",
            RouterKind::Composed => "router",
        })
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppKind::Proxy => "wasi:http proxy (p2)",
            AppKind::Switchyard => "Switchyard app",
            AppKind::P3Handler => "wasi:http handler (p3)",
        })
    }
}

/// The top-level import and export names of a component.
#[derive(Debug, Default)]
pub(crate) struct Interface {
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
}

impl Interface {
    /// Read the names from `bytes`, a component; nested components and
    /// modules are skipped.
    pub(crate) fn read(bytes: &[u8]) -> Result<Self> {
        let mut interface = Interface::default();
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(imports) if depth == 0 => {
                    for import in imports {
                        interface.imports.push(import?.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(exports) if depth == 0 => {
                    for export in exports {
                        interface.exports.push(export?.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(interface)
    }

    pub(crate) fn exports_any(&self, prefix: &str) -> bool {
        self.exports.iter().any(|name| name.starts_with(prefix))
    }

    pub(crate) fn imports_any(&self, prefix: &str) -> bool {
        self.imports.iter().any(|name| name.starts_with(prefix))
    }

    /// The kind of router this is, or why it is none: `path` names it.
    pub(crate) fn router_kind(&self, path: &Path) -> Result<RouterKind> {
        let path = path.display();
        if self.exports_any(P3_HANDLER) {
            if self.imports_any(P3_HANDLER) {
                return Ok(RouterKind::Middleware);
            }
            bail!(
                "`{path}` is not a router: it exports `wasi:http/handler@0.3.x` but does not import \
                 it to call the app (target the `wasi:http/middleware@0.3.0` world)"
            );
        }
        if self.exports_any(P2_HANDLER) {
            if self.imports_any(P2_HANDLER) || self.imports_any(RENDERER) {
                return Ok(RouterKind::Composed);
            }
            bail!(
                "`{path}` is not a router: it imports neither `wasi:http/incoming-handler@0.2.12` \
                 nor `switchyard:server/renderer@0.2.0` from the app (target the \
                 `switchyard:server/router` world, or `wasi:http/middleware@0.3.0`)"
            );
        }
        bail!(
            "`{path}` is not a router: it exports neither `wasi:http/handler@0.3.x` (the \
             wasi:http/middleware world) nor `wasi:http/incoming-handler@0.2.x` (the \
             switchyard:server/router world); its exports: {}",
            list(&self.exports),
        )
    }

    /// The kind of app this is, or why it is none: `path` names it.
    pub(crate) fn app_kind(&self, path: &Path) -> Result<AppKind> {
        if self.imports_any(P3_HANDLER) {
            bail!(
                "`{}` is a middleware, not an app: serve an app and put the middleware in front \
                 of it with `--router {}` (it imports `wasi:http/handler@0.3.x`)",
                path.display(),
                path.display()
            );
        }
        if self.imports_any(RENDERER) {
            bail!(
                "`{}` is a router, not an app: serve an app and plug the router in with \
                 `--router {}` (it imports `{RENDERER_EXPORT}`)",
                path.display(),
                path.display()
            );
        }
        if self.exports_any(P3_HANDLER) {
            return Ok(AppKind::P3Handler);
        }
        if self.exports_any(P2_HANDLER) {
            return Ok(if self.exports_any(RENDERER) {
                AppKind::Switchyard
            } else {
                AppKind::Proxy
            });
        }
        let exports = list(&self.exports);
        bail!(
            "`{}` is not a wasi:http component: it exports neither \
             `wasi:http/incoming-handler@0.2.x` (wasi:http/proxy) nor `wasi:http/handler@0.3.x` \
             (its exports: {exports})",
            path.display()
        )
    }
}

/// `a, b`, or `none`.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Detect the kind of the router component `bytes`, read from `path`.
pub(crate) fn detect_router(bytes: &[u8], path: &Path) -> Result<RouterKind> {
    Interface::read(bytes)
        .with_context(|| format!("`{}` is not a valid component", path.display()))?
        .router_kind(path)
}

/// Detect the kind of the app component `bytes`, read from `path`.
pub(crate) fn detect(bytes: &[u8], path: &Path) -> Result<AppKind> {
    Interface::read(bytes)
        .with_context(|| format!("`{}` is not a valid component", path.display()))?
        .app_kind(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(imports: &[&str], exports: &[&str]) -> Interface {
        Interface {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn kinds_follow_the_exports() {
        let path = Path::new("x.wasm");
        let kind = |exports: &[&str]| interface(&[], exports).app_kind(path).unwrap();
        assert_eq!(kind(&["wasi:http/incoming-handler@0.2.3"]), AppKind::Proxy);
        assert_eq!(
            kind(&[
                "wasi:http/incoming-handler@0.2.12",
                "switchyard:server/renderer@0.2.0"
            ]),
            AppKind::Switchyard
        );
        assert_eq!(
            kind(&[
                "wasi:http/incoming-handler@0.2.0",
                "wasi:http/handler@0.3.0"
            ]),
            AppKind::P3Handler,
            "p3 is preferred, like wasmtime serve"
        );
    }

    #[test]
    fn other_components_are_refused_with_their_exports() {
        let path = Path::new("x.wasm");
        let error = interface(&[], &["wasi:cli/run@0.2.0"])
            .app_kind(path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("its exports: wasi:cli/run@0.2.0"), "{error}");
        let router = interface(
            &["switchyard:server/renderer@0.2.0"],
            &["wasi:http/incoming-handler@0.2.12"],
        );
        assert!(
            router
                .app_kind(path)
                .unwrap_err()
                .to_string()
                .contains("is a router")
        );
        let middleware = interface(&["wasi:http/handler@0.3.0"], &["wasi:http/handler@0.3.0"]);
        let error = middleware.app_kind(path).unwrap_err().to_string();
        assert!(error.contains("is a middleware, not an app"), "{error}");
    }

    #[test]
    fn routers_are_middleware_or_composed() {
        let path = Path::new("r.wasm");
        let kind =
            |imports: &[&str], exports: &[&str]| interface(imports, exports).router_kind(path);
        let p3 = "wasi:http/handler@0.3.2";
        assert_eq!(kind(&[p3], &[p3]).unwrap(), RouterKind::Middleware);
        let p2 = "wasi:http/incoming-handler@0.2.12";
        let renderer = "switchyard:server/renderer@0.2.0";
        assert_eq!(kind(&[renderer], &[p2]).unwrap(), RouterKind::Composed);
        assert_eq!(kind(&[p2], &[p2]).unwrap(), RouterKind::Composed);
        let error = kind(&["wasi:cli/stdout@0.3.0"], &[p3])
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not import it"), "{error}");
        let error = kind(&[], &["wasi:cli/run@0.2.0"]).unwrap_err().to_string();
        assert!(error.contains("its exports: wasi:cli/run@0.2.0"), "{error}");
    }
}
