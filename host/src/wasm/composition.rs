//! Compose router components in front of an app, as `wac plug` does, with
//! `wac-graph`.
//!
//! Each router's imports of `wasi:http/incoming-handler` and
//! `switchyard:server/renderer` are satisfied by the component behind it
//! (the next router, or the app) and by the app's renderer; a middleware's
//! import of `wasi:http/handler@0.3` by the p3 component behind it. What
//! remains (the `wasi:*` imports) is imported by the composition, which
//! exports the outermost link's handler. The result is a plain
//! `wasi:http/proxy` component (or, in front of a p3 app, a
//! `wasi:http/service` one): it runs under `switchyard serve` and under
//! `wasmtime serve`.
//!
//! For a host other than Switchyard ([`Target::AnyHost`]), an import of
//! `switchyard:server/revalidate` is filled by a component that answers
//! `ok` (`revalidate_noop.wat`): such a host has no Switchyard response
//! cache, so there is nothing to revalidate.

// The app's default handler, as routers import and apps export it.
use super::kind::P2_HANDLER as HANDLER;
use std::path::Path;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};
use wasmtime::{Result, bail, format_err};

/// The p3 handler, as middleware import and export it and p3 apps export it.
const P3_HANDLER: &str = "wasi:http/handler@0.3";
/// The app's renderer.
const RENDERER: &str = "switchyard:server/renderer@0.2";
/// What to tell the author of a component that is not a router.
const ROUTER_WORLD: &str = "target the `switchyard:server/router` world";

/// Revalidation, which only Switchyard serves.
const REVALIDATE: &str = "switchyard:server/revalidate@0.2";

/// Where the composition will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `switchyard serve`: every Switchyard interface is the host's.
    Switchyard,
    /// Any wasi:http host: Switchyard's own interfaces are filled in.
    AnyHost,
}

/// A component to compose: where it came from, and its bytes.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// Its path, for messages.
    pub path: &'a Path,
    /// The component.
    pub bytes: &'a [u8],
}

/// Compose `routers` (outermost first) in front of `app`, to run on
/// `target`.
pub fn compose(app: Input<'_>, routers: &[Input<'_>], target: Target) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let app_id = register(&mut graph, "switchyard:app", &app)?;
    let noop = match target {
        Target::Switchyard => None,
        Target::AnyHost => Some(revalidate_noop(&mut graph)?),
    };
    let app_exports = export_names(&graph, app_id);
    let app_handler = find(&app_exports, P3_HANDLER).or_else(|| find(&app_exports, HANDLER));
    let Some(app_handler) = app_handler else {
        bail!(
            "routers cannot go in front of `{}`: it exports neither `wasi:http/handler@0.3.x` \
             nor `wasi:http/incoming-handler@0.2.x`",
            app.path.display()
        );
    };
    let app_renderer = find(&app_exports, RENDERER);
    let app_instance = graph.instantiate(app_id);
    if let Some(noop) = noop {
        plug_revalidate(&mut graph, app_id, app_instance, noop, &app)?;
    }
    let mut behind: (NodeId, String) = (app_instance, app_handler);
    for (i, router) in routers.iter().enumerate().rev() {
        let id = register(&mut graph, &format!("switchyard:router{i}"), router)?;
        let path = router.path.display();
        let exports = export_names(&graph, id);
        let imports = import_names(&graph, id);
        let middleware =
            find(&exports, P3_HANDLER).filter(|_| find(&imports, P3_HANDLER).is_some());
        let export = match middleware {
            Some(export) => {
                if !behind.1.starts_with(P3_HANDLER) {
                    bail!(
                        "the middleware `{path}` cannot be composed in front of a wasi:http@0.2 \
                         handler (`{}`): `switchyard serve --router` links the two instead",
                        behind.1
                    );
                }
                export
            }
            None => {
                let Some(export) = find(&exports, HANDLER) else {
                    bail!(
                        "`{path}` is not a router: it does not export `wasi:http/incoming-handler@0.2.12` ({ROUTER_WORLD}) \
                         nor import and export `wasi:http/handler@0.3.x` (the wasi:http/middleware world)"
                    );
                };
                if find(&imports, HANDLER).is_none() && find(&imports, RENDERER).is_none() {
                    bail!(
                        "`{path}` is not a router: it imports neither `wasi:http/incoming-handler@0.2.12` \
                         nor `switchyard:server/renderer@0.2.0` from the app ({ROUTER_WORLD})"
                    );
                }
                if behind.1.starts_with(P3_HANDLER) {
                    bail!(
                        "`{path}` cannot go in front of `{}`, a WASIp3 handler: Switchyard routers \
                         import a wasi:http@0.2 incoming handler (a wasi:http/middleware@0.3 \
                         component can)",
                        if i + 1 < routers.len() {
                            routers[i + 1].path
                        } else {
                            app.path
                        }
                        .display()
                    );
                }
                export
            }
        };
        let instance = graph.instantiate(id);
        if let Some(noop) = noop {
            plug_revalidate(&mut graph, id, instance, noop, router)?;
        }
        for import in &imports {
            let (source, name) = if import.starts_with(HANDLER) || import.starts_with(P3_HANDLER) {
                (behind.0, behind.1.clone())
            } else if import.starts_with(RENDERER) {
                let Some(renderer) = &app_renderer else {
                    bail!(
                        "`{path}` imports `{import}`, but the app `{}` does not export it \
                         (build the app for the `switchyard:server/app` world)",
                        app.path.display()
                    );
                };
                (app_instance, renderer.clone())
            } else {
                continue;
            };
            let node = graph
                .alias_instance_export(source, &name)
                .map_err(|e| format_err!("failed to compose `{path}`: {e:#}"))?;
            graph
                .set_instantiation_argument(instance, import, node)
                .map_err(|e| format_err!("failed to plug `{import}` into `{path}`: {e:#}"))?;
        }
        behind = (instance, export);
    }
    let handler = graph
        .alias_instance_export(behind.0, &behind.1)
        .map_err(|e| format_err!("failed to compose: {e:#}"))?;
    graph
        .export(handler, &behind.1)
        .map_err(|e| format_err!("failed to compose: {e:#}"))?;
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| format_err!("failed to encode the composition: {e:#}"))
}

/// An instance of the component that answers `ok` to every revalidation.
fn revalidate_noop(graph: &mut CompositionGraph) -> Result<NodeId> {
    let bytes = wat::parse_str(include_str!("revalidate_noop.wat"))
        .map_err(|e| format_err!("the built-in revalidation does not assemble: {e}"))?;
    let path = Path::new("(built in) revalidate_noop.wat");
    let id = register(
        graph,
        "switchyard:revalidate-noop",
        &Input {
            path,
            bytes: &bytes,
        },
    )?;
    Ok(graph.instantiate(id))
}

/// Fill `instance`'s import of `revalidate`, if its package has one, with
/// `noop`'s export.
fn plug_revalidate(
    graph: &mut CompositionGraph,
    package: PackageId,
    instance: NodeId,
    noop: NodeId,
    input: &Input<'_>,
) -> Result<()> {
    let Some(import) = find(&import_names(graph, package), REVALIDATE) else {
        return Ok(());
    };
    let export = graph
        .alias_instance_export(noop, "switchyard:server/revalidate@0.2.0")
        .map_err(|e| format_err!("failed to compose: {e:#}"))?;
    graph
        .set_instantiation_argument(instance, &import, export)
        .map_err(|e| {
            format_err!(
                "failed to plug `{import}` into `{}`: {e:#}",
                input.path.display()
            )
        })
}

/// Read the routers at `routers` and compose them in front of the app at
/// `app` (whose bytes are `app_bytes`), to run on `target`.
pub fn compose_files(
    app: &Path,
    app_bytes: &[u8],
    routers: &[std::path::PathBuf],
    target: Target,
) -> Result<Vec<u8>> {
    let bytes = routers
        .iter()
        .map(|path| super::component::read(path))
        .collect::<Result<Vec<_>>>()?;
    let inputs: Vec<Input<'_>> = routers
        .iter()
        .zip(&bytes)
        .map(|(path, bytes)| Input { path, bytes })
        .collect();
    compose(
        Input {
            path: app,
            bytes: app_bytes,
        },
        &inputs,
        target,
    )
}

fn register(graph: &mut CompositionGraph, name: &str, input: &Input<'_>) -> Result<PackageId> {
    let package = Package::from_bytes(name, None, input.bytes, graph.types_mut()).map_err(|e| {
        format_err!(
            "failed to read `{}` as a component: {e:#}",
            input.path.display()
        )
    })?;
    graph
        .register_package(package)
        .map_err(|e| format_err!("failed to read `{}`: {e:#}", input.path.display()))
}

fn export_names(graph: &CompositionGraph, package: PackageId) -> Vec<String> {
    graph.types()[graph[package].ty()]
        .exports
        .keys()
        .cloned()
        .collect()
}

fn import_names(graph: &CompositionGraph, package: PackageId) -> Vec<String> {
    graph.types()[graph[package].ty()]
        .imports
        .keys()
        .cloned()
        .collect()
}

/// The name in `names` of the interface `prefix` (any compatible version).
fn find(names: &[String], prefix: &str) -> Option<String> {
    names.iter().find(|name| name.starts_with(prefix)).cloned()
}
